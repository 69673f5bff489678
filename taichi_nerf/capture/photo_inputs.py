"""What ``data from-photos`` checks before anything is written: the photos (readable, one size,
no file twice, no two with one name), the ``--out`` folder (new, empty, or a dataset it may
replace, never the folder the photos or masks are in), and how each photo enters the dataset's
``images/``: a hard link, else a copy, or a lossless PNG for formats the loaders and COLMAP
do not all read (TIFF, BMP, WebP); a photo with an EXIF orientation is written turned as photo
viewers show it, without the tag (COLMAP and the loaders read pixels as stored)."""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from ..data.dataset import DataError
from ..data.images import DATASET_SUFFIXES, PHOTO_SUFFIXES
from ..data.loaders import DATASET_MARKERS
from ..wording import SHOWN, few_names

# All that from-photos writes in --out (--overwrite swaps these). masks/ (with --masks) is one: an
# old run's left behind would be read as this dataset's, and a new one must not be dropped.
OUTPUTS = ("images", "masks", "transforms.json", "colmap")
WRITTEN_BY_US = ("transforms.json", "colmap")  # an --out holding one of these is a dataset --overwrite may replace
EXIF_ORIENTATION = 0x0112
TURNED = (5, 6, 7, 8)  # EXIF orientations that turn a photo a quarter (width and height swap)
# Photo formats Pillow cannot read without a plug-in, with the way out.
CONVERT_FIRST = {".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".dng": "raw", ".cr2": "raw", ".cr3": "raw",
                 ".nef": "raw", ".arw": "raw", ".orf": "raw", ".rw2": "raw", ".raf": "raw"}
def few_skipped(skipped: list[tuple[str, str]]) -> str:
    """The first SHOWN skipped files, those skipped for one reason together, and how many more."""
    groups: dict[str, list[str]] = {}
    for name, why in skipped:
        groups.setdefault(why, []).append(name)
    parts, shown, told = [], 0, 0
    for why, names in groups.items():
        if shown >= SHOWN:
            break
        take = names[:SHOWN - shown]
        more = f" and {len(names) - len(take)} more" if len(names) > len(take) else ""
        parts.append(f"{', '.join(take)}{more} ({why})")
        shown, told = shown + len(take), told + len(names)
    rest = len(skipped) - told
    return ", ".join(parts) + (f" and {rest} other file{'s' if rest > 1 else ''}" if rest else "")


def _why_not_a_photo(suffix: str) -> str:
    kind = CONVERT_FIRST.get(suffix)
    if kind is None:
        return "not an image file"
    return f"{kind}, not read: convert to JPEG first"


def _photo_subfolders(folder: Path) -> list[str]:
    return [f"{d.name}/" for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and any(p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES for p in d.iterdir())]


def _duplicates(photos: list[Path]) -> dict[Path, Path]:
    """Photo -> the photo with the same bytes that is kept (the first by name without the
    extension: ``a.jpg``, not ``a copy.jpg``); only files of equal size are hashed."""
    by_size = defaultdict(list)
    for p in photos:
        by_size[p.stat().st_size].append(p)
    same = {}
    for group in by_size.values():
        by_hash = defaultdict(list)
        for p in group if len(group) > 1 else ():
            by_hash[hashlib.sha256(p.read_bytes()).hexdigest()].append(p)
        for copies in by_hash.values():
            kept = min(copies, key=lambda p: (p.stem, p.name))
            same.update((p, kept) for p in copies if p != kept)
    return same


def gather_images(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The readable photos in ``folder`` (top level, by name) and the files skipped, with why
    (an exact copy of an earlier photo is skipped too). Refuses an empty folder, photos only in
    subfolders, fewer than 3 photos, photos of different sizes and two photos with one name."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    nested = _photo_subfolders(folder)
    in_subfolders = (f"; photos are in its subfolders {few_names(nested)}: give one of them, or put all the photos "
                     "in one folder" if nested else "")
    if not files:
        raise DataError(f"{folder}: no photos in it (only its top level is read){in_subfolders}" if nested else
                        f"{folder}: empty folder, no photos in it")
    photos, skipped, size_of = [], [], {}
    for path in files:
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            skipped.append((path.name, _why_not_a_photo(path.suffix.lower())))
            continue
        try:
            with Image.open(path) as im:
                size = shown_size(im.size, orientation(im))  # one dataset size as the photos are shown
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))  # JPEG: decode small, still whole
                im.load()
        except Exception as exc:  # noqa: BLE001  (PIL raises many kinds for broken files)
            skipped.append((path.name, f"unreadable: {str(exc).replace(str(path), path.name)[:60]}"))
            continue
        photos.append(path)
        size_of[path] = size
    copies = _duplicates(photos)
    for copy, original in copies.items():
        photos.remove(copy)
        skipped.append((copy.name, f"a copy of {original.name}"))
    skipped.sort()
    sizes = Counter(size_of[p] for p in photos)
    listed = f"; skipped {few_skipped(skipped)}" if skipped else ""
    if len(photos) < 3:
        raise DataError(f"{folder}: need at least 3 readable photos, found {len(photos)}{listed}{in_subfolders}")
    if len(sizes) > 1:
        counts = ", ".join(f"{c} x {w}x{h}" for (w, h), c in sizes.most_common())
        common = sizes.most_common(1)[0][0]
        others = few_names([p.name for p in photos if size_of[p] != common])
        raise DataError(f"{folder}: photos of different sizes ({counts}; not {common[0]}x{common[1]}: {others}); "
                        "one dataset needs one size: resize them "
                        "or keep one size (a rotated photo is another size)")
    refuse_shared_names(photos)
    return photos, skipped


def refuse_shared_names(photos: list[Path]) -> None:
    """Two photos whose names differ only in the extension (``a.jpg``, ``a.png``): the dataset's
    masks, a converted photo and the loaders' image names go by the name without it."""
    seen = {}
    for p in photos:
        if p.stem in seen:
            raise DataError(f"{p.parent / seen[p.stem]}: {seen[p.stem]} and {p.name} are two photos with one name "
                            f"({p.stem}); masks and the dataset's images are matched by name without the extension: "
                            "keep one, or rename the other")
        seen[p.stem] = p.name


# --- --out ---------------------------------------------------------------------------------------
def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def refuse_inputs_in_out(out: Path, source: Path, masks: Path | None) -> None:
    """The photos (or the video) and the masks must not lie in what from-photos writes in
    ``out`` (its OUTPUTS): the dataset's ``images/`` and ``masks/`` replace those folders, and
    every file in them that is not a photo (or a photo it skipped) would be gone."""
    for given, what in ((source, "the photos"), (masks, "the masks")):
        if given is None:
            continue
        for name in OUTPUTS:
            if _inside(given, out / name):
                raise DataError(f"{given}: {what} lie in {out / name}, which from-photos writes (the dataset's "
                                f"{name}{'/' if '.' not in name else ''}); choose an --out beside them, such as "
                                f"--out {out / 'dataset'}")


def check_out(out: Path, overwrite: bool) -> None:
    """``out`` is new, empty, or a dataset from-photos wrote (then only with ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; --out must be a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    found = [m for m in DATASET_MARKERS if (out / m).exists()]
    foreign = [m for m in found if m not in OUTPUTS]
    if foreign:  # left beside the new transforms.json, a loader could read the old dataset instead
        raise DataError(f"{out}: holds a dataset from-photos did not write ({', '.join(foreign)}); --overwrite "
                        f"replaces only {', '.join(OUTPUTS)}: choose another --out")
    if not any(m in WRITTEN_BY_US for m in found):  # images/ or masks/ alone are the user's own
        held = f" ({', '.join(f'{m}/' for m in found)} without transforms.json: your own files?)" if found else ""
        raise DataError(f"{out}: folder is not empty and holds no dataset{held}; choose a new or empty --out")
    if not overwrite:
        raise DataError(f"{out}: already holds a dataset; add --overwrite to replace it, or choose another --out")


# --- into the dataset ----------------------------------------------------------------------------
def orientation(image) -> int:
    """The EXIF orientation of an open Pillow image: 1 (as stored) when it has none, or one
    ImageOps.exif_transpose does not know (2-8 turn or mirror)."""
    value = image.getexif().get(EXIF_ORIENTATION, 1)
    return value if value in range(2, 9) else 1


def shown_size(size: tuple[int, int], turn: int) -> tuple[int, int]:
    """(w, h) of an image of stored ``size`` once EXIF orientation ``turn`` is applied."""
    return (size[1], size[0]) if turn in TURNED else size


def turned_photos(photos: list[Path]) -> list[str]:
    """The names of the photos :func:`place_photo` turns (an EXIF orientation other than 1)."""
    from PIL import Image

    def turned(photo: Path) -> bool:
        with Image.open(photo) as im:
            return orientation(im) != 1
    return [p.name for p in photos if turned(p)]


def written_rows(converted: list[str], turned: list[str]) -> list[tuple[str, str]]:
    """The report table's rows for photos not linked as they are."""
    rows = [("converted", f"{few_names(converted)} to PNG in images/ (COLMAP and the loaders read JPEG and PNG)")]
    rows += [("turned", f"{len(turned)} photo{'s' * (len(turned) > 1)} by their EXIF orientation, as photo viewers "
                        f"show them ({few_names(turned)}): images/ holds them so, without the tag")]
    return [row for row, names in zip(rows, (converted, turned)) if names]


def save_png(im, path: Path) -> None:
    """Lossless PNG, in a mode PNG holds (alpha and 16-bit grey kept)."""
    if im.mode not in ("RGB", "RGBA", "L", "LA", "I;16"):
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    im.save(path, format="PNG", compress_level=1)


def dataset_name(photo: Path) -> str:
    """The photo's name in the dataset's images/: its own, or ``<stem>.png`` for a format the
    loaders (DATASET_SUFFIXES) do not list, which is converted."""
    return photo.name if photo.suffix.lower() in DATASET_SUFFIXES else f"{photo.stem}.png"


def link(src: Path, dst: Path) -> None:
    """Hard link (no copy, and the dataset survives the source moving), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def place_photo(photo: Path, images_dir: Path) -> str:
    """Put ``photo`` into ``images_dir`` under :func:`dataset_name`, turned by its EXIF
    orientation (as photo viewers show it) and without that tag; returns the name."""
    from PIL import Image, ImageOps

    name = dataset_name(photo)
    with Image.open(photo) as im:
        turn = orientation(im)
        if name == photo.name and turn == 1:
            link(photo, images_dir / name)
            return name
        upright = ImageOps.exif_transpose(im)  # drops the tag, so nothing turns it twice
        if name != photo.name or photo.suffix.lower() == ".png":
            save_png(upright, images_dir / name)  # pixels and colour profile, as conversions always wrote
        else:  # JPEG again, with its EXIF (COLMAP's focal length prior) and colour profile
            from PIL import JpegImagePlugin

            kept = {key: upright.info[key] for key in ("exif", "icc_profile") if key in upright.info}
            subsampling = 2 if JpegImagePlugin.get_sampling(im) == 2 else 0  # a phone's 4:2:0 stays so, else full
            upright.save(images_dir / name, format="JPEG", quality=95, subsampling=subsampling, **kept)
    return name
