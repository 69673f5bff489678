"""Which training pixels a step learns from: the Monte Carlo ray batch, as (image, pixel) indices.

* ``uniform``: every pixel of every training image equally likely;
* ``error``: half of the rays as ``uniform``, half drawn in proportion to the recent error of
  the pixel's tile (an error map, as Instant-NGP keeps one), so the rays go where the field is
  still wrong instead of to sky and backdrop it has already learned;
* masks in ``ignore`` mode: only the pixels the masks keep (training/masking.py);
* the tutorials' batches (``batch_images``): a few distinct images per step.

Every draw is one vectorised torch call per batch: no per-ray Python.
"""
from __future__ import annotations

import math

import torch

from ..config import TrainConfig

ERROR_TILE = 8  # pixels per side of an error-map tile: ~40 visits per tile in a 240 s CPU run
ERROR_RATE = 0.3  # weight of a batch's error in its tiles' running error
ERROR_SHARE = 0.5  # share of an error-sampled batch drawn from the error map; the rest uniform
CDF_REFRESH = 16  # steps between rebuilds of the error map's sampling table


class ErrorMap:
    """Running mean absolute colour error of each ``ERROR_TILE`` tile of each training image.
    Tiles not yet seen count as badly wrong (1.0), so every tile is visited early."""

    def __init__(self, count: int, width: int, height: int, device, tile: int = ERROR_TILE):
        self.width, self.height, self.tile = width, height, tile
        self.tiles_x, self.tiles_y = math.ceil(width / tile), math.ceil(height / tile)
        self.per_image = self.tiles_x * self.tiles_y
        self.error = torch.ones(count * self.per_image, device=device)
        self.visited = torch.zeros(count * self.per_image, dtype=torch.bool, device=device)
        self._cdf: torch.Tensor | None = None
        self._draws = 0

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (image, pixel) index pairs: a tile in proportion to its error, then a pixel of
        it uniformly (edge tiles are smaller than ``tile``)."""
        if self._cdf is None or self._draws % CDF_REFRESH == 0:
            cdf = torch.cumsum(self.error.double(), 0)  # float64: 1e5 tiles summed in float32 drift
            self._cdf = (cdf / cdf[-1]).float()
        self._draws += 1
        dev = self.error.device
        u = torch.rand(3, n, generator=generator, device=dev)
        tiles = torch.searchsorted(self._cdf, u[0]).clamp_(max=self.error.shape[0] - 1)
        image, local = tiles // self.per_image, tiles % self.per_image
        x0, y0 = (local % self.tiles_x) * self.tile, (local // self.tiles_x) * self.tile
        w, h = (self.width - x0).clamp(max=self.tile), (self.height - y0).clamp(max=self.tile)
        x = x0 + torch.minimum((u[1] * w).long(), w - 1)
        y = y0 + torch.minimum((u[2] * h).long(), h - 1)
        return image.to(torch.int32), (y * self.width + x).to(torch.int32)

    def state_dict(self) -> dict:
        """What a resume needs to draw as this map would: the errors, the visits, the sampling
        table (rebuilt every CDF_REFRESH draws, so it lags the errors) and the draws so far."""
        return {"error": self.error, "visited": self.visited, "cdf": self._cdf, "draws": self._draws}

    def load_state_dict(self, state: dict) -> bool:
        """Take a saved map; False (this one left afresh) when it has other tiles: the resume changed
        the training images (--downscale, --every, --limit, --val-every), which a resume may."""
        if state["error"].shape != self.error.shape:
            return False
        self.error.copy_(state["error"])
        self.visited.copy_(state["visited"])
        self._cdf = None if state["cdf"] is None else state["cdf"].to(self.error.device)
        self._draws = int(state["draws"])
        return True

    def record(self, image_index: torch.Tensor, pixel_index: torch.Tensor, ray_error: torch.Tensor) -> None:
        """Blend a batch's per-ray errors into their tiles (a tile's first visit sets it)."""
        pixel = pixel_index.long()
        y, x = pixel // self.width, pixel % self.width
        tiles = image_index.long() * self.per_image + (y // self.tile) * self.tiles_x + x // self.tile
        total = torch.zeros_like(self.error).index_add_(0, tiles, ray_error.float())
        count = torch.zeros_like(self.error).index_add_(0, tiles, torch.ones_like(ray_error, dtype=torch.float32))
        hit = count > 0
        mean = total[hit] / count[hit]
        old = self.error[hit]
        self.error[hit] = torch.where(self.visited[hit], old + ERROR_RATE * (mean - old), mean)
        self.visited[hit] = True


class RayBatches:
    """Draws each step's (image, pixel) indices for a ``Trainer``; ``record`` takes the
    step's per-ray errors back where the error map is on."""

    def __init__(self, cfg: TrainConfig, train, kept_pixels: torch.Tensor | None, kept_share: float, device):
        self.cfg, self.count, self.device = cfg, train.count, device
        self.pixels = train.width * train.height
        self.kept_pixels, self.kept_share = kept_pixels, kept_share
        whole_images = cfg.batch_images > 0
        self.error_map = (ErrorMap(train.count, train.width, train.height, device)
                          if cfg.pixel_sampling == "error" and not whole_images and kept_share < 1.0 else None)

    def images_at(self, step: int, k: int, generator: torch.Generator) -> torch.Tensor:
        """The ``k`` distinct training images of step ``step``. ``image_order`` random: drawn
        afresh each step (PyTorch3D's ``randperm(...)[:batch_size]``); epochs: consecutive
        slices of one shuffled order per pass, a last part-batch dropped (Keras's shuffled,
        ``drop_remainder`` batches). An epoch's order is a function of the seed and the epoch
        alone, so a resumed run continues it exactly."""
        if self.cfg.image_order == "random":
            return torch.randperm(self.count, generator=generator, device=generator.device)[:k]
        epoch, slot = divmod(step, self.count // k)
        order_seed = (self.cfg.seed + (epoch + 1) * 0x9E3779B97F4A7C15) % 2**64  # a separate stream per epoch
        order = torch.randperm(self.count, generator=torch.Generator().manual_seed(order_seed))
        return order[slot * k:(slot + 1) * k]

    def draw(self, step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(image_index, pixel_index), int32, of step ``step``'s rays."""
        n, dev, g, cfg = self.cfg.batch_rays, self.device, generator, self.cfg
        if cfg.batch_images > 0:
            # The tutorials' batches: a few distinct images per step; all their pixels
            # (batch_rays 0, Keras), or an equal share of random pixels from each (PyTorch3D).
            k = min(cfg.batch_images, self.count)
            chosen = self.images_at(step, k, g).to(device=dev, dtype=torch.int32)
            if n == 0:
                return (chosen.repeat_interleave(self.pixels),
                        torch.arange(self.pixels, device=dev, dtype=torch.int32).repeat(k))
            return (chosen[torch.arange(n, device=dev) % k].contiguous(),
                    torch.randint(0, self.pixels, (n,), generator=g, device=dev, dtype=torch.int32))
        parts = []
        kept = round(n * self.kept_share) if self.kept_pixels is not None else 0
        if kept:
            flat = self.kept_pixels[torch.randint(0, self.kept_pixels.shape[0], (kept,), generator=g, device=dev)]
            parts.append(((flat // self.pixels).to(torch.int32), (flat % self.pixels).to(torch.int32)))
        mapped = round((n - kept) * ERROR_SHARE) if self.error_map is not None else 0
        if mapped:
            parts.append(self.error_map.draw(mapped, g))
        rest = n - kept - mapped
        if rest:
            parts.append((torch.randint(0, self.count, (rest,), generator=g, device=dev, dtype=torch.int32),
                          torch.randint(0, self.pixels, (rest,), generator=g, device=dev, dtype=torch.int32)))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def record(self, image_index: torch.Tensor, pixel_index: torch.Tensor, rgb: torch.Tensor,
               target: torch.Tensor) -> None:
        if self.error_map is not None:
            self.error_map.record(image_index, pixel_index, (rgb.detach() - target).abs().mean(-1))
