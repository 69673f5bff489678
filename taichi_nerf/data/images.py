"""Image file I/O shared by every loader: decode to RGBA uint8, whatever the file holds."""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import lfs_pointer
from .dataset import DataError

# Photos as users bring them (from-photos reads these, masks may be any of them).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DATASET_SUFFIXES = (".png", ".jpg", ".jpeg")  # what the dataset loaders take as a layout's images (any case)


def read_rgba(path: Path, downscale: int = 1) -> np.ndarray:
    """(H, W, 4) uint8. Grayscale, palette, 16-bit and RGB files are converted, not refused."""
    try:
        with Image.open(path) as im:
            full = im.size  # before draft() shrinks it
            if downscale > 1:
                # JPEG: decode at the smallest DCT scale still >= the target (a 4000-pixel photo at
                # --downscale 16 decodes at 500, 8x faster); the box filter below does the rest.
                im.draft(None, (max(1, im.width // downscale), max(1, im.height // downscale)))
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: PIL's 8-bit conversion clips, so rescale ourselves.
                arr = np.asarray(im, dtype=np.float32)
                # a 16-bit file is 0..65535 however dark (a dark frame read as 0..255 came out 257x brighter than
                # its sequence); a 32-bit one ("I") says nothing of its range: values past 255 mean 16 bits
                peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
                im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
            if downscale > 1:
                if full[0] // downscale < 1 or full[1] // downscale < 1:
                    raise DataError(f"{path}: downscale {downscale} is too large for {full[0]} x {full[1]} images")
                im = im.convert("RGBA")
                target = (full[0] // downscale, full[1] // downscale)
                if im.size != target:
                    im = im.resize(target, Image.BOX)
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except DataError:  # said above, of a readable image (a ValueError too, not to be called unreadable)
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({lfs_pointer(path) or exc})") from None
    return rgba


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header (nothing is decoded)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({lfs_pointer(path) or exc})") from None


# Why a loader refuses images of another shape than their cameras state (same_shape).
NOT_SAME_SHAPE = ("another shape (rotated, e.g. by EXIF orientation, or cropped after the poses were computed?); "
                  "its cameras would be stretched")


def same_shape(width: float, height: float, stated_w: float, stated_h: float) -> bool:
    """Whether an image of width x height can be the stated size scaled (uniformly, up to the
    pixel a downscale rounds away): not rotated, cropped or stretched."""
    return abs(stated_w * height / stated_h - width) <= 1.0 + 0.01 * width


def read_many(paths: list[Path], downscale: int = 1) -> np.ndarray:
    """Decode in parallel straight into one preallocated (N, H, W, 4) array."""
    if not paths:
        raise DataError("no image files to load")
    first = read_rgba(paths[0], downscale)
    out = np.empty((len(paths),) + first.shape, dtype=np.uint8)
    out[0] = first

    def load(i: int) -> None:
        img = read_rgba(paths[i], downscale)
        if img.shape != first.shape:
            raise DataError(odd_size(paths))
        out[i] = img

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(load, range(1, len(paths))))
    return out


def odd_size(paths: list[Path]) -> str:
    """The one-line error for images of several sizes, naming the first image not of the size most of
    them have (the first image's size would blame every good photo when the odd one comes first)."""
    sizes = [image_size(p) for p in paths]  # headers alone
    counts = Counter(sizes)
    common = max(sizes, key=counts.__getitem__)  # a tie: the first image's
    k = next(i for i, size in enumerate(sizes) if size != common)
    others = counts[common]
    return (f"{paths[k]}: image is {sizes[k][0]}x{sizes[k][1]}, but {others} other images of its split are "
            f"{common[0]}x{common[1]}; all images of a split must have one size")
