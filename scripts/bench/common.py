"""What every benchmark subcommand shares: the machine line, timing helpers, the ``--arch``
and ``--json`` options, the benchmark configuration and the time-to-quality loop."""
from __future__ import annotations

import argparse
import errno
import platform
import time
from pathlib import Path

import torch

from taichi_nerf import backend, files
from taichi_nerf.config import TrainConfig


def machine() -> str:
    b = backend.current()
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = torch.cuda.get_device_name(0) if b.is_cuda else f"{cpu}, {torch.get_num_threads()} torch threads"
    return f"{b.arch}: {dev}; torch {torch.__version__}"


def sync():
    if backend.current().is_cuda:
        torch.cuda.synchronize()


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="auto", choices=backend.ARCH_CHOICES)
    parser.add_argument("--json", help="write all results to this JSON file")


def check_output_file(path: str | None, flag: str) -> None:
    """Refuse a file the benchmark would write at its end (``--json``, ``--sheet``) that cannot be
    written, before the work: a folder given, or a read-only place, was refused after it."""
    if path is None:
        return
    files.check_writable(Path(path).parent, for_file=path)
    if Path(path).is_dir():
        raise IsADirectoryError(errno.EISDIR, f"is a folder; {flag} names the file to write", str(path))


def write_json(path: str | None, results: dict) -> None:
    """``results`` as strict JSON (NaN as null), making the file's folder."""
    if path:
        files.write_json(path, results, indent=1)


def bench_config(arch: str, scene_size: int = 100) -> TrainConfig:
    """The default training configuration on the built-in scene, quiet, in a scratch folder."""
    return TrainConfig(arch=arch, progress=False, out="/tmp/taichi-nerf-bench", scene_size=scene_size)


def time_to_quality(step_fn, eval_fn, budget_s: float, eval_every_s: float, label: str) -> dict:
    """Run ``step_fn`` for ``budget_s`` seconds of training time, evaluating every
    ``eval_every_s`` (evaluation time is not counted)."""
    clock, next_eval, curve, steps = 0.0, 0.0, [], 0
    while True:
        if clock >= next_eval or clock >= budget_s:
            value = eval_fn()
            curve.append((round(clock, 2), round(value, 3), steps))
            print(f"  [{label}] {clock:7.1f} s  step {steps:6d}  val PSNR {value:6.2f} dB", flush=True)
            next_eval += eval_every_s
            if clock >= budget_s:
                break
        t = time.perf_counter()
        if step_fn() is False:
            value = eval_fn()
            curve.append((round(clock, 2), round(value, 3), steps))
            break
        sync()
        clock += time.perf_counter() - t
        steps += 1
    return {"curve": curve, "budget_s": budget_s}


def trainer_curve(trainer, budget_s: float, eval_every_s: float, label: str, views: int | None = None) -> dict:
    """:func:`time_to_quality` of a Trainer: its steps (until its configured ``steps``),
    validated on ``views`` val views (None: all) every ``eval_every_s`` of training time. A
    trainer configured with a time limit schedules its learning rate by the training time
    spent, as ``train --time-limit`` does by wall time (training/lr_schedule.py)."""
    limit = trainer.cfg.time_limit_s
    if limit:  # timed, as train's run(): without --steps the time alone ends it and drives the schedule
        trainer.start_clock()

    def step():
        if trainer.step_count >= trainer.cfg.step_limit():
            return False
        trainer.step()
        if limit:
            trainer.time_used = min(trainer.elapsed / limit, 1.0)

    return time_to_quality(step, lambda: trainer.validate(views), budget_s, eval_every_s, label)
