"""Compositing: the fast path (hand-derived adjoint) and the Taichi-autodiff reference, against
float64 torch autograd and against each other."""
import dataclasses

import pytest
import torch

from taichi_nerf.stages import reference
from taichi_nerf.stages.compositing import METHODS, composite
from taichi_nerf.stages.packing import Samples, fixed_layout
from taichi_nerf.stages.sampling import OPAQUE_END

from .conftest import rel_err

TOL = 2e-5  # float32 level: measured ~1e-6 (forward) and a few 1e-6 (gradients)


def random_packed(counts: list[int], device, seed: int, per_ray_bg: bool):
    g = torch.Generator().manual_seed(seed)
    counts_t = torch.tensor(counts, dtype=torch.int32)
    offsets = (torch.cumsum(counts_t, 0) - counts_t).to(torch.int32)
    m = int(counts_t.sum())
    n = len(counts)
    # Densities spanning empty to opaque, so transmittance really decays along the ray.
    sigma = torch.rand(m, generator=g) ** 3 * 40.0
    rgb = torch.rand(m, 3, generator=g)
    delta = torch.rand(m, generator=g) * 0.05 + 0.001
    t = 2.0 + torch.cat([torch.cumsum(delta[o:o + c], 0) for o, c in zip(offsets.tolist(),
                                                                         counts)]) if m else torch.zeros(0)
    bg = torch.rand(n if per_ray_bg else 1, 3, generator=g)
    ray_index = torch.repeat_interleave(torch.arange(n, dtype=torch.int32), counts_t)
    samples = Samples(t.float().to(device), delta.to(device), ray_index.to(device), offsets.to(device),
                      counts_t.to(device), max(counts) if counts else 0)
    return sigma.to(device), rgb.to(device), samples, bg.to(device)


def upstream(n: int, m: int, seed: int, device):
    """Random gradients for (rgb, opacity, depth, weights): every output's adjoint path gets exercised."""
    g = torch.Generator().manual_seed(seed + 1)
    tensors = (torch.randn(n, 3, generator=g), torch.randn(n, generator=g), torch.randn(n, generator=g),
               torch.randn(m, generator=g))
    return [x.to(device) for x in tensors]


def composite_with_grads(sigma, rgb, samples, bg, ups, method):
    """(rgb, opacity, depth, weights, d loss/d sigma, d loss/d rgb) in float32."""
    s32 = sigma.clone().requires_grad_()
    c32 = rgb.clone().requires_grad_()
    outs = composite(s32, c32, samples, bg, method=method)
    sum((o * u).sum() for o, u in zip(outs, ups)).backward()  # ups[3:] = []: the weights unused
    return [o.detach() for o in outs] + [s32.grad, c32.grad]


def check_against_reference(sigma, rgb, samples, bg, seed=0, method="fast"):
    up_rgb, up_op, up_d, up_w = upstream(samples.num_rays, samples.num_samples, seed, "cpu")
    out_rgb, out_op, out_d, out_w, s32_grad, c32_grad = composite_with_grads(
        sigma, rgb, samples, bg, upstream(samples.num_rays, samples.num_samples, seed, sigma.device), method)

    s64 = sigma.double().cpu().requires_grad_()
    c64 = rgb.double().cpu().requires_grad_()
    r_rgb, r_op, r_d, r_w = reference.composite_packed(
        s64, c64, samples.t.double().cpu(), samples.delta.double().cpu(),
        samples.offsets.cpu(), samples.counts.cpu(), bg.double().cpu())
    ((r_rgb * up_rgb.double()).sum() + (r_op * up_op.double()).sum() + (r_d * up_d.double()).sum()
     + (r_w * up_w.double()).sum()).backward()

    assert rel_err(out_rgb, r_rgb) < TOL
    assert rel_err(out_op, r_op) < TOL
    assert rel_err(out_d, r_d) < TOL
    assert rel_err(out_w, r_w) < TOL
    assert rel_err(s32_grad, s64.grad) < TOL
    assert rel_err(c32_grad, c64.grad) < TOL


FIXED = [(1, 1), (5, 7), (7, 16), (64, 64), (96, 128), (48, 256), (12, 300), (16, 500)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rays,samples_per_ray", FIXED)
@pytest.mark.parametrize("per_ray_bg", [False, True])
def test_fixed_layout_matches_float64(device, rays, samples_per_ray, per_ray_bg, method):
    sigma, rgb, samples, bg = random_packed([samples_per_ray] * rays, device, seed=rays * 1000 + samples_per_ray,
                                            per_ray_bg=per_ray_bg)
    offsets, counts, ray_index = fixed_layout(rays, samples_per_ray, device)
    assert torch.equal(samples.offsets, offsets) and torch.equal(samples.ray_index, ray_index)
    check_against_reference(sigma, rgb, samples, bg, method=method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("samples_per_ray", [32, 128, 256])
def test_opaque_last_interval_matches_float64(device, samples_per_ray, method):
    """intervals=gaps ends every ray with a 1e10 interval (the Keras example's): its sample
    is opaque wherever its density is positive, and the gradients stay float64's. A third
    of the rays end at zero density (ReLU's), where it must stay transparent."""
    rays = 24
    sigma, rgb, samples, bg = random_packed([samples_per_ray] * rays, device, seed=samples_per_ray, per_ray_bg=True)
    delta = samples.delta.clone().view(rays, samples_per_ray)
    delta[:, -1] = OPAQUE_END
    sigma = sigma.clone().view(rays, samples_per_ray)
    sigma[::3, -1] = 0.0
    samples = dataclasses.replace(samples, delta=delta.view(-1))
    check_against_reference(sigma.view(-1), rgb, samples, bg, seed=samples_per_ray, method=method)
    _, opacity, _, weights = composite(sigma.view(-1), rgb, samples, bg, method=method)
    assert torch.allclose(opacity[1::3], torch.ones_like(opacity[1::3]))
    assert (weights.view(rays, samples_per_ray)[::3, -1] == 0).all()


def variable_counts(seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 300, (40,), generator=g).tolist() + [0, 1, 0, 400, 500, 0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_variable_length_rays_including_empty_and_long(device, seed, method):
    sigma, rgb, samples, bg = random_packed(variable_counts(seed), device, seed=seed, per_ray_bg=True)
    check_against_reference(sigma, rgb, samples, bg, seed, method=method)


@pytest.mark.parametrize("counts", [[1] * 9, [7] * 6, [128] * 10, [300] * 4, [500] * 3, variable_counts(3),
                                    variable_counts(4)])
@pytest.mark.parametrize("per_ray_bg", [False, True])
def test_fast_path_matches_taichi_autodiff(device, counts, per_ray_bg):
    """The hand-derived adjoint against the gradients Taichi's kernel.grad derives itself."""
    sigma, rgb, samples, bg = random_packed(counts, device, seed=len(counts) + sum(counts), per_ray_bg=per_ray_bg)
    ups = upstream(samples.num_rays, samples.num_samples, 7, device)
    fast = composite_with_grads(sigma, rgb, samples, bg, ups, "fast")
    autodiff = composite_with_grads(sigma, rgb, samples, bg, ups, "autodiff")
    for name, a, b in zip(("rgb", "opacity", "depth", "weights", "d sigma", "d rgb"), fast, autodiff):
        assert rel_err(a, b) < TOL, name


@pytest.mark.parametrize("method", METHODS)
def test_empty_ray_shows_background_and_gets_no_gradient(device, method):
    sigma, rgb, samples, bg = random_packed([0, 5], device, seed=3, per_ray_bg=True)
    s = sigma.clone().requires_grad_()
    out_rgb, out_op, out_d, _ = composite(s, rgb, samples, bg, method=method)
    assert torch.allclose(out_rgb[0], bg[0]) and out_op[0] == 0 and out_d[0] == 0
    out_rgb[0].sum().backward()
    assert torch.count_nonzero(s.grad) == 0


@pytest.mark.parametrize("method", METHODS)
def test_batch_of_only_empty_rays(device, method):
    sigma, rgb, samples, bg = random_packed([0, 0, 0], device, seed=8, per_ray_bg=True)
    s, c = sigma.clone().requires_grad_(), rgb.clone().requires_grad_()
    out_rgb, out_op, out_d, w = composite(s, c, samples, bg, method=method)
    assert torch.equal(out_rgb, bg) and not out_op.any() and not out_d.any() and w.shape == (0,)
    (out_rgb.sum() + out_op.sum()).backward()
    assert s.grad.shape == (0,) and c.grad.shape == (0, 3)


def test_unknown_method_is_refused(device):
    sigma, rgb, samples, bg = random_packed([2], device, seed=0, per_ray_bg=False)
    with pytest.raises(ValueError, match="compositing method"):
        composite(sigma, rgb, samples, bg, method="dense")


def test_matches_dense_cumprod_baseline(device):
    """The benchmark's pure-torch baseline computes the same thing."""
    sigma, rgb, samples, bg = random_packed([64] * 32, device, seed=9, per_ray_bg=False)
    ours = composite(sigma, rgb, samples, bg)
    dense = reference.composite_dense(sigma.view(32, 64).double(), rgb.view(32, 64, 3).double(),
                                      samples.t.view(32, 64).double(), samples.delta.view(32, 64).double(), bg.double())
    assert rel_err(ours[0], dense[0]) < 1e-5 and rel_err(ours[1], dense[1]) < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_repeated_backward_gives_same_gradients(device, method):
    """kernel.grad accumulates into inputs and zeroes outputs: each backward must start fresh."""
    sigma, rgb, samples, bg = random_packed([128] * 8, device, seed=4, per_ray_bg=False)
    grads = []
    for _ in range(2):
        s = sigma.clone().requires_grad_()
        out_rgb, _, _, _ = composite(s, rgb, samples, bg, method=method)
        out_rgb.sum().backward()  # expanded (stride-0) upstream gradient
        grads.append(s.grad.clone())
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


@pytest.mark.parametrize("method", METHODS)
def test_forward_leaves_inputs_without_grad(device, method):
    sigma, rgb, samples, bg = random_packed([32] * 4, device, seed=5, per_ray_bg=False)
    s = sigma.clone().requires_grad_()
    composite(s, rgb, samples, bg, method=method)
    assert s.grad is None


@pytest.mark.parametrize("method", METHODS)
def test_backward_leaves_the_callers_gradient_tensor_alone(device, method):
    sigma, rgb, samples, bg = random_packed([16] * 4, device, seed=6, per_ray_bg=False)
    s = sigma.clone().requires_grad_()
    out_rgb = composite(s, rgb, samples, bg, method=method)[0]
    g = torch.ones_like(out_rgb)
    (grad,) = torch.autograd.grad(out_rgb, s, grad_outputs=g)
    assert torch.equal(g, torch.ones_like(out_rgb)) and grad.abs().sum() > 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("counts", [[16] * 8, [160] * 4, variable_counts(5)])
def test_unused_weights_give_the_gradients_of_a_zero_weight_gradient(device, counts, method):
    """A loss that never reads the weights (the fast path skips their pass) gets the gradients
    of one whose weight gradient is zero, and those differ from a nonzero one's."""
    sigma, rgb, samples, bg = random_packed(counts, device, seed=sum(counts), per_ray_bg=False)
    ups = upstream(samples.num_rays, samples.num_samples, 3, device)
    unused = composite_with_grads(sigma, rgb, samples, bg, ups[:3], method)
    zero = composite_with_grads(sigma, rgb, samples, bg, ups[:3] + [torch.zeros_like(ups[3])], method)
    used = composite_with_grads(sigma, rgb, samples, bg, ups, method)
    assert torch.allclose(unused[4], zero[4], rtol=1e-6, atol=1e-7) and torch.equal(unused[5], zero[5])
    assert rel_err(used[4], unused[4]) > 1e-2


def test_serial_and_parallel_loops_agree_bit_for_bit(device, monkeypatch):
    """backend.serial_loop runs small batches' per-ray loops on one thread (on the CPU): each ray
    is independent, so the outputs and gradients must not depend on it."""
    from taichi_nerf import backend

    counts = [0, 1, 7, 130, 3, 256, 64] * 20
    sigma, rgb, samples, bg = random_packed(counts, device, 11, per_ray_bg=True)
    ups = upstream(len(counts), samples.num_samples, 11, device)
    runs = []
    for items in (0, 10**9):  # every loop parallel, then every loop serial (where the arch allows)
        monkeypatch.setattr(backend, "SERIAL_LOOP_ITEMS", items)
        runs.append(composite_with_grads(sigma, rgb, samples, bg, ups, "fast"))
    assert backend.serial_loop(len(counts)) == (backend.current().arch == "cpu")
    for a, b in zip(*runs):
        assert torch.equal(a, b)
