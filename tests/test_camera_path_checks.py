"""Camera paths are checked before rendering (issue 23): a camera_to_world whose 3x3 part is not
a rotation is one line naming the camera; a missing field of view comes from the dataset, said."""
import json
import math

import numpy as np
import pytest
import torch

from taichi_nerf import cli
from taichi_nerf.outputs import camera_path as cp
from taichi_nerf.rendering.scene import Scene
from taichi_nerf.stages.cameras import orbit_poses

from .conftest import ARCH

SCENE = Scene(near=2.0, far=6.0, aabb=[-1.5] * 3 + [1.5] * 3, aspect=1.5, fov_x=0.7)


def _path_file(path, poses, **camera):
    cams = [{"camera_to_world": np.asarray(m, dtype=np.float64).reshape(-1).tolist(), **camera} for m in poses]
    path.write_text(json.dumps({"camera_type": "perspective", "render_width": 48, "render_height": 32,
                                "camera_path": cams}))
    return path


def _distorted(kind: str) -> np.ndarray:
    m = orbit_poses(5, 4.0, 30.0).double().numpy()
    bend = {"scaled": np.diag([1.5, 1.5, 1.5]), "sheared": np.array([[1.0, 0.3, 0.0], [0, 1, 0], [0, 0, 1]]),
            "slightly scaled": np.diag([1.01, 1.0, 1.0]), "mirrored": np.diag([1.0, 1.0, -1.0])}[kind]
    m[2, :3, :3] = m[2, :3, :3] @ bend
    return m


@pytest.mark.parametrize("kind, message", [("scaled", "not a rotation"), ("sheared", "not a rotation"),
                                           ("slightly scaled", "not a rotation"), ("mirrored", "mirror")])
def test_a_camera_that_is_not_a_rotation_is_named(tmp_path, kind, message):
    path = _path_file(tmp_path / "camera_path.json", _distorted(kind), fov=40.0)
    with pytest.raises(cp.CameraPathError) as err:
        cp.load_camera_path(path, SCENE)
    text = str(err.value)
    assert f"{path}: camera_path[2]: " in text and message in text and "\n" not in text
    frames = [{"transform_matrix": m.tolist()} for m in _distorted(kind)]  # the pose-list form too
    (tmp_path / "frames.json").write_text(json.dumps({"camera_angle_x": 0.9, "frames": frames}))
    with pytest.raises(cp.CameraPathError, match=r"frames\[2\]: .*" + message):
        cp.load_camera_path(tmp_path / "frames.json", SCENE)


def test_a_camera_beyond_what_float32_rays_hold_is_named(tmp_path):
    """A translation of 1e39 is finite in float64 and passed; the float32 rays were infinite, the video all
    background (with a numpy RuntimeWarning)."""
    poses = orbit_poses(5, 4.0, 30.0).double().numpy()
    poses[1, 0, 3] = 1e39
    with pytest.raises(cp.CameraPathError, match=r"camera_path\[1\]: the matrix has values beyond 1e\+07"):
        cp.load_camera_path(_path_file(tmp_path / "p.json", poses, fov=40.0), SCENE)


def test_rotations_written_with_rounding_pass(tmp_path):
    poses = np.round(orbit_poses(5, 4.0, 30.0).double().numpy(), 4)  # what a 4-decimal JSON writer leaves
    route = cp.load_camera_path(_path_file(tmp_path / "p.json", poses, fov=40.0), SCENE)
    assert route.frames == 5 and not route.notes


def test_a_missing_fov_comes_from_the_dataset_with_a_note(tmp_path):
    route = cp.load_camera_path(_path_file(tmp_path / "p.json", orbit_poses(3, 4.0, 30.0)), SCENE)
    fov_y = 2 * math.atan(math.tan(0.35) / 1.5)  # the scene's vertical field of view
    assert math.isclose(float(route.intrinsics[0, 1]), 0.5 * 32 / math.tan(fov_y / 2), rel_tol=1e-5)
    assert len(route.notes) == 1 and "no 'fov'" in route.notes[0] and f"{math.degrees(fov_y):.1f}" in route.notes[0]
    frames = [{"transform_matrix": m.tolist()} for m in orbit_poses(3, 4.0)]
    (tmp_path / "f.json").write_text(json.dumps({"frames": frames}))
    route = cp.load_camera_path(tmp_path / "f.json", SCENE, size=60)
    assert math.isclose(float(route.intrinsics[0, 0]), 30 / math.tan(0.35), rel_tol=1e-5)
    assert len(route.notes) == 1 and "camera_angle_x" in route.notes[0] and "40.1" in route.notes[0]


def test_render_path_refuses_a_distorted_camera_and_notes_a_filled_fov(trained_builtin, tmp_path, capsys):
    _, run = trained_builtin
    bad = _path_file(tmp_path / "bad.json", _distorted("sheared"), fov=40.0)
    code = cli.main(["render", "--ckpt", str(run), "--path", str(bad), "--out", str(tmp_path / "bad.gif"),
                     "--no-progress", "--arch", ARCH])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_USAGE and len(err) == 1 and "camera_path[2]" in err[0], err
    assert not list(tmp_path.glob("bad*.gif"))
    good = _path_file(tmp_path / "good.json", orbit_poses(2, 4.0, 30.0))
    assert cli.main(["render", "--ckpt", str(run), "--path", str(good), "--out", str(tmp_path / "good.gif"),
                     "--no-progress", "--arch", ARCH]) == 0
    out = capsys.readouterr().out
    assert "note:" in out and "no 'fov'" in out and (tmp_path / "good.gif").is_file()


def test_a_spiral_on_a_ring_of_cameras_is_refused_and_on_an_arc_stays_upright():
    """--spiral circles in front of the cameras' average view. A turntable capture's ring has
    none (its views average out): the spiral came out rolled and upside down there; refused. On
    an arc (120 degrees) the spiral stays upright (the scene's up) at the cameras' height."""
    ring = orbit_poses(36, 4.0, 20.0)
    with pytest.raises(cp.CameraPathError, match="look in from all around.*--path train"):
        cp.spiral_path(SCENE, 12, 48, ring)
    arc = orbit_poses(36, 4.0, 20.0)[:12]  # 10 degrees apart: 110 degrees in all
    path = cp.spiral_path(SCENE, 24, 48, arc)
    up = np.asarray(SCENE.up)
    rights, camera_ups = (path.poses[:, :3, k].double().numpy() @ up for k in (0, 1))
    assert np.abs(rights).max() < 0.05 and camera_ups.min() > 0.7, (rights, camera_ups)  # no roll, upright
    heights = path.poses[:, :3, 3].double().numpy() @ up
    arc_height = float(arc[0, :3, 3] @ torch.tensor(SCENE.up))
    assert np.abs(heights - arc_height).max() < 0.35 * 4.0, (heights, arc_height)


@pytest.mark.parametrize("key, value", [("cx", "abc"), ("cy", [1, 2]), ("cx", float("nan"))])
def test_a_principal_point_that_is_not_a_number_is_named(tmp_path, key, value):
    """A pose list's cx/cy that is not a finite number is one CameraPathError naming the file, the
    frame and the key, as fl_x's is; it used to be float()'s bare "could not convert string to
    float: 'abc'" (or a TypeError, or a NaN that rendered an empty picture)."""
    frames = [{"transform_matrix": m.tolist()} for m in orbit_poses(3, 4.0, 30.0).double().numpy()]
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"fl_x": 30.0, "w": 48, "h": 32, "cx": 24, "cy": 16, key: value, "frames": frames}))
    with pytest.raises(cp.CameraPathError) as err:
        cp.load_camera_path(path, SCENE)
    assert str(err.value).startswith(f"{path}: frames[0]: '{key}' must be a number"), str(err.value)
