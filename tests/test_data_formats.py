"""Every dataset layout: write a small dataset with known cameras, load it, and check that the
loaded cameras shoot exactly the known rays (float64 reference below, 1e-5)."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from taichi_nerf.data.blender import write_split
from taichi_nerf.data.dataset import DataError
from taichi_nerf.data.loaders import detect_format, read_dataset
from taichi_nerf.scenes.synthetic import render_scene
from taichi_nerf.stages import cameras, reference
from taichi_nerf.stages.cameras import focal_from_fov, look_at, sphere_poses

SIZE = 24
VIEWS = 10
FOCAL = focal_from_fov(SIZE, 0.69)


@pytest.fixture(scope="module")
def views(taichi_backend):
    """Known 360-degree cameras and their images of the built-in scene."""
    poses = sphere_poses(VIEWS, 4.0, seed=7)
    rgba, _ = render_scene(poses, SIZE, SIZE, FOCAL, FOCAL, SIZE / 2, SIZE / 2, supersample=1)
    return poses, rgba.numpy()


def loaded_rays(split, k):
    o, d = cameras.image_rays(split.poses.contiguous(), split.intrinsics.contiguous(), k, split.width, 0,
                              split.width * split.height)
    return o.double(), d.double()


def assert_rays_match(split, k, pose, fx, fy, cx, cy, transform=None):
    pixels = torch.arange(split.width * split.height)  # every pixel, row-major
    ref_o, ref_d = reference.pinhole_rays(torch.as_tensor(pose)[None], [[fx, fy, cx, cy]], torch.zeros_like(pixels),
                                          pixels, split.width)
    if transform is not None:  # the loader moved the world by a similarity: compare in its frame
        t = torch.as_tensor(transform, dtype=torch.float64)
        ref_o = ref_o @ t[:3, :3].T + t[:3, 3]
        ref_d = ref_d @ t[:3, :3].T
        ref_d = ref_d / ref_d.norm(dim=1, keepdim=True)
    o, d = loaded_rays(split, k)
    scale = max(1.0, float(ref_o.abs().max()))
    assert float((o - ref_o).abs().max()) < 1e-5 * scale
    assert float((d - ref_d).abs().max()) < 1e-5


def save_image(path, rgba, mode="RGBA"):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rgba)
    if mode != "RGBA":
        img = img.convert(mode)
    img.save(path)


# --- Blender -----------------------------------------------------------------------------
def test_blender_rays_alpha_subsets_and_downscale(tmp_path, views):
    poses, rgba = views
    write_split(tmp_path, "train", rgba, poses.numpy(), 0.69)
    write_split(tmp_path, "val", rgba[:3], poses[:3].numpy(), 0.69)
    ds = read_dataset(tmp_path)
    assert ds.format == "blender" and ds.splits["train"].count == VIEWS
    train = ds.splits["train"]
    assert set(np.unique(train.rgba[..., 3].numpy())) >= {0, 255}, "alpha must be kept for the trainer to composite"
    for k in range(VIEWS):
        assert_rays_match(train, k, poses[k], FOCAL, FOCAL, SIZE / 2, SIZE / 2)
    # No near/far/aabb keys: automatic bounds must come out like the Blender defaults.
    assert 1.0 < ds.near < 2.5 and 5.5 < ds.far < 7.5
    assert torch.allclose(ds.aabb, torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]), atol=0.15)
    assert ds.up.tolist() == [0.0, 0.0, 1.0] and abs(ds.orbit_radius - 4.0) < 1e-4
    # print(ds) printed every tensor (~29,000 characters for a small set): a summary, one line
    text = str(ds)
    assert text.startswith(f"<Dataset blender dataset {tmp_path} (train: 10 x 24x24; val: 3 x 24x24); near ")
    assert text.endswith(f"; bounded, background {ds.background.name}>") and len(text) < 300, text
    assert repr(train) == "<Split 10 x 24x24>" and "\n" not in text
    # every-k and limit pick frames before decoding; downscale halves the focal length
    sub = read_dataset(tmp_path, every=3, limit=2)
    assert sub.splits["train"].names == ["r_000", "r_003"] and sub.splits["val"].names == ["r_000"]
    few = [w for w in sub.warnings if w.startswith("only 2 training images: a radiance field learns")]
    assert len(few) == 1 and not any("training image" in w for w in ds.warnings)  # 10 images: no warning
    half = read_dataset(tmp_path, downscale=2).splits["train"]
    assert (half.width, half.height) == (SIZE // 2, SIZE // 2)
    assert_rays_match(half, 4, poses[4], FOCAL / 2, FOCAL / 2, SIZE / 4, SIZE / 4)


# --- Instant-NGP / nerfstudio transforms.json --------------------------------------------
def test_instant_ngp_distortion_missing_frames_split_and_box(tmp_path, views):
    poses, rgba = views
    k = dict(k1=-0.12, k2=0.03, p1=0.004, p2=-0.003)
    frames = []
    for i in range(VIEWS):
        name = f"images/frame_{i:02d}.{'jpg' if i % 2 else 'png'}"  # mixed JPG and PNG
        save_image(tmp_path / name, rgba[i], "RGB" if i % 2 else "RGBA")
        frame = {"file_path": name, "transform_matrix": poses[i].tolist()}
        if i == 3:
            frame["fl_x"] = FOCAL * 1.1  # per-frame intrinsics win over the global ones
        frames.append(frame)
    frames.append({"file_path": "images/gone_1.png", "transform_matrix": poses[0].tolist()})
    frames.append({"file_path": "images/gone_2.png", "transform_matrix": poses[1].tolist()})
    meta = {"camera_model": "OPENCV", "fl_x": FOCAL, "fl_y": FOCAL * 1.05, "cx": 11.7, "cy": 12.4, "w": SIZE, "h": SIZE,
            **k, "aabb_scale": 1, "scale": 0.25, "offset": [0.5, 0.5, 0.5],
            "applied_transform": [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]], "frames": frames[::-1]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    assert detect_format(tmp_path) == "instant-ngp"
    ds = read_dataset(tmp_path)
    skipped = [w for w in ds.warnings if "missing" in w]
    assert len(skipped) == 1 and "skipped 2 frame" in skipped[0]
    # Sorted by name, every 8th held out: frames 0 and 8 validate.
    assert ds.splits["val"].names == ["frame_00", "frame_08"]
    assert len(ds.splits["train"].names) == VIEWS - 2
    # The Instant-NGP box in the file's frame: centre (0.5 - offset) / scale, half aabb_scale / (2 scale).
    assert ds.aabb.tolist() == [-2.0, -2.0, -2.0, 2.0, 2.0, 2.0]
    assert skipped[0].endswith(f"(the first: {tmp_path / 'images' / 'gone_2.png'})")  # in the file's order
    # Poses are used as written (no scale/offset, applied_transform already baked in).
    for split in ds.splits.values():
        for j, name in enumerate(split.names):
            i = int(name.split("_")[1])
            fx = FOCAL * 1.1 if i == 3 else FOCAL
            assert torch.allclose(split.poses[j], poses[i], atol=1e-6)
            assert split.intrinsics[j].tolist() == pytest.approx([fx, FOCAL * 1.05, 11.7, 12.4, *k.values()], rel=1e-6)
            # The distorted camera: re-distorting each ray must land on its pixel centre.
            _, d = loaded_rays(split, j)
            cam = d @ poses[i][:3, :3].double()  # world -> camera
            x, y = cam[:, 0] / -cam[:, 2], -cam[:, 1] / -cam[:, 2]
            xd, yd = reference.opencv_distort(x, y, *k.values())
            jj, ii = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                                    indexing="ij")
            assert float((xd - ((ii.flatten() + 0.5 - 11.7) / fx)).abs().max()) < 1e-5
            assert float((yd - ((jj.flatten() + 0.5 - 12.4) / (FOCAL * 1.05))).abs().max()) < 1e-5
            o, _ = loaded_rays(split, j)
            assert torch.allclose(o, poses[i][:3, 3].double().expand_as(o), atol=1e-5)


def test_instant_ngp_undistorted_rays_camera_angle_and_file_split(tmp_path, views):
    poses, rgba = views
    for i in range(4):
        save_image(tmp_path / f"im/{i}.png", rgba[i])
    meta = {"camera_angle_x": 0.69, "frames": [{"file_path": f"im/{i}.png", "transform_matrix": poses[i].tolist()}
                                                for i in range(4)],
            "train_filenames": ["im/0.png", "im/1.png", "im/2.png"], "val_filenames": ["im/3.png"]}
    path = tmp_path / "my_cameras.json"  # any .json file, not only transforms.json
    path.write_text(json.dumps(meta))
    ds = read_dataset(path)
    assert ds.format == "instant-ngp"
    assert ds.splits["train"].names == ["0", "1", "2"] and ds.splits["val"].names == ["3"]
    for j in range(3):
        assert_rays_match(ds.splits["train"], j, poses[j], FOCAL, FOCAL, SIZE / 2, SIZE / 2)


# --- tiny NeRF .npz ----------------------------------------------------------------------
def test_tiny_npz_rays_and_keras_split(tmp_path, views):
    poses, rgba = views
    images = rgba[..., :3].astype(np.float32) / 255.0
    np.savez(tmp_path / "tiny_nerf_data.npz", images=images, poses=poses.numpy(), focal=np.array(FOCAL))
    ds = read_dataset(tmp_path / "tiny_nerf_data.npz")
    assert ds.format == "npz"
    cut = int(VIEWS * 0.8)
    assert ds.splits["train"].count == cut and ds.splits["val"].count == VIEWS - cut
    for j in range(cut):
        assert_rays_match(ds.splits["train"], j, poses[j], FOCAL, FOCAL, SIZE / 2, SIZE / 2)
    assert_rays_match(ds.splits["val"], 0, poses[cut], FOCAL, FOCAL, SIZE / 2, SIZE / 2)
    got = ds.splits["train"].rgba[..., :3].numpy()
    assert np.abs(got.astype(int) - rgba[:cut, ..., :3].astype(int)).max() <= 1
    assert (ds.splits["train"].rgba[..., 3] == 255).all()
    # --val-every holds out every N-th image, as for the photo layouts (it was ignored: the last fifth validated)
    every3 = read_dataset(tmp_path / "tiny_nerf_data.npz", val_every=3)
    held = list(range(0, VIEWS, 3))
    assert every3.splits["val"].count == len(held) and every3.splits["train"].count == VIEWS - len(held)
    assert_rays_match(every3.splits["val"], 1, poses[3], FOCAL, FOCAL, SIZE / 2, SIZE / 2)
    assert_rays_match(every3.splits["train"], 2, poses[4], FOCAL, FOCAL, SIZE / 2, SIZE / 2)
    assert torch.equal(every3.splits["train"].rgba[2], ds.splits["train"].rgba[4])
    assert "val" not in read_dataset(tmp_path / "tiny_nerf_data.npz", val_every=1).splits
    # Floats in 0..255 (not clipped to white) and grey images read as the same pixels; the range is said.
    for name, array in (("f255", images * 255.0), ("grey", images[..., 1]), ("grey1", images[..., 1:2])):
        np.savez(tmp_path / f"{name}.npz", images=array, poses=poses.numpy(), focal=np.array(FOCAL))
        read = read_dataset(tmp_path / f"{name}.npz").splits["train"].rgba[..., :3].numpy().astype(int)
        want = rgba[:cut, ..., :3].astype(int) if name == "f255" else np.repeat(rgba[:cut, ..., 1:2], 3, -1)
        assert np.abs(read - want).max() <= 1, name
    assert any("read as 0..255" in note for note in read_dataset(tmp_path / "f255.npz").notes)
    # --downscale crops what does not divide (30 x 26 -> 7 x 6, from 28 x 24 of the pixels): the principal
    # point stays the original centre, (15, 13) / 4, not the cropped image's (it was (3.5, 3): rays a quarter
    # pixel off).
    np.savez(tmp_path / "odd.npz", images=np.zeros((2, 26, 30, 3)), poses=poses[:2].numpy(), focal=np.array(FOCAL))
    odd = read_dataset(tmp_path / "odd.npz", downscale=4).splits["train"]
    assert (odd.width, odd.height) == (7, 6)
    assert odd.intrinsics[0, :4].tolist() == pytest.approx([FOCAL / 4] * 2 + [3.75, 3.25])
    # The file may state near/far; they win over the automatic ones.
    np.savez(tmp_path / "with_bounds.npz", images=images, poses=poses.numpy(), focal=np.array(FOCAL), near=2.0, far=6.0)
    stated = read_dataset(tmp_path / "with_bounds.npz")
    assert (stated.near, stated.far) == (2.0, 6.0)
    # data info said both: "near 1.53 / far 6.56: the box's nearest..." and "as stated in the file"
    assert [n for n in stated.notes if n.startswith("near")] == ["near and far as stated in the file"], stated.notes
    np.savez(tmp_path / "with_far.npz", images=images, poses=poses.numpy(), focal=np.array(FOCAL), far=6.0)
    far_only = read_dataset(tmp_path / "with_far.npz")  # the automatic near is still said
    assert far_only.far == 6.0 and far_only.near == ds.near, far_only.notes
    assert [n for n in far_only.notes if n.startswith("near")] == [
        f"near {far_only.near:.3g} / far 6: far as stated in the file, near chosen automatically"], far_only.notes
    # A folder that holds one .npz (the download unpacked into its own folder) is that file;
    # with two, which one is meant is unclear: a one-line error naming the folder.
    (tmp_path / "only").mkdir()
    (tmp_path / "with_bounds.npz").rename(tmp_path / "only" / "data.npz")
    assert (read_dataset(tmp_path / "only").near, read_dataset(tmp_path / "only").far) == (2.0, 6.0)
    (tmp_path / "tiny_nerf_data.npz").rename(tmp_path / "only" / "other.npz")
    with pytest.raises(DataError, match="unknown dataset layout"):
        read_dataset(tmp_path / "only")


# --- LLFF --------------------------------------------------------------------------------
def forward_facing_poses(count):
    """Cameras on a small grid in a plane, all looking roughly along +x at the scene."""
    out = []
    for k in range(count):
        u, v = (k % 4 - 1.5) * 0.1, (k // 4 - 1) * 0.1
        out.append(look_at((3.0, u, 0.2 + v), (0.0, 0.3 * u, 0.3 * v)))
    return torch.stack(out)


def llff_rows(poses, width, height, focal, bounds):
    """poses_bounds.npy rows written by the LLFF convention: columns [down, right, back], centre, hwf."""
    rows = []
    for p, (lo, hi) in zip(poses.double().numpy(), bounds):
        right, up, back, centre = p[:3, 0], p[:3, 1], p[:3, 2], p[:3, 3]
        m = np.stack([-up, right, back, centre, [height, width, focal]], axis=1)  # (3, 5)
        rows.append(np.concatenate([m.ravel(), [lo, hi]]))
    return np.array(rows)


@pytest.fixture(scope="module")
def llff_views(taichi_backend):
    poses = forward_facing_poses(12)
    rgba, depth = render_scene(poses, 2 * SIZE, 2 * SIZE, 2 * FOCAL, 2 * FOCAL, SIZE, SIZE, supersample=1)
    bounds = [(0.9 * float(d[d > 0].min()), 1.1 * float(d.max())) for d in depth]
    return poses, rgba.numpy(), bounds


def test_llff_conversion_rescale_recentre_ndc(tmp_path, llff_views):
    poses, rgba, bounds = llff_views
    np.save(tmp_path / "poses_bounds.npy", llff_rows(poses, 2 * SIZE, 2 * SIZE, 2 * FOCAL, bounds))
    for i in range(len(poses)):
        save_image(tmp_path / f"images/IMG_{i:04d}.JPG", rgba[i], "RGB")
        save_image(tmp_path / f"images_2/IMG_{i:04d}.png", rgba[i, ::2, ::2], "RGB")  # pre-shrunk copies
    assert detect_format(tmp_path) == "llff"
    ds = read_dataset(tmp_path)
    assert ds.format == "llff" and ds.forward_facing and ds.ndc
    assert repr(ds).startswith("<Dataset llff dataset") and "; forward-facing, NDC, background " in repr(ds)
    assert (ds.near, ds.far) == (0.0, 1.0)
    box = ds.aabb.tolist()
    assert box[2] == -1.0 and box[5] == 1.0 and box[3] >= 1.0 and box[4] >= 1.0 and box[0] == -box[3]
    # Every 8th image validates.
    assert ds.splits["val"].names == ["IMG_0000", "IMG_0008"]
    # The applied similarity: uniform scale 1 / (0.75 * nearest bound), then re-centring.
    t = ds.applied_transform.double()
    s = 1.0 / (0.75 * min(lo for lo, _ in bounds))
    rot = t[:3, :3] / s
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
    train = ds.splits["train"]
    assert train.poses[:, :3, 3].mean(0).abs().max() < 0.05  # cameras centred on the origin ...
    assert float(train.poses[:, 2, 2].mean()) > 0.99  # ... looking down -z
    for j, name in enumerate(train.names):
        i = int(name.split("_")[1])
        assert_rays_match(train, j, poses[i], 2 * FOCAL, 2 * FOCAL, SIZE, SIZE, transform=t)
    # --downscale 2 reads images_2/ and halves the focal length; --no-ndc gives world bounds.
    small = read_dataset(tmp_path, downscale=2, ndc=False)
    assert not small.ndc and small.splits["train"].width == SIZE
    assert_rays_match(small.splits["train"], 0, poses[1], FOCAL, FOCAL, SIZE / 2, SIZE / 2, transform=t)
    assert small.near == pytest.approx(0.9 * s * min(lo for lo, _ in bounds), rel=1e-4)
    assert small.far == pytest.approx(s * max(hi for _, hi in bounds), rel=1e-4)


def test_llff_360_capture_gets_world_bounds(tmp_path, views):
    """mip-NeRF 360 scenes ship as LLFF too: cameras all around mean no NDC."""
    poses, rgba = views
    np.save(tmp_path / "poses_bounds.npy", llff_rows(poses, SIZE, SIZE, FOCAL, [(2.0, 6.0)] * VIEWS))
    for i in range(VIEWS):
        save_image(tmp_path / f"images/{i:03d}.png", rgba[i])
    ds = read_dataset(tmp_path)
    assert not ds.ndc and not ds.forward_facing
    for j, name in enumerate(ds.splits["train"].names):
        assert_rays_match(ds.splits["train"], j, poses[int(name)], FOCAL, FOCAL, SIZE / 2, SIZE / 2,
                          transform=ds.applied_transform)


# --- a mesh rendered to the Blender layout -------------------------------------------------
def test_mesh_dataset_loads_with_known_cameras(tmp_path, taichi_backend):
    from taichi_nerf.scenes.mesh import CAMERA_ANGLE_X, CAMERA_RADIUS, write_mesh_dataset

    obj = tmp_path / "tetra.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    out, _ = write_mesh_dataset(obj, tmp_path / "ds", views=3, size=SIZE, val_views=1, test_views=0,
                                supersample=1, progress=False)
    ds = read_dataset(out)
    f = focal_from_fov(SIZE, CAMERA_ANGLE_X)
    known = sphere_poses(3, CAMERA_RADIUS, upper_only=True, seed=0)
    for k in range(3):
        assert_rays_match(ds.splits["train"], k, known[k], f, f, SIZE / 2, SIZE / 2)
    assert ds.splits["train"].depth is not None and (ds.near, ds.far) == (2.0, 6.0)


def test_builtin_scene_as_every_format_gives_same_first_ray(tmp_path, views):
    """Sanity across loaders: one camera, four layouts, one ray."""
    poses, rgba = views
    write_split(tmp_path / "b", "train", rgba[:2], poses[:2].numpy(), 0.69)
    (tmp_path / "n").mkdir()
    np.savez(tmp_path / "n/x.npz", images=rgba[:2, ..., :3] / 255.0, poses=poses[:2].numpy(), focal=FOCAL)
    rays = [loaded_rays(read_dataset(p).splits["train"], 0) for p in (tmp_path / "b", tmp_path / "n/x.npz")]
    assert torch.allclose(rays[0][1], rays[1][1], atol=1e-6)
    assert math.isclose(float(rays[0][0][0, 0]), float(poses[0, 0, 3]), abs_tol=1e-6)


def test_data_info_prints_a_level_orbit_as_0_degrees(tmp_path, capsys):
    """`data from-mesh --full-sphere` cameras, as many below the horizon as above: `data info` said
    "elevation -4.88e-08 deg" (float32 noise of the median)."""
    from taichi_nerf import cli

    poses = sphere_poses(16, 4.0, upper_only=False).numpy()
    write_split(tmp_path, "train", np.zeros((16, 8, 8, 4), np.uint8), poses, 0.69)
    assert cli.main(["data", "info", str(tmp_path)]) == 0
    orbit = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("orbit:"))
    assert orbit.endswith(", elevation 0 deg"), orbit
