"""Choosing the training background from the pixels (data/surround.py)."""
import numpy as np
import pytest
import torch

from taichi_nerf.data.dataset import Dataset, Split, pinhole
from taichi_nerf.data.surround import choose_background

H, W = 48, 64


def dataset(rgba: np.ndarray) -> Dataset:
    n = rgba.shape[0]
    split = Split(rgba=torch.from_numpy(np.ascontiguousarray(rgba)), poses=torch.eye(4).repeat(n, 1, 1),
                  intrinsics=pinhole(50.0, 50.0, W / 2, H / 2, n))
    return Dataset(splits={"train": split}, near=2.0, far=6.0, aabb=torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]))


def frames(n, surround, seed=0, noise=0):
    """``n`` opaque frames of colour ``surround`` (+- ``noise``) with a textured object in the
    middle (a disc whose position wanders a little)."""
    rng = np.random.default_rng(seed)
    rgba = np.empty((n, H, W, 4), np.uint8)
    rgba[..., :3] = np.asarray(surround, np.uint8)
    rgba[..., 3] = 255
    if noise:
        jitter = rng.integers(-noise, noise + 1, (n, H, W, 3))
        rgba[..., :3] = np.clip(rgba[..., :3].astype(int) + jitter, 0, 255)
    j, i = np.mgrid[:H, :W]
    for k in range(n):
        cy, cx = H / 2 + rng.uniform(-4, 4), W / 2 + rng.uniform(-6, 6)
        disc = (j - cy) ** 2 + (i - cx) ** 2 < (0.3 * H) ** 2
        rgba[k][disc, :3] = rng.integers(0, 256, (int(disc.sum()), 3))
    return rgba


def test_alpha_data_keeps_white():
    rgba = frames(8, (0, 0, 0))
    rgba[..., 3] = 0
    disc = rgba[..., :3].max(-1) > 0
    rgba[..., 3][disc] = 255
    choice = choose_background(dataset(rgba))
    assert choice.name == "white" and choice.confident and "transparency" in choice.reason
    assert choice.colour == (1.0, 1.0, 1.0)


def test_black_surround():
    choice = choose_background(dataset(frames(10, (0, 0, 0))))
    assert choice.name == "black" and choice.confident and choice.colour == (0.0, 0.0, 0.0)
    assert choice.uniform_fraction > 0.99


def test_black_surround_with_the_object_touching_a_border():
    """A bar from the object to the left border in every frame, and a second one to the top in
    half of them: most of the band is still black."""
    rgba = frames(10, (0, 0, 0), seed=1)
    rgba[:, H // 3: 2 * H // 3, : W // 2, :3] = (200, 120, 40)
    rgba[::2, : H // 2, W // 2 - 6: W // 2 + 6, :3] = (30, 200, 90)
    choice = choose_background(dataset(rgba))
    assert choice.name == "black"
    assert 0.8 < choice.uniform_fraction < 0.97


def test_white_surround_with_noise():
    choice = choose_background(dataset(frames(12, (255, 255, 255), noise=6)))
    assert choice.name == "white" and choice.confident


def test_other_uniform_colour_is_reported():
    choice = choose_background(dataset(frames(12, (128, 140, 120), noise=4)))
    assert choice.name == "colour" and choice.confident
    assert np.allclose(choice.colour, (128 / 255, 140 / 255, 120 / 255), atol=3 / 255)


@pytest.mark.parametrize("kind", ["noise", "smooth"])
def test_textured_full_frame_is_scene(kind):
    rng = np.random.default_rng(3)
    n = 10
    if kind == "noise":
        rgb = rng.integers(0, 256, (n, H, W, 3))
    else:  # low-frequency texture, like a room or a garden around the object
        coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, 4, 5))).float()
        rgb = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=True)
        rgb = rgb.permute(0, 2, 3, 1).round().numpy()
    rgba = np.concatenate([rgb, np.full((n, H, W, 1), 255)], -1).astype(np.uint8)
    choice = choose_background(dataset(rgba))
    assert choice.name == "scene" and not choice.confident and choice.colour is None
    assert choice.uniform_fraction < 0.75
    from taichi_nerf.rendering.backgrounds import resolve_background

    chosen = resolve_background("auto", choice)  # random per ray: the warning offers the other two, not random
    assert chosen.random and "set --background white or black" in chosen.warning and "random if" not in chosen.warning


def test_few_images_are_not_confident():
    choice = choose_background(dataset(frames(3, (0, 0, 0))))
    assert choice.name == "black" and not choice.confident and "3 image" in choice.reason
    rgba = frames(2, (0, 0, 0))
    rgba[..., 3] = 0
    alpha = choose_background(dataset(rgba))
    assert alpha.name == "white" and not alpha.confident


def test_large_datasets_are_sampled():
    """Only ~50 images are read: a surround that differs in the frames the sample skips does
    not count (of 197 frames, every 4th is read: 0, 4, ..., 196)."""
    rgba = frames(197, (0, 0, 0), seed=4)
    rgba[1::2, ..., :3] = 255
    choice = choose_background(dataset(rgba))
    assert choice.name == "black" and choice.confident
