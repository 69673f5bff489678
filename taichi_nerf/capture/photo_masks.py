"""``data from-photos --masks DIR``: check the masks against the photos, hand COLMAP its own copy
(COLMAP reads ``<image name>.png`` at the image's size, no features where it is black) and
put the user's files beside the images in the dataset (``masks/``, same names), where every
loader finds them (data/masks.py)."""
from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from ..data.dataset import DataError
from ..data.masks import KEEP, SHAPE_TOLERANCE, match_folder, read_mask
from .photo_inputs import link

WITHOUT_MASKS = "leave out --masks"
COLMAP_FOLDER = ".colmap-masks"  # inside the partial dataset; removed once COLMAP has read it
CHECK_SIZE = 256  # masks are checked (all black, shape) at most this size
EXIF_ORIENTATION = 0x0112
TURNED = (5, 6, 7, 8)  # EXIF orientations that show a photo turned a quarter (width and height swap)


def check(photos: list[Path], folder: Path, skipped: list[tuple[str, str]] = ()) -> dict[str, Path]:
    """Photo stem -> mask file; refuses (one line, naming the first bad file) a missing folder,
    a photo without a mask, a mask without a photo, a mask of another shape or an all-black mask.
    The masks of ``skipped`` photos (gather_images: unreadable, a copy) are passed over with them."""
    if not folder.is_dir():
        raise DataError(f"{folder}: --masks folder not found")
    matched = match_folder(photos, folder, WITHOUT_MASKS, frozenset(name for name, _ in skipped))
    for photo in photos:
        with Image.open(photo) as im:
            size, orientation = im.size, im.getexif().get(EXIF_ORIENTATION, 1)
        if orientation in TURNED and size[0] != size[1]:
            _refuse_upright(matched[photo.stem], photo, size)
        scale = min(1.0, CHECK_SIZE / max(size))
        read_mask(matched[photo.stem], max(1, round(size[0] * scale)), max(1, round(size[1] * scale)), size)
    return matched


def _refuse_upright(mask: Path, photo: Path, size: tuple[int, int]) -> None:
    """A photo stored ``size`` and shown turned a quarter (its EXIF orientation): a mask drawn on
    it as shown, of the turned shape, is refused as such (COLMAP and the loaders read the pixels as stored)."""
    with Image.open(mask) as im:
        shown = im.size
    if abs(shown[0] / shown[1] * size[0] / size[1] - 1.0) <= SHAPE_TOLERANCE:
        raise DataError(f"{mask}: mask is {shown[0]}x{shown[1]}, the shape {photo.name} is shown in (turned by its "
                        f"EXIF orientation), but COLMAP and training read the photo as stored, {size[0]}x{size[1]}: "
                        "turn the masks back to that, or save the photos upright (without the EXIF turn)")


def place(photos: list[Path], names: list[str], matched: dict[str, Path], dataset: Path) -> float:
    """Write the COLMAP masks (binary, at each photo's size) of the photos, named ``names`` in the
    dataset, into ``dataset/COLMAP_FOLDER`` and link the user's masks (``matched``: what
    :func:`check` returned) into ``dataset/masks/``; returns the seconds it took."""
    start = time.perf_counter()
    (dataset / COLMAP_FOLDER).mkdir(parents=True)
    (dataset / "masks").mkdir()
    for photo, name in zip(photos, names):
        with Image.open(photo) as im:
            size = im.size
        mask = read_mask(matched[photo.stem], size[0], size[1], size)
        Image.fromarray(((mask >= KEEP) * 255).astype("uint8")).save(dataset / COLMAP_FOLDER / f"{name}.png")
        link(matched[photo.stem], dataset / "masks" / matched[photo.stem].name)
    return time.perf_counter() - start


def transparent(photos: list[Path]) -> bool:
    """Whether every photo has transparency (cut out of its background), which data/masks.py
    reads as a mask: then the photos are their own masks."""
    def cut_out(photo: Path) -> bool:
        with Image.open(photo) as im:
            return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    return bool(photos) and all(cut_out(p) for p in photos)
