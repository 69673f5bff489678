"""Depth images show structure for box, NDC and unbounded scenes (issue 24).

Frames are rendered by the real renderer (rays, NDC, contraction, marching, compositing)
from a field whose density is a known shape, so the depth in every pixel is decided by the
geometry and not by how well a network trained."""
import math

import numpy as np
import torch

from taichi_nerf.outputs.depth_view import contracted_distance, depth_colors, depth_kind, display_depth
from taichi_nerf.rendering.renderer import Renderer
from taichi_nerf.rendering.scene import Scene
from taichi_nerf.stages import cameras
from taichi_nerf.stages.encoding import HarmonicSpec
from taichi_nerf.stages.occupancy import OccupancyGrid

SIZE = 32


class ShapeField(torch.nn.Module):
    """Density 60 inside ``inside(points)`` (field-space points: world, contracted or NDC),
    0 elsewhere; grey colour. Takes the raw position as its whole encoding."""

    pos_dim = 3

    def __init__(self, inside):
        super().__init__()
        self.inside = inside

    def forward(self, encoded, raw_noise=None, codes=None):
        p = encoded[:, :3]
        sigma = 60.0 * self.inside(p).float()
        return sigma, torch.full((p.shape[0], 3), 0.5)


def sphere(p, centre, radius):
    return (p - torch.tensor(centre)).norm(dim=1) < radius


def render_depth(scene: Scene, inside, pose: torch.Tensor, samples: int = 160, grid=None):
    renderer = Renderer(ShapeField(inside), HarmonicSpec(0, True), None, scene, samples, "cpu", grid=grid)
    renderer.early_stop = 0.0  # the plain field call: the stub has no trunk/colour split
    f = cameras.focal_from_fov(SIZE, scene.fov_x)
    intr = torch.tensor([[f, f, SIZE / 2, SIZE / 2, 0, 0, 0, 0]], dtype=torch.float32)
    out = renderer.render_image(pose[None].float(), intr, 0, SIZE, SIZE, torch.ones(1, 3))
    return out["depth"], out["opacity"], renderer


def spread(scene, depth, opacity) -> tuple[int, float]:
    """(distinct colours, share of the colour ramp between the 5th and 95th percentile)."""
    rgb = depth_colors(depth, opacity, scene)
    values, valid, lo, hi = display_depth(depth.numpy(), opacity.numpy(), scene)
    assert valid.mean() > 0.5
    p5, p95 = np.percentile((values[valid] - lo) / (hi - lo), [5, 95])
    return len(np.unique(rgb[valid].reshape(-1, 3), axis=0)), float(p95 - p5)


def box_scene():
    return Scene(near=2.0, far=6.0, aabb=[-1.5] * 3 + [1.5] * 3, orbit_radius=4.0)


def test_box_depth_shows_the_object_and_floor():
    scene = box_scene()
    depth, opacity, _ = render_depth(scene, lambda p: sphere(p, (0, 0, 0), 0.8) | (p[:, 2] < -0.7),
                                     cameras.look_at((0.0, -4.0, 1.5), (0.0, 0.0, 0.0)))
    assert depth_kind(scene) == "box"
    colours, share = spread(scene, depth, opacity)
    assert colours >= 20 and share > 0.15


def test_object_in_a_hull_box_fills_the_colour_ramp():
    """ethiopianHead's layout: near..far (0.89..2.6) span the cameras' first box from every
    camera, the masks' hull shrank the box to the head, and the head's front is 0.3 deep. Its
    colours come from the box as seen from the orbit, not from near..far."""
    scene = Scene(near=0.89, far=2.6, aabb=[-0.3] * 3 + [0.3] * 3, orbit_radius=1.72, fov_x=0.33)
    depth, opacity, _ = render_depth(scene, lambda p: sphere(p, (0, 0, 0), 0.25),
                                     cameras.look_at((0.0, -1.6, 0.63), (0.0, 0.0, 0.0)))
    valid = opacity.numpy() > 0.5
    assert 1.4 < float(depth.numpy()[valid].min()) < 1.55  # the sphere's front, as laid out
    colours, share = spread(scene, depth, opacity)
    assert colours >= 20 and share > 0.25, share
    near_far = Scene(**{**scene.__dict__, "aabb": [-0.9] * 3 + [0.9] * 3})  # a box as wide as near..far
    assert spread(near_far, depth, opacity)[1] < 0.15  # what the old near..far colouring gave


def unbounded_scene():
    # make_unbounded's near/far for a box of half-size 1.5 and cameras 4 from its centre
    half = 1.5
    return Scene(near=0.02 * half, far=4.0 + 100.0 * math.sqrt(3) * half, aabb=[-half] * 3 + [half] * 3,
                 orbit_radius=4.0, orbit_elevation_deg=15.0, unbounded=True)


def unbounded_shape(p):
    """Field space is contracted (cube of half-size 3): an object, a ground plane that reaches
    to the horizon, and far scenery (the cube's outer shell, s > ~10 in world units)."""
    ground = p[:, 2] < -0.9
    scenery = p.abs().amax(dim=1) > 2.85
    return sphere(p, (0, 0, 0), 0.7) | ground | scenery


def test_unbounded_depth_is_not_one_flat_colour():
    scene = unbounded_scene()
    grid = OccupancyGrid(torch.tensor(scene.aabb), 16, 96, unbounded=True)  # never updated: warm-up marching
    depth, opacity, _ = render_depth(scene, unbounded_shape, cameras.look_at((0.0, -4.0, 1.0), (0.0, 0.0, 0.0)),
                                     grid=grid)
    assert depth_kind(scene) == "unbounded"
    assert float(depth.max()) > 8.0 * float(depth.min())  # the frame holds near and far content
    colours, share = spread(scene, depth, opacity)
    assert colours >= 30 and share > 0.4
    # ...where near..far colouring (before issue 24) squeezed it into the near end of the ramp
    valid = opacity.numpy() > 0.05
    p5, p95 = np.percentile((depth.numpy()[valid] - scene.near) / (scene.far - scene.near), [5, 95])
    assert p95 - p5 < 0.2


def test_ndc_depth_shows_the_wall_and_object():
    width = SIZE
    f = cameras.focal_from_fov(width, math.radians(60.0))
    scene = Scene(near=0.0, far=1.0, aabb=[-1.5, -1.5, -1.0, 1.5, 1.5, 1.0], fov_x=math.radians(60.0), ndc=True,
                  ndc_focal=f, ndc_width=width, ndc_height=width, forward_facing=True)

    def wall_and_ball(p):  # NDC space: a wall receding to the right (z 0.2 to 0.9), a ball in front of it
        return (p[:, 2] > 0.55 + 0.35 * p[:, 0]) | sphere(p, (0.0, 0.0, -0.3), 0.35)

    depth, opacity, _ = render_depth(scene, wall_and_ball, torch.eye(4), samples=256)
    assert depth_kind(scene) == "ndc"
    colours, share = spread(scene, depth, opacity)
    assert colours >= 20 and share > 0.2


def test_unbounded_depth_video_frames_show_structure(tmp_path):
    from taichi_nerf.outputs.video import VideoRecorder

    scene = unbounded_scene()
    grid = OccupancyGrid(torch.tensor(scene.aabb), 16, 96, unbounded=True)
    _, _, renderer = render_depth(scene, unbounded_shape, torch.eye(4), grid=grid)
    recorder = VideoRecorder(renderer, tmp_path / "orbit.mp4", 2, SIZE)
    while not recorder.done:
        recorder.advance()
    assert len(recorder.depth_frames) == 2
    for frame in recorder.depth_frames:
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 30


def test_contracted_distance_and_disparity_scales():
    t = np.array([0.0, 2.0, 4.0, 8.0, 400.0, np.inf], dtype=np.float32)
    c = contracted_distance(t, 4.0)
    assert np.allclose(c, [0.0, 0.5, 1.0, 1.5, 1.99, 2.0])
    scene = Scene(near=1.0, far=100.0, aabb=[-1.0] * 6, forward_facing=True)  # LLFF without NDC
    values, valid, lo, hi = display_depth(np.array([1.0, 2.0, 100.0]), np.ones(3), scene)
    assert depth_kind(scene) == "disparity" and valid.all()
    assert np.allclose((values - lo) / (hi - lo), [0.0, 0.5 / 0.99, 1.0], atol=1e-6)  # linear in 1/t
