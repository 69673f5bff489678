"""A converted dataset trains like the native one: the built-in scene written as a tiny NeRF
.npz (RGB on white, no alpha) must gain several dB of validation PSNR in a short run."""
import dataclasses

import numpy as np
import pytest
import torch

from taichi_nerf.config import TrainConfig
from taichi_nerf.data.loaders import read_dataset
from taichi_nerf.scenes.synthetic import CAMERA_ANGLE_X, CAMERA_RADIUS, render_scene
from taichi_nerf.stages.cameras import focal_from_fov, sphere_poses
from taichi_nerf.training.trainer import Trainer

from .conftest import torch_seeded

SIZE, VIEWS = 32, 30


def small_config(out, **changes):
    values = dict(out=str(out), width=64, depth=2, pos_frequencies=6, dir_frequencies=2, batch_rays=384,
                  samples_per_ray=24, steps=250, lr=1e-2, lr_final=1e-3, eval_every=10_000, eval_views=2,
                  preview_every=0,
                  checkpoint_every=0, progress=False, arch="cpu", sampler="stratified", **changes)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})  # other samplers may come and go


@pytest.mark.slow
@torch_seeded(0)  # the global generator given back afterwards, as the Trainer seeds it too
def test_npz_of_the_builtin_scene_trains(tmp_path, taichi_backend):
    poses = sphere_poses(VIEWS, CAMERA_RADIUS, seed=11)
    focal = focal_from_fov(SIZE, CAMERA_ANGLE_X)
    rgba, _ = render_scene(poses, SIZE, SIZE, focal, focal, SIZE / 2, SIZE / 2, supersample=1)
    a = rgba.float() / 255.0
    rgb = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])  # like tiny_nerf_data.npz: colour only
    np.savez(tmp_path / "scene.npz", images=rgb.numpy(), poses=poses.numpy(), focal=np.float64(focal))
    ds = read_dataset(tmp_path / "scene.npz")
    assert ds.splits["val"].count == VIEWS - int(VIEWS * 0.8)
    threads = torch.get_num_threads()
    # Small matrices: one thread is faster, and far faster when other jobs share the cores
    # (measured 13 s with one thread against 59 s with two on a busy 2-core machine).
    torch.set_num_threads(1)
    try:
        trainer = Trainer(small_config(tmp_path / "run"), dataset=ds)
        result = trainer.run()
    finally:
        torch.set_num_threads(threads)
    first = trainer.history[0]["val_psnr"]
    assert result.val_psnr > first + 3.0, (first, result.val_psnr)  # measured: about +4.5 dB
    # colour only: nothing says where the objects are, so no score of their pixels alone
    assert result.val_object_psnr is None and "val_object_psnr" not in trainer.history[-1]
