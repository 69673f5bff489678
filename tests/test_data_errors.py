"""Bad input: every case is a one-line DataError naming the file and the problem (or a
documented repair), through read_dataset and through the CLI; and a property test that
malformed transforms files either load or raise DataError, never anything else."""
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from taichi_nerf import cli
from taichi_nerf.data.dataset import DataError
from taichi_nerf.data.images import read_rgba
from taichi_nerf.data.loaders import read_dataset

from .conftest import refused, run_cli

POSE = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
POSE2 = [[0, 0, 1, 4], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]


def png(path, size=(8, 8), mode="RGBA", value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode in ("L", "I;16", "I") else (value,) * len(mode)).save(path)
    return path


def transforms(root, frames, kind="blender", **meta):
    """A Blender (transforms_train.json) or Instant-NGP (transforms.json) file."""
    root.mkdir(parents=True, exist_ok=True)
    name = "transforms_train.json" if kind == "blender" else "transforms.json"
    (root / name).write_text(json.dumps({"camera_angle_x": 0.7, **meta, "frames": frames}))
    return root


def two_frames(root, **extra):
    png(root / "a.png")
    png(root / "b.png")
    return [{"file_path": "a.png", "transform_matrix": POSE, **extra}, {"file_path": "b.png",
                                                                        "transform_matrix": POSE2}]


def expect_error(path, *fragments, **kw):
    with pytest.raises(DataError) as info:
        read_dataset(path, **kw)
    message = str(info.value)
    assert "\n" not in message
    for f in fragments:
        assert f in message, message
    return message


# --- each bad input ----------------------------------------------------------------------
def test_missing_folder(tmp_path):
    expect_error(tmp_path / "nope", str(tmp_path / "nope"), "no such file or folder")


def test_the_cli_says_an_error_in_one_line_and_re_raises_it_for_developers(tmp_path, capsys, monkeypatch):
    from taichi_nerf import cli

    assert cli.main(["data", "info", str(tmp_path / "nope")]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setenv("TAICHI_NERF_DEBUG", "1")  # CONTRIBUTING.md: a bug's ValueError gets its traceback
    with pytest.raises(DataError, match="no such file or folder"):
        cli.main(["data", "info", str(tmp_path / "nope")])


def test_unknown_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    expect_error(tmp_path, "unknown dataset layout")
    expect_error(tmp_path / "notes.txt", "unknown dataset layout")


def test_photos_without_poses_point_to_from_photos(tmp_path):
    """A folder of JPEGs (the first thing a user tries) got "unknown dataset layout"."""
    (tmp_path / "images").mkdir()
    for k in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"IMG_{k}.jpg")
    for folder in (tmp_path, tmp_path / "images"):
        expect_error(folder, "photos without camera poses (3 images", "taichi-nerf data from-photos")


def _jpgs(folder, count=3):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"IMG_{k}.jpg")


@pytest.mark.parametrize("layout", ["instant-ngp", "blender", "llff", "colmap"])
def test_a_folder_inside_a_dataset_points_to_the_dataset(tmp_path, capsys, layout):
    """DIR/images (or a Blender set's DIR/train) was called photos without poses, and the user sent
    to a long COLMAP run for the poses DIR already holds."""
    root = tmp_path / "scene"
    inner = root / ("train" if layout == "blender" else "images")
    _jpgs(inner)
    if layout == "instant-ngp":
        (root / "transforms.json").write_text("{}")
    elif layout == "blender":
        (root / "transforms_train.json").write_text("{}")
    elif layout == "llff":
        np.save(root / "poses_bounds.npy", np.zeros((3, 17)))
    else:
        (root / "sparse" / "0").mkdir(parents=True)
        for part in ("cameras", "images", "points3D"):
            (root / "sparse" / "0" / f"{part}.bin").write_bytes(b"")
    message = expect_error(inner, f"camera poses are in its parent folder ({layout} layout)",
                           f"give that folder: {root}")
    assert "from-photos" not in message
    assert cli.main(["data", "info", str(inner)]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.strip() == f"taichi-nerf: error: {message}"
    if layout == "blender":  # a split's own file: the folder holds every split
        expect_error(root / "transforms_train.json", "one split of a Blender dataset", f"holds every split: {root}")


def test_the_colmap_folder_of_a_from_photos_dataset_points_to_the_dataset(tmp_path):
    """from-photos writes DIR/colmap/sparse/0 beside DIR/transforms.json; `data info DIR/colmap` said "a COLMAP
    model in DIR/colmap/sparse/0, but no images/ folder beside it", as if the photos were missing."""
    root = tmp_path / "mine"
    _jpgs(root / "images")
    (root / "transforms.json").write_text("{}")
    (root / "colmap" / "sparse" / "0").mkdir(parents=True)
    for part in ("cameras", "images", "points3D"):
        (root / "colmap" / "sparse" / "0" / f"{part}.bin").write_bytes(b"")
    message = expect_error(root / "colmap", "camera poses are in its parent folder (instant-ngp layout)",
                           f"give that folder: {root}")
    assert "no images/ folder" not in message


def test_a_video_points_to_from_photos(tmp_path, capsys):
    """train --data orbit.mp4 said "unknown dataset layout"; from-photos takes frames from a video."""
    video = tmp_path / "orbit.MP4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")  # told by its name: nothing reads it
    expect_error(video, "a video, not a dataset", f"taichi-nerf data from-photos {video} --out DATASET")
    assert cli.main(["train", "--data", str(video), "--out", str(tmp_path / "run")]) == cli.EXIT_USAGE
    assert "a video, not a dataset" in capsys.readouterr().err and not (tmp_path / "run").exists()
    (tmp_path / "notes.txt").write_text("hello")  # any other file is still an unknown layout
    expect_error(tmp_path / "notes.txt", "unknown dataset layout")


def test_a_mesh_points_to_from_mesh(tmp_path, capsys):
    """The PyTorch3D tutorial's cow folder (cow.obj, cow.mtl, cow_texture.png) given to train --data
    was called photos without poses ("1 images") and sent to COLMAP; cow.obj itself was an unknown
    layout. Both are a mesh, which data from-mesh renders into a dataset (docs/DATASETS.md, 5)."""
    folder = tmp_path / "cow_mesh"
    folder.mkdir()
    (folder / "cow.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (folder / "cow.mtl").write_text("newmtl m\nmap_Kd cow_texture.png\n")
    png(folder / "cow_texture.png")
    for path in (folder, folder / "cow.obj"):
        message = expect_error(path, "a mesh, not a dataset",
                               f"taichi-nerf data from-mesh {folder / 'cow.obj'} --out DATASET")
        assert "from-photos" not in message and "unknown dataset layout" not in message
    assert cli.main(["train", "--data", str(folder), "--out", str(tmp_path / "run")]) == cli.EXIT_USAGE
    assert "a mesh, not a dataset" in capsys.readouterr().err and not (tmp_path / "run").exists()
    (tmp_path / "model.ply").write_text("ply\nformat ascii 1.0\nend_header\n")  # it was "unknown dataset layout"
    expect_error(tmp_path / "model.ply", "a mesh, not a dataset", "convert it to .obj", "data from-mesh MODEL.obj")


def test_one_photo_without_poses_is_one_image(tmp_path):
    png(tmp_path / "IMG_1.png")
    expect_error(tmp_path, "photos without camera poses (1 image,")


def test_malformed_json(tmp_path):
    (tmp_path / "transforms_train.json").write_text('{"frames": [ {"file_path": "a.png", }')
    expect_error(tmp_path, "transforms_train.json", "malformed JSON at line 1")
    (tmp_path / "ngp").mkdir()
    (tmp_path / "ngp/transforms.json").write_text("[1, 2")
    expect_error(tmp_path / "ngp", "transforms.json", "malformed JSON")


@pytest.mark.parametrize("kind", ["blender", "ngp"])
def test_frame_without_pose(tmp_path, kind):
    frames = two_frames(tmp_path)
    del frames[1]["transform_matrix"]
    transforms(tmp_path, frames, kind)
    expect_error(tmp_path, "frame 1", "no 'transform_matrix'")


@pytest.mark.parametrize("matrix, problem", [
    ([[1, 0, 0, 0], [0, 1, 0, float("nan")], [0, 0, 1, 4], [0, 0, 0, 1]], "NaN"),
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "must be 4x4"),
    ([[1, 0, 0, 0], [0, 1, 0]], "not a numeric matrix"),
    ("identity", "not a numeric matrix"),
    ([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 4], [0, 0, 0, 1]], "degenerate"),
])
@pytest.mark.parametrize("kind", ["blender", "ngp"])
def test_bad_pose(tmp_path, kind, matrix, problem):
    frames = two_frames(tmp_path)
    frames[0]["transform_matrix"] = matrix
    transforms(tmp_path, frames, kind)
    expect_error(tmp_path, "frame 0", problem)


def test_a_sheared_or_unevenly_scaled_camera_is_named_and_an_evenly_scaled_one_loads(tmp_path):
    """A transform_matrix whose 3x3 part is scaled along one axis (a Blender camera object scaled so) or
    sheared bends every ray of its photo; it was trained on without a word, while `render --path` refused
    the same matrix. An even scale changes no ray's direction and loads, as before."""
    cases = [(np.diag([1.0, 1.0, 1.5]), False), ([[1, 0.2, 0], [0, 1, 0], [0, 0, 1]], False),
             (np.eye(3) * 2.0, True), (np.eye(3) + 1e-4, True)]  # the last: JSON rounded to 4 decimals
    for k, (change, loads) in enumerate(cases):
        frames = two_frames(tmp_path / str(k))
        pose = np.array(POSE, dtype=np.float64)
        pose[:3, :3] = pose[:3, :3] @ np.asarray(change)
        frames[1]["transform_matrix"] = pose.tolist()
        transforms(tmp_path / str(k), frames)
        if loads:
            assert read_dataset(tmp_path / str(k)).splits["train"].count == 2
        else:
            expect_error(tmp_path / str(k), "frame 1", "3x3 part is not a rotation", "export the cameras unscaled")


def test_mirrored_cameras_are_warned_about(tmp_path):
    """A converter from OpenCV that flips camera y or z alone (both are needed) writes rotations of determinant
    -1: every photo is then seen mirrored. They loaded without a word, as cameras that look inward."""
    frames = two_frames(tmp_path)
    transforms(tmp_path, frames)
    assert not any("mirror" in w for w in read_dataset(tmp_path).warnings)
    for frame in frames:
        frame["transform_matrix"] = (np.array(frame["transform_matrix"]) @ np.diag([1.0, -1.0, 1.0, 1.0])).tolist()
    transforms(tmp_path, frames)
    said = [w for w in read_dataset(tmp_path).warnings if "mirror" in w]
    assert len(said) == 1 and "all 2 camera rotations are mirrors (determinant -1)" in said[0], said
    assert "flip both camera y and z, not one" in said[0]


def test_unreadable_and_truncated_images(tmp_path):
    frames = two_frames(tmp_path)
    (tmp_path / "a.png").write_text("this is not a PNG")
    transforms(tmp_path, frames)
    expect_error(tmp_path, "a.png", "cannot read image")
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8))
    noisy.save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])  # truncated mid-stream
    expect_error(tmp_path, "a.png", "cannot read image")


def png16(path, samples):
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by the channel count), written by hand."""
    h, w, c = samples.shape

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT",
                                                                           zlib.compress(rows)) + chunk(b"IEND", b""))


def test_grayscale_and_16_bit_images_are_converted(tmp_path):
    png(tmp_path / "gray.png", mode="L", value=100)
    png16(tmp_path / "deep.png", np.full((8, 8, 1), 32767, dtype=np.uint16))
    png16(tmp_path / "deep_rgb.png", np.tile(np.array([65535, 32768, 256], dtype=np.uint16), (8, 8, 1)))
    png16(tmp_path / "deep_la.png", np.tile(np.array([65535, 0], dtype=np.uint16), (8, 8, 1)))
    names = ["gray", "deep", "deep_rgb", "deep_la"]
    transforms(tmp_path, [{"file_path": f"{n}.png", "transform_matrix": POSE if i % 2 else POSE2} for i,
                          n in enumerate(names)])
    rgba = read_dataset(tmp_path).splits["train"].rgba
    assert rgba.shape == (4, 8, 8, 4)
    dark = tmp_path / "dark.png"
    png16(dark, np.full((8, 8, 1), 200, dtype=np.uint16))  # 16 bits, however dark
    assert read_rgba(dark)[0, 0].tolist() == [1, 1, 1, 255]  # 200 / 65535 of white, not 200 / 255
    assert rgba[:, 0, 0].tolist() == [[100, 100, 100, 255], [127, 127, 127, 255], [255, 128, 1, 255], [255, 255, 255,
                                                                                                       0]]


def test_an_image_that_is_a_symlink_loop_is_named(tmp_path):
    """A frame's image that is a link in a loop (a.png -> b.png -> a.png) ended in Python 3.11's
    "RuntimeError: Symlink loop from ..." traceback from Path.resolve."""
    frames = two_frames(tmp_path)
    (tmp_path / "a.png").unlink()
    (tmp_path / "a.png").symlink_to("loop.png")
    (tmp_path / "loop.png").symlink_to("a.png")
    transforms(tmp_path, frames, "ngp")
    message = expect_error(tmp_path, "a.png")  # (Python 3.13's resolve() leaves the loop to the image's read)
    assert "ymlink loop" in message or "levels of symbolic links" in message, message


def test_images_of_different_sizes_in_one_split(tmp_path):
    frames = two_frames(tmp_path)
    png(tmp_path / "b.png", size=(8, 6))
    transforms(tmp_path, frames)
    expect_error(tmp_path, "b.png", "image is 8x6", "must have one size")
    # the odd one first: it is named, not every good photo after it
    png(tmp_path / "a.png", size=(8, 6))
    for name in ("b.png", "c.png", "d.png"):
        png(tmp_path / name)
    transforms(tmp_path, [*frames, {"file_path": "c.png", "transform_matrix": POSE},
                          {"file_path": "d.png", "transform_matrix": POSE2}])
    expect_error(tmp_path, "a.png: image is 8x6, but 3 other images of its split are 8x8")


def test_zero_usable_frames(tmp_path):
    transforms(tmp_path / "empty", [])
    expect_error(tmp_path / "empty", "'frames' must be a non-empty list")
    transforms(tmp_path / "gone", [{"file_path": "x.png", "transform_matrix": POSE}], "ngp")
    expect_error(tmp_path / "gone", "zero usable frames")
    frames = two_frames(tmp_path / "lim")
    transforms(tmp_path / "lim", frames)
    expect_error(tmp_path / "lim", "every must be a whole number", every=0)  # the keyword given, not a flag


def test_missing_image_in_blender_split_is_an_error(tmp_path):
    frames = two_frames(tmp_path)
    (tmp_path / "b.png").unlink()
    transforms(tmp_path, frames)
    expect_error(tmp_path, "b.png", "not found")


def test_bad_intrinsics_and_bounds(tmp_path):
    frames = two_frames(tmp_path)
    for meta, problem in [({"camera_angle_x": 0}, "between 0 and pi"), ({"camera_angle_x": "wide"}, "finite number"),
                          ({"fl_x": -3}, "positive"), ({"w": -8}, "positive"),
                          ({"near": 5, "far": 1}, "near < far"), ({"aabb": [[0, 0, 0], [1, 1]]}, "aabb"),
                          ({"camera_model": "OPENCV_FISHEYE"}, "not supported")]:
        transforms(tmp_path, frames, **meta)
        expect_error(tmp_path, "transforms_train.json", problem)


def test_misspelt_focal_length_is_named(tmp_path):
    frames = two_frames(tmp_path)
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angel_x": 0.7, "frames": frames}))
    expect_error(tmp_path, "no focal length", "'camera_angel_x': did you mean 'camera_angle_x'?")
    (tmp_path / "transforms.json").write_text(json.dumps({"focal": 9, "frames": frames}))
    assert "did you mean" not in expect_error(tmp_path, "no focal length")


def test_other_formats_bad_files(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken")
    expect_error(tmp_path / "bad.npz", "bad.npz", "not a readable .npz")
    np.savez(tmp_path / "nofocal.npz", images=np.zeros((2, 4, 4, 3)), poses=np.tile(np.eye(4), (2, 1, 1)))
    expect_error(tmp_path / "nofocal.npz", "no 'focal' array")
    np.savez(tmp_path / "nan.npz", images=np.zeros((2, 4, 4, 3)), poses=np.full((2, 4, 4), np.nan), focal=5.0)
    expect_error(tmp_path / "nan.npz", "pose 0", "NaN")
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 4, 4, 3)), poses=np.zeros((3, 4, 4)), focal=5.0)
    expect_error(tmp_path / "shape.npz", "must be (2, 4, 4)")
    np.savez(tmp_path / "text.npz", images=np.zeros((2, 4, 4, 3)), poses=np.array(["a", "b"]), focal=5.0)
    expect_error(tmp_path / "text.npz", "'poses' must be numbers")  # it said "'focal' must be one number"
    # --format npz on a folder said "file not found"; a folder holding one .npz is that file, as without --format
    (tmp_path / "one").mkdir()
    expect_error(tmp_path / "one", "one: a folder, not an .npz file", "(it holds no .npz file)", format="npz")
    (tmp_path / "text.npz").rename(tmp_path / "one" / "text.npz")
    expect_error(tmp_path / "one", "'poses' must be numbers", format="npz")
    flat = np.tile(np.eye(4), (2, 1, 1))
    flat[1, :3, :3] = 0.0
    np.savez(tmp_path / "flat.npz", images=np.zeros((2, 4, 4, 3)), poses=flat, focal=5.0)
    expect_error(tmp_path / "flat.npz", "pose 1 has a degenerate (singular) rotation")
    for name, images, problem in (("neg", -0.5, "negative values (down to -0.5)"), ("hdr", 1.5, "floats reach 1.5"),
                                   ("big", 300.0, "floats reach 300")):
        np.savez(tmp_path / f"{name}.npz", images=np.linspace(0, images, 96).reshape(2, 4, 4, 3),
                 poses=np.tile(np.eye(4), (2, 1, 1)), focal=5.0)
        expect_error(tmp_path / f"{name}.npz", problem)
    llff = tmp_path / "llff"
    llff.mkdir()
    np.save(llff / "poses_bounds.npy", np.zeros((3, 15)))
    expect_error(llff, "poses_bounds.npy", "(N, 17)")
    row = np.concatenate([np.array([[0, 1, 0, 0, 8], [1, 0, 0, 0, 8], [0, 0, -1, 0, 10]], float).ravel(), [1, 5]])
    np.save(llff / "poses_bounds.npy", np.stack([row, row]))
    png(llff / "images/0.png")
    expect_error(llff, "1 images", "2 poses")
    bad = row.copy()
    bad[15:] = [0.0, 5.0]  # a camera that saw no points in front of it
    np.save(llff / "poses_bounds.npy", np.stack([row, bad]))
    expect_error(llff, "poses_bounds.npy: row 1 (from 0, in the order of the image names) has depth bounds near 0, "
                 "far 5 (1 of 2", "0 < near < far", "imgs2poses.py")


# --- through the command line --------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "malformed", "nan_pose"])
def test_cli_data_info_errors_are_one_line(tmp_path, case, capsys):
    """The first case through `python -m taichi_nerf`, the others in this process (an interpreter
    start less each): the same one line either way."""
    if case == "missing":
        target = tmp_path / "nothing"
    elif case == "malformed":
        (tmp_path / "transforms.json").write_text("{ nope")
        target = tmp_path
    else:
        frames = two_frames(tmp_path)
        frames[1]["transform_matrix"] = [[float("nan")] * 4] * 4
        target = transforms(tmp_path, frames)
    if case == "missing":
        proc = run_cli("data", "info", str(target))
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("taichi-nerf: error: ") and "Traceback" not in proc.stderr
        line = lines[0]
    else:
        line = refused(capsys, ["data", "info", target])
    assert str(target) in line or str(target / "transforms.json") in line


def test_cli_in_process_errors_and_info(tmp_path, capsys):
    assert cli.main(["data", "info", str(tmp_path / "nowhere")]) == 2
    assert cli.main(["data", "info", str(tmp_path), "--format", "nerfies"]) == 2
    assert cli.main(["data", "info", str(tmp_path), "--format", "colmap"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "--format/--data-format must be one of blender, " in err[1] and "got 'nerfies'" in err[1]
    assert "no COLMAP model here" in err[2] and str(tmp_path) in err[2]
    transforms(tmp_path, two_frames(tmp_path))
    assert cli.main(["data", "info", str(tmp_path), "--near", "1", "--far", "9", "--aabb", "-1", "-1", "-1", "1", "1",
                     "1"]) == 0
    out = capsys.readouterr().out
    assert "format:   blender" in out and "near/far: 1 / 9" in out and "train:    2 images, 8x8" in out
    assert "box:      min (-1, -1, -1), max (1, 1, 1)" in out
    assert cli.main(["data", "info", str(tmp_path), "--near", "5", "--far", "1"]) == 2


# --- property: malformed transforms files load or raise DataError --------------------------
finite = st.floats(-1e3, 1e3, allow_nan=False)
anything = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12)
rotations = st.sampled_from([POSE, POSE2, [[-1, 0, 0, 0], [0, 0, 1, 4], [0, 1, 0, 0.5], [0, 0, 0, 1]], POSE[:3]])
matrices = st.one_of(
    rotations, rotations, st.just([[1, 0, 0, 1e9], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    st.lists(st.lists(finite | st.floats(), min_size=3, max_size=5), min_size=3, max_size=5),
    anything)
# Mostly plausible values, some garbage: deep code paths get exercised, not just the first check.
plausible = st.floats(0.05, 3.0)
numbers = st.one_of(plausible, plausible, plausible, finite, st.floats(), st.integers(-5, 5000), anything)
file_paths = st.one_of(st.sampled_from(["a.png", "./a", "a", "b.png", "missing.png", "", "a.png\x00", "../a.png", "/"]),
                       anything)
extras = {"fl_x": numbers, "fl_y": numbers, "cx": numbers, "w": numbers, "h": numbers, "k1": numbers, "k3": numbers,
          "camera_angle_y": numbers, "camera_model": st.sampled_from(["OPENCV", "PINHOLE", "FISHEYE"]) | anything}
good_frames = st.fixed_dictionaries({"file_path": st.sampled_from(["a.png", "./a", "a"]),
                                     "transform_matrix": rotations},
                                    optional=extras)
any_frames = st.fixed_dictionaries({}, optional={"file_path": file_paths, "transform_matrix": matrices, **extras})
metas = st.fixed_dictionaries(
    {"frames": st.one_of(st.lists(good_frames, min_size=1, max_size=4), st.lists(good_frames, min_size=1, max_size=4),
                         st.lists(st.one_of(good_frames, any_frames, anything), min_size=1, max_size=4)),
     "camera_angle_x": numbers},
    optional={
        **extras, "aabb_scale": numbers, "scale": numbers, "offset": st.lists(numbers, max_size=4) | anything,
        "near": numbers, "far": numbers, "aabb": st.lists(st.lists(numbers, max_size=3), max_size=3) | anything,
        "train_filenames": st.lists(file_paths, max_size=3) | anything, "val_filenames": st.lists(file_paths,
                                                                                                  max_size=3),
        "applied_transform": matrices})
# A valid file with a few keys set to odd values or deleted: close to what users really have.
TOP_KEYS = ["frames", "camera_angle_x", *extras, "aabb_scale", "scale", "offset", "near", "far", "aabb",
            "train_filenames", "val_filenames", "applied_transform"]
FRAME_KEYS = ["file_path", "transform_matrix", *extras]
values = st.one_of(st.none(), numbers, matrices, file_paths, st.lists(numbers, min_size=3, max_size=3),
                   st.lists(st.lists(numbers, min_size=3, max_size=3), min_size=2, max_size=2))
mutations = st.one_of(
    st.tuples(st.just("top"), st.sampled_from(TOP_KEYS), values | st.just("<delete>")),
    st.tuples(st.sampled_from([0, 1]), st.sampled_from(FRAME_KEYS), values | st.just("<delete>")))


def mutated(changes) -> str:
    meta = {"camera_angle_x": 0.7, "frames": [{"file_path": "a.png", "transform_matrix": POSE},
                                              {"file_path": "./a", "transform_matrix": POSE2}]}
    for where, key, value in changes:
        target = meta if where == "top" else meta["frames"][where] if isinstance(meta.get("frames"), list) and \
            len(meta["frames"]) > where and isinstance(meta["frames"][where], dict) else None
        if target is None:
            continue
        if value == "<delete>":
            target.pop(key, None)
        else:
            target[key] = value
    return json.dumps(meta)


documents = st.one_of(st.lists(mutations, max_size=3).map(mutated), st.lists(mutations, min_size=1,
                                                                             max_size=3).map(mutated),
                      metas.map(json.dumps),
                      st.fixed_dictionaries({}, optional={"frames": anything,
                                                          "camera_angle_x": numbers}).map(json.dumps),
                      st.text(max_size=40), anything.map(json.dumps))

@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """One folder for all examples (rewritten each time): a.png 8x8 and b.png 8x6."""
    root = tmp_path_factory.mktemp("malformed")
    png(root / "a.png")
    png(root / "b.png", size=(8, 6))
    return root


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(document=documents, kind=st.sampled_from(["blender", "instant-ngp"]))
# Found by longer runs of this test (null read as a value, not as "absent"):
@example(document=mutated([("top", "cx", None)]), kind="blender")
@example(document=mutated([("top", "aabb_scale", None)]), kind="instant-ngp")
@example(document=mutated([("top", "near", None), (0, "camera_model", [])]), kind="blender")
def test_malformed_transforms_load_or_raise_data_error(playground, document, kind):
    name = "transforms_train.json" if kind == "blender" else "transforms.json"
    for stale in ("transforms_train.json", "transforms.json"):
        (playground / stale).unlink(missing_ok=True)
    (playground / name).write_text(document)
    try:
        ds = read_dataset(playground, format=kind)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    train = ds.splits["train"]
    assert train.count >= 1 and torch.isfinite(train.intrinsics).all() and torch.isfinite(ds.aabb).all()
    assert 0 <= ds.near < ds.far


@pytest.mark.parametrize("value", ["1", "0", "-2"])
def test_val_every_below_2_is_refused(tiny_scene, value, capsys, tmp_path):
    """1 would hold out every frame and 0 none; they were taken, and the note said the data had
    too few frames to hold any out. data info and train share the option (a run keeps its split)."""
    from .conftest import refused

    refused(capsys, ["data", "info", tiny_scene, "--val-every", value], "--val-every must be at least 2")
    refused(capsys, ["train", "--data", tiny_scene, "--out", tmp_path / "r", "--val-every", value, "--dry-run"],
            "--val-every must be at least 2")


def test_blender_layout_writers_refuse_a_file_or_another_dataset(tmp_path, capsys):
    """`data synthetic` (and `from-mesh`) writing into a COLMAP dataset's folder hid it behind its
    transforms_*.json; into a file it failed with "Not a directory"."""
    from .conftest import refused

    other = tmp_path / "colmap_ds"
    (other / "images").mkdir(parents=True)
    (other / "transforms.json").write_text("{}")
    for command in (["synthetic"], ["from-mesh", tmp_path / "cow.obj"]):
        refused(capsys, ["data", *command, "--out", other, "--views", "2", "--size", "8"],
                f"{other}: holds another dataset (transforms.json, images); choose another folder")
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    refused(capsys, ["data", "synthetic", "--out", blocker], "afile: is a file")
    assert sorted(p.name for p in other.iterdir()) == ["images", "transforms.json"] and blocker.read_text() == "mine"


def test_the_synthetic_writer_never_overwrites_a_users_blender_dataset_or_a_run(tmp_path, capsys):
    """`data synthetic --out lego` replaced the user's own transforms_train.json (lost work), and
    make_synthetic wrote into a run folder and took views="4" to a TypeError."""
    import taichi_nerf as tn

    from .conftest import refused

    lego = tmp_path / "lego"
    (lego / "train").mkdir(parents=True)
    (lego / "transforms_train.json").write_text('{"camera_angle_x": 0.69, "frames": []}')
    refused(capsys, ["data", "synthetic", "--out", lego, "--views", "2", "--size", "8"],
            "transforms_train.json: a dataset this tool did not write would be overwritten")
    with pytest.raises(DataError, match="did not write"):
        tn.make_synthetic(lego, views=2, size=8, progress=False)
    assert (lego / "transforms_train.json").read_text() == '{"camera_angle_x": 0.69, "frames": []}'
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"weights")
    with pytest.raises(DataError, match="holds a training run"):
        tn.make_synthetic(run, views=2, size=8, progress=False)
    with pytest.raises(ValueError, match="views must be a whole number of at least 1, got '4'"):
        tn.make_synthetic(tmp_path / "new", views="4", size=8, progress=False)
    ours = tmp_path / "ours"
    for _ in range(2):  # our own render is written again
        tn.make_synthetic(ours, views=2, size=8, progress=False)
    assert len(json.loads((ours / "transforms_train.json").read_text())["frames"]) == 2


def test_ndc_on_a_layout_without_it_is_refused(tmp_path, capsys):
    """`data info DATASET --ndc` on a from-photos (transforms.json) dataset was silently ignored."""
    from .conftest import refused

    root = transforms(tmp_path / "ngp", two_frames(tmp_path / "ngp"), kind="ngp")
    expect_error(root, "(from Python: ndc=True) applies to LLFF captures", "instant-ngp dataset; leave it out",
                 ndc=True)  # a Python caller's keyword, which it did not name
    refused(capsys, ["data", "info", root, "--ndc"], "--ndc (from Python: ndc=True) applies to LLFF captures")
    assert read_dataset(root, ndc=False).format == "instant-ngp"  # --no-ndc asks for nothing it lacks


@pytest.mark.parametrize("part, change, said", [
    ("images", lambda f: f[:1] + ["0", "0", "0", "0"] + f[5:], "image IMG_0.JPG: its pose QW QX QY QZ TX TY TZ must "
     "be finite numbers, the quaternion not all zero"),  # was numpy's RuntimeWarning, then "transform_matrix ..."
    ("images", lambda f: f[:5] + ["nan"] + f[6:], "image IMG_0.JPG: its pose"),
    ("cameras", lambda f: f[:4] + ["nan"] + f[5:], "cameras.txt line 1: camera 1 (PINHOLE) has parameters that are "
     "not finite numbers"),  # was "frame 0: 'fl_x' must be a finite number"
    ("cameras", lambda f: f[:1] + ["PINHOLLE"] + f[2:], "cameras.txt line 1: unknown camera model 'PINHOLLE'"),
    ("cameras", lambda f: f[:-1], "cameras.txt line 1: camera 1 (PINHOLE) has 3 parameters, expected 4"),
])
def test_a_colmap_text_model_s_bad_numbers_are_named_in_its_own_words(tmp_path, part, change, said):
    """COLMAP's files, lines and images, not transforms.json's words (the cameras' own errors were swallowed
    into "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")."""
    from .test_masks import write_colmap_text

    root = write_colmap_text(tmp_path / "capture")
    path = root / "sparse" / "0" / f"{part}.txt"
    lines = path.read_text().splitlines()
    lines[0] = " ".join(change(lines[0].split()))
    path.write_text("\n".join(lines) + "\n")
    expect_error(root, said)


def test_an_indented_comment_in_a_colmap_text_model_is_a_comment(tmp_path):
    from .test_masks import VIEWS, write_colmap_text

    root = write_colmap_text(tmp_path / "capture")
    images = root / "sparse" / "0" / "images.txt"
    images.write_text("  # Image list with two lines of data per image:\n" + images.read_text())
    assert sum(split.count for split in read_dataset(root).splits.values()) == VIEWS


def test_files_that_are_not_what_their_names_say_are_named_so(tmp_path):
    """A clone without `git lfs pull` leaves every large file a text stub: numpy spoke of pickles ("you can
    load it unsafely using allow_pickle=", an option the tool does not have) and Pillow of an image it
    cannot identify."""
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12345\n"
    (tmp_path / "llff").mkdir()
    (tmp_path / "llff" / "poses_bounds.npy").write_text(pointer)
    said = expect_error(tmp_path / "llff", "poses_bounds.npy: not a readable .npy file (it is a Git LFS pointer, "
                        "not the file itself: fetch the files with git lfs pull)")
    assert "pickle" not in said
    (tmp_path / "llff" / "poses_bounds.npy").write_text("0 0 0\n")
    expect_error(tmp_path / "llff", "poses_bounds.npy: not a readable .npy file (it does not start as one)")
    frames = two_frames(tmp_path / "stub")
    (tmp_path / "stub" / "b.png").write_text(pointer)
    transforms(tmp_path / "stub", frames)
    expect_error(tmp_path / "stub", "b.png: cannot read image (it is a Git LFS pointer")


def test_the_apis_loader_options_take_numpys_numbers_and_name_a_wrong_one(tiny_scene):
    # docs/API.md: numbers may be NumPy's wherever Python's are taken; load_dataset(downscale=np.int64(2))
    # was refused as "--downscale must be a positive integer, got 2", and a string or a fraction for
    # --limit, a word for near, or an int for the path ended in a TypeError or ValueError from deep inside
    from taichi_nerf import load_dataset

    halved = read_dataset(tiny_scene, downscale=np.int64(2), limit=np.int64(3), near=np.float32(2.5))
    assert (halved.split("train").width, halved.split("train").count, halved.near) == (16, 3, 2.5)
    # each named as the caller typed it, not as the CLI's flag (the CLI checks its flags before: TrainConfig.validate)
    for options, said in [({"downscale": "2"}, "downscale must be a whole number of at least 1, got '2'"),
                          ({"downscale": 0}, "downscale must be a whole number of at least 1, got 0"),
                          ({"limit": "3"}, "limit must be a whole number of at least 1, got '3'"),
                          ({"limit": 2.5}, "limit must be a whole number of at least 1, got 2.5"),
                          ({"every": "2"}, "every must be a whole number of at least 1, got '2'"),
                          ({"near": "x"}, "near must be a number, got 'x'"),
                          ({"aabb": [1, 2]}, "aabb needs six finite numbers xmin ymin zmin xmax ymax zmax with max "
                                             "> min"),
                          ({"aabb": ["a"] * 6}, "aabb needs six numbers: xmin ymin zmin xmax ymax zmax"),
                          ({"format": "nerfies"}, "unknown format 'nerfies' (supported: blender, instant-ngp, llff, "
                                                  "colmap, npz)")]:
        with pytest.raises(DataError) as refused:
            load_dataset(tiny_scene, **options)
        assert str(refused.value) == said
    with pytest.raises(TypeError, match="^a dataset is given as the path of its folder or file, got int$"):
        load_dataset(5)


def test_a_format_given_for_data_of_another_says_what_the_data_is(tiny_scene, capsys):
    """`--format llff` (a recipe's, copied) on a Blender dataset said only "DATA/poses_bounds.npy: not a readable
    .npy file ([Errno 2] No such file or directory ...)"; each forced layout now adds what the data is."""
    for layout in ("llff", "colmap", "nerfstudio", "npz"):
        line = refused(capsys, ["data", "info", tiny_scene, "--format", layout], f"; {tiny_scene} is a blender "
                       "dataset (detected): leave out --format (from Python: format=)")
        assert line.count("detected") == 1, line
    assert cli.main(["data", "info", str(tiny_scene), "--format", "blender"]) == 0


def test_an_unknown_data_format_is_named_as_the_caller_gave_it(tiny_scene, tmp_path, capsys):
    """train(data_format="nerfies") said "unknown --format 'nerfies'", a flag its caller never typed: a
    configuration's format is now checked with the rest of it, in the words of whoever set it."""
    import taichi_nerf as tn

    known = ("must be one of blender, instant-ngp, llff, colmap, npz, nerfstudio, ngp, transforms, tiny-nerf, "
             "got 'nerfies'")
    with pytest.raises(ValueError) as refused:
        tn.train(data=str(tiny_scene), data_format="nerfies", out=str(tmp_path / "run"), steps=1)
    assert str(refused.value) == f"bad configuration: data_format {known}"
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data_format": "nerfies"}))
    for flags, said in ((["--format", "nerfies"], f"--format/--data-format {known}"),
                        (["--config", str(config)], f"{config}: data_format {known}")):
        assert cli.main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), *flags]) == 2
        assert capsys.readouterr().err == f"taichi-nerf: error: bad configuration: {said}\n"
    assert not (tmp_path / "run").exists()


def test_the_bounds_hints_give_a_python_caller_its_keywords(tmp_path, capsys):
    """The loaders' ways out (set --near/--far, --aabb, --no-ndc; give --far too) named only the flags, which a
    Python caller (read_dataset, tn.train) has none of: each now gives the keyword too, and a command the flag."""
    import math

    from taichi_nerf.data.loaders import check_dataset, choose_scene_kind

    from .conftest import refused

    root = transforms(tmp_path / "ngp", two_frames(tmp_path / "ngp"), kind="ngp")
    said = expect_error(root, near=1e6)  # as tn.train(data=root, near=1e6) meets it
    assert said.endswith("far the data's: give --far too, or a smaller --near; from Python: far=, near=)"), said
    assert expect_error(root, far=1e-6).endswith("give --near too, or a larger --far; from Python: near=, far=)")
    refused(capsys, ["data", "info", root, "--near", "1e6"], "give --far too, or a smaller --near")
    for name, value, way_out in (("near", math.nan, "set --near/--far (from Python: near=/far=)"),
                                 ("aabb", torch.full((6,), math.nan), "set --aabb (from Python: aabb=)")):
        dataset = read_dataset(root)
        setattr(dataset, name, value)
        with pytest.raises(DataError) as refused_here:
            check_dataset(dataset)
        assert str(refused_here.value).endswith(way_out)
    dataset = read_dataset(root)
    dataset.ndc = True  # an LLFF capture in NDC, asked to be unbounded
    with pytest.raises(DataError, match=r"--unbounded \(from Python: unbounded=True\) does not combine with NDC "
                                        r".*; add --no-ndc \(from Python: ndc=False\) to contract space instead$"):
        choose_scene_kind(dataset, unbounded=True)


def test_the_unbounded_note_gives_a_python_caller_its_keyword(tmp_path, monkeypatch):
    """The note that a scene was made unbounded named only --no-unbounded, which tn.train has none of."""
    from taichi_nerf.data import bounds
    from taichi_nerf.data.loaders import choose_scene_kind

    root = transforms(tmp_path / "ngp", two_frames(tmp_path / "ngp"), kind="ngp")
    dataset = read_dataset(root)
    dataset.warnings.clear()
    monkeypatch.setattr(bounds, "unbounded_reason", lambda **facts: "the cameras look outward")
    choose_scene_kind(dataset)
    assert dataset.unbounded
    assert dataset.warnings[-1].endswith("--no-unbounded (from Python: unbounded=False) turns this off")
