"""Scene space: where samples live, for bounded and unbounded scenes.

A bounded scene (an object on a transparent or uniform background) is the box ``aabb``;
nothing outside it exists. An unbounded scene (a phone capture whose background fills every
frame, in every direction) keeps the box as its detailed inner region and squeezes the rest
of space into a shell around it, mip-NeRF 360 style but with the max-norm, so the squeezed
space is a cube that the occupancy grid tiles exactly:

    q = (p - centre) / half,  s = max_k |q_k|
    contract(p) = p                                   where s <= 1
                = centre + half * (2 - 1/s) q / s     where s > 1

The contracted point lies in the cube of twice the box's half-size; infinity maps onto its
surface. The encoder sees contracted points (so the far background gets a finite, well
sampled code), the occupancy grid covers the contracted cube, and the marcher lengthens its
steps with s^2 so that steps are about even in contracted space.
"""

import taichi as ti
import torch

# How far out the marcher goes, in multiples of the box half-size: s = FAR_SCALE maps to
# 2 - 1/FAR_SCALE of the contracted cube, within 1% of infinity.
FAR_SCALE = 100.0


@ti.func
def box_centre_half(aabb: ti.template()):
    centre = ti.Vector([0.5 * (aabb[0] + aabb[3]), 0.5 * (aabb[1] + aabb[4]), 0.5 * (aabb[2] + aabb[5])])
    half = ti.Vector([0.5 * (aabb[3] - aabb[0]), 0.5 * (aabb[4] - aabb[1]), 0.5 * (aabb[5] - aabb[2])])
    return centre, half


@ti.func
def box_norm(p: ti.template(), aabb: ti.template()) -> ti.f32:
    """max_k |p_k - centre_k| / half_k: 1 on the box surface."""
    centre, half = box_centre_half(aabb)
    q = (p - centre) / half
    return ti.max(ti.abs(q[0]), ti.abs(q[1]), ti.abs(q[2]))


@ti.func
def contract(p: ti.template(), aabb: ti.template()):
    """The contracted position of ``p`` (world units; identity inside the box)."""
    centre, half = box_centre_half(aabb)
    q = (p - centre) / half
    s = ti.max(ti.abs(q[0]), ti.abs(q[1]), ti.abs(q[2]))
    if s > 1.0:
        q = (2.0 - 1.0 / s) / s * q
    return centre + q * half


@ti.kernel
def _contract_kernel(points: ti.types.ndarray(), aabb: ti.types.ndarray(), out: ti.types.ndarray()):
    for i in range(points.shape[0]):
        c = contract(ti.Vector([points[i, 0], points[i, 1], points[i, 2]]), aabb)
        for k in ti.static(range(3)):
            out[i, k] = c[k]


def contract_points(points: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """(P, 3) contracted positions of world points (see the module docstring)."""
    out = torch.empty_like(points, dtype=torch.float32)
    if points.shape[0]:
        _contract_kernel(points.float().contiguous(), aabb.to(points.device).float().contiguous(), out)
    return out


def contracted_box(aabb: torch.Tensor) -> torch.Tensor:
    """The cube all contracted points lie in: the box grown to twice its half-size."""
    aabb = torch.as_tensor(aabb, dtype=torch.float32)
    centre, half = 0.5 * (aabb[:3] + aabb[3:]), 0.5 * (aabb[3:] - aabb[:3])
    return torch.cat([centre - 2.0 * half, centre + 2.0 * half])

