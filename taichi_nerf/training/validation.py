"""Validation: a field's renders scored against held-out photos, the one way that
training's checks and ``eval`` both score them, and the preview image (prediction | truth | depth, and
with a silhouette loss | opacity | alpha)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..outputs.depth_view import depth_colors
from ..outputs.metrics import has_transparency, mean_object_psnr, object_pixels, psnr
from ..rendering.backgrounds import over_background
from ..stages import cameras

# Periodic validations (the one at step 0 too) score every k-th row and column, k at least 2 and
# as large as leaves ~4096 pixels a view: within ~0.1 dB of whole images, at a fraction of their
# time (4 views of ethiopianHead at 250x250: 5.6 s whole, 1.3 s at k = 2, 0.5 s at k = 3). The
# final validation scores whole images.
PERIODIC_PIXELS = 4096


def periodic_stride(width: int, height: int) -> int:
    """The k of a periodic validation of width x height views (see PERIODIC_PIXELS)."""
    return max(2, math.isqrt(width * height // PERIODIC_PIXELS))


def view_scores(rgb: torch.Tensor, rgba: torch.Tensor, background: torch.Tensor,
                objects: bool) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(prediction, target, scores) of a whole rendered view ``rgb`` (H, W, 3) against its uint8
    RGBA photo over ``background``: both images on the CPU, the prediction clamped to [0, 1], as
    whatever else scores them (SSIM) needs them; scores: ``psnr``, and with ``objects`` (the
    split's photos have transparency) ``object_psnr``, the object's pixels alone."""
    target = over_background(rgba.cpu(), background.cpu())
    pred = rgb.cpu().clamp(0, 1)
    scores = {"psnr": psnr(pred, target)}
    if objects:
        scores["object_psnr"] = psnr(pred, target, object_pixels(rgba))
    return pred, target, scores


def validation_scores(renderer, split, background: torch.Tensor, count: int, stride: int = 1,
                      progress: bool = False, on_view=None) -> tuple[float, float | None]:
    """Mean PSNR of the first ``count`` views of ``split``, and of the object's pixels alone
    (None unless whole views of photos with transparency). ``stride`` > 1 scores every
    stride-th row and column only (training's periodic checks: :func:`periodic_stride`).
    ``progress``: a bar over the whole views (a run's final validation can take a while).
    ``on_view(index, prediction, truth)``: called with each whole view's (H, W, 3) CPU images,
    so that whoever also wants the pictures need not render them again."""
    from tqdm.auto import tqdm

    bg = background.cpu()
    scores, objects = [], []
    if stride > 1:
        pixels = cameras.strided_pixels(split.width, split.height, stride)
        for i in range(count):
            rgb = renderer.render_pixels(split.poses, split.intrinsics, i, split.width, 0, 0, bg,
                                         pixels=pixels)["rgb"].cpu().clamp(0, 1)
            scores.append(psnr(rgb, over_background(split.rgba[i].cpu(), bg).reshape(-1, 3)[pixels]))
        return float(np.mean(scores)), None
    transparent = has_transparency(split.rgba[:count])
    for i in tqdm(range(count), disable=not progress, desc="final validation", unit="view"):
        view = renderer.render_image(split.poses, split.intrinsics, i, split.width, split.height, bg)
        pred, target, scored = view_scores(view["rgb"], split.rgba[i], bg, transparent)
        if on_view is not None:
            on_view(i, pred, target)
        scores.append(scored["psnr"])
        objects.append(scored.get("object_psnr", math.nan))
    return float(np.mean(scores)), mean_object_psnr(objects)


def preview_image(renderer, split, index: int, background: torch.Tensor, scene, silhouette: bool = False) -> np.ndarray:
    """(H, 3W, 3) float in [0, 1]: prediction | ground truth | depth of view ``index``; with
    ``silhouette`` (a run with a silhouette loss, as the PyTorch3D tutorial shows it) also
    (H, 5W, 3): ... | rendered opacity | the photo's alpha, white where opaque."""
    out = renderer.render_image(split.poses, split.intrinsics, index, split.width, split.height, background)
    pred = out["rgb"].cpu().numpy()
    truth = over_background(split.rgba[index].cpu(), background.cpu()).numpy()
    depth = depth_colors(out["depth"], out["opacity"], scene).astype(np.float32) / 255.0
    panels = [pred, truth, depth]
    if silhouette:
        alpha = split.rgba[index][..., 3:4].cpu().float() / 255.0  # (Split.rgba: uint8)
        grey = (out["opacity"].reshape(split.height, split.width, 1).detach().float().cpu(), alpha)
        panels += [g.clamp(0, 1).expand(-1, -1, 3).numpy() for g in grey]
    return np.concatenate(panels, axis=1)
