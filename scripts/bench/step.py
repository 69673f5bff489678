"""A training step with the default settings on the built-in scene (stratified warm-up and
occupancy-grid phases), after the compositing table (~2 min on CPU)."""
from __future__ import annotations

import argparse
import statistics
import time

from taichi_nerf.config import TrainConfig

from .. import at_least
from . import compositing
from .common import bench_config, sync, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    compositing.add_arguments(parser)
    # the first step of each phase is not timed (it compiles), so a phase needs two
    parser.add_argument("--grid-steps", type=at_least(2), default=200,
                        help="training steps after the grid warm-up, the first untimed (default 200)")
    parser.add_argument("--scene-size", type=at_least(1), default=100, help="the built-in scene's image size in px")


def bench_training(cfg: TrainConfig, grid_steps: int) -> dict:
    from taichi_nerf.training.trainer import Trainer

    tr = Trainer(cfg)
    phases = {}
    for phase, steps in (("stratified warm-up", cfg.grid_warmup if tr.cfg.sampler == "grid" else grid_steps),
                         ("occupancy grid", grid_steps if tr.cfg.sampler == "grid" else 0)):
        if steps == 0:
            continue
        tr.step()
        sync()
        t = time.perf_counter()
        spr = []
        for _ in range(steps - 1):
            info = tr.step()
            spr.append(info["samples_per_ray"])
        sync()
        dt = (time.perf_counter() - t) / (steps - 1)
        phases[phase] = {"ms_per_step": 1000 * dt, "rays_per_s": cfg.batch_rays / dt,
                         "samples_per_ray": statistics.mean(spr)}
    return phases


def measure(args: argparse.Namespace, cfg: TrainConfig) -> dict:
    """The compositing table, then the training-step table; all results so far."""
    results = compositing.measure(args, cfg)
    train = bench_training(cfg, args.grid_steps)
    results["training"] = train
    print(f"\n### Training step, default settings ({cfg.batch_rays} rays/step, built-in scene {args.scene_size}px)\n")
    print("| phase | ms/step | rays/s | samples/ray |")
    print("|---|---:|---:|---:|")
    for phase, r in train.items():
        print(f"| {phase} | {r['ms_per_step']:.1f} | {r['rays_per_s']:.0f} | {r['samples_per_ray']:.1f} |")
    return results


def run(args: argparse.Namespace) -> int:
    write_json(args.json, measure(args, bench_config(args.arch, args.scene_size)))
    return 0
