"""The users'-data test sets (scenes/testsets.py): each is written into its real layout, loads
through read_dataset with the detected format, and has the property it stands for."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taichi_nerf.data.loaders import detect_format, read_dataset
from taichi_nerf.scenes import environment as E
from taichi_nerf.scenes import synthetic as S
from taichi_nerf.scenes import testsets as T
from taichi_nerf.stages import cameras, reference
from taichi_nerf.stages.cameras import focal_from_fov, sphere_poses

# Small versions: the whole file trains nothing and stays well under a minute on 2 cores.
SMALL = {"npz-black": (32, 8), "npz-white": (32, 8), "blender-wide": (32, 6), "blender-portrait": (32, 6),
         "llff-backdrop": (40, 10), "ngp-360-env": (40, 12), "cow": (32, 4), "npz-cow": (32, 6),
         "llff-real": (40, 10), "ngp-360-real": (40, 12)}
NEED_COW_MESH = ("cow", "npz-cow")


@pytest.fixture(scope="module")
def sets(tmp_path_factory, taichi_backend):
    """name -> path, each set written on first use."""
    root = tmp_path_factory.mktemp("testsets")
    written = {}

    def get(name):
        if name in NEED_COW_MESH and not T.cow_mesh_path().is_file():
            pytest.skip(f"no cow mesh at {T.cow_mesh_path()} (set TAICHI_NERF_SHARED)")
        if name not in written:
            size, views = SMALL[name]
            written[name] = T.write_testset(name, root / name, size=size, views=views)
        return written[name]

    return get


def image_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def test_registry_covers_the_issue():
    assert set(T.TESTSETS) == set(SMALL)
    with pytest.raises(ValueError, match="unknown test set"):
        T.write_testset("lego", "/nonexistent")
    with pytest.raises(ValueError, match="size >= 16"):
        T.write_testset("npz-black", "/nonexistent", size=8)


@pytest.mark.parametrize("name", list(SMALL))
def test_set_loads_with_detected_format_and_has_its_properties(sets, name):
    recipe = T.TESTSETS[name]
    path = sets(name)
    assert detect_format(path) == recipe.layout
    ds = read_dataset(path)  # no format given: detected
    assert ds.format == recipe.layout
    size, views = SMALL[name]
    listed = sum(s.count for s in ds.splits.values())
    assert listed == (views + 2 * T._held_out(views) if recipe.layout == "blender" else views)
    for split in ds.splits.values():
        w, h = split.width, split.height
        assert max(w, h) == size
        assert abs(w / h - recipe.aspect) < 1.0 / min(w, h) + 1e-6
        alpha = split.rgba[..., 3]
        if recipe.alpha:  # a real silhouette: empty and covered pixels, soft edges
            assert (alpha == 0).any() and (alpha == 255).any() and ((alpha > 0) & (alpha < 255)).any()
        else:
            assert (alpha == 255).all()
        if recipe.fills_frame:  # no pixel shows the renderer's empty black
            rgb = split.rgba[..., :3].int()
            assert (rgb.max(dim=-1).values > 12).all()
            assert rgb.float().std(dim=(1, 2)).min() > 20  # textured, not flat
    assert torch.isfinite(ds.aabb).all() and 0 <= ds.near < ds.far


@pytest.mark.parametrize("name, background", [("npz-black", 0.0), ("npz-white", 1.0), ("npz-cow", 0.0)])
def test_npz_layout_black_and_white(sets, name, background):
    with np.load(sets(name)) as data:
        assert sorted(data.files) == ["focal", "images", "poses"]
        images, poses, focal = data["images"], data["poses"], data["focal"]
    size, views = SMALL[name]
    assert images.shape == (views, size, size, 3) and images.dtype == np.float32
    assert poses.shape == (views, 4, 4) and focal.shape == ()
    assert float(focal) == pytest.approx(focal_from_fov(size, S.CAMERA_ANGLE_X))
    assert 0.0 <= images.min() and images.max() <= 1.0
    # the objects are framed: the border is pure background, the middle is not
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert (border == background).all()
    assert (np.abs(images - background).max(axis=-1) > 0.2).mean() > 0.05


def test_blender_sets_are_the_square_cameras_cropped(sets):
    for name in ("blender-wide", "blender-portrait"):
        path = sets(name)
        meta = json.loads((path / "transforms_train.json").read_text())
        assert meta["camera_angle_x"] == S.CAMERA_ANGLE_X
        assert not {"near", "far", "aabb"} & set(meta)  # users' files state no bounds
        train = read_dataset(path).splits["train"]
        known = sphere_poses(train.count, S.CAMERA_RADIUS, upper_only=True, seed=0)
        assert torch.allclose(train.poses, known, atol=1e-6)
        fx = focal_from_fov(train.width, S.CAMERA_ANGLE_X)  # the angle spans the width
        assert train.intrinsics[0, :4].tolist() == pytest.approx([fx, fx, train.width / 2, train.height / 2], rel=1e-6)
    # the wide crop cuts the objects at its top and bottom; the portrait frames them
    wide = read_dataset(sets("blender-wide")).splits["train"].rgba[..., 3]
    tall = read_dataset(sets("blender-portrait")).splits["train"].rgba[..., 3]
    assert (torch.cat([wide[:, 0], wide[:, -1]], 1) > 0).any()
    assert (torch.cat([tall[:, 0], tall[:, -1], tall[:, :, 0], tall[:, :, -1]], 1) == 0).all()


def test_llff_files_are_what_colmap_gives(sets):
    path = sets("llff-backdrop")
    size, views = SMALL["llff-backdrop"]
    rows = np.load(path / "poses_bounds.npy")
    assert rows.shape == (views, 17) and rows.dtype == np.float64
    files = image_files(path)
    assert [p.name for p in files] == [f"IMG_{T.LLFF_FIRST_IMAGE + k:04d}.JPG" for k in range(views)]
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (size, size * 3 // 4)
    mats = rows[:, :15].reshape(views, 3, 5)
    focal = focal_from_fov(size, math.radians(T.LLFF_FOV_X_DEG))
    assert np.allclose(mats[:, :, 4], [size * 3 // 4, size, focal])
    assert (rows[:, 15] > 0).all() and (rows[:, 16] > 1.5 * rows[:, 15]).all()
    # The file's cameras are ours in some other (COLMAP-like) frame: one similarity maps them.
    ds = read_dataset(path)
    assert ds.forward_facing and ds.ndc
    world = T.llff_poses(views, seed=0).double()
    loaded = {n: p.double() for s in ds.splits.values() for n, p in zip(s.names, s.poses)}
    index = {n: int(n[4:]) - T.LLFF_FIRST_IMAGE for n in loaded}
    first = next(iter(loaded))
    q = loaded[first][:3, :3] @ world[index[first]][:3, :3].T
    assert torch.allclose(q @ q.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
    a, b = (sorted(loaded, key=index.get)[k] for k in (0, -1))
    scale = (loaded[b][:3, 3] - loaded[a][:3, 3]).norm() / (world[index[b]][:3, 3] - world[index[a]][:3, 3]).norm()
    for name, pose in loaded.items():
        w = world[index[name]]
        assert torch.allclose(pose[:3, :3], q @ w[:3, :3], atol=1e-4)
        offset = pose[:3, 3] - loaded[a][:3, 3]
        assert torch.allclose(offset, scale * q @ (w[:3, 3] - world[index[a]][:3, 3]), atol=1e-4)


def test_ngp_set_is_a_distorted_jpeg_capture_with_unregistered_frames(sets):
    path = sets("ngp-360-env")
    size, views = SMALL["ngp-360-env"]
    meta = json.loads((path / "transforms.json").read_text())
    files = image_files(path)
    listed = [f["file_path"] for f in meta["frames"]]
    assert len(listed) == views and len(files) > views  # unregistered frames stay on disk
    assert listed != sorted(listed)  # registration order, not file order
    assert all(f.suffix == ".jpg" for f in files)
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    ds = read_dataset(path)
    assert not [w for w in ds.warnings if "missing" in w or "ignored" in w]  # every listed file is there, all used
    cam = T.ngp_intrinsics(size)
    dist = [cam[k] for k in ("k1", "k2", "p1", "p2")]
    assert all(abs(v) > 0 for v in dist) and -0.05 <= cam["k1"] <= 0.05
    poses = {Path(f["file_path"]).stem: torch.tensor(f["transform_matrix"]) for f in meta["frames"]}
    # The loader's rays are the renderer's: every listed frame, every pixel.
    for split in ds.splits.values():
        assert split.intrinsics[0].tolist() == pytest.approx([cam[k] for k in ("fl_x", "fl_y", "cx", "cy")] + dist,
                                                             rel=1e-6)
        for j, name in enumerate(split.names[:3]):
            _, loaded = cameras.image_rays(split.poses.contiguous(), split.intrinsics.contiguous(), j, split.width, 0,
                                           split.width * split.height)
            rendered = E.pixel_directions(poses[name][None], cam["w"], cam["h"], cam["fl_x"], cam["fl_y"], cam["cx"],
                                          cam["cy"], dist)
            assert float((loaded - rendered.reshape(-1, 3)).abs().max()) < 1e-5


def _environment_depth(origin, dirs):
    """Distance to the dome environment (ground plane or enclosing sphere) along unit rays."""
    o = origin.double()
    t_ground = torch.where(dirs[:, 2] < 0, (E.FLOOR_Z - o[2]) / dirs[:, 2].clamp(max=-1e-12),
                           torch.full_like(dirs[:, 0], math.inf))
    b = dirs @ o
    t_dome = -b + torch.sqrt(b * b - (o @ o - E.DOME_RADIUS ** 2))
    return torch.minimum(t_ground, t_dome)


def test_distortion_is_in_the_pixels_and_image_rays_reproduce_it(taichi_backend):
    """Render with distortion; the rays of cameras.image_rays with those intrinsics must be the
    rays the renderer traced: re-distorting them lands on the pixel centres, and the rendered
    depth is the environment's distance along them (not along the pinhole rays)."""
    cam = T.ngp_intrinsics(48)
    w, h, fx, fy, cx, cy = (cam[k] for k in ("w", "h", "fl_x", "fl_y", "cx", "cy"))
    dist = [cam[k] for k in ("k1", "k2", "p1", "p2")]
    poses = T.ngp_poses(2, seed=5)
    intr = torch.tensor([[fx, fy, cx, cy, *dist]] * 2, dtype=torch.float32)
    _, depth = S.render_scene(poses, w, h, fx, fy, cx, cy, supersample=1, environment="dome", distortion=dist)
    rendered_dirs = E.pixel_directions(poses, w, h, fx, fy, cx, cy, dist)
    jj, ii = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    for k in range(2):
        origin, dirs = cameras.image_rays(poses.contiguous(), intr, k, w, 0, w * h)
        dirs = dirs.double()
        assert float((dirs - rendered_dirs[k].reshape(-1, 3).double()).abs().max()) < 1e-5
        # independent float64 check: the forward OpenCV model maps each ray to its pixel centre
        c = dirs @ poses[k, :3, :3].double()
        xd, yd = reference.opencv_distort(c[:, 0] / -c[:, 2], -c[:, 1] / -c[:, 2], *dist)
        assert float((xd * fx + cx - (ii.flatten() + 0.5)).abs().max()) < 1e-3
        assert float((yd * fy + cy - (jj.flatten() + 0.5)).abs().max()) < 1e-3
        # the renderer traced these rays: where it saw the environment, the depth is the
        # environment's distance along them (objects, closer, cover the rest)
        got = depth[k].reshape(-1).double()
        expected = _environment_depth(poses[k, :3, 3], dirs)
        env = (got - expected).abs() < 1e-3 * expected
        assert env.float().mean() > 0.5
        assert (got[~env] < expected[~env]).all()
        # pinhole rays would not explain the ground pixels
        pinhole_intr = intr.clone()
        pinhole_intr[:, 4:] = 0.0
        _, pinhole = cameras.image_rays(poses.contiguous(), pinhole_intr, k, w, 0, w * h)
        wrong = (got - _environment_depth(poses[k, :3, 3], pinhole.double())).abs() > 1e-3 * expected
        assert (wrong & env).float().mean() > 0.1


def test_environments_leave_no_pixel_empty(taichi_backend):
    """Every ray of the forward-facing and 360 cameras hits the scene or its environment."""
    size = 40
    focal = focal_from_fov(size, math.radians(T.LLFF_FOV_X_DEG))
    rgba, depth = S.render_scene(T.llff_poses(6, seed=3), size, 30, focal, focal, size / 2, 15, supersample=1,
                                 environment="backdrop")
    assert (rgba[..., 3] == 255).all() and (depth > 0).all() and depth.max() < 20
    cam = T.ngp_intrinsics(size)
    rgba, depth = S.render_scene(T.ngp_poses(6, seed=3), cam["w"], cam["h"], cam["fl_x"], cam["fl_y"], cam["cx"],
                                 cam["cy"], supersample=1, environment="dome")
    assert (rgba[..., 3] == 255).all() and (depth > 0).all() and depth.max() <= E.DOME_RADIUS * 2


def test_cow_set_uses_the_mesh_renderer(sets):
    path = sets("cow")
    meta = json.loads((path / "transforms_train.json").read_text())
    assert meta["scene"] == "mesh cow.obj"
    ds = read_dataset(path)
    assert ds.splits["train"].depth is not None


def test_make_testsets_script(tmp_path, capsys, taichi_backend):
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "make_testsets.py"
    spec = importlib.util.spec_from_file_location("make_testsets", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--out", str(tmp_path), "--only", "npz-white", "--size", "16", "--views", "4",
                        "--no-progress", "--arch", os.environ.get("TAICHI_NERF_TEST_ARCH", "cpu")]) == 0
    out = capsys.readouterr().out
    assert "== npz-white" in out and "format:   npz" in out
    assert (tmp_path / "npz-white" / "tiny_nerf_data.npz").is_file()


def test_a_set_that_needs_the_missing_cow_mesh_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """Without the shared data folder, make_testsets.py wrote the sets ahead of cow, then failed on it,
    leaving an empty cow/ folder; the matrix trained every set ahead of it first."""
    import importlib

    from scripts import make_testsets
    from scripts.bench import matrix

    monkeypatch.setenv("TAICHI_NERF_SHARED", str(tmp_path / "nowhere"))
    assert NEED_COW_MESH == tuple(name for name, recipe in T.TESTSETS.items() if recipe.needs_cow)
    assert T.missing_input("npz-black") is None and "cow mesh not found" in T.missing_input("cow")
    with pytest.raises(T.DataError, match="test set npz-cow: .*cow mesh not found"):
        T.write_testset("npz-cow", tmp_path / "out" / "npz-cow", size=16, views=4)
    with pytest.raises(SystemExit):
        make_testsets.main(["--out", str(tmp_path / "out"), "--only", "npz-black,cow", "--arch", "cpu"])
    assert "test set cow: " in capsys.readouterr().err and not (tmp_path / "out").exists()
    monkeypatch.setattr(importlib.import_module("taichi_nerf.backend"), "init", lambda *a: pytest.fail("started"))
    with pytest.raises(T.DataError, match="test set cow: "):
        matrix.run(matrix.argparse.Namespace(sets=("builtin", "cow"), sheet=None, arch="cpu"))


@pytest.mark.parametrize("only, said", [
    ("", "argument --only: no test set (have: npz-black"),  # it wrote every set, as if --only were left out
    ("npz-black,nosuch", "argument --only: unknown test set nosuch (have: npz-black"),  # was "unknown set(s) nosuch"
    ("builtin", "argument --only: unknown test set builtin (have: npz-black"),  # the matrix's own row, not a set
])
def test_make_testsets_only_is_checked_as_the_matrix_checks_its_sets(tmp_path, monkeypatch, capsys, only, said):
    """make_testsets.py --only and benchmark.py matrix --sets checked the names each its own way and said it in
    different words; an empty --only wrote every set. Both parse with scripts.testset_names now."""
    import importlib

    from scripts import make_testsets
    from scripts.bench import main as benchmark

    monkeypatch.setattr(make_testsets, "write_testset", lambda *a, **k: pytest.fail("wrote a set"))
    with pytest.raises(SystemExit) as stopped:
        make_testsets.main(["--out", str(tmp_path), "--only", only, "--arch", "cpu"])
    assert stopped.value.code == 2
    assert f": error: {said}" in capsys.readouterr().err.splitlines()[-1]
    matrix = importlib.import_module("scripts.bench.matrix")
    monkeypatch.setattr(matrix, "run", lambda args: args.sets)
    if only == "builtin":  # the matrix's row of the built-in scene
        assert benchmark(["matrix", "--sets", only]) == ("builtin",)
    else:
        with pytest.raises(SystemExit):
            benchmark(["matrix", "--sets", only])
        assert said.replace("--only", "--sets").replace("(have: ", "(have: builtin, ") in capsys.readouterr().err


def test_a_test_set_named_twice_is_made_once(tmp_path, monkeypatch):
    """--only npz-black,npz-black wrote (and the matrix trained) the set twice."""
    from scripts import make_testsets
    from scripts.bench import main as benchmark

    written = []
    monkeypatch.setattr(make_testsets, "write_testset", lambda name, out, **k: written.append(name) or out)
    monkeypatch.setattr(make_testsets.cli, "main", lambda argv: 0)
    assert make_testsets.main(["--out", str(tmp_path), "--only", "npz-black, npz-black", "--arch", "cpu"]) == 0
    assert written == ["npz-black"]
    import importlib

    matrix = importlib.import_module("scripts.bench.matrix")
    monkeypatch.setattr(matrix, "run", lambda args: args.sets)
    assert benchmark(["matrix", "--sets", "builtin,cow,builtin"]) == ("builtin", "cow")
