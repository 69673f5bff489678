"""Camera paths: nerfstudio camera_path.json, transforms-style pose lists, the spline through
the training cameras, and the videos rendered along them."""
import json
import math
import re

import numpy as np
import pytest
import torch

from taichi_nerf import cli
from taichi_nerf.outputs import camera_path as cp
from taichi_nerf.rendering.scene import Scene
from taichi_nerf.stages.cameras import orbit_poses

from .conftest import ARCH, refused

SCENE = Scene(near=2.0, far=6.0, aabb=[-1.5] * 3 + [1.5] * 3, aspect=1.5, fov_x=0.7)


def _nerfstudio(path, poses, fov=40.0, **top):
    meta = {"camera_type": "perspective", "render_width": 48, "render_height": 32, "fps": 12,
            "camera_path": [{"camera_to_world": m.flatten().tolist(), "fov": fov, "aspect": 1.5} for m in poses]}
    meta.update(top)
    path.write_text(json.dumps(meta))
    return path


def test_nerfstudio_camera_path_poses_and_vertical_fov(tmp_path):
    poses = orbit_poses(6, 4.0, 20.0)
    route = cp.load_camera_path(_nerfstudio(tmp_path / "camera_path.json", poses), SCENE)
    assert route.frames == 6 and (route.width, route.height) == (48, 32) and route.fps == 12
    assert torch.allclose(route.poses, poses, atol=1e-6)  # row-major 4x4, OpenGL axes, as given
    fy = 0.5 * 32 / math.tan(math.radians(20.0))  # fov is vertical
    assert torch.allclose(route.intrinsics[0, :4], torch.tensor([fy, fy, 24.0, 16.0]))
    resized = cp.load_camera_path(tmp_path / "camera_path.json", SCENE, size=96)
    assert (resized.width, resized.height) == (96, 64)
    assert math.isclose(float(resized.intrinsics[0, 1]), 2 * fy, rel_tol=1e-5)  # same field of view


def test_a_nerfstudio_paths_picture_has_one_shape_with_or_without_size(tmp_path):
    """--size took the height from the camera's aspect, no --size from render_height: a file whose two
    disagree rendered two shapes. And a file with neither came out square, not the training cameras' shape."""
    poses = orbit_poses(3, 4.0, 20.0)
    route = cp.load_camera_path(_nerfstudio(tmp_path / "a.json", poses, render_width=64, render_height=32), SCENE)
    assert (route.width, route.height) == (64, 32)  # the cameras' aspect (1.5) says otherwise: render_* rule
    resized = cp.load_camera_path(tmp_path / "a.json", SCENE, size=128)
    assert (resized.width, resized.height) == (128, 64)
    meta = json.loads((tmp_path / "a.json").read_text())
    del meta["render_width"], meta["render_height"]
    for cam in meta["camera_path"]:
        del cam["aspect"]
    (tmp_path / "b.json").write_text(json.dumps(meta))
    bare = cp.load_camera_path(tmp_path / "b.json", SCENE, size=60)
    assert (bare.width, bare.height) == (60, 40)  # the scene's aspect, as a transforms.json path
    cam_only = json.loads((tmp_path / "b.json").read_text())
    cam_only["camera_path"][0]["aspect"] = 2.0
    (tmp_path / "c.json").write_text(json.dumps(cam_only))
    assert (lambda r: (r.width, r.height))(cp.load_camera_path(tmp_path / "c.json", SCENE, size=60)) == (60, 30)


def test_frames_keeps_a_zoom_along_the_path(tmp_path):
    """A nerfstudio path whose fov changes (a zoom keyframed in its viewer) rendered with
    --frames kept the first camera's fov for every frame: the zoom vanished without a word."""
    meta_path = _nerfstudio(tmp_path / "zoom.json", orbit_poses(3, 4.0, 20.0))
    meta = json.loads(meta_path.read_text())
    for cam, fov in zip(meta["camera_path"], (20.0, 40.0, 60.0)):
        cam["fov"] = fov
    meta_path.write_text(json.dumps(meta))
    route = cp.with_frames(cp.load_camera_path(meta_path, SCENE), 5)
    fovs = [math.degrees(2 * math.atan(0.5 * 32 / float(fy))) for fy in route.intrinsics[:, 1]]
    assert fovs[0] == pytest.approx(20.0, abs=1e-3) and fovs[-1] == pytest.approx(60.0, abs=1e-3)
    assert fovs[2] == pytest.approx(40.0, abs=1e-3)  # the middle camera's, where the path passes it
    assert all(a < b for a, b in zip(fovs, fovs[1:]))  # zooming out all the way
    assert torch.allclose(route.intrinsics[:, 0], route.intrinsics[:, 1])  # square pixels kept
    assert torch.allclose(route.intrinsics[:, 2:4], torch.tensor([24.0, 16.0]).expand(5, 2))


def test_frames_on_a_looping_path_run_back_to_the_first_camera(tmp_path):
    """A nerfstudio path saved with is_cycle (a loop) and rendered with --frames stopped at its
    last camera: the video jumped back to the first when it played again."""
    poses = orbit_poses(4, 4.0, 20.0)  # a square around the object, a quarter turn apart
    route = cp.with_frames(cp.load_camera_path(_nerfstudio(tmp_path / "loop.json", poses, is_cycle=True), SCENE), 8)
    assert route.closed and route.frames == 8
    assert torch.allclose(route.poses[0], poses[0], atol=1e-5)
    # evenly around the whole loop: the last frame lies halfway from the last camera back to the first
    last, first = poses[-1][:3, 3], poses[0][:3, 3]
    assert float(torch.linalg.norm(route.poses[-1][:3, 3] - last)) > 0.5
    assert float(torch.linalg.norm(route.poses[-1][:3, 3] - first)) > 0.5
    opened = cp.with_frames(cp.load_camera_path(_nerfstudio(tmp_path / "open.json", poses), SCENE), 8)
    assert not opened.closed and torch.allclose(opened.poses[-1], poses[-1], atol=1e-5)  # an open path ends there


def test_transforms_pose_list(tmp_path):
    poses = orbit_poses(4, 3.0)
    frames = [{"transform_matrix": m.tolist()} for m in poses]
    (tmp_path / "a.json").write_text(json.dumps({"camera_angle_x": 0.9, "frames": frames}))
    route = cp.load_camera_path(tmp_path / "a.json", SCENE, size=60)
    assert route.frames == 4 and (route.width, route.height) == (60, 40)  # the scene's aspect
    assert math.isclose(float(route.intrinsics[0, 0]), 30 / math.tan(0.45), rel_tol=1e-5)
    (tmp_path / "b.json").write_text(json.dumps({"fl_x": 100.0, "w": 200, "h": 100, "cx": 90.0, "frames": frames}))
    route = cp.load_camera_path(tmp_path / "b.json", SCENE, size=100)
    assert (route.width, route.height) == (100, 50)
    assert torch.allclose(route.intrinsics[0, :4], torch.tensor([50.0, 50.0, 45.0, 25.0]))
    # a strip 1 pixel high at --size half its width is still 1 row, not 0 (the GIF writer's "cannot write empty
    # image", after every frame was rendered)
    (tmp_path / "c.json").write_text(json.dumps({"fl_x": 100.0, "w": 200, "h": 1, "frames": frames}))
    route = cp.load_camera_path(tmp_path / "c.json", SCENE, size=100)
    assert (route.width, route.height) == (100, 1)


@pytest.mark.parametrize("change, message", [
    ({"camera_path": []}, "no cameras"),
    ({"camera_path": [{"camera_to_world": [float("nan")] * 16, "fov": 50}]}, "NaN"),
    ({"camera_path": [{"camera_to_world": np.eye(4).flatten().tolist(), "fov": 0}]}, "'fov' must be positive"),
    ({"camera_path": [{"camera_to_world": np.eye(4).flatten().tolist(), "fov": -30}]}, "'fov' must be positive"),
    ({"camera_path": [{"camera_to_world": [1, 2, 3], "fov": 50}]}, "16 numbers"),
    ({"frames": []}, "no cameras"),
    ({"camera_path": [{"camera_to_world": np.eye(4).flatten().tolist(), "fov": 50}], "render_width": 32,
      "render_height": 0.4}, "'render_height' is a number of pixels, at least 1; got 0.4"),  # a video 0 rows high
    ({"w": 0.5, "h": 8, "frames": [{"transform_matrix": np.eye(4).tolist()}]}, "'w' is a number of pixels"),
    ({"camera_path": [{"camera_to_world": np.eye(4).flatten().tolist(), "fov": 50}], "fps": 0.001},
     "'fps' must be at least 0.01"),  # a GIF holds no slower rate: it died in Pillow's writer after every frame
    ({"nothing": 1}, "neither"),
])
def test_bad_camera_paths_are_one_line_naming_the_file(tmp_path, change, message):
    path = tmp_path / "bad_path.json"
    path.write_text(json.dumps(change))
    with pytest.raises(cp.CameraPathError) as err:
        cp.load_camera_path(path, SCENE)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(cp.CameraPathError, match="no such camera path file"):
        cp.load_camera_path(tmp_path / "nope.json", SCENE)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(cp.CameraPathError, match="x.json: not a readable JSON"):
        cp.load_camera_path(tmp_path / "x.json", SCENE)
    # a byte-order mark, as Windows editors write, is no error (as in a dataset's transforms.json)
    bom = _nerfstudio(tmp_path / "bom.json", orbit_poses(2, 4.0))
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    assert cp.load_camera_path(bom, SCENE).frames == 2


def test_poses_given_in_python_are_a_pose_list(tmp_path):
    """render_path(ckpt, out, path=poses) with a notebook's (N, 4, 4) array or tensor died in
    pathlib ("expected str, bytes or os.PathLike object, not ndarray")."""
    poses = orbit_poses(3, 4.0, 30.0)
    (tmp_path / "p.json").write_text(json.dumps({"camera_angle_x": SCENE.fov_x, "frames": [
        {"transform_matrix": m.tolist()} for m in poses]}))
    expected = cp.load_camera_path(tmp_path / "p.json", SCENE, size=30)
    for given in (poses.numpy(), poses.double(), poses[:, :3].tolist(), [m.numpy() for m in poses]):
        route = cp.load_camera_path(given, SCENE, size=30)
        assert torch.allclose(route.poses, expected.poses) and torch.equal(route.intrinsics, expected.intrinsics)
        assert (route.width, route.height, route.notes) == (30, 20, [])
    assert cp.load_camera_path(poses[0].numpy(), SCENE).frames == 1
    for bad, message in ((np.zeros((2, 4)), r"shape \(N, 4, 4\) or \(N, 3, 4\), got shape \(1, 2, 4\)"),
                         (np.zeros((0, 4, 4)), r"got shape \(0, 4, 4\)"),
                         ({"frames": []}, "a file's path, \"train\" or camera-to-world matrices, got dict"),
                         (np.tile(np.diag([1.0, 1.0, 0.0, 1.0]), (2, 1, 1)), r"poses: frames\[0\]: the rotation")):
        with pytest.raises(cp.CameraPathError, match=message):
            cp.load_camera_path(bad, SCENE)


def test_resample_passes_through_keyframes_at_constant_speed():
    keys = orbit_poses(8, 4.0, 30.0)
    path = cp.resample(keys, 64, closed=True)
    assert torch.allclose(path[0], keys[0], atol=1e-5) and torch.allclose(path[8], keys[1], atol=1e-4)
    eyes = path[:, :3, 3].double()
    steps = (eyes.roll(-1, 0) - eyes).norm(dim=1)
    assert float(steps.std() / steps.mean()) < 0.02  # constant speed round the loop
    assert torch.allclose(eyes.norm(dim=1), torch.full((64,), 4.0, dtype=torch.float64), atol=0.05)  # a smooth circle
    rot = path[:, :3, :3].double()
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-5)
    looking_in = (rot[:, :, 2] * eyes).sum(1) / eyes.norm(dim=1)  # the camera looks down -z
    assert float(looking_in.min()) > 0.99  # slerp keeps every camera facing the centre


def test_resample_around_a_centre_keeps_the_distance():
    keys = orbit_poses(4, 4.0, 30.0)  # 90 degrees apart: plain positions would cut the corners
    assert float(cp.resample(keys, 32, closed=True)[:, :3, 3].norm(dim=1).min()) < 3.8
    around = cp.resample(keys, 32, closed=True, centre=(0.0, 0.0, 0.0))[:, :3, 3].norm(dim=1)
    assert torch.allclose(around, torch.full((32,), 4.0), atol=1e-3)


def test_slerp_halfway():
    q0, q1 = np.array([1.0, 0, 0, 0]), np.array([math.cos(0.5), 0, 0, math.sin(0.5)])  # 0 and 1 rad about z
    half = cp.slerp(q0, q1, 0.5)
    assert np.allclose(half, [math.cos(0.25), 0, 0, math.sin(0.25)])


def test_training_cameras_are_visited_in_angular_order():
    poses = orbit_poses(12, 4.0, 30.0)
    shuffled = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    order = cp.order_cameras(poses[shuffled], SCENE)
    ring = shuffled[torch.as_tensor(order)].numpy()
    steps = (np.diff(np.concatenate([ring, ring[:1]])) % 12)
    assert set(steps.tolist()) == {1} or set(steps.tolist()) == {11}  # neighbours follow each other round the ring


@pytest.mark.slow
def test_camera_path_video_has_one_frame_per_camera(trained_builtin, tmp_path, capsys):
    import imageio.v3 as iio

    _, run = trained_builtin
    path = _nerfstudio(tmp_path / "camera_path.json", orbit_poses(6, 4.0, 30.0))
    assert cli.main(["render", "--ckpt", str(run), "--path", str(path), "--out", str(tmp_path / "v.mp4"),
                     "--no-progress", "--arch", ARCH]) == 0
    printed = capsys.readouterr().out
    assert "v_depth.mp4" in printed and "warning" not in printed
    gif = iio.imread(tmp_path / "v.gif", index=None)
    assert gif.shape[:3] == (6, 32, 48)
    assert gif.std() > 10 and np.abs(gif[0].astype(float) - gif[3].astype(float)).mean() > 2  # content that moves


def test_a_path_whose_cameras_see_nothing_of_the_scene_is_warned_about(trained_builtin, tmp_path, capsys):
    """Poses in another frame than the run's (an LLFF capture's poses_bounds.npy, before the
    loader's rescaling) rendered a blank video without a word."""
    _, run = trained_builtin
    away = orbit_poses(3, 4.0, 30.0).clone()
    away[:, :3, 2] *= -1  # looking out, away from the box
    away[:, :3, 0] *= -1
    path = _nerfstudio(tmp_path / "away.json", away)
    assert cli.main(["render", "--ckpt", str(run), "--path", str(path), "--out", str(tmp_path / "a.gif"),
                     "--size", "16", "--no-progress", "--arch", ARCH]) == 0
    assert "warning: " + str(path) + ": no camera of the path has the scene in its picture" in capsys.readouterr().out
    # Rendering to the same file again says that it replaced the earlier video (and its depth gif).
    assert cli.main(["render", "--ckpt", str(run), "--path", str(path), "--out", str(tmp_path / "a.gif"),
                     "--size", "16", "--no-progress", "--arch", ARCH]) == 0
    assert capsys.readouterr().out.count("(replacing the earlier one)") == 2


def test_cameras_seeing_the_scene_counts_cameras_facing_the_box_or_inside_it():
    toward = orbit_poses(4, 4.0, 30.0)
    route = cp.CameraPath(toward, torch.tensor([[40.0, 40.0, 24.0, 16.0, 0, 0, 0, 0]] * 4), 48, 32)
    assert cp.cameras_seeing_the_scene(route, SCENE) == 4
    route.poses = toward.clone()
    route.poses[:, :3, 3] *= 20.0  # far off, the box a dot near the middle: still seen
    assert cp.cameras_seeing_the_scene(route, SCENE) == 4
    route.poses = toward.clone()
    route.poses[:2, :3, 3] += torch.tensor([0.0, 0.0, 30.0])  # two look below the box, high above it
    assert cp.cameras_seeing_the_scene(route, SCENE) == 2
    route.poses = toward.clone()
    route.poses[:, :3, 2] *= -1
    route.poses[:, :3, 0] *= -1  # turned round
    assert cp.cameras_seeing_the_scene(route, SCENE) == 0
    route.poses[:, :3, 3] = 0.0  # ...but inside the box
    assert cp.cameras_seeing_the_scene(route, SCENE) == 4
    # a forward-facing scene's box is in NDC: the point its spiral looks at is what must be seen
    ahead = torch.eye(4)
    ndc = Scene(near=0.0, far=1.0, aabb=[-1.0] * 3 + [1.0] * 3, ndc=True, path_pose=ahead.flatten().tolist(),
                path_focus=5.0)
    route.poses = torch.stack([ahead, ahead @ torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))])
    route.intrinsics = route.intrinsics[:2]
    assert cp.cameras_seeing_the_scene(route, ndc) == 1


def test_train_path_video_stays_with_the_training_cameras(trained_builtin, tmp_path):
    import imageio.v3 as iio

    from taichi_nerf.api import render_path
    from taichi_nerf.data.loaders import read_dataset

    scene, run = trained_builtin
    written = render_path(run, tmp_path / "t.gif", path="train", frames=10, size=32, arch=ARCH, progress=False)
    assert [p.name for p in written] == ["t.gif", "t_depth.gif"]
    assert iio.imread(tmp_path / "t.gif", index=None).shape[:3] == (10, 32, 32)
    train = read_dataset(scene).split("train").poses
    route = cp.train_path(train, SCENE, 40, 32)
    radius = route.poses[:, :3, 3].norm(dim=1)
    assert float((radius - 4.0).abs().max()) < 0.4  # the training cameras are 4 from the centre
    eyes = route.poses[:, :3, 3]
    assert float(((route.poses[:, :3, 2] * eyes).sum(1) / radius).min()) > 0.95  # looking at the scene


def test_orbit_video_renders_over_the_scene_background(trained_builtin, tmp_path):
    import imageio.v3 as iio

    from taichi_nerf.api import render_orbit

    _, run = trained_builtin
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["scene"]["background"] = [0.0, 0.0, 0.0]
    torch.save(state, tmp_path / "black.pt")
    render_orbit(tmp_path / "black.pt", tmp_path / "o.gif", frames=2, size=32, arch=ARCH, progress=False)
    corners = iio.imread(tmp_path / "o.gif", index=None)[:, :3, :3]
    assert corners.max() < 40  # black, not the white the orbit always used


def test_a_trained_fields_videos_are_as_wide_as_its_photos_within_limits(trained_builtin, tmp_path):
    """render's default width is train's: the training images' (40 px here), raised to 100."""
    import imageio.v3 as iio

    from taichi_nerf.api import render_orbit
    from taichi_nerf.rendering.video_route import DEFAULT_SIZE, trained_video_width

    assert [trained_video_width(Scene(near=0.0, far=1.0, aabb=[-1.0] * 3 + [1.0] * 3, ndc_width=w))
            for w in (0, 40, 250, 504)] == [DEFAULT_SIZE, 100, 250, 400]
    _, run = trained_builtin
    render_orbit(run, tmp_path / "o.gif", frames=2, arch=ARCH, progress=False)
    assert iio.imread(tmp_path / "o.gif", index=None).shape[:3] == (2, 100, 100)


def test_the_api_refuses_a_video_name_the_cli_refuses(trained_builtin, tmp_path):
    """render --out x.avi is refused; so is api.render_orbit(ckpt, "x.avi"), before any frame."""
    from taichi_nerf.api import render_orbit

    _, run = trained_builtin
    with pytest.raises(ValueError, match=r"x.avi: a video is written as .mp4 \(\+ depth .mp4 \+ .gif\) or .gif"):
        render_orbit(run, tmp_path / "x.avi", frames=2, arch=ARCH, progress=False)
    for bad, message in (({"frames": 0}, "frames must be a whole number of at least 1, got 0"),
                         ({"size": "32"}, "size must be a whole number of at least 8, got '32'"),
                         ({"fps": -1}, "fps must be positive, got -1"), ({"fps": 0}, "fps must be positive, got 0")):
        with pytest.raises(ValueError, match=message):  # frames=0 used to render the default 60
            render_orbit(run, tmp_path / "x.gif", arch=ARCH, progress=False, **bad)
    assert not list(tmp_path.iterdir())


def test_a_slow_fps_the_cli_takes_is_rendered_as_a_camera_paths_is(run, tmp_path, capsys):
    """`render --fps 0.5` passes the CLI's "--fps must be positive" and is rendered, as a
    camera_path.json's "fps": 0.5 is (a slide show: 2 s a frame); the API used to refuse it
    after the CLI's check with "fps must be a number of at least 1"."""
    from PIL import Image

    from taichi_nerf.api import render_orbit

    out = tmp_path / "slow.gif"
    assert cli.main(["render", "--ckpt", str(run), "--frames", "2", "--size", "16", "--fps", "0.5", "--out", str(out),
                     "--no-progress", "--arch", ARCH]) == 0, capsys.readouterr().err
    with Image.open(out) as gif:
        assert gif.n_frames == 2 and gif.info["duration"] == 2000
    # slower than a GIF can hold: refused before a frame, where it died after all of them in Pillow's writer
    # ("OverflowError: int too big to convert", a traceback)
    slower = tmp_path / "slower.gif"
    refused(capsys, ["render", "--ckpt", run, "--frames", "2", "--size", "16", "--fps", "0.001", "--out", slower,
                     "--no-progress", "--arch", ARCH], "--fps must be at least 0.01 (a frame every 100 s), got 0.001")
    with pytest.raises(ValueError, match="fps must be at least 0.01"):
        render_orbit(run, slower, frames=2, size=16, fps=0.001, arch=ARCH, progress=False)
    assert not slower.exists()


def test_a_video_from_poses_in_python(run, tmp_path):
    """A notebook's own cameras, a float64 tensor, rendered as the file's would be."""
    import imageio.v3 as iio

    from taichi_nerf.api import render_path

    notes = []
    written = render_path(run, tmp_path / "mine.gif", path=orbit_poses(2, 4.0, 30.0).double(), size=16, arch=ARCH,
                          progress=False, note=notes.append)
    assert [p.name for p in written] == ["mine.gif", "mine_depth.gif"] and notes == []
    assert iio.imread(tmp_path / "mine.gif", index=None).shape[:3] == (2, 16, 16)


def test_a_video_too_narrow_names_the_size_keyword_too(run, tmp_path):
    """The refusal said "(set --size)" to a Python caller, whose keyword is size=."""
    from taichi_nerf.api import render_path

    with pytest.raises(ValueError, match=r"the video would be 4 pixels wide; need at least 8: set --size \(from "
                                         r"Python: size=\)$"):
        render_path(run, tmp_path / "v.gif", path=_nerfstudio(tmp_path / "p.json", orbit_poses(2, 4.0, 30.0),
                                                              render_width=4, render_height=4),
                    arch=ARCH, progress=False)  # the file's own width
    assert not list(tmp_path.glob("v*"))


def test_a_loaded_field_takes_a_notebooks_arrays(run):
    """The field loaded back (docs/API.md) renders numpy poses and a tuple background, and gives
    numpy points' and float64 points' densities: numpy died in torch (no attribute 'contiguous'),
    float64 compiled kernels of their own, with a TaichiWarning ("may lose precision") each."""
    from taichi_nerf.runs.checkpoint import load

    renderer = load(run, ARCH)[0]
    poses = orbit_poses(1, 4.0, 30.0)
    intrinsics = torch.tensor([[20.0, 20.0, 8.0, 8.0, 0.0, 0.0, 0.0, 0.0]])
    white = torch.ones(1, 3)
    expected = renderer.render_image(poses, intrinsics, 0, 16, 16, white)["rgb"]
    view = renderer.render_image(poses.double().numpy(), intrinsics.numpy(), 0, 16, 16, (1.0, 1.0, 1.0))
    assert torch.equal(view["rgb"], expected)
    points = torch.rand(7, 3) - 0.5
    assert torch.equal(renderer.density(points.double()), renderer.density(points))
    assert torch.equal(renderer.density(points.numpy()), renderer.density(points))
    # the page prints it: a plain tensor, as render_image's, not one that tracks gradients (.numpy() refused it)
    assert renderer.density(points).numpy().shape == (7,)


def test_a_loaded_field_takes_a_background_name_and_refuses_a_0_255_colour(run):
    """render_image's background given as a name or one grey level renders as the triple does (a name died in
    torch: "new(): invalid data type 'str'"); a 0-255 colour is refused in one line (it rendered over a colour
    255 times too bright); a whole-number float size and numpy scattered pixels are taken (torch.empty and
    .to refused them)."""
    from taichi_nerf.runs.checkpoint import load

    renderer = load(run, ARCH)[0]
    poses = orbit_poses(1, 4.0, 30.0)
    intrinsics = torch.tensor([[20.0, 20.0, 8.0, 8.0, 0.0, 0.0, 0.0, 0.0]])
    expected = renderer.render_image(poses, intrinsics, 0, 16, 16, (1.0, 1.0, 1.0))["rgb"]
    for background in ("white", 1.0, np.ones(3)):
        assert torch.equal(renderer.render_image(poses, intrinsics, 0, 16.0, 16, background)["rgb"], expected)
    for background, words in (((255, 255, 255), "in 0 to 1, got (255, 255, 255); divide 0-255 values by 255"),
                              (None, "background must be a colour"), ((1.0, 1.0), "background must be a colour")):
        with pytest.raises(ValueError, match=re.escape(words)):
            renderer.render_image(poses, intrinsics, 0, 16, 16, background)
    picked = np.array([3, 40, 200])
    scattered = renderer.render_pixels(poses, intrinsics, 0, 16, 0, 0, "white", pixels=picked)["rgb"]
    assert torch.allclose(scattered, expected.reshape(-1, 3)[picked], atol=1e-5)
