"""Encoding stage: harmonic (sin/cos) features of sample positions and view directions.

One kernel computes each sample's position from its ray and distance and writes both
encodings straight into the MLP's input tensor, so no positions buffer exists.
Feature layout per encoded vector v (3 components) with L frequencies f_k = base * 2^k:
  [v (if include_input)] + for k in 0..L-1: [sin(f_k v), cos(f_k v)]  ->  3 * (inc + 2L).
"""

from dataclasses import dataclass

import taichi as ti
import torch

from .space import contract


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
                s[c] = ti.sin(scale * v[c])
                co[c] = ti.cos(scale * v[c])
        else:
            s, co = 2.0 * s * co, co * co - s * s
        for c in ti.static(range(3)):
            out[i, col + c] = s[c]
            out[i, col + 3 + c] = co[c]
        col += 6
        scale *= 2.0


@ti.kernel
def _encode_samples_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), view_dirs: ti.types.ndarray(),
                           t: ti.types.ndarray(), ray_index: ti.types.ndarray(),
                           pos_freq: ti.i32, pos_inc: ti.i32, pos_base: ti.f32,
                           dir_freq: ti.i32, dir_inc: ti.i32, dir_base: ti.f32,
                           dir_col: ti.i32, inner_box: ti.types.ndarray(), contract_outside: ti.i32,
                           out: ti.types.ndarray()):
    for i in range(t.shape[0]):
        r = ray_index[i]
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
        p = o + t[i] * d
        if contract_outside:  # unbounded scenes: the field lives in contracted space
            p = contract(p, inner_box)
        _encode(p, pos_freq, pos_inc, pos_base, out, i, 0)
        if dir_col >= 0:
            v = ti.Vector([view_dirs[r, 0], view_dirs[r, 1], view_dirs[r, 2]])
            _encode(v, dir_freq, dir_inc, dir_base, out, i, dir_col)


@ti.kernel
def _encode_points_kernel(points: ti.types.ndarray(), freq: ti.i32, inc: ti.i32, base: ti.f32, out: ti.types.ndarray()):
    for i in range(points.shape[0]):
        _encode(ti.Vector([points[i, 0], points[i, 1], points[i, 2]]), freq, inc, base, out, i, 0)


def encode_samples(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, ray_index: torch.Tensor,
                   pos: HarmonicSpec, direction: HarmonicSpec | None, out: torch.Tensor | None = None,
                   view_dirs: torch.Tensor | None = None, contract_box: torch.Tensor | None = None) -> torch.Tensor:
    """(M, pos.dim [+ direction.dim]) MLP input: encoded positions o + t d (contracted
    around ``contract_box`` for unbounded scenes, see :mod:`taichi_nerf.space`), then encoded
    viewing directions (``view_dirs``, default ``dirs``: NDC rays sample along non-unit NDC
    directions but are seen from their unit world directions); ``direction=None`` encodes
    positions only."""
    m = t.shape[0]
    width = pos.dim + (direction.dim if direction is not None else 0)
    if out is None:
        out = torch.empty(m, width, device=t.device)
    if m:
        v = direction if direction is not None else HarmonicSpec(0, False)
        _encode_samples_kernel(origins, dirs, dirs if view_dirs is None else view_dirs, t, ray_index, pos.frequencies,
                               int(pos.include_input), float(pos.base),
                               v.frequencies, int(v.include_input), float(v.base),
                               pos.dim if direction is not None else -1,
                               contract_box if contract_box is not None else t, int(contract_box is not None), out)
    return out


def encode_points(points: torch.Tensor, spec: HarmonicSpec) -> torch.Tensor:
    """(P, spec.dim) encoding of arbitrary 3D points (density queries, e.g. occupancy grids)."""
    out = torch.empty(points.shape[0], spec.dim, device=points.device)
    if points.shape[0]:
        _encode_points_kernel(points.contiguous(), spec.frequencies, int(spec.include_input), float(spec.base), out)
    return out
