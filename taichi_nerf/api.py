"""The Python API; the CLI is a thin layer over these functions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checkpoint
from .backgrounds import over_background, scene_background
from .config import TrainConfig
from .data.loaders import builtin_scene, load_dataset
from .metrics import psnr, ssim
from .training import Trainer, TrainResult
from .video import write_orbit


def train(config: TrainConfig | None = None, resume: bool = False, **overrides) -> TrainResult:
    """Train a field; ``overrides`` are TrainConfig fields (``steps=500, data="path"``);
    ``preset="keras"`` or ``"pytorch3d"`` (taichi_nerf/presets.py) applies first, the others win over it.
    ``resume=True`` continues the run in ``out`` with its saved configuration."""
    if resume:  # continue with the configuration the run was started with
        out = overrides.pop("out", None) or (config.out if config else TrainConfig().out)
        cfg = checkpoint.resume_config(out, **overrides)
    else:
        cfg = (config or TrainConfig()).replace(**overrides)
    return Trainer(cfg, resume=resume).run()


def render_orbit(ckpt, out="orbit.mp4", frames: int = 60, size: int = 200, arch: str = "auto",
                 fps: int = 24, progress: bool = True) -> list[Path]:
    renderer, cfg, _ = checkpoint.load(ckpt, arch)
    return write_orbit(renderer, Path(out), frames=frames, width=size, fps=fps, progress=progress)


def evaluate(ckpt, split: str = "test", data=None, arch: str = "auto", limit: int | None = None,
             progress: bool = True) -> dict:
    """PSNR and SSIM per image of a split and their means."""
    from tqdm.auto import tqdm

    renderer, cfg, _ = checkpoint.load(ckpt, arch)
    dataset = load_dataset(data if data is not None else cfg.data, **cfg.replace(progress=progress).dataset_options())
    part = dataset.split(split)
    bg = scene_background(renderer.scene, cfg)
    count = part.count if limit is None else min(limit, part.count)
    images = []
    for i in tqdm(range(count), disable=not progress, desc=f"eval {split}", unit="img"):
        pred = renderer.render_image(part.poses, part.intrinsics, i, part.width, part.height, bg)["rgb"].cpu().clamp(0, 1)
        target = over_background(part.rgba[i], bg)
        images.append({"name": part.names[i] if part.names else str(i), "psnr": psnr(pred, target), "ssim": ssim(pred, target)})
    return {
        "checkpoint": str(checkpoint.find_checkpoint(ckpt)), "split": split, "count": count,
        "psnr": float(np.mean([r["psnr"] for r in images])), "ssim": float(np.mean([r["ssim"] for r in images])),
        "images": images,
    }


def make_synthetic(out, views: int = 100, size: int = 100, progress: bool = True) -> Path:
    from .data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(out, views=views, size=size, progress=progress)


__all__ = ["TrainConfig", "train", "render_orbit", "evaluate", "make_synthetic", "load_dataset", "builtin_scene"]
