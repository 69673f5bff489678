"""Compositing stage: differentiable emission-absorption volume rendering over packed rays.

For the samples i of a ray, with the interval transmittance p_i = exp(-sigma_i delta_i):
  T_i = p_0 p_1 ... p_{i-1},  w_i = T_i - T_{i+1} = T_i (1 - p_i)
  colour = sum w_i c_i + (1 - sum w_i) * background,  opacity = sum w_i,  depth = sum w_i t_i

Two implementations of the same maths, selected by ``composite(..., method=...)``:

* ``"fast"`` (default). torch computes p for all samples at once (a vectorised exp); one
  kernel walks each ray front to back. Its gradient is a hand-derived adjoint kernel,
  registered with Taichi's autodiff through ``ti.ad.grad_replaced``/``ti.ad.grad_for``, so
  ``_fast_composite.grad`` (and a ``ti.ad.Tape``) runs it. With upstream gradients g (colour),
  g_a (opacity), g_z (depth), g_w_i (the weights, for losses on them such as the distortion
  loss) and e_i = g.(c_i - background) + g_a + g_z t_i + g_w_i = dL/dw_i:
    dL/dc_i = w_i g
    dL/dsigma_i = delta_i (T_{i+1} e_i - sum_{j>i} w_j e_j)
  because dw_i/d(sigma_i delta_i) = T_{i+1} and dw_j/d(sigma_i delta_i) = -w_j for j > i. The
  suffix sum is E - sum_{j<=i} w_j e_j, with E = g.(colour - background) + g_a opacity + g_z
  depth (+ sum_j w_j g_w_j, a first pass over the saved weights when they have a gradient) read
  from the forward outputs, so the adjoint is one front-to-back pass too, with no
  exp (T is rebuilt from the saved p) and no autodiff stack. The subtraction runs in float64,
  and the last sample's suffix sum is exactly 0 (an opaque 1e10 last interval multiplies
  whatever rounding is left there).
* ``"autodiff"``: a single kernel differentiated by Taichi's ``kernel.grad``, the reference the
  fast path is tested against. Its reverse pass replays each ray's loop from the autodiff
  stack (one entry per sample and loop-carried local), which makes it 3-4x slower than torch on
  the CPU. It needs ``ad_stack_size`` >= samples per ray (``backend.require_samples``), and
  computes T as exp(-accumulated optical depth) with ``ti.pow(e, x)``: inside a dynamic loop
  Taichi 1.7's reverse pass reuses ``ti.exp``'s value from the loop's last iteration.
"""

import taichi as ti
import torch

from .. import backend
from ..profiling import stage
from .packing import Samples

METHODS = ("fast", "autodiff")


# --- fast path: forward kernel + hand-derived adjoint -------------------------------------------

@ti.kernel
def _forward_kernel(transmit: ti.types.ndarray(), rgb: ti.types.ndarray(), t: ti.types.ndarray(),
                    offsets: ti.types.ndarray(), counts: ti.types.ndarray(), background: ti.types.ndarray(),
                    out_rgb: ti.types.ndarray(), out_opacity: ti.types.ndarray(),
                    out_depth: ti.types.ndarray(), out_weights: ti.types.ndarray(), serial: ti.template()):
    ti.loop_config(serialize=serial)
    for r in range(offsets.shape[0]):
        trans = 1.0
        acc = ti.Vector([0.0, 0.0, 0.0, 0.0, 0.0])  # colour, opacity, depth
        for j in range(counts[r]):
            i = offsets[r] + j
            after = trans * transmit[i]
            w = trans - after
            out_weights[i] = w
            acc += w * ti.Vector([rgb[i, 0], rgb[i, 1], rgb[i, 2], 1.0, t[i]])
            trans = after
        b = r if background.shape[0] > 1 else 0
        for k in ti.static(range(3)):
            out_rgb[r, k] = acc[k] + (1.0 - acc[3]) * background[b, k]
        out_opacity[r] = acc[3]
        out_depth[r] = acc[4]


@ti.kernel
def _adjoint_kernel(transmit: ti.types.ndarray(), rgb: ti.types.ndarray(), t: ti.types.ndarray(),
                    delta: ti.types.ndarray(), offsets: ti.types.ndarray(), counts: ti.types.ndarray(),
                    background: ti.types.ndarray(), out_rgb: ti.types.ndarray(), out_opacity: ti.types.ndarray(),
                    out_depth: ti.types.ndarray(), out_weights: ti.types.ndarray(), g_rgb: ti.types.ndarray(),
                    g_opacity: ti.types.ndarray(), g_depth: ti.types.ndarray(), g_weights: ti.types.ndarray(),
                    has_g_weights: ti.i32, grad_sigma: ti.types.ndarray(), grad_rgb: ti.types.ndarray(),
                    serial: ti.template()):
    ti.loop_config(serialize=serial)
    for r in range(offsets.shape[0]):
        b = r if background.shape[0] > 1 else 0
        g = ti.Vector([g_rgb[r, 0], g_rgb[r, 1], g_rgb[r, 2]])
        bg = ti.Vector([background[b, 0], background[b, 1], background[b, 2]])
        e_base = g_opacity[r] - g.dot(bg)  # e_i = e_base + g.c_i + g_z t_i
        g_z = g_depth[r]
        # sum_{j>i} w_j e_j, starting from the whole ray's sum E (see the module docstring)
        later = ti.cast(g.dot(ti.Vector([out_rgb[r, 0], out_rgb[r, 1], out_rgb[r, 2]]) - bg)
                        + g_opacity[r] * out_opacity[r] + g_z * out_depth[r], ti.f64)
        if has_g_weights:
            for j in range(counts[r]):
                later += ti.cast(out_weights[offsets[r] + j] * g_weights[offsets[r] + j], ti.f64)
        trans = 1.0
        for j in range(counts[r]):
            i = offsets[r] + j
            after = trans * transmit[i]  # the same arithmetic as the forward: the same w
            w = trans - after
            e = e_base + g[0] * rgb[i, 0] + g[1] * rgb[i, 1] + g[2] * rgb[i, 2] + g_z * t[i]
            if has_g_weights:
                e += g_weights[i]
            later -= ti.cast(w * e, ti.f64)
            if j == counts[r] - 1:
                # Nothing comes after the last sample: its suffix sum is exactly 0, where E's
                # float32 rounding would leave ~1e-7, times a last interval of up to 1e10.
                later = 0.0
            grad_sigma[i] = delta[i] * (after * e - ti.cast(later, ti.f32))
            for k in ti.static(range(3)):
                grad_rgb[i, k] = w * g[k]
            trans = after


@ti.ad.grad_replaced
def _fast_composite(sigma, rgb, t, delta, offsets, counts, background,
                    out_rgb, out_opacity, out_depth, out_weights, transmit):
    """Fills the outputs and ``transmit`` (exp(-sigma delta), kept for the adjoint)."""
    torch.exp(torch.mul(sigma, delta, out=transmit).neg_(), out=transmit)
    _forward_kernel(transmit, rgb, t, offsets, counts, background, out_rgb, out_opacity, out_depth, out_weights,
                    backend.serial_loop(offsets.shape[0]))


@ti.ad.grad_for(_fast_composite)
def _fast_composite_adjoint(sigma, rgb, t, delta, offsets, counts, background,
                            out_rgb, out_opacity, out_depth, out_weights, transmit):
    """Reads the outputs' ``.grad`` and OVERWRITES ``sigma.grad`` and ``rgb.grad`` (kernel.grad adds).
    ``out_weights.grad`` may be None: nothing downstream used the weights."""
    g_weights = out_weights.grad
    has_g_weights = g_weights is not None
    _adjoint_kernel(transmit, rgb, t, delta, offsets, counts, background, out_rgb, out_opacity, out_depth,
                    out_weights, out_rgb.grad, out_opacity.grad, out_depth.grad,
                    g_weights if has_g_weights else transmit[:1], int(has_g_weights), sigma.grad, rgb.grad,
                    backend.serial_loop(offsets.shape[0]))


def _outputs(n: int, m: int, dev) -> list[torch.Tensor]:
    return [torch.empty(n, 3, device=dev), torch.empty(n, device=dev), torch.empty(n, device=dev),
            torch.empty(m, device=dev)]


class _FastComposite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigma, rgb, t, delta, offsets, counts, background):
        # Detached: nothing here may carry torch's graph into Taichi.
        sigma, rgb = sigma.detach().contiguous(), rgb.detach().contiguous()
        outs = _outputs(offsets.shape[0], sigma.shape[0], sigma.device)
        transmit = torch.empty_like(sigma)
        if offsets.shape[0]:
            _fast_composite(sigma, rgb, t, delta, offsets, counts, background, *outs, transmit)
        ctx.save_for_backward(sigma, rgb, t, delta, offsets, counts, background, *outs, transmit)
        ctx.set_materialize_grads(False)  # unused outputs' gradients arrive as None: the weights' skip a pass
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_rgb, g_opacity, g_depth, g_weights):
        saved = [x.detach() for x in ctx.saved_tensors]  # fresh tensor objects to hang .grad on
        sigma, rgb, out_rgb, out_opacity, out_depth = saved[0], saved[1], saved[7], saved[8], saved[9]
        sigma.grad, rgb.grad = torch.empty_like(sigma), torch.empty_like(rgb)  # the adjoint overwrites
        # torch may hand stride-0 (expanded) gradients, hence contiguous()
        out_rgb.grad, out_opacity.grad, out_depth.grad = (
            torch.zeros_like(o) if g is None else g.contiguous()
            for o, g in ((out_rgb, g_rgb), (out_opacity, g_opacity), (out_depth, g_depth)))
        saved[10].grad = None if g_weights is None else g_weights.contiguous()
        if out_rgb.shape[0]:
            with stage("compositing backward"):
                _fast_composite.grad(*saved)
        return sigma.grad, rgb.grad, None, None, None, None, None


# --- reference: one kernel, gradients from Taichi's kernel.grad -----------------------------------

@ti.kernel
def _autodiff_kernel(sigma: ti.types.ndarray(), rgb: ti.types.ndarray(), t: ti.types.ndarray(),
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


class _AutodiffComposite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigma, rgb, t, delta, offsets, counts, background):
        outs = _outputs(offsets.shape[0], sigma.shape[0], sigma.device)
        if offsets.shape[0]:
            # Detached inputs: Taichi would otherwise attach .grad to them even in forward.
            _autodiff_kernel(sigma.detach().contiguous(), rgb.detach().contiguous(), t, delta,
                             offsets, counts, background, *outs)
        ctx.save_for_backward(sigma, rgb, t, delta, offsets, counts, background, *outs)
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_rgb, g_opacity, g_depth, g_weights):
        sigma, rgb, t, delta, offsets, counts, background, o_rgb, o_op, o_d, o_w = ctx.saved_tensors
        sigma_l, rgb_l = backend.autodiff_leaf(sigma), backend.autodiff_leaf(rgb)
        # kernel.grad adds into the inputs' .grad and zeroes the outputs' .grad as it goes
        outs = [backend.autodiff_leaf(o, g)
                for o, g in ((o_rgb, g_rgb), (o_op, g_opacity), (o_d, g_depth), (o_w, g_weights))]
        if offsets.shape[0]:
            _autodiff_kernel.grad(sigma_l, rgb_l, t, delta, offsets, counts, background, *outs)
        return sigma_l.grad, rgb_l.grad, None, None, None, None, None


def composite(sigma: torch.Tensor, rgb: torch.Tensor, samples: Samples, background: torch.Tensor,
              method: str = "fast"):
    """Render packed samples: returns (rgb (N, 3), opacity (N,), depth (N,), weights (M,)).

    ``sigma`` (M,) >= 0 and ``rgb`` (M, 3) are differentiable, and so are all four outputs
    (the weights for losses on them, such as the distortion loss); ``background`` ((1, 3) or
    (N, 3)) is not. ``depth`` is the expected ray distance, not normalised by
    opacity. ``method``: "fast" (hand-derived adjoint) or "autodiff" (Taichi's kernel.grad,
    the slow reference).
    """
    if method == "fast":
        fn = _FastComposite
    elif method == "autodiff":
        fn = _AutodiffComposite
        if samples.max_per_ray > backend.current().max_samples_per_ray:
            backend.require_samples(samples.max_per_ray)  # the autodiff stack holds a whole ray
    else:
        raise ValueError(f"unknown compositing method {method!r}; choose one of {', '.join(METHODS)}")
    return fn.apply(sigma, rgb, samples.t, samples.delta, samples.offsets, samples.counts, background.contiguous())
