"""The losses: what a batch of rendered rays is trained against: the colour (MSE, Huber or
the PyTorch3D tutorial's pseudo-Huber), an optional silhouette term (opacity against the
photos' alpha), and, with the proposal sampler, its interlevel and distortion terms."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from ..rendering.renderer import RayOutput
from ..stages.proposal import distortion_loss, interlevel_loss

if TYPE_CHECKING:
    from ..config import TrainConfig


def training_loss(cfg: TrainConfig, out: RayOutput, target: torch.Tensor,
                  alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to minimise, the colour's plain MSE without gradients: what PSNR is read from)."""
    s = cfg.huber_delta
    if cfg.loss == "pseudo-huber":
        def distance(x, y):  # the PyTorch3D tutorial's huber(x, y, scaling=s), averaged
            return (((1 + (x - y) ** 2 / s**2).clamp(1e-4).sqrt() - 1) * s).mean()
    else:
        def distance(x, y):
            return F.huber_loss(x, y, delta=s)
    loss = F.mse_loss(out.rgb, target) if cfg.loss == "mse" else distance(out.rgb, target)
    if cfg.silhouette_weight > 0:
        loss = loss + cfg.silhouette_weight * distance(out.opacity, alpha)
    if out.histogram is not None:  # the proposal network learns where the field's weight is
        loss = loss + interlevel_loss(out.histogram, out.samples, out.weights)
        if cfg.distortion_weight > 0:  # and the field's weight along a ray gathers into thin surfaces
            loss = loss + cfg.distortion_weight * distortion_loss(out.histogram, out.samples, out.weights)
    return loss, F.mse_loss(out.rgb.detach(), target)
