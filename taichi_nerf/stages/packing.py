"""The packed sample layout: the contract between the pipeline stages.

Rays get different numbers of samples (the occupancy grid skips empty space, early
termination drops what a ray can no longer see), so samples are not an (N, S) grid but flat
structure-of-arrays buffers with no padding and no per-ray Python objects:

  per sample (M,)   t          float32  distance along the ray: the sample is at o + t d
                    delta      float32  length of the interval the sample stands for
                    ray_index  int32    the ray the sample belongs to
  per ray (N,)      offsets    int32    index of the ray's first sample
                    counts     int32    how many samples the ray has (0 is allowed: a miss)
  max_per_ray       int                 upper bound on counts, known without a device sync
                                        (it sizes Taichi's autodiff stack)

Every producer (the samplers in :mod:`taichi_nerf.stages.sampling`, the occupancy grid's marcher,
:func:`compact` after early termination) guarantees:

* a ray's samples are contiguous, ``offsets[r] .. offsets[r] + counts[r] - 1``, and
  ``ray_index`` is ``r`` exactly there;
* rays appear in order with no gaps: ``offsets`` is the exclusive prefix sum of ``counts``
  (:func:`offsets_of`) and ``M = sum(counts)``;
* ``t`` does not decrease along a ray (compositing accumulates transmittance front to back).

Consumers (the encoder, the field, compositing) rely on nothing else, so they never care how
samples were chosen. A fixed number S of samples per ray is the special case
``offsets = r * S``, ``counts = S`` (:func:`fixed_layout`). :func:`ray_box` is the ray/box
interval every sampler starts from.
"""

from dataclasses import dataclass

import taichi as ti
import torch


@dataclass
class Samples:
    """One batch of packed samples; see the module docstring for the layout."""
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


def offsets_of(counts: torch.Tensor) -> torch.Tensor:
    """Start of each ray's samples in a packed buffer: the exclusive prefix sum of counts."""
    return (torch.cumsum(counts, 0, dtype=torch.int32) - counts) if counts.numel() else counts


def fixed_layout(num_rays: int, samples_per_ray: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(offsets, counts, ray_index) of ``samples_per_ray`` samples for every ray."""
    offsets = torch.arange(num_rays, device=device, dtype=torch.int32) * samples_per_ray
    counts = torch.full((num_rays,), samples_per_ray, device=device, dtype=torch.int32)
    ray_index = torch.arange(num_rays, device=device, dtype=torch.int32).repeat_interleave(samples_per_ray)
    return offsets, counts, ray_index


def compact(samples: Samples, index: torch.Tensor, counts: torch.Tensor) -> Samples:
    """The samples at ``index`` repacked with the new per-ray ``counts``. ``index`` must keep
    each ray's samples together and in order (e.g. a prefix of every ray, as
    :func:`taichi_nerf.stages.occupancy.terminate` returns), so the result is packed too."""
    return Samples(samples.t[index], samples.delta[index], samples.ray_index[index], offsets_of(counts), counts,
                   samples.max_per_ray)


@ti.func
def ray_box(o: ti.template(), d: ti.template(), aabb: ti.template(), near: ti.f32, far: ti.f32):
    """Entry/exit distances of the ray ``o + t d`` in the box ``aabb`` (min xyz, max xyz),
    clipped to [near, far]; t0 >= t1 on a miss."""
    t0, t1 = near, far
    for k in ti.static(range(3)):
        inv = 1.0 / d[k] if ti.abs(d[k]) > 1e-9 else 1e9 * (1.0 if d[k] >= 0 else -1.0)
        a = (aabb[k] - o[k]) * inv
        b = (aabb[k + 3] - o[k]) * inv
        t0 = ti.max(t0, ti.min(a, b))
        t1 = ti.min(t1, ti.max(a, b))
    return t0, t1
