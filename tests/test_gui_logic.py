"""The GUI's plain-Python logic: camera maths, input mapping, training and refinement
scheduling. No window, no Taichi kernels."""
import math

import numpy as np
import pytest

from taichi_nerf import cameras
from taichi_nerf.gui.camera import MAX_ELEVATION, OrbitCamera
from taichi_nerf.gui.controls import FLY_SPEED, FLY_TAP, MAX_FLY_DT, ZOOM_STEP, Controls, FrameInput, Rect
from taichi_nerf.gui.schedule import Band, ProgressiveResolution, TrainingSchedule
from taichi_nerf.scene import Scene

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


def test_keys_map_to_actions_zoom_and_fly():
    controls = Controls()
    cam = make_camera()
    actions = controls.update(FrameInput(pressed=(" ", "Escape", "n", "Left", "r", "m", "c", "i", "v", "h")), cam)
    assert actions == ["toggle_pause", "quit", "next_camera", "prev_camera", "reset_view", "cycle_mode",
                       "save_checkpoint", "screenshot", "record_video", "toggle_panel"]
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
def test_training_schedule_pause_yield_and_stop():
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
    assert p.divisors[0] == 16  # capped
    p.retarget(1e-7, 0.1)
    assert p.divisors == (1,)  # fast enough for full resolution while moving


# --- command line errors: one clear line, before any data is loaded ------------------------
@pytest.mark.parametrize("argv, message", [
    (["gui"], "no X display"),
    (["gui", "--headless"], "--headless has no window to close"),
    (["gui", "--train"], "--train continues a checkpoint"),
    (["gui", "--window", "big"], "--window must look like"),
])
def test_gui_command_line_errors(argv, message, monkeypatch, capsys):
    from taichi_nerf import cli

    monkeypatch.delenv("DISPLAY", raising=False)
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
