"""What training does with a dataset's masks (data/masks.py reads them; TrainConfig.mask_mode)."""
from __future__ import annotations

import torch

from .config import TrainConfig
from .data.mask_hull import hull_cells
from .data.masks import kept_pixels


def training_hooks(cfg: TrainConfig, dataset, train, grid) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(flat indices of the pixels rays are drawn from, or None: all; the occupancy grid's allowed
    cells, or None: all). ``ignore``: rays only from pixels the masks keep, so masked-out pixels
    never reach the loss. ``transparent``: the grid stays inside the masks' visual hull."""
    mode = getattr(dataset, "mask_mode", "")
    if mode == "ignore" and train.mask is not None:
        if cfg.batch_images > 0:
            raise ValueError("mask_mode ignore draws rays from the pixels the masks keep, which whole-image batches "
                             "(batch_images) cannot do; use batch_images 0 or mask_mode transparent")
        return kept_pixels(train.mask).to(train.rgba.device), None
    if mode == "transparent" and grid is not None and not grid.unbounded and not dataset.ndc:
        cells = hull_cells(train, grid.aabb.cpu(), grid.resolution)
        if bool(cells.any()):
            return None, cells.to(grid.occupied.device)
    return None, None
