"""Which pixels a training step learns from (taichi_nerf/training/ray_batches.py): the uniform draw, and
the error map that sends half of the rays where the field is still wrong."""
from types import SimpleNamespace

import pytest
import torch

from taichi_nerf.config import TrainConfig
from taichi_nerf.training.ray_batches import ERROR_RATE, ERROR_SHARE, ErrorMap, RayBatches


def tile_of(error_map: ErrorMap, image: torch.Tensor, pixel: torch.Tensor) -> torch.Tensor:
    y, x = pixel.long() // error_map.width, pixel.long() % error_map.width
    return image.long() * error_map.per_image + (y // error_map.tile) * error_map.tiles_x + x // error_map.tile


@pytest.mark.parametrize("width, height", [(40, 24), (37, 21)])  # 21 x 37: edge tiles smaller than the tile
def test_the_error_map_draws_tiles_in_proportion_to_their_error(width, height):
    emap = ErrorMap(count=3, width=width, height=height, device="cpu", tile=8)
    emap.error.zero_()
    last = emap.per_image * 3 - 1  # the bottom-right tile of the last image: the smallest where sizes do not divide
    emap.error[5], emap.error[last] = 1.0, 3.0
    image, pixel = emap.draw(20000, torch.Generator().manual_seed(0))
    assert image.dtype == pixel.dtype == torch.int32
    assert int(pixel.min()) >= 0 and int(pixel.max()) < width * height and int(image.max()) <= 2
    tiles = tile_of(emap, image, pixel)
    assert set(tiles.unique().tolist()) == {5, last}  # tiles without error are never drawn
    share = float((tiles == last).float().mean())
    assert share == pytest.approx(0.75, abs=0.02)
    # every pixel of the edge tile is reachable, and no pixel outside it
    in_last = pixel[tiles == last].long()
    xs, ys = in_last % width, in_last // width
    x0, y0 = (emap.tiles_x - 1) * 8, (emap.tiles_y - 1) * 8
    assert set(xs.unique().tolist()) == set(range(x0, width))
    assert set(ys.unique().tolist()) == set(range(y0, height))


def test_the_error_map_blends_a_batch_into_its_tiles():
    emap = ErrorMap(count=2, width=16, height=16, device="cpu", tile=8)
    assert bool((emap.error == 1.0).all())  # tiles not yet seen look wrong, so they are visited first
    # two rays in tile 0 of image 1 (pixels (1, 1) and (7, 7)), one in tile 3 of image 0 (pixel (15, 15))
    image = torch.tensor([1, 1, 0], dtype=torch.int32)
    pixel = torch.tensor([1 * 16 + 1, 7 * 16 + 7, 15 * 16 + 15], dtype=torch.int32)
    emap.record(image, pixel, torch.tensor([0.2, 0.4, 0.1]))
    first, other = emap.per_image + 0, 3
    assert float(emap.error[first]) == pytest.approx(0.3)  # a first visit sets the tile's mean
    assert float(emap.error[other]) == pytest.approx(0.1)
    assert float(emap.error[1]) == 1.0 and int(emap.visited.sum()) == 2
    emap.record(image[:1], pixel[:1], torch.tensor([0.9]))
    assert float(emap.error[first]) == pytest.approx(0.3 + ERROR_RATE * (0.9 - 0.3))  # later ones blend


def fake_split(count=4, width=20, height=12):
    return SimpleNamespace(count=count, width=width, height=height)


def test_uniform_batches_draw_every_pixel_alike_and_error_batches_lean_on_the_error():
    cfg = TrainConfig(batch_rays=4000)
    uniform = RayBatches(cfg, fake_split(), None, 0.0, "cpu")
    assert uniform.error_map is None
    image, pixel = uniform.draw(0, torch.Generator().manual_seed(0))
    # the same stream as two plain randint draws (runs of earlier versions keep their batches)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(image, torch.randint(0, 4, (4000,), generator=g, dtype=torch.int32))
    assert torch.equal(pixel, torch.randint(0, 240, (4000,), generator=g, dtype=torch.int32))

    leaning = RayBatches(TrainConfig(batch_rays=4000, pixel_sampling="error"), fake_split(), None, 0.0, "cpu")
    leaning.error_map.error.fill_(1e-3)
    leaning.error_map.error[2 * leaning.error_map.per_image] = 1.0  # image 2's first tile is where the error is
    image, pixel = leaning.draw(0, torch.Generator().manual_seed(1))
    in_tile = (tile_of(leaning.error_map, image, pixel) == 2 * leaning.error_map.per_image).float().mean()
    # ERROR_SHARE of the batch from the map (1 of its 1 + 23 * 1e-3 on that tile), the rest uniform
    # (the tile's 64 of the 4 x 240 pixels)
    expected = ERROR_SHARE / 1.023 + (1 - ERROR_SHARE) * 64 / 960
    assert float(in_tile) == pytest.approx(expected, abs=0.03)


def test_masks_in_ignore_mode_and_whole_image_batches_keep_their_own_draws():
    kept = torch.tensor([5, 240 + 7, 3 * 240 + 100])  # flat image * pixels + pixel
    only_kept = RayBatches(TrainConfig(batch_rays=300, pixel_sampling="error"), fake_split(), kept, 1.0, "cpu")
    assert only_kept.error_map is None  # ignore mode: every ray is a kept pixel already
    image, pixel = only_kept.draw(0, torch.Generator().manual_seed(0))
    assert set((image.long() * 240 + pixel.long()).tolist()) == set(kept.tolist())
    whole = RayBatches(TrainConfig(batch_rays=0, batch_images=2, pixel_sampling="error"), fake_split(), None, 0.0,
                       "cpu")
    assert whole.error_map is None
    image, pixel = whole.draw(0, torch.Generator().manual_seed(0))
    assert image.shape == (480,) and len(set(image.tolist())) == 2 and torch.equal(pixel[:240], torch.arange(240,
                                                                                                           dtype=torch.int32))


def test_error_sampling_trains_and_its_map_learns_where_the_error_is(tmp_path):
    """A short run with --pixel-sampling error: the map has seen the images, and its tiles' errors
    fell from the unseen 1.0 to what the field gets wrong."""
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    trainer = Trainer(tiny_config(None, tmp_path / "run", scene_size=24, scene_views=6, steps=30,
                                  pixel_sampling="error"))
    assert trainer.cfg.pixel_sampling == "error" and trainer.ray_batches.error_map is not None
    for _ in range(30):
        trainer.step()
    emap = trainer.ray_batches.error_map
    assert float(emap.visited.float().mean()) > 0.9
    assert float(emap.error[emap.visited].mean()) < 0.5
