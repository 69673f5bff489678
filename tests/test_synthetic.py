"""The built-in procedural scene: dataset layout, silhouettes, depth, colours, determinism."""
import math

import numpy as np
import pytest
import torch

from taichi_nerf import backend
from taichi_nerf.data.blender import load_blender
from taichi_nerf.scenes import environment as E
from taichi_nerf.scenes import sdf
from taichi_nerf.scenes import synthetic as S
from taichi_nerf.stages.cameras import focal_from_fov, look_at, sphere_poses

SIZE = 32


@pytest.fixture(scope="module", autouse=True)
def _cpu_backend(taichi_backend):
    """This module on the CPU backend, and the suite's backend (TAICHI_NERF_TEST_ARCH) back after it:
    the modules after it must not run their kernels on the CPU while their tensors are on the GPU."""
    backend.init("cpu")
    yield
    backend.init(taichi_backend.arch, taichi_backend.max_samples_per_ray)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    out = S.write_synthetic_dataset(root, views=6, size=SIZE, val_views=2, test_views=3, seed=3, progress=False)
    assert out == root
    return load_blender(root)


def _rays(pose, width, height, fx, fy, cx, cy):
    """Unit ray directions (H, W, 3) and origin, in the project's pixel convention."""
    j, i = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    cam = torch.stack([(i + 0.5 - cx) / fx, -(j + 0.5 - cy) / fy, -torch.ones_like(i)], -1)
    d = cam @ pose[:3, :3].double().T
    return d / d.norm(dim=-1, keepdim=True), pose[:3, 3].double()


def _sphere_camera(azimuth_deg, elevation_deg, distance=3.0):
    """A camera outside the sphere's quadrant looking straight at its centre."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    d = torch.tensor([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], dtype=torch.float64)
    c = torch.tensor(sdf.SPHERE_CENTER, dtype=torch.float64)
    return look_at(c + distance * d, c)


def test_dataset_layout_and_counts(dataset):
    assert set(dataset.splits) == {"train", "val", "test"}
    assert [dataset.splits[s].count for s in ("train", "val", "test")] == [6, 2, 3]
    for split in dataset.splits.values():
        assert (split.width, split.height) == (SIZE, SIZE)
        assert split.rgba.dtype == torch.uint8
        assert split.depth is not None and split.depth.shape == (split.count, SIZE, SIZE)
        fx = focal_from_fov(SIZE, S.CAMERA_ANGLE_X)
        assert torch.allclose(split.intrinsics[:, 0], torch.full((split.count,), fx), rtol=1e-5)
        assert torch.allclose(split.poses[:, :3, 3].norm(dim=1), torch.full((split.count,), S.CAMERA_RADIUS), atol=1e-4)
    assert (dataset.near, dataset.far) == (S.NEAR, S.FAR)
    assert dataset.aabb.tolist() == list(S.SCENE_AABB)
    # held-out views are not copies of training views
    train_eyes = dataset.splits["train"].poses[:, :3, 3]
    for name in ("val", "test"):
        eyes = dataset.splits[name].poses[:, :3, 3]
        assert torch.cdist(eyes, train_eyes).min() > 1e-3


def test_alpha_is_an_antialiased_silhouette(dataset):
    alpha = dataset.splits["train"].rgba[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()
    frac = ((alpha > 0) & (alpha < 255)).float().mean()
    assert frac > 0.01  # 2x2 supersampling gives fractional edges
    for a in alpha:
        coverage = (a > 0).float().mean()
        assert 0.08 < coverage < 0.7
        # the border rows/columns are empty: the objects are framed inside the image
        border = torch.cat([a[0], a[-1], a[:, 0], a[:, -1]])
        assert (border == 0).all()
    # empty pixels carry no colour (straight alpha, black background like Blender's)
    rgba = dataset.splits["train"].rgba
    assert (rgba[alpha == 0][:, :3] == 0).all()


def test_depth_matches_alpha_and_range(dataset):
    for split in dataset.splits.values():
        alpha, depth = split.rgba[..., 3], split.depth
        assert (depth >= 0).all()
        hit = depth > 0
        assert ((depth[hit] >= S.NEAR) & (depth[hit] <= S.FAR)).all()
        # the pixel-centre ray and the 2x2 subsamples agree except on antialiased edges:
        # a centre hit with no subsample hit (or the reverse) needs a sub-pixel feature
        assert (hit & (alpha == 0)).float().mean() < 0.002
        assert (~hit & (alpha == 255)).float().mean() < 0.002
        assert (hit == (alpha > 0)).float().mean() > 0.9


def test_objects_stay_inside_their_bound():
    poses = torch.stack([look_at(e, (0, 0, 0)) for e in ([4, 0, 0.5], [0, -4, 0.5], [0, 0.01, 4], [-3, 2, 1.5])])
    f = focal_from_fov(48, S.CAMERA_ANGLE_X)
    _, depth = S.render_scene(poses, 48, 48, f, f, 24, 24, supersample=1)
    for k in range(len(poses)):
        d, o = _rays(poses[k], 48, 48, f, f, 24, 24)
        hit = depth[k] > 0
        assert hit.any()
        pts = o + d[hit] * depth[k][hit].double()[:, None]
        assert pts.abs().max() <= sdf.OBJECT_BOUND + 1e-3
        assert pts[:, 2].min() >= -0.6 - 1e-2  # everything stands on the invisible floor


def test_depth_matches_analytic_sphere():
    w = 33
    f = focal_from_fov(w, S.CAMERA_ANGLE_X)
    pose = _sphere_camera(45.0, 15.0, distance=3.0)
    rgba, depth = S.render_scene(pose[None], w, w, f, f, w / 2, w / 2)
    # centre pixel looks straight at the sphere's centre
    assert depth[0, w // 2, w // 2].item() == pytest.approx(3.0 - sdf.SPHERE_RADIUS, abs=2e-3)
    # every pixel whose ray hits the sphere (away from grazing silhouettes) sees it first
    d, o = _rays(pose, w, w, f, f, w / 2, w / 2)
    oc = o - torch.tensor(sdf.SPHERE_CENTER, dtype=torch.float64)
    b = d @ oc
    disc = b * b - (oc @ oc - sdf.SPHERE_RADIUS**2)
    inside = disc > (0.2 * sdf.SPHERE_RADIUS) ** 2  # cos(incidence) > 0.2
    assert inside.sum() > 50
    t = -b - torch.sqrt(disc.clamp_min(0))
    err = (depth[0].double() - t)[inside].abs()
    assert err.max() < 5e-3
    assert (rgba[0, ..., 3][disc > (0.6 * sdf.SPHERE_RADIUS) ** 2] == 255).all()


def test_sphere_checker_colours():
    w = 33
    f = focal_from_fov(w, S.CAMERA_ANGLE_X)
    # (azimuth 45, elevation 15) is the centre of a red cell of the 12 x 6 lat-long checker,
    # (azimuth 15, elevation 15) the centre of the white cell next to it.
    poses = torch.stack([_sphere_camera(45.0, 15.0), _sphere_camera(15.0, 15.0)])
    rgba, _ = S.render_scene(poses, w, w, f, f, w / 2, w / 2)
    r, g, b, a = rgba[0, w // 2, w // 2].tolist()
    assert a == 255 and r > 120 and r > 2.5 * g and r > 2.5 * b
    r, g, b, a = rgba[1, w // 2, w // 2].tolist()
    assert a == 255 and min(r, g, b) > 120 and max(r, g, b) - min(r, g, b) < 40


def test_objects_have_distinct_colours():
    """Each object seen head-on: its centre pixel is in its own colour family."""
    w = 33
    f = focal_from_fov(w, S.CAMERA_ANGLE_X)

    def cam(center, azimuth_deg, z_offset=0.0):
        c = torch.tensor(center, dtype=torch.float64) + torch.tensor([0, 0, z_offset], dtype=torch.float64)
        az = math.radians(azimuth_deg)
        return look_at(c + 3.0 * torch.tensor([math.cos(az), math.sin(az), 0.0], dtype=torch.float64), c)

    # the cylinder's lowest band (z from -0.6 to -0.49) is green; the box tiles are blue
    band_z = -sdf.CYLINDER_HALF_HEIGHT + 0.5 * (2 * sdf.CYLINDER_HALF_HEIGHT / sdf.CYLINDER_BANDS)
    tile_z = 0.0  # middle tile row of the box face
    poses = torch.stack([cam(sdf.CYLINDER_CENTER, 135.0, band_z),
                         cam(sdf.BOX_CENTER, 180.0 + math.degrees(sdf.BOX_ANGLE), tile_z)])
    rgba, depth = S.render_scene(poses, w, w, f, f, w / 2, w / 2)
    r, g, b, a = rgba[0, w // 2, w // 2].tolist()
    assert a == 255 and g > 1.5 * r and g > 1.5 * b  # green band
    r, g, b, a = rgba[1, w // 2, w // 2].tolist()
    assert a == 255 and b > 1.5 * r and b > 1.5 * g  # blue tile


def test_views_differ_and_rendering_is_deterministic():
    poses = sphere_poses(4, S.CAMERA_RADIUS, seed=11)
    f = focal_from_fov(SIZE, S.CAMERA_ANGLE_X)
    rgba1, depth1 = S.render_scene(poses, SIZE, SIZE, f, f, SIZE / 2, SIZE / 2)
    rgba2, depth2 = S.render_scene(poses.clone(), SIZE, SIZE, f, f, SIZE / 2, SIZE / 2)
    assert torch.equal(rgba1, rgba2) and torch.equal(depth1, depth2)
    for a in range(4):
        for b in range(a + 1, 4):
            diff = (rgba1[a].float() - rgba1[b].float()).abs().mean()
            assert diff > 5.0
    # one view rendered alone equals the same view rendered in a batch
    single, _ = S.render_scene(poses[2:3], SIZE, SIZE, f, f, SIZE / 2, SIZE / 2)
    assert torch.equal(single[0], rgba1[2])


def test_supersampling_controls_alpha_levels():
    pose = sphere_poses(1, S.CAMERA_RADIUS, seed=5)
    f = focal_from_fov(SIZE, S.CAMERA_ANGLE_X)
    rgba1, _ = S.render_scene(pose, SIZE, SIZE, f, f, SIZE / 2, SIZE / 2, supersample=1)
    assert set(np.unique(rgba1[..., 3].numpy()).tolist()) <= {0, 255}
    rgba3, _ = S.render_scene(pose, SIZE, SIZE, f, f, SIZE / 2, SIZE / 2, supersample=3)
    levels = set(np.unique(rgba3[..., 3].numpy()).tolist())
    assert levels <= {round(255 * k / 9) for k in range(10)} and len(levels) > 3


# --- environments and distortion (the users'-data test sets) -----------------------------
def _backdrop_camera():
    """Forward-facing camera in front of the objects, looking along +y at the wall."""
    return look_at((0.2, -3.6, 0.35), (0.0, 0.0, -0.15))


def test_backdrop_depth_is_the_wall_or_floor_and_objects_occlude_it():
    w, h = 40, 30
    f = focal_from_fov(w, math.radians(63.5))
    pose = _backdrop_camera()[None]
    rgba, depth = S.render_scene(pose, w, h, f, f, w / 2, h / 2, environment="backdrop")
    bare, bare_depth = S.render_scene(pose, w, h, f, f, w / 2, h / 2)
    assert (rgba[..., 3] == 255).all() and (depth > 0).all()
    d = E.pixel_directions(pose, w, h, f, f, w / 2, h / 2)[0].double()
    o = pose[0, :3, 3].double()
    never = torch.full_like(d[..., 0], math.inf)
    t_floor = torch.where(d[..., 2] < 0, (E.FLOOR_Z - o[2]) / d[..., 2].clamp(max=-1e-12), never)
    t_wall = torch.where(d[..., 1] > 0, (E.WALL_Y - o[1]) / d[..., 1].clamp(min=1e-12), never)
    env_t = torch.minimum(t_floor, t_wall)
    assert torch.isfinite(env_t).all()  # every pixel ray reaches the wall or the floor
    on_object = bare_depth[0] > 0
    assert 0.05 < on_object.float().mean() < 0.6
    assert torch.allclose(depth[0][on_object].double(), bare_depth[0][on_object].double(), rtol=1e-4)
    assert torch.allclose(depth[0][~on_object].double(), env_t[~on_object], rtol=1e-4)
    assert (t_wall < t_floor).any() and (t_floor < t_wall).any()  # both surfaces are in view
    # objects look the same in front of the backdrop as on their own (fully covered pixels)
    covered = bare[0, ..., 3] == 255
    diff = (rgba[0, ..., :3].int() - bare[0, ..., :3].int()).abs()[covered]
    assert covered.sum() > 50 and diff.max() <= 1


def test_environment_textures_are_rich_and_seeded():
    tex = E.environment_textures(0)
    assert set(tex) == set(E.TEXTURES)
    for name, image in tex.items():
        h, w = E.TEXTURES[name][:2]
        assert image.shape == (h, w, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert image.std(axis=(0, 1)).min() > 0.05  # not flat in any channel
        levels = np.unique((image[::4, ::4] * 15).astype(np.int32) @ np.array([256, 16, 1]))
        assert len(levels) > 100  # many distinct colours, not a two- or three-tone pattern
        # neighbouring texels are close (smooth noise, not white noise), except at edges
        step = np.abs(np.diff(image, axis=1)).mean()
        assert step < 0.5 * np.abs(image - image.mean(axis=(0, 1))).mean()
    other = E.environment_textures(1)
    assert not np.array_equal(tex["wall"], other["wall"])
    assert np.array_equal(tex["wall"], E.environment_textures(0)["wall"])


@pytest.mark.slow
def test_distortion_bends_the_image_and_bad_options_are_refused():
    w = 32
    f = focal_from_fov(w, S.CAMERA_ANGLE_X)
    pose = sphere_poses(1, S.CAMERA_RADIUS, seed=5)
    plain, _ = S.render_scene(pose, w, w, f, f, w / 2, w / 2)
    bent, _ = S.render_scene(pose, w, w, f, f, w / 2, w / 2, distortion=(-0.3, 0.05, 0.0, 0.0))
    # barrel distortion (k1 < 0) shows more of the scene: the objects shrink towards the centre
    assert 0 < bent[0, ..., 3].float().sum() < 0.97 * plain[0, ..., 3].float().sum()
    assert (bent[0, ..., 3] == 0).any()  # no environment: alpha stays a silhouette
    centre = (slice(w // 2 - 1, w // 2 + 1),) * 2
    assert (bent[0][centre].int() - plain[0][centre].int()).abs().max() <= 2  # the centre barely moves
    with pytest.raises(ValueError, match="environment"):
        S.render_scene(pose, w, w, f, f, w / 2, w / 2, environment="sky")
    with pytest.raises(ValueError, match="distortion"):
        S.render_scene(pose, w, w, f, f, w / 2, w / 2, distortion=(0.1, 0.0))
