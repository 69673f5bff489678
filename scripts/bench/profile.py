"""Where a training step's time goes, stage by stage.

Trains the default configuration on the built-in scene (or ``--data``) and reports milliseconds
per step of each pipeline stage (taichi_nerf.profiling), separately for the stratified warm-up
and for the occupancy-grid phase (a proposal run, unbounded data's default, has no warm-up),
plus the step-time distribution (the grid update's stalls show in its maximum).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from taichi_nerf.config import TrainConfig
from taichi_nerf.profiling import PROFILE

from .. import at_least
from .common import add_common_arguments, bench_config, machine, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--grid-steps", type=at_least(1), default=200,
                        help="profiled training steps after the grid warm-up")
    parser.add_argument("--scene-size", type=at_least(1), default=100, help="the built-in scene's image size in px")
    parser.add_argument("--data", default=None, help="profile on this dataset instead of the built-in scene")
    parser.add_argument("--downscale", type=at_least(1), default=1, help="with --data: load its images this many times "
                        "smaller (a DSLR capture is far too large at full size)")
    parser.add_argument("--mixed-precision", default=None, action=argparse.BooleanOptionalAction,
                        help="bf16 autocast on or off (default: the scene kind's default)")


def profile_training(cfg: TrainConfig, grid_steps: int = 300) -> dict:
    from taichi_nerf.training.trainer import Trainer

    tr = Trainer(cfg)
    phases = {}
    warmup = cfg.grid_warmup if tr.cfg.sampler == "grid" else 0  # the sampler as resolved for the scene
    for phase, steps in (("warm-up", warmup), (tr.cfg.sampler, grid_steps)):  # the phase is the sampler's
        if steps <= 0:
            continue
        PROFILE.reset()
        PROFILE.enabled = True
        step_ms, spr = [], []
        for _ in range(steps):
            t = time.perf_counter()
            info = tr.step()
            step_ms.append(1000 * (time.perf_counter() - t))
            spr.append(info["samples_per_ray"])
        PROFILE.enabled = False
        phases[phase] = {
            "steps": steps,
            "ms_per_step_median": statistics.median(step_ms),
            "ms_per_step_mean": statistics.mean(step_ms),
            "ms_per_step_max": max(step_ms),
            "samples_per_ray": statistics.mean(spr),
            "stages": PROFILE.table(steps),
        }
    return phases


def print_profile(phases: dict) -> None:
    for phase, p in phases.items():
        print(f"\n{phase}: {p['steps']} steps, median {p['ms_per_step_median']:.1f} ms, mean "
              f"{p['ms_per_step_mean']:.1f} ms, max {p['ms_per_step_max']:.1f} ms, "
              f"{p['samples_per_ray']:.1f} samples/ray")
        print(f"  {'stage':<22}{'ms/step':>9}{'share':>8}")
        for row in p["stages"]:
            print(f"  {row['stage']:<22}{row['ms_per_step']:>9.2f}{100 * row['share']:>7.1f}%")


def run(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(bench_config(args.arch, args.scene_size), eval_every=0, preview_every=0,
                              checkpoint_every=0, data=args.data, downscale=args.downscale,
                              mixed_precision=args.mixed_precision)
    print(f"machine: {machine()}")
    phases = profile_training(cfg, args.grid_steps)
    print_profile(phases)
    write_json(args.json, {"machine": machine(), "profile": phases})
    return 0
