"""The default video suits the capture (issue 24): the orbit only when the cameras surround
the object, the spiral for forward-facing captures, else a path through the training cameras
that stays where they were."""
import math
import os
from types import SimpleNamespace

import numpy as np
import torch

from taichi_nerf.outputs.default_video import default_route, default_video_name, write_default_video
from taichi_nerf.rendering.scene import Scene, orbit_cameras
from taichi_nerf.rendering.video_route import camera_azimuths, largest_gap
from taichi_nerf.stages import cameras

RADIUS = 4.0


def ring_poses(azimuths_deg, elevation_deg=20.0):
    poses = []
    for k, a in enumerate(azimuths_deg):
        e = math.radians(elevation_deg + 5.0 * math.sin(k))  # a hand-held wobble in height
        a = math.radians(a)
        eye = (RADIUS * math.cos(e) * math.cos(a), RADIUS * math.cos(e) * math.sin(a), RADIUS * math.sin(e))
        poses.append(cameras.look_at(eye, (0.0, 0.0, 0.0)))
    return torch.stack(poses).float()


def fake_dataset(poses, forward_facing=False):
    """What Scene.from_dataset reads from a loaded dataset."""
    f = cameras.focal_from_fov(40, 0.7)
    intrinsics = torch.tensor([[f, f, 20.0, 20.0, 0, 0, 0, 0]]).repeat(len(poses), 1)
    train = SimpleNamespace(poses=poses, intrinsics=intrinsics, width=40, height=40)
    return SimpleNamespace(split=lambda name: train, near=2.0, far=6.0, aabb=torch.tensor([-1.0] * 3 + [1.0] * 3),
                           center=torch.zeros(3), up=torch.tensor([0.0, 0.0, 1.0]), orbit_radius=RADIUS,
                           orbit_elevation_deg=20.0, forward_facing=forward_facing, focus_distance=RADIUS)


def azimuth_offsets(poses, first_camera):
    """Camera azimuths counter-clockwise from 5 degrees before ``first_camera``'s, in [0, 360)."""
    start = camera_azimuths(np.asarray(first_camera)[None], (0, 0, 0), (0, 0, 1))[0] - 5.0
    return (camera_azimuths(np.asarray(poses), (0, 0, 0), (0, 0, 1)) - start) % 360.0


def test_partial_arc_video_stays_where_the_cameras_were():
    # 14 cameras on a 130-degree arc that straddles azimuth 0 (from 300 to 70 degrees)
    arc = [300.0 + 130.0 * k / 13 + (3.0 if k % 2 else -2.0) for k in range(14)]
    scene = Scene.from_dataset(fake_dataset(ring_poses(arc)))
    assert scene.video_path == "train" and "gap" in scene.video_reason
    kind, _, route = default_route(scene, 48, 32)
    assert kind == "train" and route.frames == 48
    train = ring_poses(arc)
    train_az, video_az = azimuth_offsets(train, train[0]), azimuth_offsets(route.poses, train[0])
    assert video_az.min() >= train_az.min() - 1.0 and video_az.max() <= train_az.max() + 1.0
    assert video_az.max() - video_az.min() > 0.9 * (train_az.max() - train_az.min())  # it sweeps the whole arc
    distance = route.poses[:, :3, 3].norm(dim=1)
    assert distance.min() > 0.95 * RADIUS and distance.max() < 1.05 * RADIUS
    centres = route.poses[:, :3, 3]
    steps = (centres[1:] - centres[:-1]).norm(dim=1)
    assert float((centres[0] - centres[-1]).norm()) <= 1.5 * float(steps.max())  # there and back: no jump on looping
    # every frame looks at the object, as the training cameras do
    to_centre = -route.poses[:, :3, 3] / distance[:, None]
    assert float((to_centre * -route.poses[:, :3, 2]).sum(1).min()) > 0.97
    # ...where the orbit spends most of its frames where no camera was
    orbit, _, _, _ = orbit_cameras(scene, 48, 32)
    orbit_az = azimuth_offsets(orbit, train[0])
    assert ((orbit_az < train_az.min() - 1.0) | (orbit_az > train_az.max() + 1.0)).mean() > 0.5


def test_a_path_video_of_an_odd_frame_count_loops_with_a_step_like_the_others():
    """There and back in 61 frames: the step from the last frame to the first, where the video loops, was
    twice the others (the halves of an odd count do not meet)."""
    arc = [300.0 + 130.0 * k / 13 for k in range(14)]
    scene = Scene.from_dataset(fake_dataset(ring_poses(arc)))
    for frames in (60, 61, 7):
        centres = default_route(scene, frames, 32)[2].poses[:, :3, 3]
        steps = (centres.roll(-1, 0) - centres).norm(dim=1)  # the last one: back to the first frame
        assert float(steps[-1]) <= 1.2 * float(steps[:-1].median()), (frames, steps)


def test_surround_capture_orbits_and_forward_facing_spirals():
    full = Scene.from_dataset(fake_dataset(ring_poses(np.linspace(0.0, 360.0, 20, endpoint=False) + 7.0)))
    assert full.video_path == "orbit" and default_route(full, 10, 32)[0] == "orbit"
    # 300 degrees covered: still surrounds (the widest gap is 60 degrees)
    most = Scene.from_dataset(fake_dataset(ring_poses(np.linspace(0.0, 300.0, 16))))
    assert most.video_path == "orbit"
    gap, _ = largest_gap(camera_azimuths(ring_poses(np.linspace(0.0, 300.0, 16)).numpy(), (0, 0, 0), (0, 0, 1)))
    assert abs(gap - 60.0) < 1.0
    grid = torch.stack([cameras.look_at((x, -4.0, z), (x, 0.0, z)) for x in (-0.3, 0.0, 0.3) for z in (-0.2, 0.2)])
    facing = Scene.from_dataset(fake_dataset(grid.float(), forward_facing=True))
    assert facing.video_path == "spiral" and default_route(facing, 10, 32)[0] == "spiral"


def test_checkpoints_from_before_keep_the_orbit():
    scene = Scene(near=2.0, far=6.0, aabb=[-1.0] * 3 + [1.0] * 3)
    kind, reason, route = default_route(scene, 10, 32)
    assert kind == "orbit" and route is None and "before" in reason


def test_write_default_video_says_which_path(tmp_path):
    from taichi_nerf.rendering.renderer import Renderer
    from taichi_nerf.stages.encoding import HarmonicSpec
    from tests.test_depth_view import ShapeField, sphere

    arc = [10.0 * k for k in range(8)]
    scene = Scene.from_dataset(fake_dataset(ring_poses(arc)))
    renderer = Renderer(ShapeField(lambda p: sphere(p, (0, 0, 0), 0.6)), HarmonicSpec(0, True), None, scene, 48, "cpu")
    renderer.early_stop = 0.0
    said = []
    written = write_default_video(renderer, tmp_path / "orbit.mp4", 4, 16, progress=False, say=said.append)
    assert [p.name for p in written] == ["orbit.mp4", "orbit_depth.mp4", "orbit.gif"]
    assert len(said) == 1 and said[0].startswith("video path: train (the cameras cover 70 deg")


def test_default_video_is_named_after_its_path():
    arc = Scene.from_dataset(fake_dataset(ring_poses([10.0 * k for k in range(8)])))
    full = Scene.from_dataset(fake_dataset(ring_poses(np.linspace(0.0, 360.0, 20, endpoint=False))))
    grid = torch.stack([cameras.look_at((x, -4.0, 0.0), (x, 0.0, 0.0)) for x in (-0.3, 0.0, 0.3)])
    facing = Scene.from_dataset(fake_dataset(grid.float(), forward_facing=True))
    before = Scene(near=2.0, far=6.0, aabb=[-1.0] * 3 + [1.0] * 3)  # a checkpoint from before the choice
    assert [default_video_name(s) for s in (arc, full, facing, before)] == [
        "path.mp4", "orbit.mp4", "spiral.mp4", "orbit.mp4"]


def test_a_path_video_is_named_path_mp4_by_render_and_counted_by_the_run_folder(run, tmp_path, monkeypatch, capsys):
    """A partial-arc capture's default video goes through the training cameras: it is written as
    path.mp4, not orbit.mp4, and a run folder that holds one counts as having its video."""
    from taichi_nerf import cli
    from taichi_nerf.cli.train import ended_without_video
    from taichi_nerf.runs.run_folder import claim_run_folder
    from tests.conftest import ARCH

    state = torch.load(run / "checkpoint.pt", weights_only=False)
    state["scene"].update(Scene.from_dataset(fake_dataset(ring_poses([10.0 * k for k in range(8)]))).__dict__)
    torch.save(state, run / "checkpoint.pt")
    monkeypatch.chdir(tmp_path)
    argv = ["render", "--ckpt", str(run), "--frames", "2", "--size", "16", "--no-progress", "--arch", ARCH]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "video path: train" in out and f"wrote {tmp_path.resolve() / 'path.mp4'}" in out  # where, not just the name
    assert f"wrote {tmp_path.resolve() / 'path_depth.mp4'}" in out
    assert sorted(p.name for p in tmp_path.glob("*.*")) == ["path.gif", "path.mp4", "path_depth.mp4"]
    assert ended_without_video(run)  # a finished run (final validation row) with no video yet
    for name in ("path.mp4", "path_depth.mp4", "path.gif"):
        (run / name).write_bytes((tmp_path / name).read_bytes())
    assert not ended_without_video(run)
    claim_run_folder(run, overwrite=True)  # --overwrite removes a run's videos, whichever path they took
    assert not list(run.glob("path*"))


def test_an_odd_sized_mp4_is_yuv420p_so_every_player_plays_it(tmp_path):
    """--size 64 of a 3:4 capture is 64x85: that mp4 was H.264 4:4:4, which QuickTime, Safari,
    phones and Firefox do not play. It is now yuv420p with the odd side's edge row repeated."""
    import imageio.v2 as iio

    from taichi_nerf.outputs.video import write_video

    frames = np.zeros((3, 85, 63, 3), np.uint8)
    frames[:, -1] = 200  # the last row, repeated into the padding
    path = write_video(tmp_path / "v.mp4", frames, fps=10)
    with iio.get_reader(str(path)) as reader:
        assert reader.get_meta_data()["pix_fmt"].startswith("yuv420p")
        first = reader.get_data(0)
    assert first.shape == (86, 64, 3)
    assert abs(int(first[-1, 10, 0]) - 200) < 12 and int(first[40, 10, 0]) < 12
    even = write_video(tmp_path / "e.mp4", np.zeros((2, 32, 48, 3), np.uint8), fps=10)
    with iio.get_reader(str(even)) as reader:
        assert reader.get_data(0).shape == (32, 48, 3)  # even sides are written as they are


def test_a_fast_gif_is_not_played_at_10_fps(tmp_path):
    """--fps 100 (or 120) wrote a gif whose frames last 1/100 s, which browsers play at 10 fps
    (they treat a delay under 2/100 s as 10/100 s): ten times too slow. GIFs top out at 50 fps."""
    from PIL import Image

    from taichi_nerf.outputs.video import write_video

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[1] = 255  # two different frames (Pillow merges equal ones, adding up their durations)
    for fps, ms in ((120.0, 20), (50.0, 20), (24.0, 40), (0.5, 2000)):
        with Image.open(write_video(tmp_path / "v.gif", frames, fps=fps)) as gif:
            assert gif.info["duration"] == ms, fps


def test_a_video_write_clears_what_a_killed_render_left_beside_it(tmp_path):
    """A render killed (-9) while writing left its hidden .NAME.partialPID.mp4 (often tens of MB)
    beside the video for ever; the next write of that video deletes it, and the partial file of a
    write still running (a live process) stays."""
    import subprocess
    import sys

    from taichi_nerf.files import write_text_atomic
    from taichi_nerf.outputs.video import write_video

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a process that has ended
    live = os.getppid()
    left = [tmp_path / f".orbit.partial{dead}.mp4", tmp_path / f".eval.json.tmp{dead}"]
    running = [tmp_path / f".orbit.partial{live}.mp4", tmp_path / f".eval.json.tmp{live}"]
    others = [tmp_path / f".other.partial{dead}.mp4", tmp_path / f".orbit.partial{dead}.gif"]
    for path in left + running + others:
        path.write_bytes(b"partial")
    write_video(tmp_path / "orbit.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=10)
    write_text_atomic(tmp_path / "eval.json", "{}")
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in running + others)  # a write in progress; another file's


def test_tidying_up_partial_files_never_fails_the_write(tmp_path, monkeypatch):
    """A name beside the file with a number no process can have (a user's `.eval.json.tmp20261206120000`)
    made every write of that file fail with os.kill's OverflowError; a dead writer's partial file
    that cannot be deleted (another user's, in a sticky folder) failed it with PermissionError.
    The file is written either way, and the name that is no partial file stays."""
    import pathlib

    from taichi_nerf.files import write_text_atomic

    not_a_pid = tmp_path / ".eval.json.tmp20261206120000"
    not_a_pid.write_text("the user's")
    write_text_atomic(tmp_path / "eval.json", "{}")
    assert (tmp_path / "eval.json").read_text() == "{}" and not_a_pid.read_text() == "the user's"

    others = tmp_path / f".eval.json.tmp{(1 << 22) - 1}"  # within pid_max, and no process of ours (a dead writer)
    others.write_text("partial")
    real_unlink = pathlib.Path.unlink

    def unlink(self, missing_ok=False):
        if self == others:
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    write_text_atomic(tmp_path / "eval.json", "[]")
    assert (tmp_path / "eval.json").read_text() == "[]" and others.exists()


def test_ctrl_c_while_a_videos_files_are_written_waits_for_the_whole_set(tmp_path, monkeypatch):
    """Ctrl-C between the mp4s and the gif left this render's mp4s beside an earlier render's gif (each file whole,
    the set mixed). It now waits for the set's last file, then interrupts as before."""
    import signal

    import pytest

    from taichi_nerf.outputs import video

    written = []

    def encode_partial(path, frames, fps):
        if not written:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first file is written
        written.append(path.name)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(b"new")
        return partial
    monkeypatch.setattr(video, "encode_partial", encode_partial)
    frames = [np.zeros((4, 4, 3), np.uint8)] * 2
    recorder = SimpleNamespace(rgb_frames=frames, depth_frames=frames, out=tmp_path / "v.mp4", fps=10)
    # Python's own Ctrl-C handler, as in a terminal (a suite started in the background inherits SIGINT ignored)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            video.VideoRecorder.write(recorder)
    finally:
        signal.signal(signal.SIGINT, before)
    assert written == ["v.mp4", "v_depth.mp4", "v.gif"]
    assert stopped.value.after_whole_set  # train says the video is whole, not missing
    assert all((tmp_path / name).read_bytes() == b"new" for name in written)
