"""Compositing stage: differentiable emission-absorption volume rendering over packed rays.

For the samples i of a ray, with optical depth tau_i = sum_{j<i} sigma_j delta_j:
  alpha_i = 1 - exp(-sigma_i delta_i),  T_i = exp(-tau_i),  w_i = T_i alpha_i
  colour = sum w_i c_i + (1 - sum w_i) * background,  opacity = sum w_i,  depth = sum w_i t_i
Gradients come from Taichi autodiff (``kernel.grad``) of the forward kernel.

Why ``ti.pow(e, x)`` and not ``ti.exp``: inside a dynamic loop Taichi 1.7's reverse pass
reuses ``exp``'s value from the loop's last iteration, silently corrupting gradients.
Why T is exp(-accumulated tau) and not a running product: a sum of S float32 terms keeps
relative error at float32 level for hundreds of samples.
"""

import taichi as ti
import torch

from . import backend
from .packing import Samples


@ti.kernel
def _composite_kernel(sigma: ti.types.ndarray(), rgb: ti.types.ndarray(), t: ti.types.ndarray(),
                      delta: ti.types.ndarray(), offsets: ti.types.ndarray(), counts: ti.types.ndarray(),
                      background: ti.types.ndarray(),
                      out_rgb: ti.types.ndarray(), out_opacity: ti.types.ndarray(),
                      out_depth: ti.types.ndarray(), out_weights: ti.types.ndarray()):
    for r in range(offsets.shape[0]):
        start = offsets[r]
        tau = 0.0
        acc_r, acc_g, acc_b = 0.0, 0.0, 0.0
        acc_w, acc_d = 0.0, 0.0
        for j in range(counts[r]):  # dynamic: loop-carried locals live on the autodiff stack
            i = start + j
            sd = sigma[i] * delta[i]
            w = ti.pow(ti.math.e, -tau) * (1.0 - ti.pow(ti.math.e, -sd))
            out_weights[i] = w
            acc_r += w * rgb[i, 0]
            acc_g += w * rgb[i, 1]
            acc_b += w * rgb[i, 2]
            acc_w += w
            acc_d += w * t[i]
            tau += sd
        b = r if background.shape[0] > 1 else 0
        out_rgb[r, 0] = acc_r + (1.0 - acc_w) * background[b, 0]
        out_rgb[r, 1] = acc_g + (1.0 - acc_w) * background[b, 1]
        out_rgb[r, 2] = acc_b + (1.0 - acc_w) * background[b, 2]
        out_opacity[r] = acc_w
        out_depth[r] = acc_d


def _leaf(x: torch.Tensor, grad: torch.Tensor | None = None) -> torch.Tensor:
    """A fresh leaf whose ``.grad`` Taichi may read or write without touching torch's graph."""
    leaf = x.detach().contiguous().requires_grad_(True)
    # a private copy: kernel.grad zeroes output gradients, and the caller may still hold this one
    leaf.grad = torch.zeros_like(leaf) if grad is None else grad.clone(memory_format=torch.contiguous_format)
    return leaf


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigma, rgb, t, delta, offsets, counts, background):
        n, m = offsets.shape[0], sigma.shape[0]
        dev = sigma.device
        out_rgb = torch.empty(n, 3, device=dev)
        out_opacity = torch.empty(n, device=dev)
        out_depth = torch.empty(n, device=dev)
        out_weights = torch.empty(m, device=dev)
        if n:
            # Detached inputs: Taichi would otherwise attach .grad to them even in forward.
            _composite_kernel(sigma.detach().contiguous(), rgb.detach().contiguous(), t, delta,
                              offsets, counts, background, out_rgb, out_opacity, out_depth, out_weights)
        ctx.save_for_backward(sigma, rgb, t, delta, offsets, counts, background,
                              out_rgb, out_opacity, out_depth, out_weights)
        ctx.mark_non_differentiable(out_weights)
        return out_rgb, out_opacity, out_depth, out_weights

    @staticmethod
    def backward(ctx, g_rgb, g_opacity, g_depth, _g_weights):
        sigma, rgb, t, delta, offsets, counts, background, o_rgb, o_op, o_d, o_w = ctx.saved_tensors
        sigma_l, rgb_l = _leaf(sigma), _leaf(rgb)
        # kernel.grad zeroes the outputs' .grad as it goes, so they get fresh copies each time;
        # torch may hand stride-0 (expanded) gradients, hence contiguous().
        outs = [_leaf(o_rgb, g_rgb), _leaf(o_op, g_opacity), _leaf(o_d, g_depth), _leaf(o_w)]
        if offsets.shape[0]:
            _composite_kernel.grad(sigma_l, rgb_l, t, delta, offsets, counts, background, *outs)
        return sigma_l.grad, rgb_l.grad, None, None, None, None, None


def composite(sigma: torch.Tensor, rgb: torch.Tensor, samples: Samples, background: torch.Tensor):
    """Render packed samples: returns (rgb (N, 3), opacity (N,), depth (N,), weights (M,)).

    ``sigma`` (M,) >= 0 and ``rgb`` (M, 3) are differentiable; ``background`` is (1, 3) or
    (N, 3). ``depth`` is the expected ray distance, not normalised by opacity.
    """
    if samples.max_per_ray > backend.current().max_samples_per_ray:
        backend.require_samples(samples.max_per_ray)
    return _Composite.apply(sigma, rgb, samples.t, samples.delta, samples.offsets, samples.counts,
                            background.contiguous())
