"""The rendering the GUI shares with the rest of the tool: rows of a camera through
Renderer.render_pixels, and the orbit video recorded a band at a time (video.VideoRecorder)."""
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from taichi_nerf.config import TrainConfig
from taichi_nerf.outputs.video import VideoRecorder, write_orbit
from taichi_nerf.rendering.renderer import Renderer
from taichi_nerf.rendering.scene import Scene, orbit_cameras

from .conftest import ARCH, torch_seeded


def small_renderer(device) -> Renderer:
    scene = Scene(aabb=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], near=2.0, far=6.0, center=[0.0, 0.0, 0.0],
                  up=[0.0, 0.0, 1.0], orbit_radius=4.0, orbit_elevation_deg=30.0, fov_x=0.7, aspect=1.25)
    cfg = TrainConfig(width=16, depth=2, pos_frequencies=4, dir_frequencies=2, sampler="stratified", samples_per_ray=16,
                      arch=ARCH, density_bias=2.0)
    with torch_seeded(0):  # the field's first weights
        return Renderer.from_config(cfg, scene, device)


def test_rows_of_a_camera_are_the_rows_of_its_image(device):
    renderer = small_renderer(device)
    poses, intr, width, height = orbit_cameras(renderer.scene, 3, 20)
    bg = torch.tensor([[0.2, 0.4, 0.6]])
    whole = renderer.render_image(poses, intr, 1, width, height, bg)
    assert whole["opacity"].max() > 0.05  # the field is not empty, so the comparison means something
    # rows 5..11 of camera 1, in chunks that straddle row boundaries
    rows = renderer.render_pixels(poses, intr, 1, width, 5 * width, 7 * width, bg, chunk=13)
    for key in ("rgb", "opacity", "depth"):
        assert torch.allclose(rows[key].view(7, width, -1).squeeze(-1), whole[key][5:12], atol=1e-5), key
    other = renderer.render_pixels(poses, intr, 2, width, 5 * width, 7 * width, bg)
    assert not torch.allclose(other["rgb"], rows["rgb"], atol=1e-3)  # the camera index is honoured
    # scattered pixels of camera 1, in chunks smaller than the list
    picked = torch.randperm(width * height, generator=torch.Generator().manual_seed(0))[:57]
    scattered = renderer.render_pixels(poses, intr, 1, width, 0, 0, bg, chunk=16, pixels=picked)
    for key in ("rgb", "opacity", "depth"):
        flat = whole[key].reshape(width * height, -1).squeeze(-1)
        assert torch.allclose(scattered[key], flat[picked.to(flat.device)], atol=1e-5), key


def test_a_chunk_is_a_whole_number_of_rays(device):
    """render_pixels' chunk of 0 died in range() ("arg 3 must not be zero"), and 100.0 in it too ("'float' object
    cannot be interpreted as an integer"): 0 is refused in one line, a whole-number float is taken."""
    renderer = small_renderer(device)
    poses, intr, width, height = orbit_cameras(renderer.scene, 1, 8)
    bg = torch.tensor([[0.2, 0.4, 0.6]])
    with pytest.raises(ValueError, match="^chunk must be a whole number of at least 1, got 0$"):
        renderer.render_pixels(poses, intr, 0, width, 0, 10, bg, chunk=0)
    rows = renderer.render_pixels(poses, intr, 0, width, 0, 10, bg, chunk=4.0)
    assert torch.allclose(rows["rgb"], renderer.render_pixels(poses, intr, 0, width, 0, 10, bg, chunk=4)["rgb"])


def test_orbit_recorded_in_bands_matches_the_whole_frames(device, tmp_path):
    renderer = small_renderer(device)
    whole = VideoRecorder(renderer, tmp_path / "a.mp4", frames=2, width=16)
    banded = VideoRecorder(renderer, tmp_path / "b.mp4", frames=2, width=16)
    while not whole.done:
        whole.advance()
    calls = 0
    while not banded.done:
        banded.advance(3)  # 13 rows: bands of 3, the last of 1
        calls += 1
    assert calls == 2 * 5 and banded.height == 13
    assert np.abs(np.stack(whole.rgb_frames).astype(int) - np.stack(banded.rgb_frames).astype(int)).max() <= 1
    assert np.abs(np.stack(whole.depth_frames).astype(int) - np.stack(banded.depth_frames).astype(int)).max() <= 1
    written = write_orbit(renderer, tmp_path / "orbit.mp4", frames=2, width=16, progress=False)
    assert [p.name for p in written] == ["orbit.mp4", "orbit_depth.mp4", "orbit.gif"]
    gif = iio.imread(tmp_path / "orbit.gif", index=None)
    assert gif.shape[:3] == (2, 13, 16)
    assert np.abs(gif[..., :3].astype(int) - np.stack(whole.rgb_frames).astype(int)).max() <= 2


def test_finer_levels_render_only_where_the_coarser_level_varies_and_never_show_a_stale_pixel(device):
    """Adaptive refinement (viewing/view.py): the full level renders only pixels whose coarser
    neighbourhood is not flat and interpolates the rest, close to rendering every pixel;
    a refresh from below after the field changed leaves nothing of the old field."""
    from taichi_nerf.gui.camera import OrbitCamera
    from taichi_nerf.viewing.view import ProgressiveView

    renderer = small_renderer(device)
    camera = OrbitCamera.from_scene(renderer.scene)
    bg = torch.tensor([1.0, 1.0, 1.0])
    rendered = []
    plain_render = renderer.render_pixels

    def counted(*args, **kwargs):
        out = plain_render(*args, **kwargs)
        rendered.append(out["rgb"].shape[0])
        return out

    renderer.render_pixels = counted

    def refined(flat_range: float, view: ProgressiveView | None = None) -> ProgressiveView:
        view = view or ProgressiveView(renderer, bg, (96, 80), 16, 16, divisors=(4, 2, 1), flat_range=flat_range)
        rendered.clear()
        while view.refine(camera, None):
            pass
        assert view.progressive.complete
        return view

    exact = refined(0.0)
    exact_pixels = sum(rendered)
    adaptive = refined(0.05)
    assert exact_pixels == 24 * 20 + 48 * 40 + 96 * 80
    assert 0.05 < adaptive.need_fraction[2] < 0.7  # both kinds of pixel occur
    assert sum(rendered) < 0.8 * exact_pixels
    a, b = adaptive.levels[2]["rgb"], exact.levels[2]["rgb"]
    assert (a - b).abs().max() < 0.06 and (a - b).abs().mean() < 0.005
    assert (adaptive.levels[2]["opacity"] - exact.levels[2]["opacity"]).abs().max() < 0.06

    with torch.no_grad():  # the field changes (training): every colour moves by ~0.1-0.2
        renderer.field.color.bias += 1.0
    adaptive.progressive.refresh(from_below=True)
    assert adaptive.plan_for(adaptive.progressive.level) is None  # the hidden level below is redone whole
    refined(0.05, adaptive)
    assert adaptive.progressive.shown == 2 and not adaptive.progressive.refreshing
    fresh = refined(0.0).levels[2]["rgb"]
    assert (adaptive.levels[2]["rgb"] - fresh).abs().max() < 0.06  # no pixel kept the old colours
    assert (exact.levels[2]["rgb"] - fresh).abs().mean() > 0.05  # ...which differ


def test_a_level_shown_within_a_millisecond_records_when_not_zero(device, monkeypatch):
    """gui.jsonl's ``refined_after_s``: a GPU shows a small view's coarse level well under 1 ms after
    the camera moved; that time is written as measured, never rounded to 0 (which reads as "before")."""
    import time

    from taichi_nerf.gui.camera import OrbitCamera
    from taichi_nerf.viewing.view import ProgressiveView

    renderer = small_renderer(device)
    camera = OrbitCamera.from_scene(renderer.scene)
    view = ProgressiveView(renderer, torch.ones(3), (24, 20), 16, 16, divisors=(2, 1))
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(time, "perf_counter", lambda: 0.00005 * next(ticks))  # 0.05 ms a reading
    view.restart()
    while view.refine(camera, None):
        pass
    times = [view.refined_after_s[size] for size in ("12x10", "24x20")]
    assert 0 < times[0] <= times[1] < 0.01, view.refined_after_s


def test_a_path_further_out_than_the_training_cameras_still_shows_the_scene(device, tmp_path):
    """A camera path 9 units out, where the training cameras (near 2, far 6) were 4: rays were cut
    at far 6, before the box, so `render --path` wrote a video of the background alone (and a
    black depth video) while the window, which moves near/far with its camera, showed the object."""
    from taichi_nerf.stages.cameras import orbit_poses

    renderer = small_renderer(device)
    poses = orbit_poses(2, 9.0, 30.0)
    intr = torch.tensor([[50.0, 50.0, 8.0, 8.0, 0, 0, 0, 0]] * 2)
    recorder = VideoRecorder(renderer, tmp_path / "far.gif", 0, 16, cameras=(poses, intr, 16, 16))
    while not recorder.done:
        recorder.advance()
    for rgb, depth in zip(recorder.rgb_frames, recorder.depth_frames):
        assert np.abs(rgb[6:10, 6:10].astype(int) - 255).max() > 20  # the box's centre is not the white background
        shown = depth.reshape(-1, 3)[depth.reshape(-1, 3).sum(1) > 0]
        assert len(shown) > 20 and len(np.unique(shown, axis=0)) > 5  # a depth picture, not one flat colour
    assert renderer.scene.far == 6.0  # the renderer itself is left as it was


def test_a_video_widens_near_far_for_its_camera_and_never_narrows_them():
    """Videos move near/far with each camera (the window does too), but only outwards: an unbounded
    scene's orbit radius is its cameras' median distance, and a training camera beyond it had its
    near raised by the difference, cutting what that camera saw in front of it from `render --path
    train` (and the default video of a partial-arc capture)."""
    from taichi_nerf.rendering.scene import Scene, seen_from

    scene = Scene(near=0.05, far=40.0, aabb=[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], orbit_radius=3.0, unbounded=True)
    for eye, near, far in (((4.5, 0.0, 0.0), 0.05, 41.5), ((1.5, 0.0, 0.0), 1e-2, 40.0)):
        widened = seen_from(scene, eye, widen=True)
        assert (widened.near, widened.far) == pytest.approx((near, far)), eye
    window = seen_from(scene, (4.5, 0.0, 0.0))  # the window's view keeps its shift: near 1.55
    assert (window.near, window.far) == pytest.approx((1.55, 41.5))
