"""What training does with a dataset's masks (data/masks.py reads them; TrainConfig.mask_mode).

* ``ignore``: every ray comes from a pixel the masks keep, so masked-out pixels never reach the loss;
* ``transparent``: OBJECT_RAY_SHARE of each batch's rays come from the object's pixels, the rest
  from anywhere. A masked object is a small part of each photo (a quarter of ethiopianHead's
  pixels), and the rays that miss it teach only "transparent", which the visual hull already
  says: spending half the rays on the object learns it sooner (the loss then weights the
  object more than its share of the pixels, which is what the renders are for). And the
  occupancy grid's cells stay inside the masks' visual hull (data/mask_hull.py).
"""
from __future__ import annotations

from .config import TrainConfig
from .data.mask_hull import hull_cells
from .data.masks import kept_pixels

OBJECT_RAY_SHARE = 0.5


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
    hull = None
    if grid is not None and not grid.unbounded and not dataset.ndc:
        cells = hull_cells(train, grid.aabb.cpu(), grid.resolution)
        hull = cells.to(grid.occupied.device) if bool(cells.any()) else None
    return pixels, OBJECT_RAY_SHARE, hull
