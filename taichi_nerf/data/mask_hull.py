"""The masks' visual hull: the part of the scene box that every camera's mask keeps.

An object masked in every photo lies inside the intersection of the cones its masks cut out
of space. With ``mask_mode`` transparent (the alpha channel is the mask) the hull gives:

* the scene box (``hull_bounds``): shrunk to the hull's extent plus a margin, so samples and
  the occupancy grid's cells are spent on the object, not on the room the masks removed;
* the occupancy grid's allowed cells (``hull_cells``): the grid never measures or marches a
  cell outside the hull (``OccupancyGrid.restrict_to``), so the field never grows fog where
  every mask says there is nothing.

A point is carved when at least CARVE_SHARE of the cameras that see it (at least one) mask
it out, which tolerates a few imperfect masks or poses, or when too few cameras see it; cells
are dilated by one, because distortion is ignored in the projection and a cell is judged by
its centre.
"""
from __future__ import annotations

import torch

from .dataset import Dataset, Split

RESOLUTION = 64  # lattice cells per side for the box
CARVE_SHARE = 0.05  # share of the seeing cameras that must mask a point out
MIN_SEEN, MIN_SEEN_SHARE = 2, 0.1  # a point kept must be seen by this many cameras, and this share of them
OUT = 64  # alpha below this is masked out


def _lattice(aabb: torch.Tensor, resolution: int) -> torch.Tensor:
    """(R^3, 3) cell centres, x-major (the occupancy grid's cell order)."""
    axes = [aabb[k] + (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution * (aabb[k + 3] - aabb[k])
            for k in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def carved_points(split: Split, points: torch.Tensor) -> torch.Tensor:
    """(M,) bool: the points the masks (the alpha channel) carve away, and those too few cameras see."""
    alpha = split.rgba[..., 3].cpu().reshape(split.count, -1)
    height, width = split.height, split.width
    poses, intr = split.poses.float().cpu(), split.intrinsics.float().cpu()
    points = points.float()
    seen = torch.zeros(points.shape[0], dtype=torch.int32)
    out = torch.zeros(points.shape[0], dtype=torch.int32)
    for i in range(split.count):
        cam = torch.addmm(-(poses[i, :3, 3] @ poses[i, :3, :3]), points, poses[i, :3, :3])  # world -> camera
        inv_depth = -1.0 / cam[:, 2]  # OpenGL: the camera looks down -z; behind it this is negative
        u = intr[i, 2] + intr[i, 0] * cam[:, 0] * inv_depth
        v = intr[i, 3] - intr[i, 1] * cam[:, 1] * inv_depth
        inside = (inv_depth > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        pixel = torch.where(inside, v.long() * width + u.long(), 0)
        seen += inside
        out += inside & (alpha[i][pixel] < OUT)
    # Seen by almost no camera: nothing there is constrained (a lone cone reaches far), and hardly
    # a training ray passes there.
    rarely_seen = seen < max(MIN_SEEN, round(MIN_SEEN_SHARE * split.count))
    return rarely_seen | (out >= torch.clamp((CARVE_SHARE * seen).round(), min=1).int())


def hull_cells(split: Split, aabb: torch.Tensor, resolution: int) -> torch.Tensor:
    """(R^3,) uint8 cells of the lattice over ``aabb`` inside the hull, dilated by one cell."""
    keep = ~carved_points(split, _lattice(aabb.double().cpu(), resolution))
    grid = keep.float().reshape(1, 1, resolution, resolution, resolution)
    dilated = torch.nn.functional.max_pool3d(grid, kernel_size=3, stride=1, padding=1)
    return (dilated.reshape(-1) > 0).to(torch.uint8)


def hull_bounds(dataset: Dataset) -> None:
    """Shrink the scene box to the hull's extent (one cell of margin); a note says so. No-op for
    NDC scenes, and a warning when the masks keep nothing (masks and poses disagree)."""
    if dataset.ndc or "train" not in dataset.splits:
        return
    box = dataset.aabb.double()
    cells = hull_cells(dataset.splits["train"], box, RESOLUTION).bool().reshape(RESOLUTION, RESOLUTION, RESOLUTION)
    if not bool(cells.any()):
        dataset.warnings.append("the masks' visual hull is empty (masks and camera poses disagree?); the scene box "
                                "is left as the cameras gave it")
        return
    size = (box[3:] - box[:3]) / RESOLUTION
    lo, hi = torch.empty(3, dtype=torch.float64), torch.empty(3, dtype=torch.float64)
    for k in range(3):
        occupied = torch.nonzero(cells.any(dim=tuple(d for d in range(3) if d != k)))[:, 0]
        lo[k] = box[k] + size[k] * int(occupied.min())
        hi[k] = box[k] + size[k] * (int(occupied.max()) + 1)
    new = torch.cat([torch.maximum(lo - size, box[:3]), torch.minimum(hi + size, box[3:])])
    share = float(torch.prod(new[3:] - new[:3]) / torch.prod(box[3:] - box[:3]))
    if share > 0.99:  # the box was already tight (from-photos writes one around COLMAP's points)
        dataset.notes.append("the masks' visual hull fills the scene box: box kept")
        return
    dataset.aabb = new.float()
    dataset.notes.append(f"box shrunk to the masks' visual hull ({share:.1%} of its volume)")
