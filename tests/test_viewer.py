"""The browser viewer without a browser: viser's camera in our convention, the render size
and the progressive levels it drives, and the viewer's loop (taichi_nerf/viewer/session.py)
fed through its inbox as viser's threads would feed it."""
import io
import math
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from taichi_nerf.rendering.scene import orbit_cameras
from taichi_nerf.viewer.camera import (
    BrowserCamera,
    matrix_to_quaternion,
    opengl_pose,
    quaternion_to_matrix,
    render_size,
    vertical_fov,
    viser_pose,
)
from taichi_nerf.viewing.schedule import MIN_COARSE_PIXELS
from taichi_nerf.viewing.view import ProgressiveView

from .conftest import fake_clock, refused, tiny_config
from .test_gui_rendering import small_renderer


def random_rotations(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(count, 4))
    rotations = [quaternion_to_matrix(v) for v in q]
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]), np.eye(3)]
    return np.stack(rotations)  # half turns about each axis included: the quaternion's hard cases


# --- camera conversion ---------------------------------------------------------------------
def test_quaternions_round_trip_and_agree_with_viser():
    for rotation in random_rotations(64):
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12) and np.linalg.det(rotation) > 0
        q = matrix_to_quaternion(rotation)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
        assert np.allclose(quaternion_to_matrix(q), rotation, atol=1e-12)
    tf = pytest.importorskip("viser.transforms")
    for rotation in random_rotations(16):
        q = matrix_to_quaternion(rotation)
        assert np.allclose(tf.SO3(q).as_matrix(), rotation, atol=1e-12)  # viser reads our quaternions as we do
        theirs = tf.SO3.from_matrix(rotation).wxyz
        assert np.allclose(quaternion_to_matrix(theirs), rotation, atol=1e-12)


def test_viser_opencv_camera_becomes_our_opengl_pose():
    # viser's identity camera looks down world +z with image y along world +y (OpenCV axes):
    # ours looks down -z_cam, so z_cam = world -z, and y_cam (up in the image) = world -y.
    pose = opengl_pose([1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert np.allclose(-pose[:3, 2], [0, 0, 1]) and np.allclose(pose[:3, 1], [0, -1, 0])
    assert np.allclose(pose[:3, 0], [1, 0, 0]) and np.allclose(pose[:3, 3], [1, 2, 3])
    for rotation in random_rotations(8):
        ours = np.eye(4)
        ours[:3, :3], ours[:3, 3] = rotation, [0.5, -1.0, 2.0]
        assert np.allclose(opengl_pose(*viser_pose(ours)), ours, atol=1e-12)


def test_field_of_view_and_intrinsics():
    camera = BrowserCamera.from_viser([1, 0, 0, 0], [0, 0, 0], fov=math.radians(60.0), width=800, height=600)
    row = camera.intrinsics(400, 300)
    assert row[1] == pytest.approx(150.0 / math.tan(math.radians(30.0))) and row[0] == row[1]  # square pixels
    assert list(row[2:]) == [200.0, 150.0, 0, 0, 0, 0]
    assert math.degrees(vertical_fov(row, 300)) == pytest.approx(60.0)
    assert camera.aspect == pytest.approx(4 / 3)


def test_a_known_pose_seen_through_viser_renders_the_same_image_as_render(device):
    """A camera of the orbit video, handed to the viewer as viser reports cameras (OpenCV
    rotation, position, vertical fov, canvas size), renders what Renderer.render_image
    (``taichi-nerf render``) renders for that camera."""
    renderer = small_renderer(device)
    poses, intrinsics, width, height = orbit_cameras(renderer.scene, 4, 40)
    background = torch.tensor([1.0, 1.0, 1.0])
    index = 1
    truth = renderer.render_image(poses, intrinsics, index, width, height, background)
    assert truth["opacity"].max() > 0.05 and truth["rgb"].std() > 0.01  # not a blank picture

    wxyz, position = viser_pose(poses[index].double().numpy())
    fov = vertical_fov(intrinsics[index].numpy(), height)
    camera = BrowserCamera.from_viser(wxyz, position, fov, width * 3, height * 3)  # a canvas 3x the render
    view = ProgressiveView(renderer, background, render_size(width * 3, height * 3, cap=width), 16, 16,
                           divisors=(1,), flat_range=0.0)
    assert (view.progressive.full_width, view.progressive.full_height) == (width, height)
    while view.refine(camera, None):
        pass
    shown = view.levels[0]
    assert (shown["rgb"] - truth["rgb"].cpu()).abs().max() < 1e-4
    assert (shown["depth"] - truth["depth"].cpu()).abs().max() < 1e-3


# --- resolution ----------------------------------------------------------------------------
def test_render_size_keeps_the_canvas_aspect_under_the_cap():
    assert render_size(1600, 900, 512) == (512, 288)
    assert render_size(900, 1600, 512) == (288, 512)
    assert render_size(300, 200, 512) == (300, 200)  # never above the canvas
    assert render_size(4000, 10, 512) == (512, 8)  # a floor of 8 pixels


@pytest.mark.parametrize("seconds_per_pixel, coarsest", [(1e-7, 1), (4e-6, 4), (1e-3, 32)])
def test_moving_preview_holds_its_frame_time_and_never_collapses(seconds_per_pixel, coarsest):
    """While the camera moves the coarsest level is sized from the measured render cost to
    render in about a frame; however slow the field, it keeps MIN_COARSE_PIXELS across."""
    view = ProgressiveView(None, None, render_size(1600, 900, 512), 16, 16)
    view.cost.add(0.0, 1.0, 1000, 1000 * seconds_per_pixel)
    view.restart(0.08)
    p = view.progressive
    assert p.divisors[0] == coarsest and p.divisors[-1] == 1
    width, height = p.size(0)
    assert min(width, height) >= MIN_COARSE_PIXELS
    if coarsest < 32:  # below the floor the predicted time fits the frame
        assert view.cost.seconds(width, height) <= 0.08 * 1.0001


def test_the_browser_preview_keeps_32_pixels_across_however_slow_the_field():
    """The browser scales the picture to its window, so its moving preview has a higher floor
    than the window's: a 512x288 view never goes below 64x36 (divisor 8), where the window's
    floor would allow 16x9."""
    from taichi_nerf.viewer.session import BROWSER_MIN_PIXELS

    view = ProgressiveView(None, None, render_size(1600, 900, 512), 16, 16)
    view.min_coarse_pixels = BROWSER_MIN_PIXELS
    view.cost.add(0.0, 1.0, 1000, 1.0)  # a millisecond a pixel: as slow as it gets
    view.restart(0.08)
    assert view.progressive.divisors[0] == 8 and min(view.progressive.size(0)) >= BROWSER_MIN_PIXELS


def test_the_browser_preview_keeps_32_pixels_across_before_a_render_is_measured():
    """Before the first measured render the levels were always 8, 4, 2, 1: at --viewer-resolution 192 the first
    preview was 24x16, under the browser's floor. Unmeasured levels keep the floor too; the window's stays 8."""
    from taichi_nerf.viewer.session import BROWSER_MIN_PIXELS

    view = ProgressiveView(None, None, render_size(1600, 900, 192), 16, 16)
    view.min_coarse_pixels = BROWSER_MIN_PIXELS
    view.restart()
    assert view.progressive.divisors == (2, 1) and len(view.levels) == 2  # 192x108: 96x54 first
    assert min(view.progressive.size(0)) >= BROWSER_MIN_PIXELS
    view.resize(*render_size(1600, 900, 512))
    view.restart()
    assert view.progressive.divisors == (8, 4, 2, 1) and min(view.progressive.size(0)) >= BROWSER_MIN_PIXELS
    window = ProgressiveView(None, None, render_size(1600, 900, 192), 16, 16)
    window.restart()
    assert window.progressive.divisors == (8, 4, 2, 1)


# --- the loop, fed through the inbox ----------------------------------------------------------
class FakeServer:
    """The viser server the loop talks to, with a real viser behind the panel (any free port)
    but pictures caught here instead of sent."""

    def __init__(self):
        from taichi_nerf.viewer.server import ViewerServer

        self.real = ViewerServer("127.0.0.1", 0, out=io.StringIO())
        self.server, self.inbox = self.real.server, self.real.inbox
        self.sent, self.looked = [], []

    def set_opening_view(self, scene, fov_y):
        self.real.set_opening_view(scene, fov_y)

    def send(self, client_id, picture, quality):
        self.sent.append((client_id, picture.shape, quality, picture.copy()))
        return True

    def look_through(self, client_id, pose, fov_y, pivot):
        self.looked.append((client_id, np.asarray(pose), fov_y))


def frames_until(app, condition, limit: int = 400):
    for _ in range(limit):
        app.frame()
        if condition():
            return
    pytest.fail("the loop never got there")


@pytest.fixture
def web_session(tiny_scene, tmp_path):
    pytest.importorskip("viser")
    from taichi_nerf.training.trainer import Trainer
    from taichi_nerf.viewer.session import ViewerOptions, WebViewer

    torch.manual_seed(0)
    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run", steps=100000, eval_every=0, preview_every=0,
                                  checkpoint_every=0))
    trainer.begin()
    server = FakeServer()
    app = WebViewer(server, trainer.renderer, trainer.cfg, ViewerOptions(resolution_cap=64, steps_per_frame=1),
                    trainer=trainer, train_split=trainer.train, out_dir=trainer.out_dir)
    yield app, server, trainer
    server.real.stop()


def move(app, pose, client=1):
    wxyz, position = viser_pose(pose)
    app.inbox.camera(client, wxyz, position, math.radians(40.0), 320, 240)


def test_loop_follows_the_browser_coarse_then_sharp_and_trains_between(web_session):
    app, server, trainer = web_session
    app.view.min_coarse_pixels = 8  # the fixture's 64x48 canvas for speed: the browser's floor would leave one level
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    frames_until(app, lambda: trainer.step_count >= 3)  # nobody watching: it trains
    assert not server.sent
    app.inbox.press("toggle_pause")  # paused, the view refines to the end
    move(app, poses[0].double().numpy())
    app.frame()
    paused_at = trainer.step_count
    assert len(server.sent) == 1 and app.latencies  # the first picture follows the move at once
    first = server.sent[0]
    # coarse... (a GPU renders the whole view at once, so there the first picture is already the full one)
    assert first[0] == 1 and (first[1][:2] == (48, 64)) == app.view.whole
    # ...then the full 64x48 (the cap), at a higher JPEG quality once complete (partial pictures of the
    # finest level may go out before, at the moving quality, when refining takes longer than SEND_EVERY_S)
    frames_until(app, lambda: server.sent[-1][2] > first[2])
    assert app.view.progressive.complete and server.sent[-1][1][:2] == (48, 64)
    picture = server.sent[-1][3]
    assert picture.dtype == np.uint8 and picture.std() > 1.0
    for _ in range(10):
        app.frame()
    assert trainer.step_count == paused_at and app.schedule.paused
    app.inbox.press("toggle_pause")
    frames_until(app, lambda: trainer.step_count >= paused_at + 4)  # training goes on beside the view

    # another browser takes over; the depth mode
    sent = len(server.sent)
    move(app, poses[2].double().numpy(), client=2)
    frames_until(app, lambda: len(server.sent) > sent)
    assert server.sent[-1][0] == 2
    app.inbox.press("mode", "depth")
    sent = len(server.sent)
    frames_until(app, lambda: len(server.sent) > sent)
    depth = server.sent[-1][3]
    app.mode = "rgb"
    rgb = app.picture()  # the same levels, as colour
    app.mode = "depth"
    assert depth.shape == rgb.shape and np.abs(depth.astype(int) - rgb.astype(int)).mean() > 5

    # a training camera clicked: the browser's camera is sent there
    app.inbox.press("look_through", 3)
    app.frame()
    assert server.looked and np.allclose(server.looked[-1][1], trainer.train.poses[3].double().numpy())

    # the browsers leave: training goes on
    app.inbox.disconnected(2)
    app.inbox.disconnected(1)
    app.frame()
    assert app.camera is None
    before = trainer.step_count
    frames_until(app, lambda: trainer.step_count >= before + 3)


def test_keyframes_from_the_browser_write_a_camera_path(web_session, tmp_path):
    import json

    app, _server, trainer = web_session
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    for pose in poses[:2]:
        move(app, pose.double().numpy())
        app.frame()
        app.inbox.press("add_keyframe")
        app.frame()
    saved = json.loads((trainer.out_dir / "camera_path.json").read_text())
    assert len(saved["keyframes"]) == 2 and saved["keyframes"][0]["fov"] == pytest.approx(40.0)
    assert np.allclose(np.array(saved["keyframes"][1]["camera_to_world"]).reshape(4, 4), poses[1].double().numpy(),
                       atol=1e-6)



def test_a_path_framed_in_a_wide_browser_keeps_its_width(web_session):
    """Keyframes framed in a 900x600 canvas made a video of the scene's square pictures, which cut off the sides
    of what was framed: the path's frames now have the canvas's aspect, at the same vertical field of view."""
    import json

    app, _server, trainer = web_session
    assert app.scene.aspect == pytest.approx(1.0)
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    for pose in poses[:2]:
        wxyz, position = viser_pose(pose.double().numpy())
        app.inbox.camera(1, wxyz, position, math.radians(40.0), 900, 600)
        app.frame()
        app.inbox.press("add_keyframe")
        app.frame()
    path = trainer.out_dir / "camera_path.json"
    saved = json.loads(path.read_text())
    assert saved["render_width"] / saved["render_height"] == pytest.approx(1.5, rel=0.05)
    assert saved["camera_path"][0]["fov"] == pytest.approx(40.0)
    route = app.keyframes.load_path(path)  # as the video and `render --path` read it
    assert route.width / route.height == pytest.approx(1.5, rel=0.05)
    app.inbox.press("remove_keyframe")
    app.frame()
    app.inbox.press("remove_keyframe")
    app.frame()
    move(app, poses[0].double().numpy())  # a 320x240 canvas frames the next path
    app.frame()
    app.inbox.press("add_keyframe")
    app.frame()
    assert app.keyframes.aspect == pytest.approx(4 / 3, rel=0.05)


def test_a_second_session_keeps_the_first_one_s_path_and_video(web_session):
    """A viewer (or window) session at the step of an earlier one wrote its camera_path.json and its video over
    the earlier session's, saying only "saved": names now continue past what is there, and the earlier path is
    kept as camera_path_1.json (said with the first keyframe)."""
    import json

    from taichi_nerf.viewer.session import ViewerOptions, WebViewer

    first, server, trainer = web_session
    poses, _, _, _ = orbit_cameras(first.scene, 4, 32)

    def session(app, keyframes):
        app.options.video_frames = 2
        app.inbox.press("toggle_pause")  # the same step in both sessions, as when viewing a checkpoint
        said = []
        for pose in keyframes:
            move(app, pose.double().numpy())
            app.frame()
            app.inbox.press("add_keyframe")
            app.frame()
            said.append(app.message)
        app.inbox.press("record_video")
        frames_until(app, lambda: app.counts["videos"] == 1)
        return said, app.last_saved["video"]

    _, video = session(first, poses[:2])
    path = first.out_dir / "camera_path.json"
    before = path.read_text()
    second = WebViewer(server, trainer.renderer, trainer.cfg, ViewerOptions(resolution_cap=64, steps_per_frame=1),
                       trainer=trainer, train_split=trainer.train, out_dir=trainer.out_dir)
    said, again = session(second, poses[2:4])
    assert second.step == first.step and again != video and Path(video).is_file() and Path(again).is_file()
    assert Path(again).name == Path(video).stem + "_1.mp4"
    assert (first.out_dir / "camera_path_1.json").read_text() == before  # the first session's path, whole
    assert len(json.loads(path.read_text())["keyframes"]) == 2 and path.read_text() != before
    assert said[0].endswith("; the earlier path is kept as camera_path_1.json") and "kept" not in said[1], said


def test_a_video_goes_on_when_the_browser_leaves(web_session):
    """Record a video, close the laptop: the video is still written (the loop used to wait, with
    nobody watching, until a browser came back)."""
    app, _server, trainer = web_session
    app.options.video_frames = 3
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    move(app, poses[0].double().numpy())
    app.frame()
    app.inbox.press("record_video")
    app.frame()
    assert app.video_job is not None
    app.inbox.disconnected(1)
    frames_until(app, lambda: app.counts["videos"] == 1)
    # the whole path, as a checkpoint's: the browser's user fetches it from the server
    assert app.camera is None and app.message.startswith(f"saved video: {trainer.out_dir / 'videos' / 'orbit_step'}")
    assert list((trainer.out_dir / "videos").glob("orbit_step*.mp4"))



def test_when_the_followed_browser_leaves_another_open_one_takes_over(web_session):
    """Two tabs open, the one the view follows closed: the other is still there, and its picture
    must go on (it stayed frozen, "the browser left", until it moved its camera)."""
    app, server, trainer = web_session
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    move(app, poses[0].double().numpy(), client=1)
    app.frame()
    move(app, poses[2].double().numpy(), client=2)  # a second tab: the view follows it
    frames_until(app, lambda: app.client == 2)
    app.inbox.disconnected(2)  # that tab closed; tab 1 stays, its camera still
    app.frame()
    assert app.client == 1 and app.camera is not None
    sent = len(server.sent)
    frames_until(app, lambda: len(server.sent) > sent)
    assert server.sent[-1][0] == 1
    app.inbox.disconnected(1)  # the last one closed: nobody watching
    app.frame()
    assert app.client is None and app.camera is None


def test_a_browser_leaving_a_paused_run_does_not_say_training_goes_on(web_session):
    """Paused (or after train --viewer web's end, which pauses for good), the browser's leaving said
    "the browser left; training goes on" to the tabs still open, replacing the message that said
    why nothing trains."""
    app, _server, trainer = web_session
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    app.inbox.press("toggle_pause")
    move(app, poses[0].double().numpy(), client=1)
    app.frame()
    said = app.message
    app.inbox.disconnected(1)
    app.frame()
    assert app.camera is None and app.schedule.paused and app.message == said


def test_with_the_last_browser_gone_a_paused_loop_sleeps(web_session, monkeypatch):
    """A tab closed while its picture was still refining left a picture "to send" that had nobody to go to:
    the loop never slept again and spun a core at 100% (600k empty frames a second) until Ctrl-C."""
    import threading
    import time

    app, server, _trainer = web_session
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    app.inbox.press("toggle_pause")
    move(app, poses[0].double().numpy(), client=1)
    monkeypatch.setattr(server, "send", lambda *_: False)  # the tab closing: its last picture does not go out
    app.frame()
    assert app._pending
    app.inbox.disconnected(1)
    slept, sleep = [], time.sleep

    def recorded(seconds):
        if threading.current_thread() is threading.main_thread():
            slept.append(seconds)
        sleep(seconds)
    monkeypatch.setattr(time, "sleep", recorded)
    for _ in range(5):
        app.frame()
    assert app.camera is None and len(slept) >= 4, slept


def test_a_browser_opened_after_the_last_one_left_is_not_told_the_browser_left(web_session):
    """All tabs closed, then one opened again: its panel kept saying "the browser left; training
    goes on" to the browser that was there."""
    app, _server, _trainer = web_session
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    move(app, poses[0].double().numpy(), client=1)
    app.frame()
    app.inbox.disconnected(1)
    app.frame()
    assert "browser left" in app.message
    move(app, poses[1].double().numpy(), client=2)
    app.frame()
    assert app.camera is not None and app.message == "training"


def test_the_panel_says_the_viewer_has_closed_when_it_leaves(web_session):
    """Ctrl-C (or --seconds) closed the server, and the page, which keeps what it last got,
    went on saying "step N of M (training)" and "training"."""
    app, _server, trainer = web_session
    app.options.max_seconds = 0.0  # one frame, then it leaves
    assert app.run() == 0
    assert app.panel.message.content == f"this viewer has closed (at step {trainer.step_count}): the page no " \
                                        "longer updates"
    assert "(stopped)" in app.panel.stats.content


def test_a_pause_from_the_browser_spends_none_of_the_time_limit(tiny_scene, tmp_path):
    """train --viewer web --time-limit: the limit counted the wall clock through a pause, so ten
    minutes spent looking at a paused field ended the run (its learning rate annealed) at the next step."""
    pytest.importorskip("viser")
    from taichi_nerf.training.trainer import Trainer
    from taichi_nerf.viewer.session import ViewerOptions, WebViewer

    now = [0.0]
    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run", steps=100000, eval_every=0, preview_every=0,
                                  checkpoint_every=0, time_limit_s=60.0))
    trainer.clock = lambda: now[0]
    trainer.begin()
    started = trainer.start_clock()
    server = FakeServer()
    try:
        app = WebViewer(server, trainer.renderer, trainer.cfg, ViewerOptions(resolution_cap=64, steps_per_frame=1),
                        trainer=trainer, train_split=trainer.train, out_dir=trainer.out_dir, keep_going=lambda: True)
        now[0] = 10.0
        app.inbox.press("toggle_pause")
        app.frame()
        now[0] = 610.0  # ten minutes paused
        app.inbox.press("toggle_pause")
        app.frame()
        now[0] = 620.0
        assert not trainer.clock_limit(started) and trainer.clock_s == pytest.approx(20.0)
        now[0] = 700.0
        assert trainer.clock_limit(started)  # training time still counts
    finally:
        server.real.stop()


def test_viewing_a_run_that_another_process_trains_leaves_its_viewer_log_alone(run, capsys):
    """`view --ckpt RUN` while `train --viewer web` trains RUN: the viewer's log (viewer.jsonl,
    this session's lines only) was emptied under the trainer, which then appended to it beside
    the second viewer."""
    pytest.importorskip("viser")
    from taichi_nerf.runs.run_folder import VIEWER_LOG, RunLock
    from taichi_nerf.viewer.launch import open_checkpoint
    from taichi_nerf.viewer.session import ViewerOptions, WebViewer

    from .conftest import ARCH

    trainers_log = '{"step": 7}\n'
    (run / VIEWER_LOG).write_text(trainers_log)
    lock = RunLock(run).acquire()  # a trainer holds the run
    server = FakeServer()
    try:
        renderer, cfg, _state, split, folder = open_checkpoint(run, ARCH)
        app = WebViewer(server, renderer, cfg, ViewerOptions(), train_split=split, out_dir=folder)
        for _ in range(3):
            app.frame()
        app.log.flush_line(app.log.start + 2.0)
        assert (run / VIEWER_LOG).read_text() == trainers_log
        assert app.log.path.read_text()  # it logs, elsewhere
        assert "is training in process" in capsys.readouterr().out
        app.log.path.unlink()
    finally:
        server.real.stop()
        lock.release()

@pytest.mark.parametrize("kind, name, who", [("ViewerLog", "viewer.jsonl", "the viewer"),
                                             ("WindowLog", "gui.jsonl", "the window")])
def test_the_run_folder_gone_does_not_take_the_viewer_down(tmp_path, capsys, kind, name, who):
    """The viewer's log (viewer.jsonl), and the window's (gui.jsonl), in a run folder removed
    while the field is on view: one warning, and the view goes on (the field is in memory)."""
    import shutil

    from taichi_nerf.viewing import perflog

    log = getattr(perflog, kind)(tmp_path / "gone" / name)
    log.frame(log.start + 0.5, 3, 1, 0.01, 0.02, {})
    shutil.rmtree(tmp_path / "gone")
    assert log.frame(log.start + 1.0, 4, 1, 0.01, 0.02, {})["step"] == 4  # the line it could not write
    log.flush_line(log.start + 2.0)
    assert capsys.readouterr().err.count(f"{who} stops logging there") == 1
    assert not (tmp_path / "gone").exists()  # nor made the folder again

def test_a_crash_in_the_viewer_saves_the_run_like_ctrl_c(web_session, capsys):
    app, server, trainer = web_session
    poses, _, _, _ = orbit_cameras(app.scene, 4, 32)
    move(app, poses[0].double().numpy())
    app.options.max_seconds = 300.0  # a guard: the crash below ends the loop

    def broken(*_args):
        raise RuntimeError("the browser sent something odd")

    real_send = server.send

    def send(*args):  # the first picture after a training step fails: a crash with training to save
        if trainer.step_count > 0:  # (it was the third picture: a loaded machine sent three partial ones
            broken()  # while the view refined after the move, before any step, and saved step 0)
        return real_send(*args)

    server.send = send
    assert app.run() == 130
    assert app.crashed and trainer.step_count > 0
    assert (trainer.out_dir / "checkpoint.pt").is_file() and app.saved_step == trainer.step_count
    err = capsys.readouterr().err
    assert "the browser sent something odd" in err and "saving the run" in err


def test_a_crash_while_viewing_a_checkpoint_says_no_run_is_saved(web_session, capsys):
    """`view` (no trainer) said "the viewer failed at step N; saving the run" after a crash's traceback: it
    trains and saves nothing."""
    from taichi_nerf.viewer.session import ViewerOptions, WebViewer

    _, server, trainer = web_session
    app = WebViewer(server, trainer.renderer, trainer.cfg, ViewerOptions(resolution_cap=64, max_seconds=300.0),
                    train_split=trainer.train, out_dir=trainer.out_dir)

    def send(*_args):
        raise RuntimeError("the browser sent something odd")

    server.send = send
    move(app, orbit_cameras(app.scene, 4, 32)[0][0].double().numpy())
    assert app.run() == 130 and app.crashed
    err = capsys.readouterr().err
    assert "the browser sent something odd" in err and "the viewer failed at step 0" in err, err
    assert "saving the run" not in err and not (trainer.out_dir / "checkpoint.pt").exists()


def test_a_broken_panel_ends_the_run_like_ctrl_c_and_its_last_word_does_not_hide_that(web_session, capsys):
    """The panel's closing word ("this viewer has closed") is said in the loop's ``finally``: when
    the panel itself was what failed, saying it raised again there, in place of the saved run's
    exit 130."""
    app, server, trainer = web_session
    app.options.max_seconds = 300.0  # a guard: the crash below ends the loop
    frames_until(app, lambda: trainer.step_count >= 2)

    def broken(*_args, **_kw):
        raise RuntimeError("the panel is gone")

    app.panel.show = broken
    assert app.run() == 130
    assert app.crashed and (trainer.out_dir / "checkpoint.pt").is_file() and app.saved_step == trainer.step_count
    assert "the panel is gone" in capsys.readouterr().err


# --- serving -------------------------------------------------------------------------------
def test_server_says_where_it_is_and_when_its_port_was_taken():
    pytest.importorskip("viser")
    from taichi_nerf.viewer.server import ViewerServer

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    out = io.StringIO()
    server = ViewerServer("127.0.0.1", port, out=out)
    try:
        text = out.getvalue()
        assert server.port != port
        assert f"port {port} is taken; using port {server.port} instead" in text
        assert f"http://127.0.0.1:{server.port}" in text and f"ssh -L {server.port}:127.0.0.1:{server.port}" in text
        assert "anyone who can reach" not in text  # this machine only: nothing to warn about
        exposed = io.StringIO()
        server.host = "0.0.0.0"
        server.announce(exposed)
        assert "anyone who can reach" in exposed.getvalue()
        assert f"open http://{socket.gethostname()}:{server.port}" in exposed.getvalue()  # no tunnel needed
        for host, url in (("192.0.2.7", "192.0.2.7"), ("fd00::7", "[fd00::7]")):
            one = io.StringIO()  # listening on that address alone: 127.0.0.1 refuses, through a tunnel too
            server.host = host
            server.announce(one)
            text = one.getvalue()
            assert f"open http://{url}:{server.port}" in text and f"ssh -L {server.port}:{url}:{server.port}" in text
            assert "127.0.0.1" not in text.split("the default")[0]
        ipv6 = io.StringIO()  # ::1 is not reached through 127.0.0.1 (another viewer may listen there)
        server.host = "::1"
        server.announce(ipv6)
        text = ipv6.getvalue()
        assert f"http://[::1]:{server.port}" in text and f"ssh -L {server.port}:[::1]:{server.port}" in text
        assert "127.0.0.1" not in text
    finally:
        server.stop()
        taken.close()



@pytest.mark.parametrize("cap", [16, 40, 3000])
def test_the_panel_takes_every_resolution_the_flag_allows(cap):
    """--viewer-resolution accepts 16 px and up; the panel's slider (64 to 2048) refused 40 or 3000
    with viser's "initial_value is outside of [min, max]", after the data had loaded (and, in
    gui --web and train --viewer web, after the run folder was claimed)."""
    pytest.importorskip("viser")
    from taichi_nerf.viewer.panel import Panel
    from taichi_nerf.viewer.server import ViewerServer

    server = ViewerServer("127.0.0.1", 0, out=io.StringIO())
    try:
        panel = Panel(server.server, server.inbox, training=True, resolution_cap=cap, train_share=0.5)
        assert panel.resolution_cap.value == cap
    finally:
        server.stop()


def test_the_curves_count_steps_not_dates():
    """uPlot takes its x values for UNIX seconds unless its x scale says otherwise: the panel's
    curves were labelled with times of 1 January 1970 ("12:05am 1/1/70" at step 300), not steps."""
    pytest.importorskip("viser")
    from taichi_nerf.viewer.panel import Panel
    from taichi_nerf.viewer.server import ViewerServer

    server = ViewerServer("127.0.0.1", 0, out=io.StringIO())
    try:
        panel = Panel(server.server, server.inbox, training=True, resolution_cap=512, train_share=0.5)
        assert panel.curves.series[0]["label"] == "step"
        assert (panel.curves.scales or {}).get("x", {}).get("time") is False
    finally:
        server.stop()


def test_the_browser_opens_a_forward_facing_scene_from_its_cameras_side():
    """The browser's first view was the orbit's start, behind an LLFF capture: a blank page."""
    pytest.importorskip("viser")
    from taichi_nerf.viewer.server import ViewerServer

    from .test_gui_logic import forward_facing_scene

    scene = forward_facing_scene()
    server = ViewerServer("127.0.0.1", 0, out=io.StringIO())
    try:
        server.set_opening_view(scene, 0.6)
        initial = server.server.initial_camera
        eye = np.array(scene.path_pose).reshape(4, 4)[:3, 3]  # where the average training camera stands
        assert np.allclose(initial.position, eye, atol=1e-5)  # as the window's home view
        assert np.allclose(initial.look_at, scene.center, atol=1e-5)
    finally:
        server.stop()


@pytest.mark.parametrize("argv, message", [
    (["view", "--ckpt", "nowhere", "--viewer-port", "70000"], "--viewer-port must be between"),
    (["view", "--ckpt", "nowhere", "--seconds", "0"], "--seconds must be positive"),
    (["gui", "--web", "--headless", "--seconds", "1"], "--headless is for the window, not --web"),
    (["gui", "--web", "--frames", "10"], "--frames is for the window, not --web"),
    (["train", "--viewer", "web", "--viewer-resolution", "4"], "--viewer-resolution must be at least 16"),
    (["view", "--ckpt", "nowhere", "--video-frames", "0"], "--video-frames must be at least 1"),
    (["gui", "--web", "--video-frames", "-2"], "--video-frames must be at least 1"),
    (["gui", "--video-frames", "0"], "--video-frames must be at least 1"),
    (["view", "--ckpt", "nowhere", "--viewer-host", "192.0.2.1"], "'192.0.2.1' is not an address of this machine"),
    (["train", "--viewer", "web", "--viewer-host", "192.0.2.1"], "is not an address of this machine"),
    (["view", "--ckpt", "nowhere"], "nowhere: no checkpoint found"),
    (["gui", "--web", "--ckpt", "nowhere"], "nowhere: no checkpoint found"),
    # every flag of gui is checked before the browser branch: these reached the viewer unchecked
    (["gui", "--web", "--steps-per-frame", "0"], "--steps-per-frame must be at least 1"),
    (["gui", "--web", "--steps-per-frame", "-3"], "--steps-per-frame must be at least 1"),
    (["gui", "--web", "--frames", "0"], "--frames must be at least 1"),
    (["gui", "--web", "--seconds", "-1"], "--seconds must be positive"),
    (["gui", "--web", "--window", "big"], "--window must look like"),
    # the run's config too: these came after the viewer had announced its address
    (["gui", "--web", "--data", "nowhere", "--scene-views", "8"], "--scene-views sizes the built-in scene"),
    (["gui", "--web", "--lr", "-1"], "--lr must be positive"),
])
def test_viewer_command_line_errors(argv, message, capsys):
    from taichi_nerf import cli

    assert cli.main(argv) == cli.EXIT_USAGE
    said = capsys.readouterr()
    assert message in said.err and said.err.count("\n") == 1
    assert "viewer: open" not in said.out  # refused before the server announced an address


def test_a_damaged_checkpoint_or_a_missing_gpu_is_refused_before_the_server_opens(run, tmp_path, capsys):
    """A checkpoint cut short (a zip, as torch writes, but half of it) and --arch cuda without a GPU were said
    after the viewer had printed its address and tunnel line, for an address that then went away."""
    from taichi_nerf import cli

    cut = tmp_path / "cut.pt"
    whole = (run / "checkpoint.pt").read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    cases = [(["view", "--ckpt", str(cut)], "not a readable"), (["gui", "--web", "--ckpt", str(cut)], "not a readable")]
    if not torch.cuda.is_available():
        cases += [(["view", "--ckpt", str(run), "--arch", "cuda"], "--arch cuda was asked for"),
                  (["train", "--viewer", "web", "--arch", "cuda", "--out", str(tmp_path / "new")],
                   "--arch cuda was asked for")]
    for argv, message in cases:
        assert cli.main(argv) == cli.EXIT_USAGE, argv
        said = capsys.readouterr()
        assert message in said.err and said.err.count("\n") == 1, (argv, said.err)
        assert "viewer: open" not in said.out, argv


def test_the_panels_videos_take_trains_frames_or_their_own_default():
    """``train --viewer web`` passes its own --video-frames: unset (None) or 0 (no video at its end)
    left the panel's keyframe and video buttons with no frame count, and they crashed the run."""
    from argparse import Namespace

    from taichi_nerf.cli.common import viewer_options
    from taichi_nerf.viewing import VIDEO_FRAMES

    for given, used in ((None, VIDEO_FRAMES), (0, VIDEO_FRAMES), (90, 90)):
        assert viewer_options(Namespace(viewer_resolution=512, video_frames=given)).video_frames == used


@pytest.mark.parametrize("argv, message", [
    (["view", "--ckpt", "nowhere", "--viewer-port", "70000"], "--viewer-port must be between"),
    (["train", "--viewer", "web", "--viewer-host", "192.0.2.1"], "is not an address of this machine"),
    (["gui", "--web", "--viewer-resolution", "4"], "--viewer-resolution must be at least 16"),
    (["gui", "--out", "unused"], "no X display"),
])
def test_a_front_end_that_cannot_start_is_a_user_error_even_when_debugging(argv, message, monkeypatch, capsys,
                                                                          tmp_path):
    """TAICHI_NERF_DEBUG re-raises what may be a bug (a ValueError) with its traceback; a viewer
    or window that cannot start here is the user's to fix, and stays one line, as without it."""
    monkeypatch.setenv("TAICHI_NERF_DEBUG", "1")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)
    refused(capsys, argv, message)
    assert not list(tmp_path.iterdir())


def test_a_missing_viser_is_one_clear_line(monkeypatch, capsys, tmp_path):
    import sys

    from taichi_nerf import cli

    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    assert cli.main(["train", "--viewer", "web", "--out", str(tmp_path / "run")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "pip install 'taichi-nerf[viewer]'" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


@pytest.mark.slow
def test_gui_web_says_what_train_says_at_the_start(tiny_scene, tmp_path, monkeypatch, capsys):
    """`gui --web` (and the window) print train's start report, from one function: the background
    chosen, and an ignored --mixed-precision on a machine without fast bf16."""
    pytest.importorskip("viser")
    from taichi_nerf import backend, cli

    monkeypatch.setattr(backend, "native_bf16", lambda device: False)
    out = tmp_path / "run"
    code = cli.main(["gui", "--web", "--data", str(tiny_scene), "--out", str(out), "--width", "32", "--depth", "2",
                     "--batch-rays", "128", "--samples-per-ray", "16", "--mixed-precision", "--arch", "cpu",
                     "--no-progress", "--seconds", "1", "--viewer-port", "0"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for line in ("data: ", "background: ", "warning: --mixed-precision ignored", f"; run folder {out}"):
        assert line in printed, printed
    _the_address_is_said_again_below_the_start_lines(printed)


def _the_address_is_said_again_below_the_start_lines(printed: str) -> None:
    """The start lines (data, notes, background, ...) pushed the address and the ssh tunnel off an
    ssh terminal's screen: it is said again below them."""
    port = re.search(r"viewer: open http://127\.0\.0\.1:(\d+) in a browser", printed).group(1)
    again = printed.index(f"viewer: training in the browser at http://127.0.0.1:{port}")
    assert printed.index("background: ") < again, printed


@pytest.mark.slow
def test_train_with_the_web_viewer_runs_to_the_end_like_train(tiny_scene, tmp_path, capsys):
    """`train --viewer web` with no browser connected: the steps, then the final validation,
    checkpoint and curves as `train` does them; --viewer-quit-at-end leaves."""
    pytest.importorskip("viser")
    import json

    from taichi_nerf import cli

    out = tmp_path / "run"
    code = cli.main(["train", "--data", str(tiny_scene), "--out", str(out), "--steps", "30", "--width", "32",
                     "--depth", "2", "--batch-rays", "256", "--samples-per-ray", "24", "--eval-every", "0",
                     "--video-frames", "0", "--no-progress", "--arch", "cpu", "--viewer", "web", "--viewer-port", "0",
                     "--viewer-quit-at-end"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "viewer: open http://127.0.0.1:" in printed and "trained 30 steps" in printed
    _the_address_is_said_again_below_the_start_lines(printed)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(row.get("final") and row["step"] == 30 for row in rows)  # the final validation ran
    assert (out / "checkpoint.pt").is_file() and (out / "curves.png").is_file() and (out / "viewer.jsonl").is_file()



def test_the_page_says_when_training_ended_and_when_the_viewer_closed(tiny_scene, tmp_path, monkeypatch):
    """`train --viewer web`: through the final validation and the video (minutes on a CPU) the page went
    on saying "step N of M (training)", N a step before the last, as if it had hung; and with
    --viewer-quit-at-end it kept saying so once the viewer had gone."""
    pytest.importorskip("viser")
    from taichi_nerf import cli
    from taichi_nerf.viewer.panel import Panel

    out, shown = tmp_path / "run", []
    show = Panel.show

    def recorded(self, stats, message, paused):
        metrics = out / "metrics.jsonl"
        final_row = metrics.is_file() and '"final": true' in metrics.read_text()
        shown.append((stats, message, final_row))
        return show(self, stats, message, paused)
    monkeypatch.setattr(Panel, "show", recorded)
    assert cli.main(["train", "--data", str(tiny_scene), "--out", str(out), "--steps", "6", "--width", "32",
                     "--depth", "2", "--batch-rays", "64", "--samples-per-ray", "8", "--eval-every", "0",
                     "--video-frames", "0", "--no-progress", "--arch", "cpu", "--viewer", "web", "--viewer-port", "0",
                     "--viewer-quit-at-end"]) == 0
    ended = [(stats, final_row) for stats, message, final_row in shown
             if message == "training ended at step 6; the final validation run now; then this viewer closes"]
    assert ended and not ended[0][1]  # said before the final validation
    assert "step 6 of 6 (ended)" in ended[0][0]
    assert shown[-1][1] == "this viewer has closed (at step 6): the page no longer updates"
    assert "step 6 of 6 (stopped)" in shown[-1][0]


def test_a_video_that_fails_after_train_with_the_web_viewer_still_closes_the_viewer(tiny_scene, tmp_path, capsys,
                                                                                     monkeypatch):
    """A full disk at the end video (after the run was saved) left the viewer's server unstopped: the browser was
    never told the viewer had closed."""
    pytest.importorskip("viser")
    import errno

    from taichi_nerf import cli
    from taichi_nerf.outputs import default_video
    from taichi_nerf.viewer.server import ViewerServer

    def full_disk(renderer, out, *args, **kwargs):
        raise OSError(errno.ENOSPC, "no space left on device", str(out))
    stopped, stop = [], ViewerServer.stop
    monkeypatch.setattr(default_video, "write_default_video", full_disk)
    monkeypatch.setattr(ViewerServer, "stop", lambda self: stopped.append(True) or stop(self))
    code = cli.main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--steps", "2", "--width",
                     "32", "--depth", "2", "--batch-rays", "64", "--samples-per-ray", "8", "--eval-every", "0",
                     "--video-frames", "2", "--no-progress", "--arch", "cpu", "--viewer", "web", "--viewer-port", "0",
                     "--viewer-quit-at-end"])
    assert code == 2 and "no space left on device" in capsys.readouterr().err
    assert stopped


def press_resume_while_lingering(real_run, seen: list, record):
    """A WebViewer.run for ``train --viewer web``: the training loop itself first, then, while the
    viewer lingers on the trained field, a press of the panel's resume button; ``record(app)`` after
    it goes into ``seen``."""
    def run(app):
        if not seen:  # the training loop itself
            seen.append(None)
            return real_run(app)
        app.perform("toggle_pause")
        seen.append(record(app))
        return 0
    return run


def test_after_train_with_the_web_viewer_ends_its_resume_button_does_not_train(tiny_scene, tmp_path, capsys,
                                                                               monkeypatch):
    """The viewer stays open on the field after the run's end (its final validation, curves and
    video done): "resume" there used to train past --steps and save a checkpoint that no longer
    matched what the run reported. It says how to train on instead."""
    pytest.importorskip("viser")
    from taichi_nerf import cli
    from taichi_nerf.viewer.session import WebViewer

    seen = []
    monkeypatch.setattr(WebViewer, "run", press_resume_while_lingering(
        WebViewer.run, seen, lambda app: (app.schedule.paused, app.message, app.trainer.step_count)))
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_scene), "--out", str(out), "--steps", "12", "--width", "32",
                     "--depth", "2", "--batch-rays", "128", "--samples-per-ray", "16", "--eval-every", "0",
                     "--video-frames", "0", "--no-progress", "--arch", "cpu", "--viewer", "web", "--viewer-port",
                     "0"]) == 0
    paused, message, step = seen[-1]
    assert paused and step == 12
    assert message == (f"the run has ended (validated and saved); to train on: taichi-nerf train --resume {out} "
                       "--steps 24 (a new total: the run made 12 steps)")


def test_after_a_run_its_time_limit_ended_the_web_viewer_asks_for_more_time(tiny_scene, tmp_path, monkeypatch):
    """Without --steps a time limit alone ends the run, past the default count: once it ended, the
    lingering viewer said "step 8 of 4" and hinted train --resume with a new --steps total, which
    trains nothing (the time stays spent). It asks for a new total of time. The default count is 4
    here; each step costs 0.125 s of the trainer's own clock."""
    pytest.importorskip("viser")
    from taichi_nerf import cli, config
    from taichi_nerf.training.trainer import Trainer
    from taichi_nerf.viewer.session import WebViewer

    monkeypatch.setattr(config, "DEFAULT_STEPS", 4)
    real_init, seen = Trainer.__init__, []

    def init(trainer, *args, **kwargs):
        real_init(trainer, *args, **kwargs)
        fake_clock(trainer, {"step": 0.125})

    monkeypatch.setattr(Trainer, "__init__", init)
    monkeypatch.setattr(WebViewer, "run", press_resume_while_lingering(
        WebViewer.run, seen, lambda app: (app.message, app.stats_text().splitlines()[0])))
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_scene), "--out", str(out), "--time-limit", "1", "--width", "32",
                     "--depth", "2", "--batch-rays", "128", "--samples-per-ray", "16", "--eval-every", "0",
                     "--video-frames", "0", "--no-progress", "--arch", "cpu", "--viewer", "web", "--viewer-port",
                     "0"]) == 0
    message, stats = seen[-1]
    assert message == (f"the run has ended (validated and saved); to train on: taichi-nerf train --resume {out} "
                       "--time-limit 2 (a new total: the run trained 1 s)"), message
    assert stats.startswith("step 8, until the 1 s time limit (paused)"), stats


@pytest.mark.slow
def test_train_with_the_web_viewer_keeps_the_time_limit_like_train(tiny_scene, tmp_path, capsys, monkeypatch):
    """A time limit ended the viewer's loop before its steps: the run skipped its final
    validation and crashed formatting a PSNR it never measured (None). Now the limit's clock is
    train's: the learning rate anneals by it and the final stage runs. Each step costs 0.125 s of
    the test's own clock (the trainer's; exact in binary): on the wall clock a loaded machine spent
    2.9 of the 3 s on the step-0 validation, and its one step left had nothing to anneal from."""
    pytest.importorskip("viser")
    import json

    from taichi_nerf import cli
    from taichi_nerf.training.trainer import Trainer

    real_init = Trainer.__init__

    def init(trainer, *args, **kwargs):
        real_init(trainer, *args, **kwargs)
        fake_clock(trainer, {"step": 0.125})

    monkeypatch.setattr(Trainer, "__init__", init)
    out = tmp_path / "run"
    code = cli.main(["train", "--data", str(tiny_scene), "--out", str(out), "--steps", "100000", "--time-limit", "3",
                     "--width", "32", "--depth", "2", "--batch-rays", "256", "--samples-per-ray", "24",
                     "--log-every", "1", "--video-frames", "0", "--no-progress", "--arch", "cpu", "--viewer", "web",
                     "--viewer-port", "0", "--viewer-quit-at-end"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "(stopped by the 3 s time limit, then validated); validation PSNR" in printed, printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = [row for row in rows if row.get("final")]
    assert len(final) == 1 and final[0]["step"] == 24 and final[0]["val_psnr"] > 0  # 3 s of 0.125 s steps
    assert any(row["step"] == 0 and "val_psnr" in row for row in rows)  # the curve's start, as train scores it
    rates = [row["lr"] for row in rows if "lr" in row]  # every step's: the last is past 60% of the limit
    assert len(rates) == 24 and rates[0] == pytest.approx(5e-3, rel=1e-3)  # from a box scene's full rate...
    assert rates[-1] < 0.5 * rates[0], rates[-3:]  # ...annealed over the limit's last 40%, not the 100000 steps
    # and so the checkpoint says (however few steps fit)
    from taichi_nerf.runs.checkpoint import read_state
    from taichi_nerf.runs.run_folder import resume_config

    assert read_state(out / "checkpoint.pt")["schedule_progress"] == 1.0
    resumed = Trainer(resume_config(out, time_limit_s=0.0), resume=True)
    assert resumed.lr_at(resumed.step_count) == pytest.approx(resumed.cfg.lr_final)
    assert (out / "curves.png").is_file() and list((out / "previews").glob("step_*.png"))


def web_train_argv(tiny_scene, out) -> list:
    return ["train", "--data", str(tiny_scene), "--out", str(out), "--steps", "100000", "--width", "32", "--depth",
            "2", "--batch-rays", "128", "--samples-per-ray", "16", "--eval-every", "0", "--checkpoint-every", "0",
            "--log-every", "1",
            "--video-frames", "0", "--no-progress", "--arch", "cpu", "--viewer", "web", "--viewer-port", "0"]


def test_ctrl_c_in_train_with_the_web_viewer_ends_as_train_does(tiny_scene, tmp_path, capsys, monkeypatch):
    """`train --viewer web` is Trainer.run with the viewer's loop making the steps: Ctrl-C ends it as
    `train` ends (Trainer.finish: the checkpoint at the last step, the curves, no final validation),
    not by a second copy of that end."""
    import json
    import os
    import signal

    from taichi_nerf import cli
    from taichi_nerf.runs import checkpoint
    from taichi_nerf.viewing.session import TrainingSession

    pytest.importorskip("viser")
    real_step = TrainingSession.train_step

    def train_step(app):
        more = real_step(app)
        if app.trainer.step_count == 5:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop stops between steps
        return more

    monkeypatch.setattr(TrainingSession, "train_step", train_step)
    out = tmp_path / "run"
    assert cli.main(web_train_argv(tiny_scene, out)) == cli.EXIT_INTERRUPTED
    printed = capsys.readouterr().out
    assert f"interrupted at step 5; checkpoint saved to {out / 'checkpoint.pt'}" in printed, printed
    assert checkpoint.read_state(out / "checkpoint.pt")["step"] == 5 and (out / "curves.png").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any(row.get("final") for row in rows)  # stopped: no final validation


def test_a_diverged_run_with_the_web_viewer_stops_as_train_does(tiny_scene, tmp_path, capsys, monkeypatch):
    """A divergence under `train --viewer web` stops the run with train's line and status, leaving the
    last good checkpoint as it was (it was a crash of the viewer, saved over as after Ctrl-C)."""
    from taichi_nerf import cli
    from taichi_nerf.training.trainer import Trainer, TrainingDiverged

    pytest.importorskip("viser")
    real_advance = Trainer.advance

    def advance(trainer):
        if trainer.step_count == 4:
            raise TrainingDiverged("loss became nan at step 5; try a lower --lr.")
        return real_advance(trainer)

    monkeypatch.setattr(Trainer, "advance", advance)
    out = tmp_path / "run"
    assert cli.main(web_train_argv(tiny_scene, out)) == 1
    said = capsys.readouterr()
    assert "taichi-nerf: training stopped: loss became nan at step 5" in said.err, said.err
    assert "the viewer failed" not in said.err and "Traceback" not in said.err
    assert not (out / "checkpoint.pt").exists()  # nothing saved over the (here: no) last good checkpoint
