"""What ``data from-photos`` checks before COLMAP runs (capture/photo_inputs.py), found by a
new-user probe: photos inside --out (whose --overwrite deleted the user's other files), copies,
two photos with one name, photos in subfolders, HEIC, long lists of skipped files, formats the
loaders do not list (converted to PNG), --threads, a bad video, and the report's wording.
Nothing here runs COLMAP: each refusal comes first."""
import numpy as np
import pytest
from PIL import Image

from taichi_nerf.capture.photo_inputs import dataset_name, gather_images, place_photo
from taichi_nerf.data.dataset import DataError

from .conftest import refused, snapshot


def _photos(folder, count, size=(96, 72), seed=0, suffix=".jpg", prefix="IMG_"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{prefix}{k:04d}{suffix}")


def _masks(folder, photos):
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted(photos.iterdir()):
        Image.fromarray(np.full((72, 96), 255, np.uint8)).save(folder / f"{p.stem}.png")


def _refused(capsys, *args, needles=()):
    return refused(capsys, ["data", "from-photos", *args, "--no-progress"], *needles)


def test_photos_or_masks_inside_out_are_refused_and_no_user_file_is_lost(tmp_path, capsys):
    """The probe: ``from-photos cap/images --out cap --overwrite`` renamed cap/images aside as the
    old dataset's and deleted it: the photos came back (hard links) but a HEIC and notes.txt there
    were gone. Every such case is refused before anything changes, with or without --overwrite."""
    cap = tmp_path / "cap"
    _photos(cap / "images", 4)
    (cap / "images" / "IMG_9999.HEIC").write_bytes(b"a photo the user has not converted yet")
    (cap / "images" / "notes.txt").write_text("where I took these")
    _masks(cap / "masks", cap / "images")
    before = snapshot(cap)
    for extra in ([], ["--overwrite"]):
        _refused(capsys, cap / "images", "--out", cap, *extra,
                 needles=("the photos lie in", "choose an --out beside them", f"--out {cap / 'dataset'}"))
        _refused(capsys, cap / "images" / ".", "--out", cap / "images" / "..", *extra, needles=("the photos lie in",))
        _refused(capsys, cap / "images", "--masks", cap / "masks", "--out", cap, *extra, needles=("the photos",))
        assert snapshot(cap) == before
    # the masks inside an earlier dataset's masks/, which --overwrite swaps
    (cap / "transforms.json").write_text("{}")
    _photos(tmp_path / "photos", 4)
    _refused(capsys, tmp_path / "photos", "--masks", cap / "masks", "--out", cap, "--overwrite",
             needles=("the masks lie in", "masks/"))
    (cap / "transforms.json").unlink()
    # the user's own images/ (no transforms.json: from-photos did not write it) is no dataset to replace
    _refused(capsys, tmp_path / "photos", "--out", cap, "--overwrite",
             needles=("holds no dataset", "images/, masks/ without transforms.json"))
    assert snapshot(cap) == before and not list(tmp_path.glob(".*"))


def test_copies_are_skipped_and_named(tmp_path):
    _photos(tmp_path, 4)
    (tmp_path / "IMG_0001 copy.jpg").write_bytes((tmp_path / "IMG_0001.jpg").read_bytes())
    (tmp_path / "again.jpg").write_bytes((tmp_path / "IMG_0001.jpg").read_bytes())
    photos, skipped = gather_images(tmp_path)
    assert [p.name for p in photos] == [f"IMG_{k:04d}.jpg" for k in range(4)]  # the first by stem is kept
    assert skipped == [("IMG_0001 copy.jpg", "a copy of IMG_0001.jpg"), ("again.jpg", "a copy of IMG_0001.jpg")]


def test_two_photos_with_one_name_are_refused(tmp_path):
    _photos(tmp_path, 4)
    Image.open(tmp_path / "IMG_0001.jpg").save(tmp_path / "IMG_0000.png")  # beside IMG_0000.jpg, another photo
    with pytest.raises(DataError, match="IMG_0000.jpg and IMG_0000.png are two photos with one name"):
        gather_images(tmp_path)


def test_photos_in_subfolders_heic_and_many_skipped_files(tmp_path):
    _photos(tmp_path / "nested" / "100APPLE", 3)
    _photos(tmp_path / "nested" / "101APPLE", 3, seed=1)
    with pytest.raises(DataError, match="photos are in its subfolders 100APPLE/, 101APPLE/: give one of them"):
        gather_images(tmp_path / "nested")
    heic = tmp_path / "heic"
    heic.mkdir()
    for k in range(200):
        (heic / f"IMG_{k:04d}.HEIC").write_bytes(b"heic")
        (heic / f"n{k:03d}.txt").write_text("x")
    with pytest.raises(DataError) as refusal:
        gather_images(heic)
    line = str(refusal.value)
    assert ("skipped IMG_0000.HEIC, IMG_0001.HEIC, IMG_0002.HEIC and 197 more (HEIC, not read: convert to JPEG "
            "first) and 200 other files") in line and len(line) < 300, line


def test_threads_and_a_bad_video_are_refused_before_any_folder_is_made(tmp_path, capsys):
    _photos(tmp_path / "p", 3)
    out = tmp_path / "new" / "ds"
    _refused(capsys, tmp_path / "p", "--out", out, "--threads", "-3", needles=("--threads must be",))
    _refused(capsys, tmp_path / "p", "--out", out, "--threads", "0", needles=("--threads must be",))
    (tmp_path / "clip.mp4").write_text("not a video")
    _refused(capsys, tmp_path / "clip.mp4", "--out", out, needles=("not a video",))
    assert not (tmp_path / "new").exists()


def test_a_video_with_masks_says_how_to_mask_its_frames(tmp_path, capsys):
    (tmp_path / "walk.mp4").write_text("a video")
    _masks(tmp_path / "masks", tmp_path)
    line = _refused(capsys, tmp_path / "walk.mp4", "--masks", tmp_path / "masks", "--out", tmp_path / "ds",
                    needles=("--masks needs a folder of photos, not a video",))
    assert "extract the frames into a folder" in line and "leave out --masks" in line, line
    assert not (tmp_path / "ds").exists()


def test_masks_named_in_another_case_are_found(tmp_path):
    """Masks made on a case-blind macOS or Windows (img_0001.png for IMG_0001.jpg) were refused as
    missing although every photo had one; two that fold to one name are still told apart by case."""
    from taichi_nerf.capture.photo_masks import check

    _photos(tmp_path / "p", 3)
    _masks(tmp_path / "m", tmp_path / "p")
    for mask in (tmp_path / "m").iterdir():
        mask.rename(mask.with_name(mask.name.lower()))
    photos, skipped = gather_images(tmp_path / "p")
    assert {stem: m.name for stem, m in check(photos, tmp_path / "m", skipped).items()} == {
        f"IMG_{k:04d}": f"img_{k:04d}.png" for k in range(3)}
    Image.fromarray(np.full((72, 96), 255, np.uint8)).save(tmp_path / "m" / "Img_0001.png")  # which is meant?
    with pytest.raises(DataError, match="IMG_0001.jpg: no mask for this image"):
        check(photos, tmp_path / "m", skipped)


def test_masks_named_with_more_than_the_photos_name_are_named(tmp_path, capsys):
    """IMG_0000_mask.png (a masking tool's naming) for IMG_0000.jpg: the line shows the two names."""
    _photos(tmp_path / "p", 3)
    _masks(tmp_path / "m", tmp_path / "p")
    for mask in (tmp_path / "m").iterdir():
        mask.rename(mask.with_name(f"{mask.stem}_mask.png"))
    _refused(capsys, tmp_path / "p", "--masks", tmp_path / "m", "--out", tmp_path / "ds",
             needles=("IMG_0000.jpg: no mask for this image", "IMG_0000.png, not IMG_0000_mask.png); rename the masks, "
                      "or leave out --masks"))
    for k in (1, 10, 11):  # IMG_10.png is the mask of IMG_10.jpg, no near miss for IMG_1.jpg
        _photos(tmp_path / "p2", 1, seed=k, prefix=f"IMG_{k}_")
    _masks(tmp_path / "m2", tmp_path / "p2")
    for photo in (tmp_path / "p2").iterdir():
        photo.rename(photo.with_name(photo.name.replace("_0000", "")))
    for mask in (tmp_path / "m2").iterdir():
        mask.rename(mask.with_name(mask.name.replace("_0000", "")))
    (tmp_path / "m2" / "IMG_1.png").unlink()
    line = _refused(capsys, tmp_path / "p2", "--masks", tmp_path / "m2", "--out", tmp_path / "ds",
                    needles=("IMG_1.jpg: no mask for this image", "); add it, or leave out --masks"))
    assert "not IMG_1" not in line, line


def _upright_scene(k: int) -> tuple[np.ndarray, np.ndarray]:
    """A portrait photo as a viewer shows it (72 wide, 96 high: smooth, so JPEG keeps it close)
    and its mask (the upper left quarter): neither looks the same turned or mirrored."""
    rows, cols = np.mgrid[0:96, 0:72]
    photo = np.stack([rows * 2, cols * 3, np.full_like(rows, 40 * k)], -1).astype(np.uint8)
    mask = np.zeros((96, 72), np.uint8)
    mask[:48, :36] = 255
    return photo, mask


def _stored_turned(upright: np.ndarray) -> Image.Image:
    """What a phone writes for ``upright``: the pixels a quarter turn back, landscape (EXIF 6 turns them up)."""
    return Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)


def test_photos_turned_by_exif_enter_the_dataset_upright_with_their_masks(tmp_path, monkeypatch):
    """A phone's portrait photos, stored landscape with EXIF orientation 6, went to COLMAP and into
    the dataset as stored: the dataset's up was sideways (the probe's turntable: up (-0.26, 0.33,
    0.91), "the cameras cover 142 deg", a path video instead of an orbit). COLMAP is replaced by a
    look at what it is handed: the photos and their masks upright, the dataset's images untagged."""
    from taichi_nerf.capture import photos as pipeline
    from taichi_nerf.capture.photos import PhotoReport

    phone = Image.Exif()
    phone[0x0112], phone[0x010F] = 6, "Phone"
    (tmp_path / "p").mkdir()
    (tmp_path / "m").mkdir()
    scenes = [_upright_scene(k) for k in range(3)]
    # 0: stored turned, its mask drawn on the stored pixels; 1: stored turned, its mask drawn upright;
    # 2: stored upright without a tag (one size as shown with the others), its mask likewise
    _stored_turned(scenes[0][0]).save(tmp_path / "p" / "IMG_0000.jpg", quality=95, exif=phone.tobytes())
    _stored_turned(scenes[0][1]).save(tmp_path / "m" / "IMG_0000.png")
    _stored_turned(scenes[1][0]).save(tmp_path / "p" / "IMG_0001.jpg", quality=95, exif=phone.tobytes())
    Image.fromarray(scenes[1][1]).save(tmp_path / "m" / "IMG_0001.png")
    Image.fromarray(scenes[2][0]).save(tmp_path / "p" / "IMG_0002.jpg", quality=95)
    Image.fromarray(scenes[2][1]).save(tmp_path / "m" / "IMG_0002.png")
    seen = {}

    def colmap(images_dir, work, names, *args, **kwargs):
        dataset = images_dir.parent
        for name in names:
            with Image.open(images_dir / name) as im:
                seen[name] = (np.asarray(im), im.getexif(), np.asarray(Image.open(args[-1] / f"{name}.png")))
        seen["masks"] = {p.name: np.asarray(Image.open(p)) for p in (dataset / "masks").iterdir()}
        seen["linked"] = [p.name for p in (dataset / "masks").iterdir() if p.samefile(tmp_path / "m" / p.name)]
        raise DataError("seen enough")
    monkeypatch.setattr(pipeline, "run_colmap", colmap)
    with pytest.raises(DataError, match="seen enough"):
        pipeline.from_photos(tmp_path / "p", tmp_path / "ds", masks=tmp_path / "m", progress=False)
    for k, (upright, mask) in enumerate(scenes):
        pixels, exif, colmap_mask = seen[f"IMG_{k:04d}.jpg"]
        assert pixels.shape == (96, 72, 3) and np.abs(pixels.astype(int) - upright).mean() < 2, k
        assert 0x0112 not in exif and exif.get(0x010F) == ("Phone" if k < 2 else None)  # the rest of the EXIF kept
        assert np.array_equal(colmap_mask, mask), k
        assert np.array_equal(seen["masks"][f"IMG_{k:04d}.png"], mask), k
    assert sorted(seen["linked"]) == ["IMG_0001.png", "IMG_0002.png"]  # the turned one is a new file, not the user's
    # the table's one line says how many were turned
    photos, _ = gather_images(tmp_path / "p")
    report = PhotoReport(out=tmp_path, total=3, registered=[], unregistered=[], skipped=[], points3D=0,
                         mean_reprojection_error=0.0, models=1, matching="exhaustive", pairs=3,
                         camera_model="SIMPLE_RADIAL", cameras=1, turned=pipeline.turned_photos(photos))
    assert ("turned        2 photos by their EXIF orientation, as photo viewers show them (IMG_0000.jpg, "
            "IMG_0001.jpg): images/ holds them so, without the tag") in report.table().splitlines()


def test_the_mask_of_a_square_turned_photo_follows_its_own_tag_else_the_stored_pixels(tmp_path, capsys):
    """A square photo's mask fits it either way: the mask's own EXIF orientation says which, and
    without one the mask is taken to follow the photo's stored pixels. A mask of neither shape
    of a turned photo is refused with the photo's stored size."""
    from taichi_nerf.capture.photo_masks import mask_turn

    def tagged(value):
        exif = Image.Exif()
        exif[0x0112] = value
        return {"exif": exif.tobytes()}
    Image.new("RGB", (64, 64)).save(tmp_path / "photo.jpg", **tagged(6))
    Image.new("L", (64, 64), 255).save(tmp_path / "plain.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "as_shown.jpg", **tagged(1))
    Image.new("L", (64, 64), 255).save(tmp_path / "as_stored.jpg", **tagged(6))
    assert [mask_turn(tmp_path / "photo.jpg", tmp_path / m)[1] for m in ("plain.png", "as_shown.jpg",
                                                                           "as_stored.jpg")] == [6, 1, 6]
    _photos(tmp_path / "p", 3)
    for photo in (tmp_path / "p").iterdir():
        Image.open(photo).save(photo, **tagged(6))
    (tmp_path / "m").mkdir()
    for photo in (tmp_path / "p").iterdir():
        Image.new("L", (80, 80), 255).save(tmp_path / "m" / f"{photo.stem}.png")
    _refused(capsys, tmp_path / "p", "--masks", tmp_path / "m", "--out", tmp_path / "ds",
             needles=("IMG_0000.png: mask is 80x80, its image is 96x72",))


@pytest.mark.parametrize("suffix", [".tif", ".bmp", ".webp"])
def test_formats_the_loaders_do_not_list_become_png(tmp_path, suffix):
    _photos(tmp_path / "in", 1, suffix=suffix)
    photo = tmp_path / "in" / f"IMG_0000{suffix}"
    (tmp_path / "images").mkdir()
    options = {"lossless": True} if suffix == ".webp" else {}
    Image.open(photo).save(photo, **options)
    assert place_photo(photo, tmp_path / "images") == dataset_name(photo) == "IMG_0000.png"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "images" / "IMG_0000.png")), np.asarray(Image.open(photo)))
    _photos(tmp_path / "in", 1, prefix="IMG_1")  # a JPEG without an EXIF orientation is linked as it is
    jpeg = tmp_path / "in" / "IMG_10000.jpg"
    assert place_photo(jpeg, tmp_path / "images") == "IMG_10000.jpg"
    assert (tmp_path / "images" / "IMG_10000.jpg").samefile(jpeg)


def test_focal_lengths_that_differ_are_warned():
    """--camera-model pinhole on the turntable capture wrote fx 228.6, fy 2095 (truth 221.7) silently."""
    from taichi_nerf.data.colmap_files import Camera
    from taichi_nerf.data.colmap_model import camera_keys

    wrong = Camera(1, "PINHOLE", 256, 192, np.array([228.6, 2095.0, 128.0, 96.0]))
    _, warnings = camera_keys(wrong, "photos")
    assert len(warnings) == 1 and "differ 9.16-fold" in warnings[0] and "simple_radial" in warnings[0], warnings
    for fine in (Camera(1, "PINHOLE", 256, 192, np.array([221.0, 222.0, 128.0, 96.0])),
                 Camera(1, "SIMPLE_RADIAL", 256, 192, np.array([221.0, 128.0, 96.0, 0.01]))):
        assert camera_keys(fine, "photos")[1] == []


def test_the_table_says_split_only_when_photos_were_left_out(tmp_path):
    from taichi_nerf.capture.photos import PhotoReport

    report = PhotoReport(out=tmp_path, total=3, registered=["a.jpg", "b.jpg", "c.jpg"], unregistered=[],
                         skipped=[], points3D=10, mean_reprojection_error=0.3, models=2, matching="exhaustive",
                         pairs=3, camera_model="SIMPLE_RADIAL", cameras=1)
    assert "split" not in report.table()
    report.registered, report.unregistered = ["a.jpg", "b.jpg"], ["c.jpg"]
    assert "models        2 (COLMAP split the capture; kept the largest)" in report.table()


def test_frames_given_for_a_folder_of_photos_is_refused_not_ignored(tmp_path, capsys):
    """`--frames 30` with a folder of 60 photos was a silent no-op: every photo went to COLMAP, which the user had
    asked to thin. It only picks a video's frames, and says so."""
    _photos(tmp_path / "photos", 4)
    refused(capsys, ["data", "from-photos", tmp_path / "photos", "--out", tmp_path / "ds", "--frames", "2"],
            "--frames picks a video's frames; a folder's photos are all used")
    assert not (tmp_path / "ds").exists()
