"""Startup time: from launching a training process to its first finished step, with a cold
and a warm Taichi kernel cache.

Each run is a fresh ``python -c`` process on the built-in scene (rendered and cached first,
so image rendering is not counted). "cold" points TI_OFFLINE_CACHE_FILE_PATH at an empty
folder, so every kernel the first step needs is compiled; "warm" reuses that folder. The
processes import taichi_nerf from this repository, whatever the working folder.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from taichi_nerf import backend

from .. import checkout_env
from .common import add_common_arguments, machine, write_json

CHILD = r"""
import json, sys, time
t_import = time.time()
from taichi_nerf.config import TrainConfig
from taichi_nerf.training.trainer import Trainer
t_ready = time.time()
tr = Trainer(TrainConfig(out=sys.argv[1], progress=False, arch=sys.argv[2]))
t_built = time.time()
tr.step()
t_first = time.time()
for _ in range(tr.cfg.grid_warmup):  # the grid's kernels compile on its first update
    tr.step()
t_grid = time.time()
print(json.dumps({"import": t_ready, "trainer": t_built, "first_step": t_first, "first_grid_step": t_grid,
                  "python_started": t_import}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def measure(cache_dir: str, arch: str = "cpu") -> dict:
    env = checkout_env(TI_OFFLINE_CACHE_FILE_PATH=cache_dir)
    with tempfile.TemporaryDirectory() as out:
        start = time.time()
        proc = subprocess.run([sys.executable, "-c", CHILD, out, arch], env=env, capture_output=True, text=True,
                              check=True)
    marks = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "python_and_imports_s": marks["import"] - start,
        "trainer_s": marks["trainer"] - marks["import"],
        "first_step_s": marks["first_step"] - marks["trainer"],
        "to_first_step_s": marks["first_step"] - start,
        "first_grid_update_s": marks["first_grid_step"] - marks["first_step"],
    }


def startup_table(arch: str = "cpu", repeats: int = 2) -> dict:
    # The built-in scene is rendered once and cached; render it now so no run pays for it.
    subprocess.run([sys.executable, "-c", "from taichi_nerf.runs.datasets import load_dataset; load_dataset(None)"],
                   env=checkout_env(), check=True, capture_output=True)
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        results["cold"] = measure(cache, arch)
        results["warm"] = min((measure(cache, arch) for _ in range(repeats)), key=lambda r: r["to_first_step_s"])
    return results


def print_startup(results: dict) -> None:
    print("| kernel cache | python + imports s | trainer (data, field) s | first step s | launch to first step s | "
          "first grid update s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['python_and_imports_s']:.2f} | {r['trainer_s']:.2f} | {r['first_step_s']:.2f} | "
              f"**{r['to_first_step_s']:.2f}** | {r['first_grid_update_s']:.2f} |")


def run(args: argparse.Namespace) -> int:
    print(f"machine: {machine()}\n")
    results = startup_table(backend.resolve_arch(args.arch))
    print_startup(results)
    write_json(args.json, {"machine": machine(), "startup": results})
    return 0
