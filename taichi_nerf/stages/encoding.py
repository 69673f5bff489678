"""Encoding stage: harmonic (sin/cos) features of sample positions and view directions.

One kernel computes each sample's position from its ray and distance and writes both
encodings straight into the MLP's input tensor, so no positions buffer exists. The encoding
is differentiable with respect to the rays (origins, directions, view directions), which is
what pose refinement (training/pose_refinement.py) learns from: a hand-derived adjoint kernel adds
each sample's gradient into its ray's, with the contraction's Jacobian for unbounded scenes.
Sample distances ``t`` are constants (the samplers place them).
Feature layout per encoded vector v (3 components) with L frequencies f_k = base * 2^k:
  [v (if include_input)] + for k in 0..L-1: [sin(f_k v), cos(f_k v)]  ->  3 * (inc + 2L).
"""

from dataclasses import dataclass

import taichi as ti
import torch

from .. import backend
from .space import box_centre_half, contract


@dataclass(frozen=True)
class HarmonicSpec:
    frequencies: int
    include_input: bool = True
    base: float = 1.0

    @property
    def dim(self) -> int:
        return 3 * (int(self.include_input) + 2 * self.frequencies)


_REANCHOR = 8  # octaves per direct sin/cos evaluation; error grows ~2^7 x float32 rounding at most


@ti.func
def _sin_cos(a):
    """sin and cos of ``a``, accurate to float32 rounding on every backend. Taichi's CUDA float32
    sin/cos are fast approximations, far off for large arguments (2^9 x 4 here: 3e-4 on an
    H200, 2026-12), and the double-angle octaves after each anchor double its error; there the
    float64 functions are used. On the CPU they are accurate, and float64 would cost 40%."""
    s, c = ti.sin(a), ti.cos(a)
    if ti.static(backend.float32_trig_is_approximate()):
        a64 = ti.cast(a, ti.f64)
        s, c = ti.cast(ti.sin(a64), ti.f32), ti.cast(ti.cos(a64), ti.f32)
    return s, c


@ti.func
def _encode(v: ti.template(), frequencies: ti.i32, include_input: ti.i32, base: ti.f32,
            out: ti.template(), i: ti.i32, col0: ti.i32):
    col = col0
    if include_input:
        for c in ti.static(range(3)):
            out[i, col + c] = v[c]
        col += 3
    scale = base  # doubling is exact in float32, so f_k * v carries no extra rounding
    s = ti.Vector([0.0, 0.0, 0.0])
    co = ti.Vector([1.0, 1.0, 1.0])
    for k in range(frequencies):
        # sin/cos of the doubled angle from the last octave's (sin 2x = 2 sin x cos x,
        # cos 2x = cos^2 x - sin^2 x): two products instead of two transcendental calls. A
        # rounding error doubles with each doubling, so every 8th octave starts afresh.
        if k % _REANCHOR == 0:
            for c in ti.static(range(3)):
                s[c], co[c] = _sin_cos(scale * v[c])
        else:
            s, co = 2.0 * s * co, co * co - s * s
        for c in ti.static(range(3)):
            out[i, col + c] = s[c]
            out[i, col + 3 + c] = co[c]
        col += 6
        scale *= 2.0


@ti.func
def _sample_point(origins: ti.template(), dirs: ti.template(), t: ti.template(), ray_index: ti.template(),
                  i: ti.i32):
    """Sample ``i``'s ray and its position o + t d."""
    r = ray_index[i]
    o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
    d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
    return r, o + t[i] * d


@ti.kernel
def _encode_samples_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), view_dirs: ti.types.ndarray(),
                           t: ti.types.ndarray(), ray_index: ti.types.ndarray(),
                           pos_freq: ti.i32, pos_inc: ti.i32, pos_base: ti.f32,
                           dir_freq: ti.i32, dir_inc: ti.i32, dir_base: ti.f32,
                           dir_col: ti.i32, inner_box: ti.types.ndarray(), contract_outside: ti.i32,
                           out: ti.types.ndarray()):
    for i in range(t.shape[0]):
        r, p = _sample_point(origins, dirs, t, ray_index, i)
        if contract_outside:  # unbounded scenes: the field lives in contracted space
            p = contract(p, inner_box)
        _encode(p, pos_freq, pos_inc, pos_base, out, i, 0)
        if dir_col >= 0:
            v = ti.Vector([view_dirs[r, 0], view_dirs[r, 1], view_dirs[r, 2]])
            _encode(v, dir_freq, dir_inc, dir_base, out, i, dir_col)


@ti.func
def _encode_adjoint(frequencies: ti.i32, include_input: ti.i32, base: ti.f32, encoded: ti.template(),
                    g_out: ti.template(), i: ti.i32, col0: ti.i32):
    """d(loss)/dv of one encoded vector from its columns' gradients: d sin(f v)/dv = f cos(f v),
    d cos(f v)/dv = -f sin(f v), with sin(f v) and cos(f v) read back from the forward pass's
    ``encoded`` columns (no sin or cos here: they made this kernel 3.5x the forward's time)."""
    g = ti.Vector([0.0, 0.0, 0.0])
    col = col0
    if include_input:
        for c in ti.static(range(3)):
            g[c] += g_out[i, col + c]
        col += 3
    scale = base
    for _k in range(frequencies):
        for c in ti.static(range(3)):
            g[c] += scale * (encoded[i, col + 3 + c] * g_out[i, col + c] - encoded[i, col + c] * g_out[i, col + 3 + c])
        col += 6
        scale *= 2.0
    return g


@ti.func
def _contract_adjoint(p: ti.template(), g: ti.template(), aabb: ti.template()):
    """The gradient at world point ``p`` of a loss whose gradient at contract(p) is ``g``.
    Outside the box, with q = (p - centre) / half and s = max_k |q_k| (at axis m),
    contract = centre + half * g(s) q with g(s) = 2/s - 1/s^2, so
    dL/dq = g(s) u + e_m sign(q_m) g'(s) (u . q), u = half * g."""
    centre, half = box_centre_half(aabb)
    q = (p - centre) / half
    s = ti.max(ti.abs(q[0]), ti.abs(q[1]), ti.abs(q[2]))
    out = g
    if s > 1.0:
        u = half * g
        gs = 2.0 / s - 1.0 / (s * s)
        dgs = -2.0 / (s * s) + 2.0 / (s * s * s)
        grad_q = gs * u
        m = 0
        if ti.abs(q[1]) >= ti.abs(q[m]):
            m = 1
        if ti.abs(q[2]) >= ti.abs(q[m]):
            m = 2
        along = dgs * u.dot(q)
        for c in ti.static(range(3)):  # static indices: no dynamic indexing of a local vector
            if c == m:
                grad_q[c] += along if q[c] >= 0.0 else -along
        out = grad_q / half
    return out


@ti.kernel
def _encode_samples_adjoint(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), t: ti.types.ndarray(),
                            ray_index: ti.types.ndarray(), pos_freq: ti.i32, pos_inc: ti.i32, pos_base: ti.f32,
                            dir_freq: ti.i32, dir_inc: ti.i32, dir_base: ti.f32,
                            dir_col: ti.i32, inner_box: ti.types.ndarray(), contract_outside: ti.i32,
                            encoded: ti.types.ndarray(), g_out: ti.types.ndarray(), per_sample: ti.types.ndarray()):
    """Each sample's share of its ray's gradients, (M, 9): origin | direction | view direction. Summed
    into the rays by torch (index_add_), not by atomic adds here: those were most of this kernel's time."""
    for i in range(t.shape[0]):
        _, p = _sample_point(origins, dirs, t, ray_index, i)
        g = _encode_adjoint(pos_freq, pos_inc, pos_base, encoded, g_out, i, 0)
        if contract_outside:
            g = _contract_adjoint(p, g, inner_box)
        gv = ti.Vector([0.0, 0.0, 0.0])
        if dir_col >= 0:
            gv = _encode_adjoint(dir_freq, dir_inc, dir_base, encoded, g_out, i, dir_col)
        for c in ti.static(range(3)):
            per_sample[i, c] = g[c]
            per_sample[i, 3 + c] = t[i] * g[c]
            per_sample[i, 6 + c] = gv[c]


@ti.kernel
def _encode_points_kernel(points: ti.types.ndarray(), freq: ti.i32, inc: ti.i32, base: ti.f32, out: ti.types.ndarray()):
    for i in range(points.shape[0]):
        _encode(ti.Vector([points[i, 0], points[i, 1], points[i, 2]]), freq, inc, base, out, i, 0)


def encode_samples(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, ray_index: torch.Tensor,
                   pos: HarmonicSpec, direction: HarmonicSpec | None, out: torch.Tensor | None = None,
                   view_dirs: torch.Tensor | None = None, contract_box: torch.Tensor | None = None) -> torch.Tensor:
    """(M, pos.dim [+ direction.dim]) MLP input: encoded positions o + t d (contracted
    around ``contract_box`` for unbounded scenes, see :mod:`taichi_nerf.stages.space`), then encoded
    viewing directions (``view_dirs``, default ``dirs``: NDC rays sample along non-unit NDC
    directions but are seen from their unit world directions); ``direction=None`` encodes
    positions only."""
    view_dirs = dirs if view_dirs is None else view_dirs
    if torch.is_grad_enabled() and (origins.requires_grad or dirs.requires_grad or view_dirs.requires_grad):
        if out is not None:
            raise ValueError("encode_samples: rays that need gradients are encoded into a new tensor, not into out")
        return _EncodeSamples.apply(origins, dirs, view_dirs, t, ray_index, pos, direction, contract_box)
    return _run_encoding(origins, dirs, view_dirs, t, ray_index, pos, direction, contract_box, out)


def _arguments(pos: HarmonicSpec, direction: HarmonicSpec | None, t: torch.Tensor, contract_box) -> tuple:
    """The kernels' encoding arguments after the rays and samples."""
    v = direction if direction is not None else HarmonicSpec(0, False)
    return (pos.frequencies, int(pos.include_input), float(pos.base), v.frequencies, int(v.include_input),
            float(v.base), pos.dim if direction is not None else -1,
            contract_box if contract_box is not None else t, int(contract_box is not None))


def _run_encoding(origins, dirs, view_dirs, t, ray_index, pos, direction, contract_box, out=None) -> torch.Tensor:
    m = t.shape[0]
    if out is None:
        out = torch.empty(m, pos.dim + (direction.dim if direction is not None else 0), device=t.device)
    if m:
        _encode_samples_kernel(origins, dirs, view_dirs, t, ray_index, *_arguments(pos, direction, t, contract_box),
                               out)
    return out


class _EncodeSamples(torch.autograd.Function):
    """encode_samples with gradients for the rays (pose refinement); ``t`` stays constant."""

    @staticmethod
    def forward(ctx, origins, dirs, view_dirs, t, ray_index, pos, direction, contract_box):
        # Detached, contiguous copies: Taichi attaches .grad to tensors that require it.
        rays = [x.detach().contiguous() for x in (origins, dirs, view_dirs)]
        encoded = _run_encoding(*rays, t, ray_index, pos, direction, contract_box)
        # the encoding itself is kept: its sin and cos are the adjoint's cos and -sin (the MLP's first
        # layer holds it, or its bf16 copy; autograd refuses a backward after anything wrote into it)
        ctx.save_for_backward(*rays, t, ray_index, encoded)
        ctx.specs = (pos, direction, contract_box)
        return encoded

    @staticmethod
    def backward(ctx, g_out):
        origins, dirs, view_dirs, t, ray_index, encoded = ctx.saved_tensors
        pos, direction, contract_box = ctx.specs
        per_ray = torch.zeros(origins.shape[0], 9, device=origins.device)
        if t.shape[0]:
            per_sample = torch.empty(t.shape[0], 9, device=t.device)
            _encode_samples_adjoint(origins, dirs, t, ray_index, *_arguments(pos, direction, t, contract_box),
                                    encoded.detach(), g_out.float().contiguous(), per_sample)  # (no .grad look-up)
            per_ray.index_add_(0, ray_index.long(), per_sample)
        return (*per_ray.split(3, dim=1), None, None, None, None, None)


def encode_points(points: torch.Tensor, spec: HarmonicSpec) -> torch.Tensor:
    """(P, spec.dim) encoding of arbitrary 3D points (density queries, e.g. occupancy grids)."""
    if points.dim() != 2 or points.shape[1] != 3:  # the kernel reads 3 numbers a row, past a shorter row's end
        raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
    out = torch.empty(points.shape[0], spec.dim, device=points.device)
    if points.shape[0]:
        _encode_points_kernel(points.contiguous(), spec.frequencies, int(spec.include_input), float(spec.base), out)
    return out
