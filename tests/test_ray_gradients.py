"""Gradients for the rays themselves (pose refinement learns from them): the NDC transform
(Taichi's kernel.grad) and the encoding's adjoint kernel, against float64 torch autograd of
the reference maths, on random rays, at several sizes."""
import pytest
import torch

from taichi_nerf.rendering.scene import Scene
from taichi_nerf.stages import cameras, reference
from taichi_nerf.stages.encoding import HarmonicSpec, encode_samples

from .conftest import rel_err


def random_rays(n, seed, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    o = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * spread
    d = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return o, d / d.norm(dim=1, keepdim=True), g


NDC_SCENE = Scene(near=0.0, far=1.0, aabb=[-1, -1, -1, 1, 1, 1], ndc=True, ndc_focal=40.0, ndc_width=64, ndc_height=48)


def ndc_against_reference(o, d, g, device, clamp=False):
    """Our NDC kernel and its kernel.grad (float32) and float64 torch autograd of the reference
    maths, on rays (o, d) with the same random output gradients: ((o', d', o.grad, d.grad) ours,
    the same of the reference). ``clamp``: the reference clamps d's z as the kernel does."""
    g_o, g_d = torch.randn(len(o), 3, generator=g, dtype=torch.float64), torch.randn(len(o), 3, generator=g,
                                                                                     dtype=torch.float64)
    o32 = o.float().to(device).requires_grad_(True)
    d32 = d.float().to(device).requires_grad_(True)
    got_o, got_d = cameras.ndc_rays(o32, d32, NDC_SCENE)
    ((got_o * g_o.float().to(device)).sum() + (got_d * g_d.float().to(device)).sum()).backward()
    o64, d64 = o.clone().requires_grad_(True), d.clone().requires_grad_(True)
    d_ref = torch.cat([d64[:, :2], d64[:, 2:].clamp(max=-1e-6)], 1) if clamp else d64
    ref_o, ref_d = reference.ndc_rays(o64, d_ref, 40.0, 64, 48)
    ((ref_o * g_o).sum() + (ref_d * g_d).sum()).backward()
    return (got_o, got_d, o32.grad, d32.grad), (ref_o, ref_d, o64.grad, d64.grad)


@pytest.mark.parametrize("n", [1, 37, 500])
def test_ndc_ray_gradients_match_reference(device, n):
    o, _, g = random_rays(n, n, spread=0.4)
    d = torch.cat([torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5, -torch.ones(n, 1, dtype=torch.float64)], 1)
    d = d / d.norm(dim=1, keepdim=True)
    (got_o, got_d, got_go, got_gd), (ref_o, ref_d, ref_go, ref_gd) = ndc_against_reference(o, d, g, device)
    assert rel_err(got_o, ref_o) < 1e-5 and rel_err(got_d, ref_d) < 1e-5
    assert rel_err(got_go, ref_go) < 1e-4
    assert rel_err(got_gd, ref_gd) < 1e-4
    # without gradients the same kernel runs and nothing is attached to the inputs
    plain_o, _ = cameras.ndc_rays(o.float().to(device), d.float().to(device), NDC_SCENE)
    assert torch.equal(plain_o, got_o.detach())


@pytest.mark.parametrize("n", [2, 64, 300])
def test_ndc_rays_heading_away_from_the_scene_keep_finite_gradients(device, n):
    """A ray whose direction does not point into the scene (-z: a refined pose can turn one
    there) has no NDC image; the kernel clamps its z to -1e-6. Half the rays below head away
    (+z or exactly sideways): outputs and gradients are finite and match the reference with the
    same clamp, whose z gradient is zero where it clamps."""
    o, _, g = random_rays(n, 100 + n, spread=0.4)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5
    z = torch.where(torch.arange(n) % 2 == 0, -torch.ones(n, dtype=torch.float64),
                    torch.rand(n, generator=g, dtype=torch.float64) * 0.5)
    z[1::4] = 0.0
    d = torch.cat([xy, z[:, None]], 1)
    d = d / d.norm(dim=1, keepdim=True)
    ours, (ref_o, ref_d, ref_go, ref_gd) = ndc_against_reference(o, d, g, device, clamp=True)
    got_o, got_d, got_go, got_gd = ours
    for got in ours:
        assert torch.isfinite(got).all()
    away = d[:, 2] >= 0
    assert away.sum() >= n // 2 and torch.all(got_gd[away.to(device), 2] == 0)
    assert rel_err(got_o, ref_o) < 1e-4 and rel_err(got_d, ref_d) < 1e-4
    assert rel_err(got_go, ref_go) < 1e-4 and rel_err(got_gd, ref_gd) < 1e-4


# The defaults; the pytorch3d preset's kind (no input term, base 0.1; fewer frequencies: its 60 reach
# far past float32); the keras preset's kind (positions only).
SPECS = {"default": (HarmonicSpec(6, True), HarmonicSpec(3, True)),
         "no-input-base-0.1": (HarmonicSpec(5, False, 0.1), HarmonicSpec(3, False, 0.1)),
         "positions-only": (HarmonicSpec(6, True), None)}


@pytest.mark.parametrize("n_rays,samples", [(3, 5), (16, 128), (4, 300)])
@pytest.mark.parametrize("contracted", [False, True])
@pytest.mark.parametrize("separate_view_dirs", [False, True])
@pytest.mark.parametrize("specs", list(SPECS))
def test_encoding_ray_gradients_match_reference(device, n_rays, samples, contracted, separate_view_dirs, specs):
    pos, direction = SPECS[specs]
    o, d, g = random_rays(n_rays, n_rays + samples, spread=0.6)  # origins inside the box
    v = torch.randn(n_rays, 3, generator=g, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    t = torch.rand(n_rays * samples, generator=g, dtype=torch.float64) * (6.0 if contracted else 1.5)
    t[::samples] = 0.0  # each ray's first sample at its origin: inside the box
    ray_index = torch.arange(n_rays, dtype=torch.int32).repeat_interleave(samples)
    box = torch.tensor([-0.6, -0.4, -0.5, 0.6, 0.4, 0.5])
    upstream = torch.randn(n_rays * samples, pos.dim + (direction.dim if direction else 0), generator=g,
                           dtype=torch.float64)

    o32, d32 = o.float().to(device).requires_grad_(True), d.float().to(device).requires_grad_(True)
    v32 = v.float().to(device).requires_grad_(True) if separate_view_dirs else None
    out = encode_samples(o32, d32, t.float().to(device), ray_index.to(device), pos, direction, view_dirs=v32,
                         contract_box=box.to(device) if contracted else None)
    (out.double() * upstream.to(device)).sum().backward()

    o64, d64 = o.clone().requires_grad_(True), d.clone().requires_grad_(True)
    v64 = v.clone().requires_grad_(True) if separate_view_dirs else d64
    r = ray_index.long()
    # the kernel's float32 t, so both sides sample the same points
    p = o64[r] + t.float().double()[:, None] * d64[r]
    if contracted:
        p = reference.contract(p, box)
    ref = reference.harmonic(p, pos.frequencies, pos.include_input, pos.base)
    if direction is not None:
        ref = torch.cat([ref, reference.harmonic(v64[r], direction.frequencies, direction.include_input,
                                                 direction.base)], 1)
    (ref * upstream).sum().backward()
    assert rel_err(out, ref) < 1e-4
    assert rel_err(o32.grad, o64.grad) < 1e-4
    assert rel_err(d32.grad, d64.grad) < 1e-4
    if separate_view_dirs and direction is None:  # positions only: the viewing directions take no part
        assert v32.grad is None or not v32.grad.any()
    elif separate_view_dirs:
        assert rel_err(v32.grad, v64.grad) < 1e-4
    if contracted:  # the Jacobian of the contraction was exercised: some samples lie outside the box
        q = ((o[r] + t[:, None] * d[r]) / (box[3:].double())).abs().amax(1)
        assert (q > 1).any() and (q <= 1).any()


def test_encoding_without_ray_gradients_takes_no_autograd_path(device):
    o, d, _ = random_rays(4, 0)
    t = torch.rand(40)
    ri = torch.arange(4, dtype=torch.int32).repeat_interleave(10)
    out = encode_samples(o.float().to(device), d.float().to(device), t.to(device), ri.to(device), HarmonicSpec(2),
                         HarmonicSpec(1))
    assert out.grad_fn is None and not out.requires_grad


def test_ndc_to_world_inverts_the_ndc_map_of_points_on_the_rays():
    """A world point on a ray, in front of the near plane, lands on that ray's NDC image (at some
    t), and ndc_to_world brings the NDC point back to it (export points of NDC runs rely on it)."""
    o, _, g = random_rays(300, 5, spread=0.4)
    xy = torch.rand(300, 2, generator=g, dtype=torch.float64) - 0.5
    d = torch.cat([xy, -torch.ones(300, 1, dtype=torch.float64)], 1)
    s = 1.5 + 50.0 * torch.rand(300, generator=g, dtype=torch.float64)  # beyond the near plane z = -1
    world = o + s[:, None] * d
    o_ndc, d_ndc = reference.ndc_rays(o, d, 40.0, 64, 48)
    t = (1.0 + 2.0 / world[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]  # where the ray's NDC image has the point's z'
    back = cameras.ndc_to_world((o_ndc + t[:, None] * d_ndc).float(), NDC_SCENE).double()
    assert rel_err(back, world) < 1e-5
    assert float(((back - world).norm(dim=1) / world.norm(dim=1)).max()) < 1e-4
