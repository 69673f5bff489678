"""The GUI's plain-Python logic: camera maths, input mapping, training and refinement
scheduling. No window, no Taichi kernels."""
import math

import numpy as np
import pytest

from taichi_nerf.gui.camera import MAX_ELEVATION, OrbitCamera
from taichi_nerf.gui.controls import FLY_SPEED, FLY_TAP, MAX_FLY_DT, ZOOM_STEP, Controls, FrameInput, Rect
from taichi_nerf.gui.panel import Layout, panel_buttons
from taichi_nerf.rendering.scene import Scene
from taichi_nerf.stages import cameras
from taichi_nerf.viewing.schedule import Band, FrameBudget, ProgressiveResolution, RenderCost, TrainingSchedule

UP = np.array([0.0, 0.0, 1.0])


def make_camera(center=(0.2, -0.1, 0.3), radius=4.0) -> OrbitCamera:
    return OrbitCamera(center, UP, radius, math.radians(30.0), fov_x=0.69, aspect=1.0)


def assert_upright_and_aimed(cam: OrbitCamera):
    pose = cam.pose()
    right, forward = pose[:3, 0], -pose[:3, 2]
    assert abs(right @ UP) < 1e-6  # no roll: the horizon stays level
    assert pose[:3, 1] @ UP > 0  # not upside down
    to_center = cam.center - pose[:3, 3]
    assert np.allclose(forward, to_center / np.linalg.norm(to_center), atol=1e-6)


# --- camera ------------------------------------------------------------------------------
def test_home_view_is_the_start_of_the_orbit_video():
    scene = Scene(near=2.0, far=6.0, aabb=[-1.5] * 3 + [1.5] * 3, center=[0.1, 0.2, 0.0], orbit_radius=3.5,
                  orbit_elevation_deg=25.0)
    cam = OrbitCamera.from_scene(scene)
    video = cameras.orbit_poses(4, scene.orbit_radius, scene.orbit_elevation_deg, scene.center, scene.up)
    assert np.allclose(cam.pose(), video[0].double().numpy(), atol=1e-5)


def forward_facing_scene() -> Scene:
    """An LLFF-like capture: y up, the average camera at (0.3, 0.1, 0) looking 20 degrees off -z at
    the centre 2 ahead."""
    angle = math.radians(20.0)
    back = np.array([math.sin(angle), 0.0, math.cos(angle)])
    avg = np.eye(4)
    avg[:3, 0], avg[:3, 1], avg[:3, 2], avg[:3, 3] = np.cross([0.0, 1.0, 0.0], back), [0.0, 1.0, 0.0], back, \
        [0.3, 0.1, 0.0]
    return Scene(near=0.0, far=1.0, aabb=[-1.5] * 3 + [1.5] * 3, center=list(avg[:3, 3] - 2.0 * back), up=[0, 1, 0],
                 orbit_radius=2.0, orbit_elevation_deg=0.0, ndc=True, forward_facing=True,
                 path_pose=avg.flatten().tolist(), path_radii=[0.1, 0.1, 0.1], path_focus=2.0)


def test_home_view_of_a_top_down_forward_facing_capture_stays_clear_of_the_pole():
    """A forward-facing capture looking straight down (a table top, a drone's survey): its home
    view's elevation was the cameras' own, 90 degrees, where the upright orbit camera has no
    horizon; it is held 5 degrees off, as orbiting is."""
    scene = forward_facing_scene()
    avg = np.eye(4)
    avg[:3, 0], avg[:3, 1], avg[:3, 2], avg[:3, 3] = [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0], \
        [0.0, 2.0, 0.0]
    scene.path_pose, scene.center = avg.flatten().tolist(), [0.0, 0.0, 0.0]
    cam = OrbitCamera.from_scene(scene)
    assert cam.elevation == pytest.approx(math.radians(85.0))
    pose = cam.pose()
    assert np.isfinite(pose).all() and pose[:3, 2] @ np.array([0.0, 1.0, 0.0]) > 0.99  # above, looking down


def test_home_view_of_a_forward_facing_scene_is_on_its_cameras_side():
    """The orbit's start is behind an LLFF capture: the window (and the browser viewer) opened
    looking back at the cameras from behind the scene, a blank picture in NDC."""
    scene = forward_facing_scene()
    cam = OrbitCamera.from_scene(scene)
    avg = np.array(scene.path_pose).reshape(4, 4)
    assert np.allclose(cam.eye, avg[:3, 3], atol=1e-6)  # where the average training camera stands
    assert np.allclose(cam.pose()[:3, 2], avg[:3, 2], atol=1e-6)  # looking the way it looks


def test_orbit_keeps_distance_and_stays_upright():
    cam = make_camera()
    for d_az, d_el in [(0.3, 0.1), (-1.2, 0.4), (2.5, -0.9), (0.0, 0.3)]:
        cam.orbit(d_az, d_el)
        assert np.linalg.norm(cam.eye - cam.center) == pytest.approx(4.0, abs=1e-9)
        assert_upright_and_aimed(cam)
    cam.orbit(0.0, 10.0)  # far past the pole: clamped, still upright
    assert cam.elevation == pytest.approx(MAX_ELEVATION)
    assert_upright_and_aimed(cam)


def test_pan_moves_the_centre_sideways_and_keeps_orientation():
    cam = make_camera()
    before_pose, before_center = cam.pose(), cam.center.copy()
    cam.pan(0.1, 0.0)
    moved = cam.center - before_center
    assert np.linalg.norm(moved) > 0.1
    assert moved @ before_pose[:3, 0] < 0  # dragging right moves the camera left: the scene follows the cursor
    assert abs(moved @ before_pose[:3, 2]) < 1e-9  # no motion along the view axis
    assert np.allclose(cam.pose()[:3, :3], before_pose[:3, :3])
    assert cam.radius == 4.0
    cam.pan(0.0, 0.1)
    assert (cam.center - before_center - moved) @ before_pose[:3, 1] < 0


def test_fly_moves_eye_and_centre_together():
    cam = make_camera()
    eye, center, forward = cam.eye, cam.center.copy(), -cam.pose()[:3, 2]
    cam.move(0.25, 0.0, 0.0)
    assert np.allclose(cam.center - center, forward * 0.25 * 4.0)
    assert np.allclose(cam.eye - eye, cam.center - center)


def test_zoom_changes_radius_and_clamps():
    cam = make_camera()
    direction = cam.eye - cam.center
    cam.zoom(0.5)
    assert cam.radius == pytest.approx(2.0)
    assert np.allclose((cam.eye - cam.center) / 2.0, direction / 4.0)
    for _ in range(50):
        cam.zoom(0.5)
    assert cam.radius == pytest.approx(cam.min_radius) and cam.min_radius > 0
    for _ in range(50):
        cam.zoom(2.0)
    assert cam.radius == pytest.approx(cam.max_radius)


def test_snap_gives_exactly_the_training_pose_and_intrinsics_then_moves_on_from_it():
    poses = cameras.sphere_poses(6, 4.0, seed=3)
    pose = poses[2].double().numpy()
    roll = np.eye(4)
    roll[:2, :2] = [[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]]
    rolled = pose @ roll  # a tilted training camera is still reproduced exactly
    intr = np.array([50.0, 52.0, 31.0, 33.0, 0.01, 0.0, 0.0, 0.0])
    cam = make_camera(center=(0, 0, 0))
    for target in (pose, rolled):
        cam.snap_to(target, intr, 64, 64, index=2)
        assert cam.snapped_index == 2
        assert np.array_equal(cam.pose(), target)
        assert np.allclose(cam.intrinsics(32, 32), [25.0, 26.0, 15.5, 16.5, 0.01, 0.0, 0.0, 0.0])
    cam.snap_to(pose, intr, 64, 64, index=2)
    cam.orbit(0.0, 0.0)  # leaving the snap continues from the same (upright) view
    assert cam.snapped_index is None
    assert np.allclose(cam.pose(), pose, atol=1e-6)
    cam.orbit(0.2, 0.0)
    assert_upright_and_aimed(cam)
    assert np.linalg.norm(cam.eye - pose[:3, 3]) < 1.0


def test_nearest_training_camera_and_reset():
    poses = cameras.sphere_poses(12, 4.0, seed=1)
    cam = make_camera(center=(0, 0, 0))
    cam.snap_to(poses[7].numpy(), np.zeros(8), 10, 10, index=7)
    cam.orbit(0.01, 0.0)
    assert cam.nearest(poses) == 7
    home = make_camera(center=(0, 0, 0)).pose()
    cam.pan(0.3, 0.2)
    cam.zoom(0.6)
    cam.reset()
    assert np.allclose(cam.pose(), home)


# --- controls ------------------------------------------------------------------------------
def drag(controls, cam, button, path, held=frozenset()):
    """Press at path[0], move through the path, release: one frame per point."""
    controls.update(FrameInput(cursor=path[0], buttons=frozenset([button]), pressed=(button,), held=held), cam)
    for p in path[1:]:
        controls.update(FrameInput(cursor=p, buttons=frozenset([button]), held=held), cam)
    controls.update(FrameInput(cursor=path[-1]), cam)


def test_left_drag_orbits_right_drag_pans_middle_drag_zooms():
    controls = Controls(view=Rect(0.0, 0.0, 0.7, 1.0))
    cam = make_camera()
    drag(controls, cam, "LMB", [(0.3, 0.5), (0.4, 0.5), (0.5, 0.5)])
    assert cam.azimuth < 0  # dragged right: the scene turned right, the camera went left
    assert cam.radius == 4.0 and not controls.dragging
    az, center = cam.azimuth, cam.center.copy()
    drag(controls, cam, "RMB", [(0.3, 0.5), (0.3, 0.6)])
    assert cam.azimuth == az and not np.allclose(cam.center, center)
    drag(controls, cam, "MMB", [(0.3, 0.5), (0.3, 0.6)])  # drag up: closer
    assert cam.radius < 4.0
    center = cam.center.copy()
    drag(controls, cam, "LMB", [(0.3, 0.5), (0.35, 0.55)], held=frozenset(["Shift"]))  # laptop pan
    assert cam.azimuth == az and not np.allclose(cam.center, center)


def test_drags_that_start_on_the_panel_leave_the_camera_alone():
    controls = Controls(view=Rect(0.0, 0.0, 0.7, 1.0))
    cam = make_camera()
    version = cam.version
    drag(controls, cam, "LMB", [(0.8, 0.5), (0.6, 0.5), (0.3, 0.5)])  # slider drag wandering into the view
    assert cam.version == version


def test_a_slider_drag_on_a_panel_shown_over_the_view_leaves_the_camera_alone():
    """In a 480 px window the panel (H) lies over the view; dragging its distance slider also
    orbited the camera by 47 degrees."""
    layout = Layout(480, 560, 330, 1.0)
    layout.show_panel = True  # H
    controls = Controls()
    controls.view, controls.panel = layout.input_rects()
    cam = make_camera()
    version = cam.version
    drag(controls, cam, "LMB", [(220 / 480, 0.2), (270 / 480, 0.2), (320 / 480, 0.2)])  # on the panel
    assert cam.version == version and not controls.dragging
    drag(controls, cam, "LMB", [(60 / 480, 0.5), (100 / 480, 0.5)])  # on the view left of it: orbits
    assert cam.azimuth < 0
    layout.show_panel = False  # H again: the whole window is the view's
    controls.view, controls.panel = layout.input_rects()
    azimuth = cam.azimuth
    drag(controls, cam, "LMB", [(220 / 480, 0.2), (270 / 480, 0.2)])
    assert cam.azimuth < azimuth
    wide = Layout(900, 560, 330, 1.0)
    assert wide.input_rects() == (Rect(0.0, 0.0, 570 / 900, 1.0), None)  # the panel beside the view


def test_keys_map_to_actions_zoom_and_fly():
    controls = Controls()
    cam = make_camera()
    keys = (" ", "Escape", "n", "Left", "r", "m", "c", "i", "v", "h", "k", "BackSpace")
    actions = controls.update(FrameInput(pressed=keys), cam)
    assert actions == ["toggle_pause", "quit", "next_camera", "prev_camera", "reset_view", "cycle_mode",
                       "save_checkpoint", "screenshot", "record_video", "toggle_panel", "add_keyframe",
                       "remove_keyframe"]
    controls.update(FrameInput(pressed=("z",)), cam)
    assert cam.radius == pytest.approx(4.0 / ZOOM_STEP) and controls.moved
    controls.update(FrameInput(pressed=("Down",)), cam)
    assert cam.radius == pytest.approx(4.0)
    center, forward = cam.center.copy(), -cam.pose()[:3, 2]
    controls.update(FrameInput(pressed=("w",)), cam)  # a tap (press and release between frames)
    assert np.allclose(cam.center - center, forward * FLY_TAP * 4.0)
    center = cam.center.copy()
    for _ in range(3):  # held across frames: continuous motion, slow frames capped
        controls.update(FrameInput(held=frozenset(["s"]), dt=1.0), cam)
    assert np.allclose(cam.center - center, -forward * FLY_SPEED * MAX_FLY_DT * 2 * 4.0)
    assert controls.update(FrameInput(pressed=("F13", "1")), cam) == []  # unknown keys are ignored


# --- scheduling ----------------------------------------------------------------------------
def test_the_panel_goes_to_a_resized_windows_right_edge_in_ggui_s_opening_coordinates():
    """taichi 1.7's GGUI turns a sub-window's fractions into pixels with the window's size when it
    opened: a window widened from 900 to 1000 px put a panel placed by fractions of 1000 px at
    670 x 900 / 1000 = 603 px, 297 px wide, and 560 px tall in a 640 px window."""
    layout = Layout(900, 560, 330, 1.0)
    x, y, w, h = layout.panel_placement()
    assert (x * 900, y, w * 900, h * 560) == pytest.approx((570, 0.0, 330, 560))
    layout.resize(1000, 640)  # GuiApp.resize
    x, y, w, h = layout.panel_placement()
    assert (x * 900, y, w * 900, h * 560) == pytest.approx((670, 0.0, 330, 640))  # GGUI's pixels


def test_a_window_too_narrow_for_the_panel_opens_on_the_view_and_h_lays_the_panel_over_it():
    """A 420x300 window (--window) drew the 330 px panel over most of the 284 px image, and a
    200x160 one showed the panel's right part, off its labels, over the view."""
    wide = Layout(900, 560, 330, 1.0)
    assert wide.show_panel and wide.describe("rgb")["panel"] == [570, 0, 330, 560]
    assert Layout(900, 560, 330, 1.0, show_panel=False).describe("rgb")["panel"] is None  # headless, or H
    narrow = Layout(420, 300, 330, 1.0)
    assert not narrow.show_panel and narrow.describe("rgb")["panel"] is None
    assert narrow.view_rect() == (0, 0, 420, 300)
    narrow.show_panel = True  # H: over the view, which keeps the whole window
    assert narrow.view_rect() == (0, 0, 420, 300) and narrow.describe("rgb")["panel"] == [90, 0, 330, 300]
    narrow.resize(1000, 640)  # widened past 490 px: beside the view again
    assert narrow.show_panel and narrow.view_rect() == (0, 0, 670, 640)
    narrow.resize(450, 640)  # the panel shown would cover most of the view: as a window opened so narrow
    assert not narrow.show_panel
    narrow.show_panel = True  # H
    narrow.resize(470, 640)  # no crossing: H decides
    assert narrow.show_panel
    headless = Layout(450, 300, 330, 1.0, show_panel=False)
    headless.resize(900, 600, window=False)  # no panel without a window
    assert not headless.show_panel and headless.view_rect() == (0, 0, 900, 600)
    tiny = Layout(200, 160, 330, 1.0, show_panel=True)
    assert tiny.describe("rgb")["panel"] == [0, 0, 200, 160]  # from the left edge: the labels stay in sight
    assert tiny.panel_placement()[0] == 0.0


def test_an_exit_screenshot_that_cannot_be_written_costs_the_picture_not_the_training(tmp_path):
    """gui --screenshot FILE where FILE could not be written (a disk gone at the end) failed before
    the closing save: the run kept no checkpoint of the session's training."""
    from types import SimpleNamespace

    from taichi_nerf.gui.app import GuiApp

    done = []
    (tmp_path / "blocker").write_text("")
    app = SimpleNamespace(options=SimpleNamespace(exit_screenshot=str(tmp_path / "blocker" / "shot.png")),
                          display=SimpleNamespace(to_numpy=lambda: np.zeros((4, 4, 3), np.uint8)),
                          save_unsaved=lambda: done.append("saved"),
                          write_status=lambda running: done.append(f"status running={running}"), perf=None,
                          window=SimpleNamespace(destroy=lambda: done.append("window closed")),
                          _imgui_ini_was_here=True)
    with pytest.raises(OSError):
        GuiApp.close(app)
    assert done == ["saved", "status running=False", "window closed"] and app.window is None


def test_the_pause_button_says_when_there_is_no_training_to_resume():
    """Viewing a checkpoint (gui --ckpt RUN), the first button read "Resume training (space)",
    and pressing it said that training needs --train."""
    from types import SimpleNamespace

    def first_label(paused, can_train):
        app = SimpleNamespace(schedule=SimpleNamespace(paused=paused, can_train=can_train), keyframes=[], mode="rgb")
        label, action = panel_buttons(app)[0]
        assert action == "toggle_pause"
        return label.split("##")[0]

    assert first_label(False, True) == "Pause training (space)"
    assert first_label(True, True) == "Resume training (space)"
    assert first_label(False, False) == "No training (open with --train)"


def test_m_cycles_the_modes_past_compare_without_training_views():
    """Viewing a checkpoint whose dataset has gone, M stuck at opacity: compare was refused, every press."""
    from types import SimpleNamespace

    from taichi_nerf.gui import actions

    cycles = ((object(), ["depth", "opacity", "compare", "rgb"]), (None, ["depth", "opacity", "rgb", "depth"]))
    for split, cycle in cycles:
        app = SimpleNamespace(mode="rgb", train_split=split, message="", relayout=lambda: None)
        seen = []
        for _ in range(4):
            actions.perform(app, "cycle_mode")
            seen.append(app.mode)
        assert seen == cycle


def test_training_schedule_pause_yield_and_stop():
    budgeted = TrainingSchedule()
    assert budgeted.may_train(False) and budgeted.steps_for_frame(False) is None  # the frame budget decides
    s = TrainingSchedule(steps_per_frame=3)
    assert s.steps_for_frame(camera_moving=False) == 3
    assert s.steps_for_frame(camera_moving=True) == 0  # the CPU goes to the moving preview
    s.yield_while_moving = False
    assert s.steps_for_frame(camera_moving=True) == 3
    assert s.toggle_pause() is True and s.steps_for_frame(False) == 0
    assert s.toggle_pause() is False and s.steps_for_frame(False) == 3
    assert TrainingSchedule(can_train=False).steps_for_frame(False) == 0
    s.stop_at = 10
    assert not s.reached(9)
    assert s.reached(10) and s.paused and s.steps_for_frame(False) == 0
    s.paused = False
    assert not s.reached(11)  # only once: the user may train on


class FakeBudget:
    """A frame budget that pays for ``steps`` steps (the real one measures them on the clock)."""

    def __init__(self, steps: int = 0):
        self.left, self.granted, self.forfeited, self.paid_for = steps, 0, 0, 0

    def grant(self, last_render_s):
        self.granted += 1

    def forfeit(self):
        self.forfeited += 1

    def wants_step(self):
        return self.paid_for < self.left

    def paid(self, seconds):
        self.paid_for += 1


class FakeView:
    def __init__(self):
        self.refreshed = 0

    def refresh(self):
        self.refreshed += 1


@pytest.mark.parametrize("per_frame, moving, stops_after, steps, budget_steps", [
    (3, False, None, 3, 0),  # the fixed count
    (3, True, None, 0, 0),  # the camera moves: the preview first
    (-2, False, None, 0, 0),  # never negative (the command line refuses it; the schedule holds anyway)
    (3, False, 2, 2, 0),  # a step that says stop ends the frame's training
    (None, False, None, 5, 5),  # the frame budget decides
])
def test_train_frame_takes_the_schedules_steps(per_frame, moving, stops_after, steps, budget_steps):
    from taichi_nerf.viewing.timeshare import train_frame

    schedule, budget, view, ran = TrainingSchedule(steps_per_frame=per_frame), FakeBudget(budget_steps), FakeView(), []

    def step():
        ran.append(None)
        return stops_after is None or len(ran) < stops_after

    seconds, trained = train_frame(schedule, budget, view, step, moving, 0.01)
    assert trained == len(ran) == steps
    assert seconds >= 0.0 and view.refreshed == (1 if steps else 0)
    assert budget.forfeited == (1 if steps == 0 else 0)  # a frame that may not train gives its share to rendering
    assert budget.granted == (1 if per_frame is None else 0) and budget.paid_for == budget_steps


def simulate_budget(budget: FrameBudget, step_s: float, render_s_per_frame=None, frames: int = 400,
                    present_s: float = 0.01):
    """Frames of a window whose training steps take ``step_s`` and whose composing and presenting
    take ``present_s``; returns (steps per frame, train s, render s)."""
    steps, train, render, last_render = [], 0.0, 0.0, 0.0
    for _ in range(frames):
        budget.grant(last_render)
        n, spent = 0, 0.0
        while budget.wants_step():
            budget.paid(step_s)
            n, spent = n + 1, spent + step_s
        last_render = budget.render_s(spent) if render_s_per_frame is None else render_s_per_frame
        budget.frame_done(spent + last_render + present_s, spent + last_render)
        steps.append(n)
        train, render = train + spent, render + last_render
    return steps, train, render


def test_frame_budget_shares_time_and_keeps_frames_short_with_slow_steps():
    fast = FrameBudget(frame_s=0.09, train_share=0.5)
    steps, train, render = simulate_budget(fast, 0.01)
    assert fast.work_s() == pytest.approx(0.08, abs=1e-3)  # the measured 10 ms overhead is left out
    assert 3 <= np.median(steps) <= 5  # ~40 ms of training per frame in 10 ms steps
    assert train / (train + render) == pytest.approx(0.5, abs=0.07)
    slow = FrameBudget(frame_s=0.09, train_share=0.5)
    steps, train, render = simulate_budget(slow, 0.2)  # a step longer than two frames
    assert max(steps) == 1 and np.median(steps) == 0  # most frames render only: the window keeps its rate
    assert train / (train + render) == pytest.approx(0.5, abs=0.1)  # ...and training still gets its share
    overrun = FrameBudget(frame_s=0.09, train_share=0.5)
    _, train, render = simulate_budget(overrun, 0.05, render_s_per_frame=0.3)  # rendering overruns its part
    assert train / (train + render) == pytest.approx(0.5, abs=0.1)  # training is not starved


def test_a_slow_display_still_leaves_the_work_half_of_each_frame():
    """Presenting takes 150 ms a frame under Xvfb with lavapipe, twice the 80 ms target: the
    work used to shrink to the 15 ms floor (a tenth of the time; a video at a row a frame)."""
    budget = FrameBudget(frame_s=0.08, train_share=0.5)
    _, train, render = simulate_budget(budget, 0.01, present_s=0.15)
    wall = train + render + 400 * 0.15
    assert budget.work_s() == pytest.approx(0.15) and (train + render) / wall >= 0.45
    assert train / (train + render) == pytest.approx(0.5, abs=0.07)  # the split between the two holds
    assert budget.period_s() == pytest.approx(0.15 + budget.work_s(), rel=0.05)
    quick = FrameBudget(frame_s=0.08, train_share=0.5)
    simulate_budget(quick, 0.01, present_s=0.005)  # a real GPU: the target period holds
    assert quick.work_s() == pytest.approx(0.075, abs=2e-3) and quick.period_s() == pytest.approx(0.08)


def test_frame_budget_ignores_the_compiling_first_step_and_caps_outliers():
    b = FrameBudget(frame_s=0.09, train_share=0.5)
    b.grant()
    assert b.wants_step()  # the first step, of unknown cost, runs
    b.paid(5.0)  # kernels compiled
    assert b.credit_s == 0.0 and b.step_s.value is None
    for _ in range(3):
        b.grant()
        while b.wants_step():
            b.paid(0.02)
    b.grant()
    b.paid(10.0)  # a validation pass: counted as at most three usual steps
    assert b.step_s.value < 0.05 and b.credit_s >= -0.061
    b.forfeit()
    assert b.credit_s <= 0.0


def run_until_complete(p: ProgressiveResolution, rows_per_frame: int, limit: int = 100) -> list[Band]:
    bands = []
    while not p.complete and len(bands) < limit:
        band = p.next_band(rows_per_frame)
        bands.append(band)
        p.finish(band)
    return bands


def test_progressive_refinement_reaches_full_resolution_and_restarts_low_on_motion():
    p = ProgressiveResolution(100, 60, divisors=(4, 2, 1))
    assert [p.size(k) for k in range(3)] == [(25, 15), (50, 30), (100, 60)]
    first = p.next_band(2)
    assert first == Band(0, 0, 15)  # the coarsest level comes whole, whatever the budget
    p.finish(first)
    assert p.shown == 0 and not p.complete
    bands = run_until_complete(p, 8)
    assert p.complete and p.shown == 2 and p.next_band(8) is None
    assert sum(b.row1 - b.row0 for b in bands if b.level == 2) == 60  # every full-resolution row, once
    assert [b.level for b in bands] == sorted(b.level for b in bands)
    p.restart()  # the camera moved
    assert p.next_band(8) == Band(0, 0, 15) and p.shown == -1
    run_until_complete(p, 8)
    p.refresh()  # training changed the field: redo full resolution over the shown image
    assert p.shown == 2 and p.next_band(8) == Band(2, 0, 8)
    stale = p.next_band(8)
    p.restart()
    p.finish(stale)  # a band from before the restart is ignored
    assert p.level == 0 and p.rows_done == 0


def test_progressive_limit_keeps_a_training_view_fresh_then_refines_on():
    p = ProgressiveResolution(100, 60, divisors=(4, 2, 1))
    p.set_limit(1)  # training: level 1 is what can be redone in a few seconds
    bands = run_until_complete(p, 8)
    assert p.complete and p.shown == 1 and {b.level for b in bands} == {0, 1}
    p.refresh()  # a training step: level 1 again, over the picture shown
    assert p.next_band(8) == Band(1, 0, 8)
    run_until_complete(p, 8)
    p.set_limit(None)  # paused: on to full resolution, from the level shown
    assert not p.complete and p.next_band(8) == Band(2, 0, 8)
    run_until_complete(p, 8)
    assert p.complete and p.shown == 2
    p.set_limit(0)  # training again: the next refresh redoes the coarse level over the sharp one,
    p.refresh()  # in bands like any refresh (only a fresh view comes whole: nothing to draw under it)
    assert p.next_band(8) == Band(0, 0, 8)
    run_until_complete(p, 8)
    assert p.shown == 0 and p.complete


def test_progressive_refresh_from_below_redoes_the_level_below_hidden_then_the_target():
    p = ProgressiveResolution(100, 60, divisors=(4, 2, 1))
    run_until_complete(p, 8)
    p.refresh(from_below=True)
    assert p.refreshing and p.hidden and p.next_band(8) == Band(1, 0, 8)
    bands = run_until_complete(p, 8)
    assert [b.level for b in bands] == [1] * 4 + [2] * 8  # all of level 1, then all of level 2
    assert p.complete and p.shown == 2 and not p.refreshing and not p.hidden
    p.set_limit(0)  # from below needs a level below: the coarsest is redone alone
    p.refresh(from_below=True)
    assert not p.from_below and p.next_band(8) == Band(0, 0, 8)
    p.restart()
    assert not p.refreshing


def test_progressive_single_level_and_resize():
    p = ProgressiveResolution(40, 30, divisors=(1,))
    band = p.next_band(1)
    assert band == Band(0, 0, 30)
    p.finish(band)
    assert p.complete
    p.resize(80, 60)
    assert not p.complete and p.size(0) == (80, 60)


def test_dynamic_resolution_picks_a_coarser_preview_for_a_slower_render():
    p = ProgressiveResolution(100, 100)
    assert not p.retarget(1e-4, 0.1)  # 25x25 takes ~0.06 s: the default levels fit
    assert p.retarget(5e-4, 0.1) and p.divisors == (8, 4, 2, 1)  # 5x slower: one level coarser
    assert p.size(0) == (13, 13) and p.size(p.top) == (100, 100) and p.shown == -1
    p.retarget(1.0, 0.1)
    assert p.divisors[0] == 8  # capped: the coarsest level keeps 8 pixels across
    big = ProgressiveResolution(774, 774)  # a full-canvas view on a slow machine
    big.retarget(1.0, 0.1)
    assert big.divisors[0] == 64 and big.size(0) == (13, 13)
    p.retarget(1e-7, 0.1)
    assert p.divisors == (1,)  # fast enough for full resolution while moving


def test_render_cost_sizes_bands_by_what_their_rows_cost():
    cost = RenderCost(bins=4)
    assert not cost.measured and cost.rows_within(1.0, 10, 100, 0) == 100  # unmeasured: 1e-4 s a pixel
    cost.add(0.0, 0.5, 500, 0.005)  # the top half: empty space, 10 us a pixel
    cost.add(0.5, 1.0, 500, 0.02)  # the bottom half: the object, 40 us a pixel
    assert cost.measured and cost.per_pixel == pytest.approx(25e-6)
    assert cost.seconds(10, 100) == pytest.approx(0.025)
    assert cost.seconds(10, 100, 50, 60) == pytest.approx(0.004)
    # The same budget buys 4x the rows in empty space, and a band never runs past its budget.
    assert cost.rows_within(0.002, 10, 100, 0) == 20
    assert cost.rows_within(0.002, 10, 100, 50) == 5
    assert cost.rows_within(0.002, 10, 100, 45) == 8  # 5 cheap rows, then 3 dear ones
    assert cost.seconds(10, 100, 45, 53) <= 0.002 < cost.seconds(10, 100, 45, 54)
    assert cost.rows_within(1e-6, 10, 100, 0) == 0
    assert cost.rows_within(1.0, 10, 100, 90) == 10  # no further than the picture
    cost.add(0.5, 1.0, 500, 0.005)  # the object left the bottom half: its strips follow
    assert cost.seconds(10, 100, 50, 100) < 0.02


def test_render_cost_is_by_position_in_the_picture_at_any_resolution():
    cost = RenderCost(bins=8)
    cost.add(0.25, 0.5, 250, 0.01)  # measured at one level...
    assert cost.seconds(20, 200, 50, 100) == pytest.approx(1000 * 40e-6)  # ...predicts another
    assert cost.seconds(20, 200, 0, 50) == pytest.approx(1000 * 40e-6)  # unmeasured strips: the mean


def test_rows_for_pixels_counts_whole_rows_and_only_the_rendered_pixels_of_sparse_ones():
    from taichi_nerf.viewing.schedule import rows_for_pixels

    assert rows_for_pixels(4096, 256, 256, 0) == 16
    assert rows_for_pixels(4097, 256, 256, 0) == 17
    assert rows_for_pixels(4096, 256, 256, 250) == 6  # no further than the picture
    assert rows_for_pixels(1, 256, 256, 0) == 1
    sparse = np.array([0, 0, 10, 0, 30, 5, 0, 100])  # pixels rendered in each row
    assert rows_for_pixels(40, 8, 8, 0, sparse) == 5  # rows 0-4 hold 10 + 30
    assert rows_for_pixels(41, 8, 8, 0, sparse) == 6
    assert rows_for_pixels(1000, 8, 8, 3, sparse) == 5  # all the rest
    cost = RenderCost()  # unmeasured: 1e-4 s a pixel
    assert cost.first_band_rows(1e-6, 256, 256, 0) == 8  # the floor: 2048 pixels, though the budget buys none
    assert cost.first_band_rows(1.0, 256, 256, 0) == cost.rows_within(1.0, 256, 256, 0) == 39  # the budget


class ClockedRenderer:
    """Takes ``fixed_s`` + ``per_pixel_s`` a pixel of a fake clock: a band's launch cost and its pixels."""

    def __init__(self, clock: list, fixed_s: float, per_pixel_s: float):
        import types

        self.clock, self.fixed_s, self.per_pixel_s = clock, fixed_s, per_pixel_s
        self.scene = types.SimpleNamespace(ndc=True, forward_facing=True)  # no near/far moving
        self.bands = []

    def render_pixels(self, pose, intr, image, width, start, count, background, samples_per_ray=None, pixels=None):
        import torch

        n = count if pixels is None else pixels.numel()
        self.clock[0] += self.fixed_s + self.per_pixel_s * n
        self.bands.append(n)
        return {"rgb": torch.zeros(n, 3), "depth": torch.zeros(n), "opacity": torch.zeros(n)}


def test_a_tight_budget_still_refines_in_bands_worth_their_fixed_cost(monkeypatch):
    """Under load a frame's render budget can be smaller than one band's fixed cost. Charging that
    cost to a band's few pixels had made each next band smaller, down to one row a frame."""
    import types

    import torch

    from taichi_nerf.viewing import view as view_module
    from taichi_nerf.viewing.schedule import MIN_BAND_PIXELS

    clock = [0.0]
    monkeypatch.setattr(view_module.time, "perf_counter", lambda: clock[0])
    renderer = ClockedRenderer(clock, fixed_s=0.004, per_pixel_s=10e-6)
    view = view_module.ProgressiveView(renderer, torch.ones(3), (256, 256), 32, 32, divisors=(4, 1), flat_range=0.0)
    camera = types.SimpleNamespace(pose=lambda: np.eye(4, dtype=np.float32),
                                   intrinsics=lambda w, h: np.array([w, w, w / 2, h / 2], dtype=np.float32),
                                   eye=np.zeros(3))
    view.restart()
    frames = 0
    while view.progressive.working and frames < 1000:
        view.refine(camera, budget_s=0.005)  # one row of 256 pixels would cost 6.6 ms: over budget
        frames += 1
    assert not view.progressive.working and frames <= 1 + 256 * 256 // MIN_BAND_PIXELS  # 33, not ~257
    assert min(renderer.bands[1:]) >= MIN_BAND_PIXELS
    # the fixed cost shared by 2048 pixels barely moves the estimate per pixel
    assert view.cost.per_pixel == pytest.approx(10e-6 + 0.004 / MIN_BAND_PIXELS, rel=0.05)


# --- keyframes and gui.jsonl ---------------------------------------------------------------
def test_keyframes_save_a_camera_path_that_render_reads_back(tmp_path):
    from taichi_nerf.outputs.camera_path import load_camera_path
    from taichi_nerf.viewing.keyframes import Keyframes

    scene = Scene(near=2.0, far=6.0, aabb=[-1.5] * 3 + [1.5] * 3, center=[0.0, 0.0, 0.0], orbit_radius=4.0,
                  orbit_elevation_deg=30.0, fov_x=0.69, aspect=1.25, up=[0.0, 0.0, 1.0])
    cam = OrbitCamera.from_scene(scene)
    keys = Keyframes(scene)
    views = []
    for d_az in (0.0, 0.8, 0.9):
        cam.orbit(d_az, 0.05)
        keys.add(cam, 40, 32)
        views.append(cam.pose())
    assert len(keys) == 3
    path = keys.save(tmp_path, frames=7, width=40, height=32, fps=12.0)
    route = load_camera_path(path, scene)  # what `taichi-nerf render --path` reads
    assert route.frames == 7 and (route.width, route.height) == (40, 32) and route.fps == 12.0
    assert np.allclose(route.poses[0].numpy(), views[0], atol=1e-5)  # the path starts and ends on the keyframes
    assert np.allclose(route.poses[-1].numpy(), views[-1], atol=1e-5)
    assert np.allclose(route.intrinsics[0, :4].numpy(), cam.intrinsics(40, 32)[:4], rtol=1e-4)  # same field of view
    radius = np.linalg.norm(route.poses[:, :3, 3].numpy(), axis=1)
    assert np.allclose(radius, 4.0, atol=1e-3)  # between orbit views the path keeps their distance
    for pose in route.poses.numpy():  # and looks at the scene (rotations slerp apart from the positions)
        forward = -pose[:3, 2]
        assert forward @ (-pose[:3, 3] / np.linalg.norm(pose[:3, 3])) > 0.99  # slerp: within ~8 degrees
    assert keys.remove_last() and len(keys) == 2
    keys.remove_last(), keys.remove_last()
    assert not keys.remove_last()
    assert keys.save(tmp_path, 7, 40, 32, 12.0) is None and not path.exists()  # no keyframes, no file


def test_performance_log_writes_strict_json_once_a_second(tmp_path, monkeypatch):
    import json

    from taichi_nerf.viewing import perflog

    log = perflog.WindowLog(tmp_path / "gui.jsonl")
    t0 = log.start
    state = {"width": 10, "height": 8, "full_width": 40, "full_height": 32, "complete": False}
    for k in range(1, 26):  # 25 frames of 0.1 s: 40 ms rendering, 50 ms one training step
        log.frame(t0 + 0.1 * k, k, steps=1, train_s=0.05, render_s=0.04, state=state)
    log.close()
    lines = (tmp_path / "gui.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}")) for line in lines]
    assert len(rows) == 2 and [r["time_s"] for r in rows] == pytest.approx([1.0, 2.0])
    assert rows[1]["fps"] == pytest.approx(10.0) and rows[1]["render_ms"] == pytest.approx(40.0)
    assert rows[1]["train_steps_per_s"] == pytest.approx(10.0) and rows[1]["step"] == 20
    assert perflog.read(tmp_path / "gui.jsonl") == rows


# --- command line errors: one clear line, before any data is loaded ------------------------
@pytest.mark.parametrize("argv, message", [
    (["gui"], "no X display"),
    (["gui", "--headless"], "--headless has no window to close"),
    (["gui", "--headless", "--seconds", "0"], "--seconds must be positive"),
    (["gui", "--turn-every", "0"], "--turn-every must be positive"),
    (["gui", "--train"], "--train continues a checkpoint"),
    (["gui", "--window", "big"], "--window must look like"),
    (["gui", "--headless", "--frames", "2", "--window", "100000x100000"], "at most 8192 pixels a side"),
    (["gui", "--headless", "--frames", "0"], "--frames must be at least 1"),
    (["gui", "--headless", "--frames", "2", "--render-scale", "100"], "--render-scale must be above 0"),
    (["gui", "--headless", "--frames", "2", "--render-scale", "0"], "--render-scale must be above 0"),
    (["gui", "--ckpt", "runs/x", "--data", "d"], "give one of them"),
    (["gui", "--ckpt", "runs/x", "--steps", "5", "--out", "o"], "so --steps, --out would change nothing"),
    (["gui", "--ckpt", "runs/x", "--overwrite"], "so --overwrite would change nothing"),
    (["gui", "--ckpt", "runs/x", "--train", "--out", "o", "--config", "c.json"], "drop --out and --config"),
    (["gui", "--out", "unused"], "browser viewer (taichi-nerf gui --web"),
    (["gui", "--out", "unused", "--display", ":77"], "cannot open the X display ':77'"),
])
def test_gui_command_line_errors(argv, message, monkeypatch, capsys, tmp_path):
    from taichi_nerf import cli

    monkeypatch.chdir(tmp_path)  # nothing may be written, here or anywhere
    argv = list(argv)
    monkeypatch.delenv("DISPLAY", raising=False)
    if "--display" in argv:  # an X server that does not answer: a display no server here holds
        from pathlib import Path

        # (an Xvfb :77 of another process on this machine once answered, and the window trained for 10 minutes)
        free = next(n for n in range(77, 1000)
                    if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists())
        monkeypatch.setenv("DISPLAY", f":{free}")
        message = message.replace(argv.pop(argv.index("--display") + 1), f":{free}")
        argv.remove("--display")
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


# --- the loop and signals ------------------------------------------------------------------
def test_ctrl_c_ends_the_loop_between_frames_then_saves():
    """A Ctrl-C during a frame lets that frame finish (stopping inside a GGUI call can leave
    its frame open, and closing the window then may hang); the loop then closes, which
    saves, returns 130 and puts the previous handlers back. (The loop only: frame() and
    close() are stand-ins here; tests/test_gui_headless.py runs the real ones.)"""
    import os
    import signal

    from taichi_nerf.gui.app import GuiApp, GuiOptions

    app = GuiApp.__new__(GuiApp)  # no window, renderer or trainer: only run()'s loop
    app.window, app.options = object(), GuiOptions(headless=True)
    app.quit_requested, app.idle, app.frame_index = False, False, 0
    events = []

    def frame(_inp):
        app.frame_index += 1
        events.append(f"start {app.frame_index}")
        if app.frame_index == 3:
            os.kill(os.getpid(), signal.SIGINT)
        events.append(f"end {app.frame_index}")

    app.frame, app.close = frame, lambda: events.append("close")
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert app.run() == 130
    assert events == ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3", "close"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_video_says_training_waits_only_where_something_trains(monkeypatch, tmp_path):
    """Viewing a checkpoint (gui --ckpt RUN) or paused, V said "(training waits)"."""
    from types import SimpleNamespace

    from taichi_nerf.viewing import actions

    monkeypatch.setattr(actions, "VideoRecorder", lambda *args, **kwargs: SimpleNamespace(frames=36))
    for trainer, paused, says in ((object(), False, True), (object(), True, False), (None, False, False)):
        app = SimpleNamespace(video_job=None, keyframes=[], message="", trainer=trainer, step=7, out_dir=tmp_path,
                              schedule=SimpleNamespace(paused=paused), renderer=None, background=None,
                              options=SimpleNamespace(video_frames=36, video_width=None),
                              train_split=SimpleNamespace(width=64), scene=SimpleNamespace(aspect=1.0))
        actions.start_video(app)
        assert app.message == "recording 36 frames of the orbit" + (" (training waits)" if says else "")


def test_v_again_cancels_a_recording_and_closing_mid_video_says_it_is_lost():
    from types import SimpleNamespace

    from taichi_nerf.viewing import actions

    restarts = []
    job = SimpleNamespace(frame=3, frames=36)
    app = SimpleNamespace(video_job=job, message="", trainer=object(), schedule=SimpleNamespace(paused=False),
                          view=SimpleNamespace(progressive=SimpleNamespace(restart=lambda: restarts.append(1))))
    assert actions.dropped_video_note(app) == ("the video being recorded (3 of 36 frames done) was dropped; "
                                               "record it again")
    actions.start_video(app)
    assert app.video_job is None and restarts
    assert app.message == "video cancelled at frame 4 of 36; training goes on"
    assert actions.dropped_video_note(app) is None
    # Paused, or viewing a checkpoint (gui --ckpt RUN), nothing trains on: the message said it did.
    for trainer, paused in ((object(), True), (None, False)):
        app.video_job, app.trainer, app.schedule.paused = job, trainer, paused
        actions.start_video(app)
        assert app.message == "video cancelled at frame 4 of 36", (trainer, paused)


def test_a_recording_renders_more_than_a_frame_budget_sliver():
    """The window's work time can be 15 ms a frame; a video got one row of it (50 s a frame)."""
    from types import SimpleNamespace

    from taichi_nerf.viewing import actions

    asked = []
    job = SimpleNamespace(width=100, height=100, row=0, done=False, frame=0, frames=36,
                          advance=lambda rows: asked.append(rows))
    cost = RenderCost()  # unmeasured: 1e-4 s a pixel, 10 ms a row of 100
    app = SimpleNamespace(video_job=job, message="", view=SimpleNamespace(cost=cost))
    actions.advance_video(app, 0.015)
    actions.advance_video(app, 0.6)
    actions.advance_video(app, None)  # nobody watching: the rest at once
    assert asked == [int(actions.VIDEO_FRAME_S / 0.01), 60, None]


def test_the_panels_fixed_lines_fit_its_width():
    """GGUI's panel does not wrap: at the default 330 px a line longer than ~44 characters is cut
    off (the view line was, "(coarse while training)"), 43 once a short window adds the scrollbar
    (the help's "I: screenshot" was, under Xvfb at 1000x700)."""
    from taichi_nerf.gui.controls import HELP_LINES
    from taichi_nerf.gui.panel import PANEL_CHARS

    assert PANEL_CHARS <= 43
    assert max(len(line) for line in HELP_LINES) <= PANEL_CHARS


def test_a_screenshot_never_replaces_an_earlier_session_s(tmp_path):
    """Screenshots were named by the step and a count from 0 each session: a second look at a checkpoint (the same
    step) wrote over the first session's gui_step002215_000.png."""
    from types import SimpleNamespace

    from taichi_nerf.gui.actions import save_screenshot

    def session():
        return SimpleNamespace(out_dir=tmp_path, step=2215, options=SimpleNamespace(headless=True), window=None,
                               display=SimpleNamespace(to_numpy=lambda: np.zeros((4, 4, 3), np.float32)),
                               counts={"screenshots": 0}, last_saved={})
    saved = [save_screenshot(session()).name for _ in range(2)] + [save_screenshot(session()).name]
    assert saved == ["gui_step002215_000.png", "gui_step002215_001.png", "gui_step002215_002.png"]
    assert sorted(p.name for p in (tmp_path / "screenshots").iterdir()) == saved


def test_a_save_on_the_way_out_that_fails_says_which_step_was_lost():
    """Esc with the run folder gone (replaced by a file) said only "error: RUN: File exists": not that the steps
    since the last save were lost."""
    import errno
    from types import SimpleNamespace

    from taichi_nerf.viewing.session import TrainingSession

    def save_checkpoint():
        raise OSError(errno.EEXIST, "File exists", "/runs/gui")
    app = SimpleNamespace(prefix="taichi-nerf gui", video_job=None, keep_going=None, saved_step=300,
                          trainer=SimpleNamespace(step_count=417, save_checkpoint=save_checkpoint))
    with pytest.raises(OSError) as raised:
        TrainingSession.save_unsaved(app)
    assert str(raised.value) == "[Errno 17] File exists; step 417 was not saved (the last saved was step 300): " \
                                "'/runs/gui'"
