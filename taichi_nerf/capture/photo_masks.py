"""``data from-photos --masks DIR``: check the masks against the photos, hand COLMAP its own copy
(COLMAP reads ``<image name>.png`` at the image's size, no features where it is black) and
put the user's files beside the images in the dataset (``masks/``, same names), where every
loader finds them (data/masks.py). A photo turned by its EXIF orientation gets its mask turned
to match (:func:`mask_turn`), written as a PNG."""
from __future__ import annotations

import time
from pathlib import Path

from PIL import Image, ImageOps

from ..data.dataset import DataError
from ..data.masks import KEEP, SHAPE_TOLERANCE, match_folder, read_mask, transparency
from .photo_inputs import EXIF_ORIENTATION, link, orientation, save_png, shown_size

WITHOUT_MASKS = "leave out --masks"
COLMAP_FOLDER = ".colmap-masks"  # inside the partial dataset; removed once COLMAP has read it
CHECK_SIZE = 256  # masks are checked (all black, shape) at most this size


def check(photos: list[Path], folder: Path, skipped: list[tuple[str, str]] = ()) -> dict[str, Path]:
    """Photo stem -> mask file; refuses (one line, naming the first bad file) a missing folder,
    a photo without a mask, a mask without a photo, a mask of another shape or an all-black mask.
    The masks of ``skipped`` photos (gather_images: unreadable, a copy) are passed over with them."""
    if not folder.is_dir():
        raise DataError(f"{folder}: --masks folder not found")
    matched = match_folder(photos, folder, WITHOUT_MASKS, frozenset(name for name, _ in skipped))
    for photo in photos:
        shown, turn = mask_turn(photo, matched[photo.stem])
        stored = shown_size(shown, turn)  # the shape the mask must have before its turn
        scale = min(1.0, CHECK_SIZE / max(stored))
        read_mask(matched[photo.stem], max(1, round(stored[0] * scale)), max(1, round(stored[1] * scale)), stored)
    return matched


def mask_turn(photo: Path, mask: Path) -> tuple[tuple[int, int], int]:
    """(the photo's size in the dataset, as shown; the EXIF orientation that turns its mask to it).
    A photo from-photos turns (photo_inputs.place_photo) has a mask drawn either on its stored
    pixels or on it as shown: the mask's shape tells which, else (a square photo, a half turn or
    a mirror) the mask's own EXIF orientation if it has one, else the stored pixels are assumed."""
    with Image.open(photo) as im:
        size, turn = im.size, orientation(im)
    shown = shown_size(size, turn)
    if turn == 1:
        return shown, 1
    with Image.open(mask) as im:
        ratio, tagged, own = im.width / im.height, EXIF_ORIENTATION in im.getexif(), orientation(im)

    def fits(target: tuple[int, int]) -> bool:
        return abs(ratio / (target[0] / target[1]) - 1.0) <= SHAPE_TOLERANCE
    if fits(size) != fits(shown):
        return shown, turn if fits(size) else 1
    return shown, own if tagged else turn


def place(photos: list[Path], names: list[str], matched: dict[str, Path], dataset: Path) -> float:
    """Write the COLMAP masks (binary, at each photo's size) of the photos, named ``names`` in the
    dataset, into ``dataset/COLMAP_FOLDER`` and link the user's masks (``matched``: what
    :func:`check` returned) into ``dataset/masks/``, or a PNG of each turned as its photo is
    (:func:`mask_turn`); returns the seconds it took."""
    start = time.perf_counter()
    (dataset / COLMAP_FOLDER).mkdir(parents=True)
    (dataset / "masks").mkdir()
    for photo, name in zip(photos, names):
        mask = matched[photo.stem]
        size, turn = mask_turn(photo, mask)
        if turn == 1:
            link(mask, dataset / "masks" / mask.name)
        else:
            with Image.open(mask) as im:
                im.getexif()[EXIF_ORIENTATION] = turn  # Pillow's own transpose, by the turn decided
                save_png(ImageOps.exif_transpose(im), dataset / "masks" / f"{mask.stem}.png")
            mask = dataset / "masks" / f"{mask.stem}.png"
        binary = read_mask(mask, size[0], size[1], size)
        Image.fromarray(((binary >= KEEP) * 255).astype("uint8")).save(dataset / COLMAP_FOLDER / f"{name}.png")
    return time.perf_counter() - start


def transparent(photos: list[Path]) -> bool:
    """Whether every photo has transparency (cut out of its background), which data/masks.py
    reads as a mask: then the photos are their own masks."""
    def cut_out(photo: Path) -> bool:
        with Image.open(photo) as im:
            return transparency(im) is not None  # an opaque alpha channel cuts nothing out
    return bool(photos) and all(cut_out(p) for p in photos)
