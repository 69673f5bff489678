"""Image quality metrics (PSNR, SSIM) and the colour map used for depth images."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F


def mse_to_psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def psnr(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """PSNR of two (H, W, C) images in [0, 1]; ``where``: (H, W) bool, only those pixels
    (NaN when it selects none)."""
    error = (pred.float() - target.float()) ** 2
    if where is not None:
        error = error[where.to(error.device)]
        if error.numel() == 0:
            return float("nan")
    return mse_to_psnr(float(error.mean()))


# Scoring the object alone: a masked capture or a render is mostly background, which a field
# learns first, so the whole image's PSNR says little about the object (eval, the final validation).
def has_transparency(rgba: torch.Tensor) -> bool:
    """Whether uint8 RGBA photos (..., 4) have any pixel less than opaque: then the object is scored alone too."""
    return bool((rgba[..., 3] < 255).any())


def object_pixels(rgba: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: the pixels an RGBA photo's object covers (alpha > 0), for ``psnr(where=)``."""
    return rgba[..., 3] > 0


def mean_object_psnr(values) -> float | None:
    """The mean over the views that show the object (NaN: none of its pixels); None if none does."""
    scored = [v for v in values if not math.isnan(v)]
    return float(np.mean(scored)) if scored else None


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity of two (H, W, C) images in [0, 1]: Gaussian window, the
    constants of Wang et al. 2004, valid region only, mean over channels."""
    x = pred.float().permute(2, 0, 1)[None].cpu()
    y = target.float().permute(2, 0, 1)[None].cpu()
    c = x.shape[1]
    window = min(window, x.shape[2], x.shape[3])
    coords = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(z):
        return F.conv2d(z, kernel, groups=c)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx**2
    vy = blur(y * y) - my**2
    cov = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


# Anchor colours of a perceptually ordered dark-blue -> yellow ramp (our own choice of
# stops); linear interpolation between them is plenty for depth previews.
_RAMP = np.array([
    [0.05, 0.03, 0.25], [0.25, 0.10, 0.55], [0.55, 0.15, 0.55], [0.85, 0.30, 0.35],
    [0.98, 0.60, 0.15], [0.99, 0.90, 0.30],
], dtype=np.float32)


def colorize(values: np.ndarray, mask: np.ndarray | None = None, lo: float | None = None,
             hi: float | None = None) -> np.ndarray:
    """Map a (H, W) array to (H, W, 3) uint8; near is bright, far is dark; masked-out is black."""
    v = values.astype(np.float32)
    valid = np.isfinite(v) if mask is None else (mask & np.isfinite(v))
    if valid.any():
        lo = float(v[valid].min()) if lo is None else lo
        hi = float(v[valid].max()) if hi is None else hi
    else:
        lo, hi = 0.0, 1.0
    x = 1.0 - np.clip((v - lo) / max(hi - lo, 1e-8), 0.0, 1.0)
    pos = x * (len(_RAMP) - 1)
    i = np.clip(pos.astype(np.int64), 0, len(_RAMP) - 2)
    f = (pos - i)[..., None]
    rgb = _RAMP[i] * (1 - f) + _RAMP[i + 1] * f
    rgb[~valid] = 0.0
    return (rgb * 255 + 0.5).astype(np.uint8)
