"""Per-image masks: which pixels belong to what the field should learn.

Where masks are found (the first that applies; docs/DATASETS.md, "Turntable captures and masks"):

* ``mask_path`` on the frames of a ``transforms.json`` (nerfstudio's convention; every frame
  then needs one), relative to the file;
* a ``masks/`` folder beside the images folder (inside the dataset when the images lie beside
  its transforms.json), in the LLFF, transforms.json and COLMAP layouts; ``masks_K/`` first when
  the images are read at ``--downscale K`` or from a pre-shrunk ``images_K/``, and a ``masks_K/``
  alone serves too. Only the images the dataset uses need one (COLMAP's unregistered frames stay
  in ``images/``). A mask is matched to its image by file name without the extension
  (``DSC_0007.jpg`` for ``DSC_0007.JPG``), or by the whole name plus ``.png`` (COLMAP's
  ``DSC_0007.JPG.png``), in another case where no other mask has the name (``dsc_0007.png``).

Any image format and any size of the same shape: a mask is resized to its image. White keeps
a pixel, black masks it out; a mask with transparency uses its alpha (an alpha opaque everywhere,
as editors save black-and-white masks in RGBA, is passed over for the grey values). JPEG masks
ring around their edges and are never quite 0 or 255, so values are stretched from [LOW, HIGH] to [0, 255].

How training uses them (``TrainConfig.mask_mode``): ``transparent`` makes masked-out pixels
transparent (alpha = alpha * mask), so the background rules apply and the object is learned
alone; ``ignore`` leaves them out of the loss (a moving distractor in a static scene); ``off``
does not read them. Masks that do not match the images are refused with one line naming the
first bad file, before anything is trained or written.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..wording import flag_or_keyword
from .dataset import DataError, Dataset
from .images import DATASET_SUFFIXES, PHOTO_SUFFIXES

MASK_MODES = ("transparent", "ignore", "off")
MASK_SUFFIXES = PHOTO_SUFFIXES
LOW, HIGH = 24, 232  # mask values at or below LOW are out, at or above HIGH are in (JPEG ringing)
KEEP = 128  # mask_mode ignore: a pixel takes part in the loss from this value on
# mask_mode ignore is for distractors in a scene; masks that keep less of the borders than this
# cut an object out (a turntable), which the default mode learns alone
OBJECT_BORDER_KEPT = 0.1
SHAPE_TOLERANCE = 0.02  # relative aspect-ratio difference a mask may have from its image


# --- where the masks are ----------------------------------------------------------------------
def _listed_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DATASET_SUFFIXES)


def _mask_folder(images_dir: Path, root: Path, downscale: int) -> Path | None:
    """The masks of the images in ``images_dir`` (the dataset at ``root`` read at ``downscale``):
    ``masks_<downscale>/`` (at the size read, whichever images folder was decoded), ``masks_K/``
    beside ``images_K/``, ``masks/``, else the finest ``masks_K/``; None when there is none. Beside
    ``images_dir``, or inside ``root`` when the images lie in it (a folder beside it is another dataset's)."""
    from .llff import pre_shrunk_folders

    where = root if images_dir.resolve() == root.resolve() else images_dir.parent
    names = [f"masks_{downscale}"] if downscale > 1 else []
    if images_dir.name.startswith("images_"):
        names.append("masks" + images_dir.name[len("images"):])
    candidates = [where / name for name in [*names, "masks"]] + pre_shrunk_folders(where, "masks")
    return next((c for c in candidates if c.is_dir()), None)


def _frames_files(path: Path, format: str) -> list[Path]:
    if format == "blender":
        root = path if path.is_dir() else path.parent
        return [root / f"transforms_{s}.json" for s in ("train", "val",
                                                        "test") if (root / f"transforms_{s}.json").is_file()]
    if path.is_file():
        return [path]
    return [path / "transforms.json"] if (path / "transforms.json").is_file() else []


def _split_of(file: Path, format: str) -> str | None:
    """The split whose frames a transforms file holds: a Blender layout's ``transforms_<split>.json``
    (its splits reuse image names), else None (every split)."""
    return file.stem[len("transforms_"):] if format == "blender" else None


def _frame_masks(files: list[Path]) -> tuple[dict[Path, dict[str, Path]], list[Path], str | None]:
    """From the frames of transforms files: (per file, image stem -> its ``mask_path``; every
    frame's image; the first frame without ``mask_path`` when some have one). Per file: a Blender
    layout's splits reuse image names (``train/r_000``, ``val/r_000``). Two frames of one file whose
    images share a name (in two folders) but not a mask are refused: masks go by the image's name."""
    from .blender import read_json, resolve_image

    stated, images, without = {}, [], None
    for file in files:
        try:
            frames = read_json(file).get("frames") or []  # as the loader reads it (a byte-order mark too)
        except DataError:
            return {}, [], None  # the loader has already said what is wrong with the file
        for i, frame in enumerate(frames):
            if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
                continue
            image = resolve_image(file.parent, frame["file_path"], f"{file} frame {i}")
            if not image.is_file():
                continue  # the loader skipped it
            images.append(image)
            mask = frame.get("mask_path")
            if isinstance(mask, str) and mask:
                mask = (file.parent / mask.replace("\\", "/")).resolve()  # a path written on Windows
                own = stated.setdefault(file, {})
                if own.setdefault(image.stem, mask) != mask:
                    raise DataError(f"{file} frame {i}: its image {image} has the name of another frame's image, "
                                    "with another mask; masks are matched to images by name: rename one of them")
            elif without is None:
                without = f"{file} frame {i} ({image.name})"
    return stated, images, without


def _index_folder(folder: Path) -> dict[str, Path]:
    """Mask files by name without the last extension (``a.png`` -> ``a``, ``a.JPG.png`` -> ``a.JPG``)."""
    found = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in MASK_SUFFIXES and not p.name.startswith("."):
            key = p.name[: -len(p.suffix)]
            if key in found:  # which one is meant cannot be told (one may be an old, all-black export)
                raise DataError(f"{p}: a second mask for one image, beside {found[key].name}; keep one of them")
            found[key] = p
    return found


def _mask_key(image: Path, index: dict[str, Path], folded: dict[str, list[str]]) -> str | None:
    """``image``'s key in ``index`` (_index_folder): its name without the extension or whole, else
    either in another case where one mask alone has it (``tt_0001.png`` for ``TT_0001.JPG``: named
    on a case-blind macOS or Windows). ``folded``: the keys by their lower case."""
    for name in (image.stem, image.name):
        if name in index:
            return name
    for name in (image.stem, image.name):
        if len(keys := folded.get(name.lower(), [])) == 1:
            return keys[0]
    return None


WITHOUT_MASKS = flag_or_keyword("--mask-mode off", "mask_mode='off'") + " trains without the masks"  # a way out


def match_folder(images: list[Path], folder: Path, without: str = WITHOUT_MASKS,
                 passed_over: frozenset[str] = frozenset()) -> dict[str, Path]:
    """Image stem -> mask file. Every image needs a mask and every mask an image. ``without``:
    how to go on without masks (from-photos: leave out --masks), said with the refusal.
    ``passed_over``: names of image files left out (from-photos skipped them): their masks are too."""
    index = _index_folder(folder)
    ignored = {name.lower() for file in passed_over for name in (file, Path(file).stem)}
    counted = sum(key.lower() not in ignored for key in index)  # the masks of the images in use
    folded = {}
    for key in index:
        folded.setdefault(key.lower(), []).append(key)
    matched, used = {}, set()
    for image in images:
        key = _mask_key(image, index, folded)
        if key is None:
            others = {n.lower() for i in images for n in (i.stem, i.name)}  # IMG_10.png is no near miss for IMG_1
            near = next((p.name for k, p in index.items()
                         if image.stem.lower() in k.lower() and k.lower() not in others), None)
            name = f": {image.stem}.png, not {near}); rename the masks" if near else "); add it"
            raise DataError(f"{image}: no mask for this image in {folder} ({counted} masks for {len(images)} "
                            f"images; a mask has the image's name, any extension{name}, or {without}")
        matched[image.stem] = index[key]
        used.add(key)
    extra = [p for key, p in index.items() if key not in used and key.lower() not in ignored]
    if extra:
        raise DataError(f"{extra[0]}: mask without an image ({counted} masks for {len(images)} images in "
                        f"{images[0].parent if images else folder}); masks and images must match one to one: "
                        f"remove it, or {without}")
    return matched


def find_masks(path, format: str, downscale: int = 1,
               used: set[str] | None = None) -> tuple[dict[str | None, dict[str, Path]], str] | None:
    """(split name -> (image stem -> mask file), where they came from) for the dataset at ``path``
    in layout ``format`` read at ``downscale``, or None when it has no masks; the split None: the
    table of every split (all but a Blender layout's, whose split files name their own masks).
    ``used``: the stems of the images the dataset uses (None: all); only they need masks (the
    frames COLMAP did not register stay in images/). Refuses masks that do not match the images."""
    from .colmap_files import find_model
    from .llff import photos_folder

    path = Path(path)
    root = path if path.is_dir() else path.parent
    if format in ("instant-ngp", "blender"):
        files = _frames_files(path, format)
        stated, images, without = _frame_masks(files)
        if stated:
            if without is not None:
                raise DataError(f"{without}: frame has no 'mask_path', but other frames have one; give every "
                                "frame a mask or none")
            return {_split_of(file, format): own for file, own in stated.items()}, "the frames' mask_path"
        folders = sorted({p.parent for p in images})
        if len(folders) != 1 or format == "blender":
            return None
        images_dir = folders[0]
    elif format == "llff":
        images_dir = photos_folder(root)  # images/, else a pre-shrunk images_K/: the same names either way
        if images_dir is None:
            return None
    elif format == "colmap":
        found = find_model(path)
        if found is None:
            return None
        images_dir = found[1]
    else:
        return None
    folder = _mask_folder(images_dir, root, downscale)
    listed = _listed_images(images_dir)
    images = [p for p in listed if used is None or p.stem in used]
    if folder is None or not listed:
        return None
    passed_over = frozenset(p.name for p in listed if used is not None and p.stem not in used)
    return {None: match_folder(images, folder, passed_over=passed_over)}, f"{folder.name}/"


# --- reading ----------------------------------------------------------------------------------
def transparency(im: Image.Image) -> Image.Image | None:
    """``im``'s alpha channel when some pixel is less than opaque, else None. An alpha of 255
    everywhere (a black-and-white mask saved as RGBA by an editor) says nothing: the grey values do."""
    if im.mode not in ("RGBA", "LA", "PA") and not (im.mode == "P" and "transparency" in im.info):
        return None
    alpha = im.convert("RGBA").getchannel("A")
    return alpha if alpha.getextrema()[0] < 255 else None


def read_mask(path: Path, width: int, height: int, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """(height, width) uint8 in [0, 255]: resized to the image, ringing stretched away.
    ``image_size``: (w, h) of the image file, to refuse a mask of another shape."""
    try:
        with Image.open(path) as im:
            full = im.size
            if image_size is not None:
                ratio_mask, ratio_image = full[0] / full[1], image_size[0] / image_size[1]
                if abs(ratio_mask / ratio_image - 1.0) > SHAPE_TOLERANCE:
                    raise DataError(f"{path}: mask is {full[0]}x{full[1]}, its image is {image_size[0]}x"
                                    f"{image_size[1]}; a mask must have its image's aspect ratio (any size: it is "
                                    "resized to the image)")
            alpha = transparency(im)
            if alpha is not None:
                im = alpha
            else:
                im.draft("L", (width, height))  # JPEG: decode at the smallest scale still >= the image
                im = im.convert("L")
            if im.size != (width, height):
                shrink = im.width >= width and im.height >= height
                im = im.resize((width, height), Image.BOX if shrink else Image.BILINEAR)
            mask = np.asarray(im, dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found (named by the dataset's masks; {WITHOUT_MASKS})") from None
    except DataError:  # ours, already one line (a ValueError: not "cannot read" it)
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read mask ({exc})") from None
    brightest = int(mask.max())
    mask = np.clip((mask - LOW) * (255.0 / (HIGH - LOW)) + 0.5, 0, 255).astype(np.uint8)
    if int(mask.max()) < KEEP:
        if brightest == 0:
            raise DataError(f"{path}: mask is all black (it masks out the whole image); white marks what to keep")
        raise DataError(f"{path}: mask keeps no pixel: its brightest value is {brightest} of 255 (a mask of 0 and 1, "
                        "or a coloured one?); white (255) marks what to keep, black (0) what to leave out")
    return mask


def _image_size(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None


def read_masks(paths: list[Path], width: int, height: int, images: list[Path | None] | None = None) -> torch.Tensor:
    """(N, height, width) uint8, decoded in parallel."""
    out = np.empty((len(paths), height, width), dtype=np.uint8)
    images = images or [None] * len(paths)

    def load(i: int) -> None:
        out[i] = read_mask(paths[i], width, height, _image_size(images[i]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(load, range(len(paths))))
    return torch.from_numpy(out)


# --- the loader hook --------------------------------------------------------------------------
def attach_masks(dataset: Dataset, path, format: str, mode: str = "transparent", downscale: int = 1) -> None:
    """Find, check and read the masks of a loaded dataset (read at ``downscale``) and apply ``mode``
    (see MASK_MODES); notes say what was used. Called by ``loaders.read_dataset`` right after the
    format's loader."""
    if mode not in MASK_MODES:
        raise DataError(f"mask_mode must be one of {', '.join(MASK_MODES)}, got {mode!r}")  # the flag's are choices
    if mode == "off" or path is None:
        return
    found = find_masks(path, format, downscale, {n for split in dataset.splits.values() for n in split.names} or None)
    if found is None:
        return
    tables, origin = found
    image_tables = _images_by_stem(path, format)
    for name, split in dataset.splits.items():
        by_stem = tables.get(name, tables.get(None, {}))
        images = image_tables.get(name, image_tables.get(None, {}))
        missing = [n for n in split.names if n not in by_stem]
        if missing:
            raise DataError(f"{dataset.source}: no mask for image {missing[0]} ({name} split); {WITHOUT_MASKS}")
        split.mask = read_masks([by_stem[n] for n in split.names], split.width, split.height,
                                [images.get(n) for n in split.names])
        if mode == "transparent":
            alpha = split.rgba[..., 3].to(torch.int32) * split.mask.to(torch.int32)
            split.rgba[..., 3] = ((alpha + 127) // 255).to(torch.uint8)
    dataset.mask_mode = mode
    if mode == "ignore" and "train" in dataset.splits:
        border = border_kept_share(dataset.splits["train"].mask)
        if border < OBJECT_BORDER_KEPT:
            alone = flag_or_keyword("--mask-mode transparent", "mask_mode='transparent'")
            dataset.warnings.append(
                f"the masks keep only {100 * border:.0f}% of the images' borders: they cut out an object, not "
                "distractors, and the ignore mode still reads the surround they cut away as the scene's (for a "
                f"background and bounds); for an object on a turntable or a backdrop, {alone} learns it alone")
    count = sum(s.count for s in dataset.splits.values())
    how = ("masked-out pixels are transparent, the object is learned alone" if mode == "transparent" else
           "masked-out pixels are left out of the loss")
    others = " or ".join(m for m in ("transparent", "ignore", "off") if m != mode)
    dataset.notes.append(f"masks: {count} from {origin} ({mode}: {how}; "
                         f"{flag_or_keyword(f'--mask-mode {others}', 'mask_mode=')} changes this)")


def _images_by_stem(path, format: str) -> dict[str | None, dict[str, Path]]:
    """Image files by stem, to compare each mask's shape with its image's (best effort), per split
    as :func:`find_masks` gives the masks."""
    from .colmap_files import find_model
    from .llff import photos_folder

    path = Path(path)
    folder = None
    if format == "llff":  # images/, else a pre-shrunk images_K/, as find_masks
        folder = photos_folder(path.parent if path.is_file() else path)
    elif format == "colmap":
        found = find_model(path)
        folder = found[1] if found else None
    elif format in ("instant-ngp", "blender"):
        return {_split_of(file, format): {p.stem: p for p in _frame_masks([file])[1]}
                for file in _frames_files(path, format)}
    if folder is None or not folder.is_dir():
        return {}
    return {None: {p.stem: p for p in _listed_images(folder)}}


def border_kept_share(mask: torch.Tensor) -> float:
    """Share of the pixels in the border band the background choice reads (data/surround.py)
    that the masks keep: near 0 when they cut an object out of its surround."""
    from .surround import BAND, border_pixels

    count, height, width = mask.shape
    band = border_pixels(mask[..., None], torch.arange(count), round(BAND * min(height, width)))
    return float((band >= KEEP).float().mean())


def kept_pixels(mask: torch.Tensor) -> torch.Tensor:
    """mask_mode ignore: flat indices (image * H * W + pixel) of the pixels that take part in the loss."""
    return torch.nonzero(mask.reshape(-1) >= KEEP)[:, 0]
