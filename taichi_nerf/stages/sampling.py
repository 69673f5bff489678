"""Sampling stage: where along each ray the field is evaluated.

Every sampler here (and the occupancy grid's marcher) emits the packed layout of
:mod:`taichi_nerf.stages.packing`, so the encoder and compositing never care how samples were chosen.
"""

import taichi as ti
import torch

from .packing import Samples, fixed_layout, ray_box


@ti.kernel
def _ray_bounds_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), aabb: ti.types.ndarray(),
                       near: ti.f32, far: ti.f32, t_near: ti.types.ndarray(), t_far: ti.types.ndarray()):
    for r in range(origins.shape[0]):
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
        t0, t1 = ray_box(o, d, aabb, near, far)
        if t1 <= t0:  # a miss: an empty interval, so compositing sees zero opacity
            t1 = t0
        t_near[r] = t0
        t_far[r] = t1


# The last sample's interval with ``gaps``: long enough that any positive density makes it
# opaque (the original NeRF's and the Keras example's 1e10).
OPAQUE_END = 1e10


@ti.kernel
def _stratified_kernel(t_near: ti.types.ndarray(), t_far: ti.types.ndarray(), jitter: ti.types.ndarray(),
                       use_jitter: ti.i32, samples_per_ray: ti.i32, gaps: ti.i32,
                       t: ti.types.ndarray(), delta: ti.types.ndarray()):
    for r, j in ti.ndrange(t_near.shape[0], samples_per_ray):
        step = (t_far[r] - t_near[r]) / samples_per_ray
        i = r * samples_per_ray + j
        u = 0.5
        if use_jitter:
            u = jitter[i]
        t[i] = t_near[r] + (ti.f32(j) + u) * step
        delta[i] = step
        if gaps:  # to the next sample (recomputed here, so no thread waits on another's write)
            if j + 1 < samples_per_ray:
                u_next = 0.5
                if use_jitter:
                    u_next = jitter[i + 1]
                delta[i] = (1.0 + u_next - u) * step
            elif step > 0:  # a ray that misses the box keeps its empty interval
                delta[i] = OPAQUE_END


def ray_bounds(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, near: float, far: float):
    """Per-ray [t_near, t_far]: the part of [near, far] inside the scene box."""
    n = origins.shape[0]
    t_near = torch.empty(n, device=origins.device)
    t_far = torch.empty(n, device=origins.device)
    if n:
        _ray_bounds_kernel(origins, dirs, aabb.to(origins.device), float(near), float(far), t_near, t_far)
    return t_near, t_far


def stratified(t_near: torch.Tensor, t_far: torch.Tensor, samples_per_ray: int,
               generator: torch.Generator | None = None, jitter: bool = True, gaps: bool = False) -> Samples:
    """``samples_per_ray`` samples per ray: jittered within equal bins for training
    (jitter drawn from ``generator``, so runs are reproducible and resumable), bin centres
    for rendering. Each sample's interval is its bin, or with ``gaps`` the distance to the
    next sample and :data:`OPAQUE_END` for the last."""
    n = t_near.shape[0]
    device = t_near.device
    m = n * samples_per_ray
    u = torch.rand(m, device=device, generator=generator) if jitter else torch.empty(1, device=device)
    t = torch.empty(m, device=device)
    delta = torch.empty(m, device=device)
    if n:
        _stratified_kernel(t_near, t_far, u, int(jitter), samples_per_ray, int(gaps), t, delta)
    offsets, counts, ray_index = fixed_layout(n, samples_per_ray, device)
    return Samples(t, delta, ray_index, offsets, counts, samples_per_ray)


@ti.kernel
def _importance_kernel(t_near: ti.types.ndarray(), t_far: ti.types.ndarray(), coarse_t: ti.types.ndarray(),
                       weights: ti.types.ndarray(), coarse_per_ray: ti.i32, u: ti.types.ndarray(),
                       fine_per_ray: ti.i32, fine_t: ti.types.ndarray(),
                       t: ti.types.ndarray(), delta: ti.types.ndarray()):
    for r in range(t_near.shape[0]):
        s, f = coarse_per_ray, fine_per_ray
        step = (t_far[r] - t_near[r]) / s
        total = 0.0
        for j in range(s):
            total += weights[r * s + j] + 1e-5  # a floor keeps every bin reachable: no empty pdf
        # Inverse CDF of the piecewise-constant pdf over the coarse bins; u is sorted, so the
        # bin pointer only moves forward.
        j = 0
        below = 0.0  # cdf at the start of bin j
        for k in range(f):
            p = (weights[r * s + j] + 1e-5) / total
            while j < s - 1 and below + p < u[r * f + k]:
                below += p
                j += 1
                p = (weights[r * s + j] + 1e-5) / total
            frac = ti.min(ti.max((u[r * f + k] - below) / p, 0.0), 1.0)
            fine_t[r * f + k] = t_near[r] + (ti.f32(j) + frac) * step
        # Merge the two sorted lists; each sample stands for the interval between the
        # midpoints to its neighbours.
        a, b = 0, 0
        base = r * (s + f)
        for k in range(s + f):
            take_coarse = b >= f or (a < s and coarse_t[r * s + a] <= fine_t[r * f + b])
            if take_coarse:
                t[base + k] = coarse_t[r * s + a]
                a += 1
            else:
                t[base + k] = fine_t[r * f + b]
                b += 1
        for k in range(s + f):
            lo = t_near[r] if k == 0 else 0.5 * (t[base + k - 1] + t[base + k])
            hi = t_far[r] if k == s + f - 1 else 0.5 * (t[base + k] + t[base + k + 1])
            delta[base + k] = ti.max(hi - lo, 0.0)


def importance(t_near: torch.Tensor, t_far: torch.Tensor, coarse: Samples, weights: torch.Tensor,
               fine_per_ray: int, generator: torch.Generator | None = None, jitter: bool = True) -> Samples:
    """Hierarchical sampling (NeRF's coarse-to-fine): draw ``fine_per_ray`` more samples per
    ray from the coarse weights and merge them with the coarse samples, sorted."""
    n = t_near.shape[0]
    s = coarse.max_per_ray
    dev = t_near.device
    k = torch.arange(fine_per_ray, device=dev, dtype=torch.float32)
    # stratified uniforms: sorted per ray by construction
    offset = torch.rand(n, fine_per_ray, device=dev, generator=generator) if jitter else torch.full((n, fine_per_ray),
                                                                                                    0.5, device=dev)
    u = ((k + offset) / fine_per_ray).reshape(-1).contiguous()
    fine_t = torch.empty(n * fine_per_ray, device=dev)
    total = s + fine_per_ray
    t = torch.empty(n * total, device=dev)
    delta = torch.empty(n * total, device=dev)
    if n:
        _importance_kernel(t_near, t_far, coarse.t, weights.detach().contiguous(), s, u, fine_per_ray, fine_t, t, delta)
    offsets, counts, ray_index = fixed_layout(n, total, dev)
    return Samples(t, delta, ray_index, offsets, counts, total)
