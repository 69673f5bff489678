import math

import numpy as np
import torch

from taichi_nerf.outputs.metrics import colorize, psnr, ssim


def test_psnr_known_values():
    a = torch.zeros(8, 8, 3)
    assert math.isinf(psnr(a, a))
    assert abs(psnr(a, torch.full_like(a, 0.1)) - 20.0) < 1e-4


def test_psnr_of_chosen_pixels_scores_only_those():
    """An object (a quarter of the image) off by 0.1 on a perfect background: the whole image
    scores 6 dB better than the object alone (a quarter of the error), the background is perfect."""
    target = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(0))
    pred = target.clone()
    obj = torch.zeros(8, 8, dtype=torch.bool)
    obj[2:6, 2:6] = True
    pred[obj] += 0.1
    assert abs(psnr(pred, target, obj) - 20.0) < 1e-3
    assert abs(psnr(pred, target) - (20.0 + 10 * math.log10(4))) < 1e-3
    assert math.isinf(psnr(pred, target, ~obj))
    assert math.isnan(psnr(pred, target, torch.zeros_like(obj)))


def test_ssim_identity_noise_and_structure():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(48, 48, 3, generator=g)
    assert abs(ssim(img, img) - 1.0) < 1e-6
    noisy = (img + 0.2 * torch.randn(48, 48, 3, generator=g)).clamp(0, 1)
    slightly = (img + 0.02 * torch.randn(48, 48, 3, generator=g)).clamp(0, 1)
    assert ssim(img, noisy) < ssim(img, slightly) < 1.0
    # a constant image with the right mean has no structure in common with a textured one
    assert ssim(img, torch.full_like(img, float(img.mean()))) < 0.1


def test_colorize_orders_near_bright_and_masks():
    depth = np.linspace(2, 6, 16, dtype=np.float32).reshape(4, 4)
    mask = np.ones((4, 4), bool)
    mask[0, 0] = False
    rgb = colorize(depth, mask, 2, 6)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    assert (rgb[0, 0] == 0).all()
    assert rgb[0, 1].astype(int).sum() > rgb[3, 3].astype(int).sum()
