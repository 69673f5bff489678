"""Pure-torch implementations of the kernels' maths, for tests (in float64) and baselines.

These are the specification the Taichi kernels are checked against; nothing on the hot path
uses them.
"""
from __future__ import annotations

import torch


def harmonic(v: torch.Tensor, frequencies: int, include_input: bool = True, base: float = 1.0) -> torch.Tensor:
    """Same layout as :mod:`taichi_nerf.encoding`: [v] + per k [sin(f_k v), cos(f_k v)]."""
    parts = [v] if include_input else []
    for k in range(frequencies):
        arg = v * (base * 2.0**k)
        parts += [torch.sin(arg), torch.cos(arg)]
    return torch.cat(parts, dim=-1) if parts else v[..., :0]


def composite_packed(sigma, rgb, t, delta, offsets, counts, background):
    """Emission-absorption per ray with a python loop over rays: slow, obviously correct."""
    n = offsets.shape[0]
    out_rgb, out_op, out_d, weights = [], [], [], []
    bg = background.expand(n, 3) if background.shape[0] == 1 else background
    for r in range(n):
        s, c = int(offsets[r]), int(counts[r])
        sd = sigma[s:s + c] * delta[s:s + c]
        tau = torch.cumsum(sd, 0) - sd
        w = torch.exp(-tau) * (1.0 - torch.exp(-sd))
        acc = w.sum()
        out_rgb.append((w[:, None] * rgb[s:s + c]).sum(0) + (1.0 - acc) * bg[r])
        out_op.append(acc)
        out_d.append((w * t[s:s + c]).sum())
        weights.append(w)
    return torch.stack(out_rgb), torch.stack(out_op), torch.stack(out_d), torch.cat(weights)


def composite_dense(sigma, rgb, t, delta, background):
    """The usual vectorised NeRF compositing with a cumulative product of (1 - alpha),
    for fixed (N, S) layouts: the pure-torch baseline of the benchmark."""
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], dim=1), dim=1)[:, :-1]
    w = alpha * trans
    acc = w.sum(1)
    colour = (w[..., None] * rgb).sum(1) + (1.0 - acc)[:, None] * background
    return colour, acc, (w * t).sum(1), w
