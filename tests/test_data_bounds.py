"""Automatic scene bounds, NDC rays and the forward-facing video path."""
import math

import numpy as np
import pytest
import torch

from taichi_nerf.data.bounds import estimate_bounds
from taichi_nerf.data.dataset import Dataset, Split, pinhole
from taichi_nerf.rendering.scene import Scene, orbit_cameras
from taichi_nerf.stages import cameras, reference
from taichi_nerf.stages.cameras import look_at, orbit_poses, sphere_poses


def intr(count, f=50.0, size=40):
    return pinhole(f, f, size / 2, size / 2, count).numpy()


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def test_hemisphere_cameras_give_lego_like_bounds():
    poses = sphere_poses(60, 4.0, seed=1).numpy()
    b = estimate_bounds(poses, intr(60, f=20.0 / math.tan(0.3456)), 40, 40)  # the lego field of view
    assert not b.forward_facing
    assert np.allclose(b.center, 0, atol=1e-6) and b.up.tolist() == [0, 0, 1]
    assert b.orbit_radius == pytest.approx(4.0) and 15 < b.orbit_elevation_deg < 45
    half = b.aabb[3:] - b.center
    assert np.allclose(half, half[0]) and 1.0 < half[0] < 2.0
    assert 0 < b.near < 4.0 - half[0] and b.far > 4.0 + half[0]


def test_moved_and_tilted_world_is_found():
    """Cameras around (5, -2, 1) in a world whose up is tilted 30 degrees: centre, up and
    the orbit come back in that frame."""
    rot = rotation([1, 2, 0.5], math.radians(30))
    centre = np.array([5.0, -2.0, 1.0])
    base = orbit_poses(16, 3.0, elevation_deg=20.0).double().numpy()  # a ring: cameras on a plane
    poses = np.tile(np.eye(4), (16, 1, 1))
    poses[:, :3, :3] = rot @ base[:, :3, :3]
    poses[:, :3, 3] = base[:, :3, 3] @ rot.T + centre
    b = estimate_bounds(poses, intr(16), 40, 40)
    assert np.allclose(b.center, centre, atol=1e-6)
    assert np.allclose(b.up, rot @ [0, 0, 1], atol=1e-6)  # plane normal, signed like the cameras' up
    assert "plane" in b.notes[0]
    assert b.orbit_radius == pytest.approx(3.0) and b.orbit_elevation_deg == pytest.approx(20.0, abs=1e-4)
    assert (b.aabb[:3] < centre).all() and (b.aabb[3:] > centre).all()


def test_forward_facing_is_detected_and_boxed():
    poses = torch.stack([look_at((0.1 * (k % 3), 0.1 * (k // 3), 0.0), (0.0, 0.0, -5.0), (0, 1, 0)) for k in range(9)])
    b = estimate_bounds(poses.numpy(), intr(9), 40, 40, depth_range=(2.0, 10.0))
    assert b.forward_facing and (b.near, b.far) == (2.0, 10.0)
    assert b.up.tolist() == [0, 1, 0]
    assert b.aabb[2] < -9.0 and b.aabb[5] < -1.0  # the slab in front of the cameras (-z)
    assert 2.0 < b.focus_distance < 10.0


def test_explicit_points_shape_the_box():
    poses = sphere_poses(20, 4.0).numpy()
    pts = np.random.default_rng(0).uniform([-0.5, -0.2, 0.0], [0.5, 0.2, 0.3], (500, 3))
    b = estimate_bounds(poses, intr(20), 40, 40, points=pts)
    assert (b.aabb[:3] < pts.min(0) + 0.02).all() and (b.aabb[3:] > pts.max(0) - 0.02).all()
    assert (b.aabb[3:] - b.aabb[:3]).max() < 1.2


# --- NDC ---------------------------------------------------------------------------------
def test_ndc_rays_match_the_formulas_and_the_projection(taichi_backend):
    g = torch.Generator().manual_seed(0)
    n = 500
    o = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * 0.4
    d = torch.cat([(torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5), -torch.ones(n, 1, dtype=torch.float64)],
                  1)
    d = d / d.norm(dim=1, keepdim=True)
    scene = Scene(near=0.0, far=1.0, aabb=[-1, -1, -1, 1, 1, 1], ndc=True, ndc_focal=40.0, ndc_width=64, ndc_height=48)
    got_o, got_d = cameras.ndc_rays(o.float(), d.float(), scene)
    ref_o, ref_d = reference.ndc_rays(o, d, 40.0, 64, 48)
    assert float((got_o.double() - ref_o).abs().max()) < 1e-5 * float(ref_o.abs().max())
    assert float((got_d.double() - ref_d).abs().max()) < 1e-5 * float(ref_d.abs().max())
    assert torch.allclose(got_o[:, 2].double(), torch.full((n,), -1.0, dtype=torch.float64), atol=1e-6)
    # A world point at depth z on the ray projects to the NDC ray at t = 1 - near / |z|.
    for depth in (1.5, 4.0, 50.0):
        s = (-depth - o[:, 2]) / d[:, 2]
        x = o + s[:, None] * d
        proj = torch.stack([-40.0 / 32 * x[:, 0] / x[:, 2], -40.0 / 24 * x[:, 1] / x[:, 2], 1 + 2 / x[:, 2]], 1)
        t = 1 - 1 / depth
        assert torch.allclose(got_o.double() + t * got_d.double(), proj, atol=1e-4)
    # t = 1 is the point at infinity: z = 1
    assert torch.allclose((got_o + got_d)[:, 2], torch.ones(n), atol=1e-5)


# --- the forward-facing video path -------------------------------------------------------
def test_forward_facing_scene_renders_a_spiral_in_front():
    poses = torch.stack([look_at((0.2 * (k % 3 - 1), 0.1 * (k // 3 - 1), 0.0), (0.0, 0.0, -4.0), (0, 1, 0))
                         for k in range(9)])
    split = Split(rgba=torch.zeros(9, 8, 8, 4, dtype=torch.uint8), poses=poses, intrinsics=pinhole(10, 10, 4, 4, 9))
    ds = Dataset(splits={"train": split}, near=0.0, far=1.0, aabb=torch.tensor([-1.0, -1, -1, 1, 1, 1]), ndc=True,
                 forward_facing=True, focus_distance=4.0)
    scene = Scene.from_dataset(ds)
    path, intrinsics, w, h = orbit_cameras(scene, 12, 16)
    eyes = path[:, :3, 3]
    assert eyes[:, 0].abs().max() <= 0.21 and eyes[:, 1].abs().max() <= 0.11  # within the cameras' spread
    assert eyes[:, 0].max() > 0.1 and eyes[:, 1].max() > 0.05  # and it does move
    forward = -path[:, :3, 2]
    assert (forward[:, 2] < -0.95).all()  # all look the way the training cameras do (-z)
    # each looks at the focus point 4 ahead of the average camera
    to_focus = torch.tensor([0.0, 0.0, -4.0]) - eyes
    assert torch.allclose(forward, to_focus / to_focus.norm(dim=1, keepdim=True), atol=1e-5)
    # a 360 scene still gets the turntable
    ds.forward_facing = False
    turn, *_ = orbit_cameras(Scene.from_dataset(ds), 4, 16)
    assert torch.allclose(turn[:, :3, 3].norm(dim=1), torch.full((4,), ds.orbit_radius))


# --- the box holds the object whatever the image shape ------------------------------------
def object_distances(centres, bound):
    """Per camera: distance to the nearest and the farthest point of the cube [-bound, bound]^3."""
    nearest = np.linalg.norm(centres - np.clip(centres, -bound, bound), axis=1)
    farthest = np.linalg.norm(np.abs(centres) + bound, axis=1)
    return nearest, farthest


def framed_by_long_side(count, width, height, fov_long=0.69):
    """Pinhole intrinsics whose field of view along the image's longer side is ``fov_long``."""
    f = 0.5 * max(width, height) / math.tan(0.5 * fov_long)
    return pinhole(f, f, width / 2, height / 2, count).numpy()


@pytest.mark.parametrize("width, height", [(80, 80), (80, 40), (45, 80)], ids=["square", "wide-2:1", "portrait-9:16"])
def test_box_holds_the_object_for_any_image_shape(width, height):
    """Blender-like cameras framing the built-in scene's objects ([-1.2, 1.2]^3): a landscape
    or portrait crop of the same views cuts the objects on the short side, yet the box must
    still hold them, as large as for square images (the old smaller-FOV box was half as big)."""
    from taichi_nerf.scenes.sdf import OBJECT_BOUND

    poses = sphere_poses(100, 4.0, seed=3).double().numpy()
    square = estimate_bounds(poses, framed_by_long_side(100, 80, 80), 80, 80)
    b = estimate_bounds(poses, framed_by_long_side(100, width, height), width, height)
    assert (b.aabb[:3] <= -OBJECT_BOUND).all() and (b.aabb[3:] >= OBJECT_BOUND).all()
    nearest, farthest = object_distances(poses[:, :3, 3], OBJECT_BOUND)
    assert b.near <= nearest.min() and b.far >= farthest.max()
    assert ((b.aabb[3:] - b.aabb[:3]) >= (square.aabb[3:] - square.aabb[:3]) - 1e-9).all()
    assert (b.aabb[3:] - b.aabb[:3]).max() < 4.0  # still an object box, not the whole camera sphere
    assert not b.unbounded


def test_close_ups_do_not_shrink_the_box():
    """Most cameras are close-ups that see only part of the object; the few that frame all of
    it decide the box (a median over the cameras would follow the close-ups)."""
    far_views = sphere_poses(30, 4.0, seed=1).double().numpy()
    close = sphere_poses(70, 2.2, seed=2).double().numpy()
    poses = np.concatenate([far_views, close])
    b = estimate_bounds(poses, framed_by_long_side(100, 80, 60), 80, 60)
    assert (b.aabb[:3] <= -1.2).all() and (b.aabb[3:] >= 1.2).all()


def test_off_centre_principal_point_widens_the_box():
    poses = sphere_poses(40, 4.0).double().numpy()
    centred = estimate_bounds(poses, framed_by_long_side(40, 80, 80), 80, 80)
    intr = framed_by_long_side(40, 80, 80)
    intr[:, 2] = 20.0  # the image reaches 60 px to the right of the axis
    shifted = estimate_bounds(poses, intr, 80, 80)
    assert shifted.aabb[3] > 1.3 * centred.aabb[3]


def test_forward_facing_box_holds_the_whole_wide_frame():
    """The forward-facing slab comes from the frusta corners: a 2:1 image's wide edges at the
    far depth lie inside the box."""
    eyes = [(0.1 * (k % 3), 0.1 * (k // 3), 0.0) for k in range(9)]  # parallel cameras looking down -z
    poses = torch.stack([look_at(e, (e[0], e[1], -5.0), (0, 1, 0)) for e in eyes])
    intr = framed_by_long_side(9, 80, 40)
    b = estimate_bounds(poses.numpy(), intr, 80, 40, depth_range=(2.0, 10.0))
    half_w = 10.0 * math.tan(0.345)  # the wide side's half extent at depth 10
    assert b.aabb[0] <= -half_w + 1e-6 and b.aabb[3] >= half_w + 0.2 - 1e-6
    assert b.aabb[4] - b.aabb[1] < b.aabb[3] - b.aabb[0]  # and the narrow side stays narrow


def test_outward_facing_cameras_are_unbounded():
    """A ring of cameras looking out from its centre frames no object."""
    ring = orbit_poses(12, 1.0, elevation_deg=0.0).double().numpy()
    outward = ring.copy()
    outward[:, :3, 0] *= -1.0  # turn each camera around (a proper rotation: flip x and z)
    outward[:, :3, 2] *= -1.0
    b = estimate_bounds(outward, intr(12), 40, 40)
    assert not b.forward_facing and b.unbounded
    inward = estimate_bounds(ring, intr(12), 40, 40)
    assert not inward.unbounded


def test_unbounded_reason_combines_poses_and_surround():
    from taichi_nerf.data.bounds import unbounded_reason
    from taichi_nerf.data.surround import BackgroundChoice

    def reason(b, background=None):
        return unbounded_reason(forward_facing=b.forward_facing, cameras_look_outward=b.unbounded,
                                background=background)

    poses = sphere_poses(20, 4.0).numpy()
    b = estimate_bounds(poses, intr(20), 40, 40)
    scenery = BackgroundChoice("scene", "textured", confident=False)
    backdrop = BackgroundChoice("black", "uniform", confident=True, colour=(0.0, 0.0, 0.0))
    assert reason(b, scenery) == "the images' surround is scenery"
    assert reason(b, backdrop) is None and reason(b) is None
    outward = poses.copy()
    outward[:, :3, 0] *= -1.0  # turn each camera around
    outward[:, :3, 2] *= -1.0
    assert reason(estimate_bounds(outward, intr(20), 40, 40), backdrop) == "the cameras look outward"
    ff = estimate_bounds(torch.stack([look_at((0.1 * k, 0.0, 0.0), (0.0, 0.0, -5.0), (0, 1,
                                                                                      0)) for k in range(4)]).numpy(),
                         intr(4), 40, 40, depth_range=(2.0, 10.0))
    assert ff.forward_facing and reason(ff, scenery) is None  # NDC already reaches infinity


def test_a_colmap_model_without_sparse_points_gets_its_bounds_from_the_cameras(tmp_path):
    """A model of known poses before triangulation has no points3D: its box was the camera ring's own
    extent (the cameras on its edge, flat in z) and said "as stated in the file"; now the cameras frame it,
    as a transforms.json without bounds."""
    import shutil

    from taichi_nerf.data.loaders import read_dataset

    from .test_masks import write_colmap_text

    root = write_colmap_text(tmp_path / "capture")
    shutil.rmtree(root / "masks")
    (root / "sparse" / "0" / "points3D.txt").write_text("# none yet\n")
    ds = read_dataset(root)
    centres = ds.split("train").poses[:, :3, 3]
    lo, hi = ds.aabb[:3], ds.aabb[3:]
    inside = ((centres >= lo) & (centres <= hi)).all(dim=1)
    assert not inside.any(), (ds.aabb, centres)  # the cameras look in at the box from outside
    assert (hi - lo).min() > 0.2 * (hi - lo).max()  # not a flat slab
    assert not any("stated in the file" in note for note in ds.notes), ds.notes
    assert any("camera centres (the model has 0 sparse points)" in note for note in ds.notes), ds.notes
