"""Sampling stage: where along each ray the field is evaluated.

Every sampler emits the same packed layout (structure of arrays), so compositing and the
encoder never care how samples were chosen:
  ``t`` (M,) sample distance along the unit ray, ``delta`` (M,) length of the interval the
  sample stands for, ``ray_index`` (M,) owning ray, and per ray ``offsets``/``counts`` (N,).
A fixed number of samples per ray is the special case offsets = r * S, counts = S.
"""

from dataclasses import dataclass

import taichi as ti
import torch


@dataclass
class Samples:
    t: torch.Tensor
    delta: torch.Tensor
    ray_index: torch.Tensor
    offsets: torch.Tensor
    counts: torch.Tensor
    max_per_ray: int  # upper bound on counts, known without a device sync

    @property
    def num_samples(self) -> int:
        return int(self.t.shape[0])

    @property
    def num_rays(self) -> int:
        return int(self.offsets.shape[0])


@ti.func
def _ray_box(o: ti.template(), d: ti.template(), aabb: ti.template(), near: ti.f32, far: ti.f32):
    """Entry/exit distances of the ray in the box, clipped to [near, far]; t0 >= t1 on a miss."""
    t0, t1 = near, far
    for k in ti.static(range(3)):
        inv = 1.0 / d[k] if ti.abs(d[k]) > 1e-9 else 1e9 * (1.0 if d[k] >= 0 else -1.0)
        a = (aabb[k] - o[k]) * inv
        b = (aabb[k + 3] - o[k]) * inv
        t0 = ti.max(t0, ti.min(a, b))
        t1 = ti.min(t1, ti.max(a, b))
    return t0, t1


@ti.kernel
def _ray_bounds_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), aabb: ti.types.ndarray(),
                       near: ti.f32, far: ti.f32, t_near: ti.types.ndarray(), t_far: ti.types.ndarray()):
    for r in range(origins.shape[0]):
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
        t0, t1 = _ray_box(o, d, aabb, near, far)
        if t1 <= t0:  # a miss: an empty interval, so compositing sees zero opacity
            t1 = t0
        t_near[r] = t0
        t_far[r] = t1


@ti.kernel
def _stratified_kernel(t_near: ti.types.ndarray(), t_far: ti.types.ndarray(), jitter: ti.types.ndarray(),
                       use_jitter: ti.i32, samples_per_ray: ti.i32,
                       t: ti.types.ndarray(), delta: ti.types.ndarray()):
    for r, j in ti.ndrange(t_near.shape[0], samples_per_ray):
        step = (t_far[r] - t_near[r]) / samples_per_ray
        u = 0.5
        if use_jitter:
            u = jitter[r * samples_per_ray + j]
        i = r * samples_per_ray + j
        t[i] = t_near[r] + (ti.f32(j) + u) * step
        delta[i] = step


def ray_bounds(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, near: float, far: float):
    """Per-ray [t_near, t_far]: the part of [near, far] inside the scene box."""
    n = origins.shape[0]
    t_near = torch.empty(n, device=origins.device)
    t_far = torch.empty(n, device=origins.device)
    if n:
        _ray_bounds_kernel(origins, dirs, aabb.to(origins.device), float(near), float(far), t_near, t_far)
    return t_near, t_far


def fixed_layout(num_rays: int, samples_per_ray: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    offsets = torch.arange(num_rays, device=device, dtype=torch.int32) * samples_per_ray
    counts = torch.full((num_rays,), samples_per_ray, device=device, dtype=torch.int32)
    ray_index = torch.arange(num_rays, device=device, dtype=torch.int32).repeat_interleave(samples_per_ray)
    return offsets, counts, ray_index


def stratified(t_near: torch.Tensor, t_far: torch.Tensor, samples_per_ray: int,
               generator: torch.Generator | None = None, jitter: bool = True) -> Samples:
    """``samples_per_ray`` samples per ray: jittered within equal bins for training
    (jitter drawn from ``generator``, so runs are reproducible and resumable), bin centres
    for rendering."""
    n = t_near.shape[0]
    device = t_near.device
    m = n * samples_per_ray
    u = torch.rand(m, device=device, generator=generator) if jitter else torch.empty(1, device=device)
    t = torch.empty(m, device=device)
    delta = torch.empty(m, device=device)
    if n:
        _stratified_kernel(t_near, t_far, u, int(jitter), samples_per_ray, t, delta)
    offsets, counts, ray_index = fixed_layout(n, samples_per_ray, device)
    return Samples(t, delta, ray_index, offsets, counts, samples_per_ray)
