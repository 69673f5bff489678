"""What training does with a dataset's masks (data/masks.py reads them; TrainConfig.mask_mode).

* ``ignore``: every ray comes from a pixel the masks keep, so masked-out pixels never reach the loss;
* ``transparent``: rays are drawn from every pixel as without masks (OBJECT_RAY_SHARE 0): drawing
  half of them from the object's pixels was measured worse on ethiopianHead (19.06 against
  19.63 dB after 500 steps, the object's rays being the expensive ones); the occupancy grid's
  cells stay inside the masks' visual hull (data/mask_hull.py).
"""
from __future__ import annotations

from ..config import TrainConfig
from ..data.mask_hull import hull_cells
from ..data.masks import kept_pixels

OBJECT_RAY_SHARE = 0.0  # share of a transparent-mode batch drawn from the object's pixels


def training_hooks(cfg: TrainConfig, dataset, train, grid):
    """(flat indices image * H * W + pixel of the pixels the masks keep, or None; the share of
    each batch's rays drawn from them; the occupancy grid's allowed cells, or None: all)."""
    mode = getattr(dataset, "mask_mode", "")
    if train.mask is None or mode not in ("ignore", "transparent"):
        return None, 0.0, None
    if cfg.batch_images > 0:
        if mode == "ignore":
            raise ValueError("mask_mode ignore draws rays from the pixels the masks keep, which whole-image batches "
                             "(batch_images) cannot do; use batch_images 0 or mask_mode transparent")
        return None, 0.0, None  # the tutorials' whole images stay whole
    pixels = kept_pixels(train.mask).to(train.rgba.device)
    if mode == "ignore":
        return pixels, 1.0, None
    if not OBJECT_RAY_SHARE:
        pixels = None
    hull = None
    if grid is not None and not grid.unbounded and not dataset.ndc:
        cells = hull_cells(train, grid.aabb.cpu(), grid.resolution)
        hull = cells.to(grid.occupied.device) if bool(cells.any()) else None
    return pixels, OBJECT_RAY_SHARE, hull
