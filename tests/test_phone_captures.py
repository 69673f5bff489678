"""What phones, tools and other disks do to a capture's files: images rotated or shrunk after
the poses were made, pre-shrunk folders, macOS metadata files, a file name's case or a Windows
path. Each either loads with the right cameras or is refused in one line; never stretched
cameras."""
import json
import math

import numpy as np
import pytest

from taichi_nerf.data.loaders import read_dataset

from .test_data_errors import POSE, POSE2, expect_error, png, transforms
from .test_data_formats import forward_facing_poses, llff_rows


def ngp(root, size, stated=None, **meta):
    """An Instant-NGP transforms.json over two images of ``size``, stating ``stated`` as w, h."""
    png(root / "images" / "a.png", size)
    png(root / "images" / "b.png", size)
    if stated:
        meta.update(w=stated[0], h=stated[1])
    frames = [{"file_path": "images/a.png", "transform_matrix": POSE},
              {"file_path": "images/b.png", "transform_matrix": POSE2}]
    return transforms(root, frames, kind="instant-ngp", fl_x=40.0, fl_y=40.0, **meta)


def intrinsics(root, **kw):
    return read_dataset(root, val_every=0, **kw).splits["train"].intrinsics[0].tolist()


def test_images_rotated_against_the_stated_size_are_refused(tmp_path):
    # A phone's portrait frames under a file written for landscape: fx and fy would be scaled
    # by different factors, a stretched camera that trains a blur.
    root = ngp(tmp_path / "rot", (24, 32), stated=(32, 24))
    expect_error(root, "transforms.json", "24x32", "32x24", "another shape", "rotated")


def test_images_shrunk_after_the_file_was_written_keep_their_cameras(tmp_path):
    full = intrinsics(ngp(tmp_path / "full", (32, 24), stated=(32, 24)))
    half = intrinsics(ngp(tmp_path / "half", (16, 12), stated=(32, 24)))
    assert half[:4] == pytest.approx([f / 2 for f in full[:4]])


def test_focal_lengths_without_a_stated_size_follow_the_downscale(tmp_path):
    # No w, h in the file: the focal length refers to the image files' own size, so a
    # --downscale 2 load halves it with the pixels.
    root = ngp(tmp_path / "nosize", (32, 24), cx=16.0, cy=12.0)
    full, half = intrinsics(root), intrinsics(root, downscale=2)
    assert full[:4] == pytest.approx([40.0, 40.0, 16.0, 12.0])
    assert half[:4] == pytest.approx([20.0, 20.0, 8.0, 6.0])


def test_a_rotated_pre_shrunk_folder_is_passed_over_for_the_full_images(tmp_path):
    # ffmpeg applies EXIF orientation when it writes images_2/: portrait where images/ is landscape.
    root = ngp(tmp_path / "shrunk", (32, 24), stated=(32, 24))
    png(root / "images_2" / "a.png", (12, 16))
    png(root / "images_2" / "b.png", (12, 16))
    ds = read_dataset(root, val_every=0, downscale=2)
    assert (ds.splits["train"].width, ds.splits["train"].height) == (16, 12)
    assert ds.splits["train"].intrinsics[0, :2].tolist() == pytest.approx([20.0, 20.0])
    assert any("images_2/ passed over" in n and "12x16" in n for n in ds.notes), ds.notes



def test_a_symlinked_images_folder_loads_with_downscale(tmp_path):
    # images/ a link to photos kept elsewhere: its files resolve outside the dataset folder.
    ngp(tmp_path / "elsewhere", (32, 24), stated=(32, 24))
    root = tmp_path / "linked"
    root.mkdir()
    (root / "images").symlink_to(tmp_path / "elsewhere" / "images", target_is_directory=True)
    (root / "transforms.json").write_text((tmp_path / "elsewhere" / "transforms.json").read_text())
    ds = read_dataset(root, val_every=0, downscale=2)
    assert (ds.splits["train"].width, ds.splits["train"].height) == (16, 12)
    assert ds.splits["train"].intrinsics[0, :2].tolist() == pytest.approx([20.0, 20.0])


def test_a_file_name_in_another_case_or_format_or_a_windows_path_is_found(tmp_path):
    root = tmp_path / "case"
    png(root / "images" / "A.PNG", (8, 8))
    png(root / "images" / "b.png", (8, 8))
    png(root / "images" / "c.png", (8, 8))
    frames = [{"file_path": "images/a.png", "transform_matrix": POSE},
              {"file_path": "images\\b.png", "transform_matrix": POSE2},
              {"file_path": "images/c.jpg", "transform_matrix": POSE}]  # converted to PNG since
    ds = read_dataset(transforms(root, frames, kind="instant-ngp"), val_every=0)
    assert ds.splits["train"].names == ["A", "b", "c"]


def test_split_lists_tell_images_of_one_name_in_two_folders_apart(tmp_path):
    # A two-camera rig as nerfstudio lists it: images/cam0/0000.png and images/cam1/0000.png.
    root = tmp_path / "rig"
    frames = []
    for k in range(4):
        path = f"images/cam{k % 2}/{k // 2:04d}.png"
        png(root / path, (8, 8))
        frames.append({"file_path": path, "transform_matrix": [[1, 0, 0, k], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]})
    files = [f["file_path"] for f in frames]
    ds = read_dataset(transforms(root, frames, kind="instant-ngp", train_filenames=files[:3],
                                 val_filenames=files[3:]))
    assert sorted(ds.splits["train"].poses[:, 0, 3].tolist()) == [0.0, 1.0, 2.0]
    assert ds.splits["val"].poses[:, 0, 3].tolist() == [3.0]
    # bare names, where two frames have that name: refused, not one camera guessed or both dropped
    expect_error(transforms(root, frames, kind="instant-ngp", train_filenames=["0000.png", "0001.png"],
                            val_filenames=[]), "a *_filenames entry, 0000.png, names 2 frames' images",
                 "give its path, as the frames do")


def test_another_tools_png_depth_maps_and_missing_ones_are_passed_over_with_a_warning(tmp_path):
    # Depth as 16-bit PNG in millimetres (nerfstudio's convention), where this loader reads .npy.
    frames = []
    for k, pose in enumerate((POSE, POSE2)):
        png(tmp_path / "train" / f"r_{k}.png", (8, 8))
        png(tmp_path / "train" / f"r_{k}_depth.png", (8, 8), mode="I;16", value=4000)
        frames.append({"file_path": f"./train/r_{k}", "transform_matrix": pose,
                       "depth_file_path": f"./train/r_{k}_depth.png"})
    ds = read_dataset(transforms(tmp_path, frames))
    assert ds.splits["train"].depth is None and ds.splits["train"].count == 2
    assert any("transforms_train.json: depth_file_path names r_0_depth.png, not a .npy" in w for w in ds.warnings)
    # .npy maps deleted (or not copied with the images): the split loads without them, as it was refused
    for k, frame in enumerate(frames):
        frame["depth_file_path"] = f"./train/r_{k}_depth.npy"
    np.save(tmp_path / "train" / "r_0_depth.npy", np.full((8, 8), 4.0, np.float32))
    ds = read_dataset(transforms(tmp_path, frames))
    assert ds.splits["train"].depth is None and ds.splits["train"].count == 2
    assert any(w.endswith("r_1_depth.npy: depth map not found (of 2 frames' depth_file_path); the split loads "
                          "without its depth maps") for w in ds.warnings), ds.warnings


def test_missing_images_are_named(tmp_path):
    frames = [{"file_path": "images/gone.png", "transform_matrix": POSE}]
    expect_error(transforms(tmp_path / "gone", frames, kind="instant-ngp"), "zero usable frames",
                 str(tmp_path / "gone" / "images" / "gone.png"))


def test_instant_ngp_fisheye_flag_is_refused(tmp_path):
    expect_error(ngp(tmp_path / "fish", (8, 8), is_fisheye=True), "OPENCV_FISHEYE", "not supported",
                 "undistort the images to a pinhole camera first")
    expect_error(ngp(tmp_path / "ns", (8, 8), camera_model="EQUIRECTANGULAR"), "transforms.json",
                 "'EQUIRECTANGULAR' is not supported", "undistort")


def llff(root, image_size, stated_size, folder="images", count=4):
    """An LLFF capture: ``count`` images of ``image_size`` in ``folder``, poses stating ``stated_size``."""
    poses = forward_facing_poses(count)
    rows = llff_rows(poses, *stated_size, 30.0, [(1.0, 5.0)] * count)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "poses_bounds.npy", rows)
    for k in range(count):
        png(root / folder / f"IMG_{k:04d}.JPG", image_size, mode="RGB")
    return root


def test_llff_macos_metadata_files_are_not_images(tmp_path):
    root = llff(tmp_path / "mac", (32, 24), (32, 24))
    (root / "images" / "._IMG_0000.JPG").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    ds = read_dataset(root, val_every=0)
    assert len(ds.splits["train"].names) == 4


def test_llff_images_rotated_against_the_poses_are_refused(tmp_path):
    root = llff(tmp_path / "llffrot", (24, 32), (32, 24))
    expect_error(root, "poses_bounds.npy", "24x32", "32x24", "another shape")


def test_llff_lone_pre_shrunk_folder_is_decoded_by_what_downscale_leaves(tmp_path):
    # Only images_4/ (8x6 of 32x24 photos): --downscale 8 decodes it by 2 more, to 4x3.
    root = llff(tmp_path / "only4", (16, 12), (64, 48), folder="images_4")
    ds = read_dataset(root, val_every=0, downscale=8)
    split = ds.splits["train"]
    assert (split.width, split.height) == (8, 6)
    assert split.intrinsics[0, 0].item() == pytest.approx(30.0 / 8)
    assert any("images_4/" in n for n in ds.notes)


def test_a_stated_size_that_only_rounds_differently_is_not_refused(tmp_path):
    # 1477x1108 photos at --downscale 8 decode to 184x138: a ratio off by a rounded pixel.
    ds = read_dataset(ngp(tmp_path / "odd", (1477, 1108), stated=(1477, 1108)), val_every=0, downscale=8)
    assert (ds.splits["train"].width, ds.splits["train"].height) == (184, 138)


def test_a_large_aabb_scale_leaves_the_box_to_the_cameras(tmp_path):
    # colmap2nerf writes aabb_scale 16 or 32 for a phone video's scenery: a cube 48-97 units
    # wide around cameras 4 units out. The box comes from the cameras, as without the key.
    plain = read_dataset(ngp(tmp_path / "plain", (32, 24), stated=(32, 24)), val_every=0)
    large = read_dataset(ngp(tmp_path / "large", (32, 24), stated=(32, 24), aabb_scale=16), val_every=0)
    assert large.aabb.tolist() == plain.aabb.tolist() and float(large.aabb.abs().max()) < 10
    assert any("aabb_scale 16" in n and "not the file's cube of half-size 24.2" in n for n in large.notes)
    unit = read_dataset(ngp(tmp_path / "unit", (32, 24), stated=(32, 24), aabb_scale=1), val_every=0)
    assert unit.aabb.tolist() == pytest.approx([-1.515] * 3 + [1.515] * 3, abs=1e-3)


def test_a_colmap_model_without_an_images_folder_says_so(tmp_path):
    # A Gaussian-splatting folder: the photos in input/, not images/.
    model = tmp_path / "gs" / "sparse" / "0"
    model.mkdir(parents=True)
    for part in ("cameras", "images", "points3D"):
        (model / f"{part}.txt").write_text("# empty\n")
    png(tmp_path / "gs" / "input" / "a.png")
    expect_error(tmp_path / "gs", "a COLMAP model in", "no images/ folder")


def test_a_json_file_with_a_byte_order_mark_loads_and_latin_1_is_one_line(tmp_path):
    root = ngp(tmp_path / "bom", (8, 8))
    text = (root / "transforms.json").read_text()
    (root / "transforms.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert len(read_dataset(root, val_every=0).splits["train"].names) == 2
    (root / "transforms.json").write_bytes(text.replace("}", ', "note": "caf\xe9"}', 1).encode("latin-1"))
    expect_error(root, "transforms.json", "not UTF-8")


def test_a_frames_own_camera_angle_wins_over_a_global_focal_length(tmp_path):
    root = ngp(tmp_path / "angle", (32, 24), stated=(32, 24))
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"][1]["camera_angle_x"] = 2 * math.atan(16 / 20.0)  # fx 20 at 32 px wide
    (root / "transforms.json").write_text(json.dumps(meta))
    fx = read_dataset(root, val_every=0).splits["train"].intrinsics[:, 0].tolist()
    assert fx == pytest.approx([40.0, 20.0])  # key by key: the global fl_y still holds for fy
