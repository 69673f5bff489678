"""Masks as the tools that make them save them (data/masks.py), found by a data-ingestion probe:
black-and-white masks in opaque RGBA files, a transforms.json with a byte-order mark, images
beside transforms.json, only a pre-shrunk masks_K/, frames COLMAP left unregistered in images/,
and mask_path written on Windows. Each was silently trained without masks, or refused."""
import codecs
import json

import numpy as np
import pytest
from PIL import Image

from taichi_nerf.data.dataset import DataError
from taichi_nerf.data.loaders import read_dataset

from .test_masks import SIZE, _alpha_matches_masks, _mask, _photo, write_llff, write_transforms


def _as_opaque_rgba(folder):
    """Each mask saved again as an image editor saves it: RGBA, the mask in the colours, alpha 255."""
    for path in sorted(folder.iterdir()):
        grey = np.asarray(Image.open(path).convert("L"))
        rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
        path.unlink()
        Image.fromarray(rgba, "RGBA").save(path.with_suffix(".png"))


def _has_masks(ds, origin):
    return ds.mask_mode == "transparent" and any(n.startswith(f"masks: {sum(s.count for s in ds.splits.values())} "
                                                              f"from {origin}") for n in ds.notes)


def test_masks_in_opaque_rgba_files_use_their_grey_values(tmp_path):
    root = write_transforms(tmp_path / "ds")
    _as_opaque_rgba(root / "masks")
    ds = read_dataset(root)
    _alpha_matches_masks(ds)  # the opaque alpha said "keep everything"
    for path in sorted((root / "masks").iterdir()):  # a mask with transparency still goes by its alpha
        alpha = np.asarray(Image.open(path).convert("L"))
        Image.fromarray(np.dstack([np.zeros((SIZE, SIZE, 3), np.uint8), alpha]), "RGBA").save(path)
    _alpha_matches_masks(read_dataset(root))


def test_from_photos_hands_colmap_the_grey_values_of_opaque_rgba_masks(tmp_path):
    """COLMAP got all-white masks from the opaque alpha, matched the still room, and the degeneracy
    check then blamed the masks for letting it through."""
    from taichi_nerf.capture.photo_masks import COLMAP_FOLDER, check, place, transparent

    (tmp_path / "p").mkdir()
    (tmp_path / "m").mkdir()
    for k in range(2):
        Image.fromarray(_photo(k)).save(tmp_path / "p" / f"IMG_{k}.jpg")
        Image.fromarray(_mask(SIZE, k)).save(tmp_path / "m" / f"IMG_{k}.png")
    _as_opaque_rgba(tmp_path / "m")
    photos = sorted((tmp_path / "p").iterdir())
    place(photos, [p.name for p in photos], check(photos, tmp_path / "m"), tmp_path / "ds")
    for k, photo in enumerate(photos):
        given = np.asarray(Image.open(tmp_path / "ds" / COLMAP_FOLDER / f"{photo.name}.png"))
        assert np.array_equal(given, _mask(SIZE, k)), k
    # photos in opaque RGBA files are not cut out of their background (the hint would say they were)
    assert not transparent(sorted((tmp_path / "m").iterdir()))


def test_a_transforms_json_with_a_byte_order_mark_keeps_its_masks(tmp_path):
    for masks in ("folder", "frames"):
        root = write_transforms(tmp_path / masks, masks=masks)
        file = root / "transforms.json"
        file.write_bytes(codecs.BOM_UTF8 + file.read_bytes())  # as Windows editors save it
        ds = read_dataset(root)
        assert _has_masks(ds, "masks/" if masks == "folder" else "the frames' mask_path"), (masks, ds.notes)
        _alpha_matches_masks(ds)


def test_masks_of_images_beside_transforms_json_are_found_inside_the_dataset(tmp_path):
    root = write_transforms(tmp_path / "ds")
    for image in sorted((root / "images").iterdir()):
        image.rename(root / image.name)
    (root / "images").rmdir()
    meta = json.loads((root / "transforms.json").read_text())
    for frame in meta["frames"]:
        frame["file_path"] = frame["file_path"].removeprefix("images/")
    (root / "transforms.json").write_text(json.dumps(meta))
    ds = read_dataset(root)
    assert _has_masks(ds, "masks/"), ds.notes
    _alpha_matches_masks(ds)
    # a masks/ folder beside the dataset is another dataset's, not this one's
    (root / "masks").rename(tmp_path / "masks")
    assert read_dataset(root).mask_mode == ""


def _pre_shrink(root, factor=2):
    """images_K/ beside images/, and the masks only as masks_K/ (LLFF's and nerfstudio's --downscale)."""
    small = SIZE // factor
    (root / f"images_{factor}").mkdir()
    (root / f"masks_{factor}").mkdir()
    for k, image in enumerate(sorted((root / "images").iterdir())):
        Image.open(image).resize((small, small)).save(root / f"images_{factor}" / image.name, quality=95)
        Image.fromarray(_mask(small, k)).save(root / f"masks_{factor}" / f"{image.stem}.png")
    for mask in (root / "masks").iterdir():
        mask.unlink()
    (root / "masks").rmdir()


@pytest.mark.parametrize("layout", ["llff", "transforms"])
def test_masks_beside_a_pre_shrunk_images_folder_next_to_images(tmp_path, layout):
    root = write_llff(tmp_path / "ds") if layout == "llff" else write_transforms(tmp_path / "ds")
    _pre_shrink(root)
    ds = read_dataset(root, downscale=2)
    assert _has_masks(ds, "masks_2/"), ds.notes
    assert {s.width for s in ds.splits.values()} == {SIZE // 2}
    _alpha_matches_masks(ds, SIZE // 2)


def test_a_mask_of_another_shape_beside_only_a_pre_shrunk_images_folder_is_refused(tmp_path):
    """An LLFF capture shipped only as images_K/: its masks' shapes went unchecked and a wide mask
    was squeezed onto a square photo."""
    root = write_llff(tmp_path / "ds")
    _pre_shrink(root)
    for image in (root / "images").iterdir():
        image.unlink()
    (root / "images").rmdir()
    (root / "masks").mkdir()
    for mask in sorted((root / "masks_2").iterdir()):
        mask.rename(root / "masks" / mask.name)
    (root / "masks_2").rmdir()
    _alpha_matches_masks(read_dataset(root, downscale=2), SIZE // 2)  # masks/ at images_2/'s size: read
    Image.fromarray(np.full((SIZE, 2 * SIZE), 255, np.uint8)).save(root / "masks" / "DSC_0001.png")
    with pytest.raises(DataError, match=rf"DSC_0001.png: mask is {2 * SIZE}x{SIZE}, its image is {SIZE // 2}x"):
        read_dataset(root, downscale=2)


def test_only_the_images_the_dataset_uses_need_masks(tmp_path):
    """colmap2nerf and ns-process-data leave the frames COLMAP did not register in images/."""
    root = write_transforms(tmp_path / "ds")
    meta = json.loads((root / "transforms.json").read_text())
    unregistered = meta["frames"].pop(3)["file_path"]
    (root / "transforms.json").write_text(json.dumps(meta))
    stem = unregistered.removeprefix("images/").removesuffix(".JPG")
    (root / "masks" / f"{stem}.png").rename(tmp_path / "aside.png")  # masked only what COLMAP registered
    ds = read_dataset(root)
    assert _has_masks(ds, "masks/"), ds.notes
    assert stem not in {n for s in ds.splits.values() for n in s.names}
    _alpha_matches_masks(ds)
    (tmp_path / "aside.png").rename(root / "masks" / f"{stem}.png")  # its mask is no stray either
    _alpha_matches_masks(read_dataset(root))


def test_a_missing_mask_counts_only_the_masks_of_the_images_in_use(tmp_path):
    """The refusal's count had included the masks of frames COLMAP did not register: "8 masks for 8
    images" for a folder short of one of them."""
    root = write_transforms(tmp_path / "ds")
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"].pop(3)  # unregistered: it stays in images/, with its mask
    (root / "transforms.json").write_text(json.dumps(meta))
    in_use = len(meta["frames"])
    missing = meta["frames"][0]["file_path"].removeprefix("images/").removesuffix(".JPG")
    (root / "masks" / f"{missing}.png").unlink()
    said = rf"{missing}.JPG: no mask for this image .*\({in_use - 1} masks for {in_use} images"
    with pytest.raises(DataError, match=said):
        read_dataset(root)


def test_mask_path_written_on_windows(tmp_path):
    root = write_transforms(tmp_path / "ds", masks="frames")
    meta = json.loads((root / "transforms.json").read_text())
    for frame in meta["frames"]:
        frame["mask_path"] = frame["mask_path"].replace("/", "\\")
    (root / "transforms.json").write_text(json.dumps(meta))
    ds = read_dataset(root)
    assert _has_masks(ds, "the frames' mask_path"), ds.notes
    _alpha_matches_masks(ds)
