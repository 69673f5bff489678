"""Pure-torch implementations of the kernels' maths, for tests (in float64) and baselines.

These are the specification the Taichi kernels are checked against; nothing on the hot path
uses them.
"""
from __future__ import annotations

import torch


def harmonic(v: torch.Tensor, frequencies: int, include_input: bool = True, base: float = 1.0) -> torch.Tensor:
    """Same layout as :mod:`taichi_nerf.stages.encoding`: [v] + per k [sin(f_k v), cos(f_k v)]."""
    parts = [v] if include_input else []
    for k in range(frequencies):
        arg = v * (base * 2.0**k)
        parts += [torch.sin(arg), torch.cos(arg)]
    return torch.cat(parts, dim=-1) if parts else v[..., :0]


def ndc_rays(o: torch.Tensor, d: torch.Tensor, focal: float, width: float, height: float, near: float = 1.0):
    """The NeRF paper's NDC rays (appendix C): :func:`taichi_nerf.stages.cameras.ndc_rays`."""
    t = -(near + o[:, 2]) / d[:, 2]
    o = o + t[:, None] * d
    ox = -focal / (width / 2) * o[:, 0] / o[:, 2]
    oy = -focal / (height / 2) * o[:, 1] / o[:, 2]
    oz = 1 + 2 * near / o[:, 2]
    dx = -focal / (width / 2) * (d[:, 0] / d[:, 2] - o[:, 0] / o[:, 2])
    dy = -focal / (height / 2) * (d[:, 1] / d[:, 2] - o[:, 1] / o[:, 2])
    dz = -2 * near / o[:, 2]
    return torch.stack([ox, oy, oz], 1), torch.stack([dx, dy, dz], 1)


def pinhole_rays(poses, intrinsics, image_index, pixel_index, width):
    """float64 origins and unit directions of pixels ``pixel_index`` (row-major in images ``width``
    wide) of cameras ``image_index``, through the pixel centres: :func:`taichi_nerf.stages.cameras.batch_rays`
    without distortion. ``poses`` (N, 3 or 4, 4) camera-to-world, OpenGL axes (x right, y up, looking
    down -z); ``intrinsics`` (N, >= 4) rows of fx, fy, cx, cy (any distortion terms after them ignored)."""
    poses, intr = torch.as_tensor(poses).double(), torch.as_tensor(intrinsics).double()
    image_index, pixel_index = torch.as_tensor(image_index).long(), torch.as_tensor(pixel_index).long()
    px = (pixel_index % width).double() + 0.5
    py = torch.div(pixel_index, width, rounding_mode="floor").double() + 0.5
    k = intr[image_index]
    x, y = (px - k[:, 2]) / k[:, 0], (py - k[:, 3]) / k[:, 1]
    cam = torch.stack([x, -y, -torch.ones_like(x)], -1)
    d = (poses[image_index, :3, :3] @ cam[..., None])[..., 0]
    return poses[image_index, :3, 3], d / d.norm(dim=-1, keepdim=True)


def opencv_distort(x, y, k1, k2, p1, p2):
    """OpenCV's radial-tangential model, forward: normalised image point (x, y) (y down) to its
    distorted position; :func:`taichi_nerf.stages.cameras.undistort` inverts it."""
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def contract(points: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """Scene contraction in float64: :func:`taichi_nerf.stages.space.contract_points`."""
    p = points.double()
    aabb = torch.as_tensor(aabb, dtype=torch.float64)
    centre, half = 0.5 * (aabb[:3] + aabb[3:]), 0.5 * (aabb[3:] - aabb[:3])
    q = (p - centre) / half
    s = q.abs().amax(dim=1, keepdim=True)
    q = torch.where(s > 1.0, (2.0 - 1.0 / s) / s * q, q)
    return centre + q * half


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


def importance_pdf_cdf(weights, n):
    """Per ray (n rows): each coarse bin's probability and the CDF at the bins' edges (n, s + 1)."""
    w = weights.reshape(n, -1).double() + 1e-5
    pdf = w / w.sum(1, keepdim=True)
    return pdf, torch.cat([torch.zeros(n, 1, dtype=torch.float64), torch.cumsum(pdf, 1)], 1)


def importance_cdf_at(t_near, t_far, weights, t):
    """The resampling CDF at distances ``t`` (n, k): the forward map of sampling.importance's
    inverse CDF, well conditioned where the inverse is not (bins of almost no weight)."""
    n = t_near.shape[0]
    pdf, cdf = importance_pdf_cdf(weights, n)
    s = pdf.shape[1]
    x = (t.double() - t_near.double()[:, None]) / ((t_far - t_near).double()[:, None] / s)
    j = x.floor().long().clamp(0, s - 1)
    return torch.gather(cdf, 1, j) + torch.gather(pdf, 1, j) * (x - j.double()).clamp(0, 1)


def importance(t_near, t_far, coarse_t, weights, u, fine_per_ray):
    """Inverse-CDF resampling and sorted merge, per ray in float64 (see sampling.importance)."""
    n = t_near.shape[0]
    s = coarse_t.shape[0] // n
    pdf, cdf = importance_pdf_cdf(weights, n)
    uu = u.view(n, fine_per_ray).double()
    j = (torch.searchsorted(cdf, uu, right=True) - 1).clamp(0, s - 1)
    below = torch.gather(cdf, 1, j)
    p = torch.gather(pdf, 1, j)
    frac = ((uu - below) / p).clamp(0, 1)
    step = ((t_far - t_near) / s).double()[:, None]
    fine = t_near.double()[:, None] + (j.double() + frac) * step
    merged, _ = torch.sort(torch.cat([coarse_t.view(n, s).double(), fine], 1), 1)
    mids = 0.5 * (merged[:, 1:] + merged[:, :-1])
    lo = torch.cat([t_near.double()[:, None], mids], 1)
    hi = torch.cat([mids, t_far.double()[:, None]], 1)
    return merged, (hi - lo).clamp_min(0)


def interlevel_loss(weights_p, s_lo, s_hi, a, b, ray, w):
    """:func:`taichi_nerf.stages.proposal.interlevel_loss` by brute force: each field interval
    [a, b] (in s) of weight ``w`` on ray ``ray`` is bounded by the proposal weight of every bin of
    ``weights_p`` (rays, bins; even bins over [s_lo, s_hi]) it overlaps."""
    n, bins = weights_p.shape
    edges = s_lo[:, None] + (s_hi - s_lo)[:, None] * torch.arange(bins + 1, dtype=torch.float64) / bins
    lo_e, hi_e = edges[ray, :-1], edges[ray, 1:]
    overlaps = (hi_e > a[:, None]) & (lo_e < b[:, None])
    bound = (weights_p[ray] * overlaps).sum(1)
    return (torch.relu(w - bound) ** 2 / (w + 1e-7)).sum() / n


def distortion_loss(s_lo, s_hi, edges_s, w):
    """:func:`taichi_nerf.stages.proposal.distortion_loss` as written, a double sum over every pair
    of intervals: ``edges_s`` (rays, k + 1) the intervals' edges in s, ``w`` (rays, k) their weights
    (an interval a ray does not have: weight 0)."""
    u = (edges_s - s_lo[:, None]) / (s_hi - s_lo)[:, None]
    a, b = u[:, :-1], u[:, 1:]
    m = 0.5 * (a + b)
    pairs = (w[:, :, None] * w[:, None, :] * (m[:, :, None] - m[:, None, :]).abs()).sum((1, 2))
    return (pairs + (w * w * (b - a)).sum(1) / 3).mean()


def bounded_colour_loss(z: torch.Tensor, bound: float, pull: float) -> torch.Tensor:
    """The penalty whose gradient ``stages.field`` adds to the colour's sigmoid: pull times the
    mean over rows of the squared excess of each logit beyond +-bound, halved (summed over the
    colour channels): its gradient is pull * excess / rows."""
    excess = z - z.clamp(-bound, bound)
    return pull * (excess ** 2).sum() / (2.0 * max(z.shape[0], 1))
