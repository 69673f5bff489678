"""Forward kernels (rays, bounds, stratified samples, harmonic encoding) vs float64 torch."""
import math
import re

import pytest
import torch

from taichi_nerf.rendering.backgrounds import background_colour, over_background
from taichi_nerf.stages import reference
from taichi_nerf.stages.cameras import batch_rays, image_rays, look_at, orbit_poses, sphere_poses, training_rays
from taichi_nerf.stages.encoding import HarmonicSpec, encode_points, encode_samples
from taichi_nerf.stages.sampling import OPAQUE_END, ray_bounds, stratified

from .conftest import rel_err


def random_cameras(n, w, h, seed):
    g = torch.Generator().manual_seed(seed)
    poses = sphere_poses(n, 4.0, seed=seed)
    f = 0.5 * w / math.tan(0.5 * 0.7)
    intr = torch.tensor([[f * (1 + 0.1 * float(torch.rand((), generator=g))), f, w / 2 + 3.0, h / 2 - 2.0, 0, 0, 0,
                          0]] * n)
    return poses, intr


@pytest.mark.parametrize("n_rays", [1, 100, 5000])
def test_batch_rays_match_reference(device, n_rays):
    w, h = 37, 23
    poses, intr = random_cameras(5, w, h, n_rays)
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 5, (n_rays,), generator=g, dtype=torch.int32)
    pix = torch.randint(0, w * h, (n_rays,), generator=g, dtype=torch.int32)
    o, d = batch_rays(poses.to(device), intr.to(device), img.to(device), pix.to(device), w)
    ro, rd = reference.pinhole_rays(poses, intr, img, pix, w)
    assert rel_err(o, ro) < 1e-6 and rel_err(d, rd) < 2e-6


def test_training_rays_are_batch_rays_with_their_pixels(device):
    """The fused training-batch kernel: the same rays as batch_rays, and each ray's own pixel."""
    w, h, n = 37, 23, 300
    poses, intr = random_cameras(5, w, h, n)
    g = torch.Generator().manual_seed(2)
    img = torch.randint(0, 5, (n,), generator=g, dtype=torch.int32)
    pix = torch.randint(0, w * h, (n,), generator=g, dtype=torch.int32)
    rgba = torch.randint(0, 256, (5, h, w, 4), generator=g, dtype=torch.uint8)
    bg = torch.rand(n, 3, generator=g)
    args = [x.to(device) for x in (poses, intr, rgba, img, pix, bg)]
    o, d, rgb, alpha = training_rays(*args)
    o2, d2 = batch_rays(args[0], args[1], args[3], args[4], w)
    assert torch.equal(o, o2) and torch.equal(d, d2)
    pixel = rgba.reshape(5, -1, 4)[img.long(), pix.long()].float() / 255.0
    a = pixel[:, 3:]
    assert torch.allclose(alpha.cpu(), a[:, 0])
    assert torch.allclose(rgb.cpu(), pixel[:, :3] * a + (1 - a) * bg, atol=1e-6)


def gather_pixels(rgba, img, pix, background):
    """The targets of training_rays alone (its rays through an identity camera)."""
    n = pix.shape[0]
    poses = torch.eye(4)[:3].reshape(1, 3, 4).to(rgba.device)
    intr = torch.tensor([[1.0, 1.0, 0.5, 0.5, 0, 0, 0, 0]], device=rgba.device)  # no distortion
    _, _, rgb, alpha = training_rays(poses, intr, rgba, img, pix, background)
    assert rgb.shape == (n, 3) and alpha.shape == (n,)
    return rgb, alpha


def test_image_rays_chunk_equals_batch_rays(device):
    w, h = 16, 12
    poses, intr = random_cameras(3, w, h, 7)
    poses, intr = poses.to(device), intr.to(device)
    o, d = image_rays(poses, intr, 2, w, 40, 100)
    pix = torch.arange(40, 140, dtype=torch.int32, device=device)
    o2, d2 = batch_rays(poses, intr, torch.full_like(pix, 2), pix, w)
    assert torch.equal(o, o2) and torch.equal(d, d2)


def test_cameras_of_the_wrong_shape_are_refused_not_read_past_their_end():
    """The ray kernels index poses and intrinsics without bounds checks: a (N, 4) intrinsics
    tensor (no distortion columns) used to give rays bent by whatever lay beyond it in memory."""
    poses, intr = random_cameras(2, 16, 12, 7)
    pix = torch.arange(4, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"intrinsics must be \(cameras, 8\).*got \(2, 4\)"):
        image_rays(poses, intr[:, :4].contiguous(), 0, 16, 0, 4)
    with pytest.raises(ValueError, match=r"for each of the 2 poses; got \(1, 8\)"):
        batch_rays(poses, intr[:1].contiguous(), torch.zeros_like(pix), pix, 16)
    with pytest.raises(ValueError, match=r"poses must be .*got \(4, 4\)"):
        image_rays(poses[0], intr, 0, 16, 0, 4)


def test_a_camera_or_points_past_their_tensors_end_are_refused():
    """renderer.render_image(poses, intrinsics, 99, ...) of 8 poses returned an image of NaN, and
    renderer.density of (N, 2) points densities of numbers read past each row, without a word."""
    poses, intr = random_cameras(2, 16, 12, 7)
    for camera in (2, -1):
        with pytest.raises(IndexError, match=rf"camera {camera} is not one of the 2 poses \(0 to 1\)"):
            image_rays(poses, intr, camera, 16, 0, 4)
    spec = HarmonicSpec(3)
    for shape in ((4, 2), (3,), (2, 4)):
        with pytest.raises(ValueError, match=r"points must be \(N, 3\), got " + re.escape(str(shape))):
            encode_points(torch.zeros(shape), spec)


def test_opengl_convention_centre_ray_looks_down_minus_z(device):
    pose = look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))[None]
    intr = torch.tensor([[10.0, 10.0, 1.0, 1.0, 0, 0, 0, 0]])  # 2x2 image, centre between pixels
    o, d = batch_rays(pose.to(device), intr.to(device), torch.zeros(4, dtype=torch.int32, device=device),
                      torch.arange(4, dtype=torch.int32, device=device), 2)
    assert torch.allclose(o.cpu(), torch.tensor([0.0, 0.0, 5.0]).expand(4, 3))
    assert (d[:, 2] < -0.99).all()
    # top-left pixel: left (-x) and up (+y) of the axis
    assert d[0, 0] < 0 and d[0, 1] > 0 and d[3, 0] > 0 and d[3, 1] < 0


def test_distortion_is_inverted(device):
    """A pixel's ray, pushed through the forward distortion model, lands on that pixel."""
    k1, k2, p1, p2 = -0.12, 0.03, 0.002, -0.001
    f, c = 50.0, 32.0
    pose = torch.eye(4)[None]
    intr = torch.tensor([[f, f, c, c, k1, k2, p1, p2]])
    pix = torch.arange(64 * 64, dtype=torch.int32)
    _, d = batch_rays(pose.to(device), intr.to(device), torch.zeros_like(pix).to(device), pix.to(device), 64)
    d = d.double().cpu()
    x, y = d[:, 0] / -d[:, 2], -d[:, 1] / -d[:, 2]
    xd, yd = reference.opencv_distort(x, y, k1, k2, p1, p2)
    u, v = xd * f + c, yd * f + c
    assert torch.allclose(u, (pix % 64).double() + 0.5, atol=1e-3)
    assert torch.allclose(v, (pix // 64).double() + 0.5, atol=1e-3)


def test_gather_pixels_composites_on_background(device):
    rgba = torch.tensor([[[[255, 0, 0, 255], [0, 255, 0, 0]], [[0, 0, 255, 128], [10, 20, 30, 255]]]],
                        dtype=torch.uint8)
    img = torch.zeros(4, dtype=torch.int32)
    pix = torch.arange(4, dtype=torch.int32)
    bg = torch.tensor([[1.0, 1.0, 1.0]])
    rgb, alpha = gather_pixels(rgba.to(device), img.to(device), pix.to(device), bg.to(device))
    a = 128 / 255
    expect = torch.tensor([[1, 0, 0], [1, 1, 1], [1 - a, 1 - a, 1.0], [10 / 255, 20 / 255, 30 / 255]])
    assert torch.allclose(rgb.cpu(), expect, atol=1e-6)
    assert torch.allclose(alpha.cpu(), torch.tensor([1.0, 0.0, a, 1.0]))
    per_ray = torch.rand(4, 3)
    rgb2, _ = gather_pixels(rgba.to(device), img.to(device), pix.to(device), per_ray.to(device))
    assert torch.allclose(rgb2[1].cpu(), per_ray[1])
    # evaluation targets (over_background) are what training targets (the kernel) are
    for name in ("white", "black", "random"):
        bg = background_colour(name, device)
        rgb3, _ = gather_pixels(rgba.to(device), img.to(device), pix.to(device), bg)
        assert torch.allclose(over_background(rgba, bg.cpu()).reshape(4, 3), rgb3.cpu(), atol=1e-6)
        assert torch.allclose(over_background(rgba.float() / 255.0, bg.cpu()).reshape(4, 3), rgb3.cpu(), atol=1e-6)


def test_background_names():
    assert background_colour("black").tolist() == [[0.0, 0.0, 0.0]]
    assert background_colour("random").tolist() == [[1.0, 1.0, 1.0]]  # no fixed colour: evaluated on white
    with pytest.raises(ValueError, match="unknown background 'grey'"):
        background_colour("grey")
    grey = over_background(torch.tensor([[0, 0, 0, 0], [255, 255, 255, 255]], dtype=torch.uint8), 0.5)
    assert grey.dtype == torch.float32 and grey.tolist() == [[0.5] * 3, [1.0] * 3]


def test_ray_bounds_against_slab_reference(device):
    g = torch.Generator().manual_seed(0)
    n = 2000
    o = torch.randn(n, 3, generator=g) * 3
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    aabb = torch.tensor([-1.0, -0.5, -1.5, 1.0, 0.5, 1.5])
    t0, t1 = ray_bounds(o.to(device), d.to(device), aabb, 0.1, 8.0)
    od, dd = o.double(), d.double()
    a = (aabb[:3].double() - od) / dd
    b = (aabb[3:].double() - od) / dd
    rn = torch.minimum(a, b).amax(1).clamp_min(0.1)
    rf = torch.maximum(a, b).amin(1).clamp_max(8.0)
    hit = rf > rn
    assert hit.sum() > 100 and (~hit).sum() > 100
    assert rel_err(t0.cpu()[hit], rn[hit]) < 1e-5 and rel_err(t1.cpu()[hit], rf[hit]) < 1e-5
    assert torch.equal(t0.cpu()[~hit], t1.cpu()[~hit])


@pytest.mark.parametrize("samples_per_ray", [1, 64, 128, 256])
def test_stratified_samples_cover_bins(device, samples_per_ray):
    n = 50
    g = torch.Generator(device=device).manual_seed(0)
    near = torch.rand(n, device=device, generator=g) + 1.0  # the test's own generator: whatever ran before
    far = near + torch.rand(n, device=device, generator=g) * 3 + 0.5
    s = stratified(near, far, samples_per_ray, generator=g)
    t = s.t.view(n, samples_per_ray).cpu().double()
    step = ((far - near) / samples_per_ray).cpu().double()
    j = torch.arange(samples_per_ray).double()
    lo = near.cpu().double()[:, None] + j * step[:, None]
    assert ((t >= lo - 1e-5) & (t <= lo + step[:, None] + 1e-5)).all()
    assert torch.allclose(s.delta.view(n, samples_per_ray).cpu().double(), step[:, None].expand(n, samples_per_ray),
                          rtol=1e-6)
    centres = stratified(near, far, samples_per_ray, jitter=False)
    assert rel_err(centres.t.view(n, -1), lo + 0.5 * step[:, None]) < 1e-6
    # same generator state -> same jitter (reproducible training)
    g1 = torch.Generator(device=device).manual_seed(5)
    g2 = torch.Generator(device=device).manual_seed(5)
    assert torch.equal(stratified(near, far, samples_per_ray, g1).t, stratified(near, far, samples_per_ray, g2).t)


@pytest.mark.parametrize("samples_per_ray", [1, 32, 128, 256])
@pytest.mark.parametrize("jitter", [True, False])
def test_stratified_gaps_reach_the_next_sample_and_end_opaque(device, samples_per_ray, jitter):
    """intervals=gaps (the Keras example's): the same positions as the bins, each interval
    the distance to the next sample, the last 1e10; an empty (missed) ray stays empty."""
    n = 40
    g = torch.Generator(device=device).manual_seed(1)
    near = torch.rand(n, device=device, generator=g) + 1.0
    far = near + torch.rand(n, device=device, generator=g) * 3 + 0.5
    far[:3] = near[:3]  # rays that miss the box
    bins = stratified(near, far, samples_per_ray, torch.Generator(device=device).manual_seed(3), jitter)
    gaps = stratified(near, far, samples_per_ray, torch.Generator(device=device).manual_seed(3), jitter, gaps=True)
    assert torch.equal(bins.t, gaps.t)
    t = gaps.t.view(n, samples_per_ray).cpu().double()
    delta = gaps.delta.view(n, samples_per_ray).cpu().double()
    # float32 positions near 5 carry ~5e-7 of rounding each: compare absolutely
    assert ((delta[3:, :-1] - (t[3:, 1:] - t[3:, :-1])).abs() < 2e-6).all()
    assert (delta[3:, -1] == OPAQUE_END).all()
    assert (delta[:3] == 0).all()
    if not jitter:  # bin centres: every gap is one bin
        assert torch.allclose(delta[3:, :-1], bins.delta.view(n, -1).cpu().double()[3:, :-1], rtol=1e-5)


@pytest.mark.parametrize("freq,include,base", [(0, True, 1.0), (4, False, 1.0), (10, True, 1.0), (6, True, math.pi)])
@pytest.mark.parametrize("n_rays,samples", [(3, 5), (40, 128)])
def test_encoding_matches_reference(device, freq, include, base, n_rays, samples):
    g = torch.Generator().manual_seed(freq)
    # Dyadic inputs of few bits, so o + t d is exact in float32 whether or not the backend fuses
    # it into one FMA (CUDA does): a position one ulp off moves f_k x by 2^9 ulp (2e-4).
    o = torch.randint(-512, 513, (n_rays, 3), generator=g) / 256.0
    d = torch.randint(-256, 257, (n_rays, 3), generator=g) / 256.0
    t = torch.randint(0, 129, (n_rays * samples,), generator=g) / 64.0
    ray_index = torch.arange(n_rays, dtype=torch.int32).repeat_interleave(samples)
    pos, direction = HarmonicSpec(freq, include, base), HarmonicSpec(4, True)
    out = encode_samples(o.to(device), d.to(device), t.to(device), ray_index.to(device), pos, direction)
    p32 = o[ray_index.long()] + t[:, None] * d[ray_index.long()]  # exact: the kernel's positions
    ref = torch.cat([reference.harmonic(p32.double(), freq, include, base),
                     reference.harmonic(d[ray_index.long()].double(), 4, True)], 1)
    assert out.shape == (n_rays * samples, pos.dim + direction.dim)
    # argument f_k * x reaches ~2^9 * 3: float32 rounding of a non-power-of-two base costs ulp(arg).
    # Octaves between direct evaluations come from double-angle products, whose rounding error
    # doubles per octave: up to 2^7 float32 roundings (about 1e-5 of the unit-size features).
    tol = 1e-5 if base == 1.0 else 1e-4
    assert rel_err(out, ref) < tol
    pts = encode_points(p32.to(device), pos)
    assert rel_err(pts, reference.harmonic(p32.double(), freq, include, base)) < tol


def test_orbit_poses_circle_and_look_at_center():
    poses = orbit_poses(12, 3.0, elevation_deg=20.0, center=(0.1, 0.2, 0.3))
    eyes = poses[:, :3, 3] - torch.tensor([0.1, 0.2, 0.3])
    assert torch.allclose(eyes.norm(dim=1), torch.full((12,), 3.0), atol=1e-5)
    assert torch.allclose(eyes[:, 2], torch.full((12,), 3.0 * math.sin(math.radians(20))), atol=1e-5)
    forward = -poses[:, :3, 2]
    assert torch.allclose((forward * -eyes / 3.0).sum(1), torch.ones(12), atol=1e-5)
    assert (poses[:, 2, 1] > 0).all()  # camera up has a positive world-z component: upright


def test_encoding_uses_separate_view_directions(device):
    """NDC rays sample along NDC directions but encode the unit world direction."""
    o = torch.zeros(2, 3, device=device)
    d = torch.tensor([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]], device=device)
    v = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], device=device)
    t = torch.tensor([0.5, 0.25], device=device)
    ri = torch.tensor([0, 1], dtype=torch.int32, device=device)
    pos, direction = HarmonicSpec(2, True), HarmonicSpec(1, True)
    out = encode_samples(o, d, t, ri, pos, direction, view_dirs=v).cpu().double()
    p = torch.tensor([[0.0, 0.0, 1.0], [0.25, 0.0, 0.0]], dtype=torch.float64)
    ref = torch.cat([reference.harmonic(p, 2, True), reference.harmonic(v.cpu().double(), 1, True)], 1)
    assert rel_err(out, ref) < 1e-6
