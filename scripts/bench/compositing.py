"""Compositing against dense torch ``cumprod`` compositing, forward and forward + backward, at
64/128/256 samples per ray (~1 min on CPU)."""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from taichi_nerf import backend
from taichi_nerf.config import TrainConfig
from taichi_nerf.stages import reference
from taichi_nerf.stages.compositing import composite
from taichi_nerf.stages.packing import Samples, fixed_layout

from .. import at_least
from .common import add_common_arguments, bench_config, machine, sync, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--rays", type=at_least(0), default=0,
                        help="rays in the compositing benchmark (default 4096 CPU, 65536 CUDA)")
    parser.add_argument("--repeats", type=at_least(1), default=10, help="timed calls of each run (default 10)")


def bench_compositing(rays: int, repeats: int, methods=("fast", "autodiff")) -> list[dict]:
    """Per samples/ray: median ms of ``composite`` (each method) and of dense torch ``cumprod``
    compositing, forward and forward + backward, and the speed-ups torch ms / ours ms. The runs
    take turns in every repeat, so load on a shared machine hits them alike; each timed call
    follows an untimed call of the same run, as in a training loop."""
    dev = backend.current().device
    rows = []
    for s in (64, 128, 256):
        backend.require_samples(s)  # the autodiff method's stack; done before timing anything
        g = torch.Generator(device=dev).manual_seed(s)
        sigma = torch.rand(rays * s, device=dev, generator=g) * 5
        rgb = torch.rand(rays * s, 3, device=dev, generator=g)
        t = torch.linspace(2, 6, s, device=dev).repeat(rays)
        delta = torch.full((rays * s,), 4.0 / s, device=dev)
        offsets, counts, ray_index = fixed_layout(rays, s, dev)
        samples = Samples(t, delta, ray_index, offsets, counts, s)
        bg = torch.ones(1, 3, device=dev)
        # Leaves made once: the timed region is compositing, not copying inputs.
        leaves = {"packed": (sigma.clone().requires_grad_(), rgb.clone().requires_grad_()),
                  "dense": (sigma.view(rays, s).clone().requires_grad_(),
                            rgb.view(rays, s, 3).clone().requires_grad_())}

        def run(method: str, backward: bool):
            a, c = leaves["dense" if method == "torch" else "packed"]
            a.grad = c.grad = None
            with torch.enable_grad() if backward else torch.no_grad():
                if method == "torch":
                    out = reference.composite_dense(a, c, t.view(rays, s), delta.view(rays, s), bg)
                else:
                    out = composite(a, c, samples, bg, method=method)
                if backward:
                    (out[0].sum() + out[2].sum()).backward()

        runs = {(m, b): (lambda m=m, b=b: run(m, b)) for m in (*methods, "torch") for b in (False, True)}
        times = {key: [] for key in runs}
        for _ in range(repeats):
            for key, fn in runs.items():
                fn()  # untimed twin: the timed call finds caches and allocator as a repeated call would
                sync()
                start = time.perf_counter()
                fn()
                sync()
                times[key].append(time.perf_counter() - start)
        row = {"rays": rays, "samples": s}
        for (m, b), ts in times.items():
            row[f"{m}_{'fwd_bwd' if b else 'fwd'}_ms"] = 1000 * statistics.median(ts)
        for m in methods:
            for kind in ("fwd", "fwd_bwd"):
                row[f"{m}_{kind}_speedup"] = row[f"torch_{kind}_ms"] / row[f"{m}_{kind}_ms"]
        rows.append(row)
    return rows


def print_compositing(rows: list[dict], rays: int, repeats: int) -> None:
    print(f"### Compositing, {rays} rays (median of {repeats}, interleaved)\n")
    print("| samples/ray | fast fwd ms | fast fwd+bwd ms | autodiff fwd+bwd ms | torch cumprod fwd ms "
          "| torch fwd+bwd ms | fast vs torch, fwd | fast vs torch, fwd+bwd | autodiff vs torch, fwd+bwd |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['samples']} | {r['fast_fwd_ms']:.2f} | {r['fast_fwd_bwd_ms']:.2f} | "
              f"{r['autodiff_fwd_bwd_ms']:.2f} | {r['torch_fwd_ms']:.2f} | {r['torch_fwd_bwd_ms']:.2f} | "
              f"{r['fast_fwd_speedup']:.2f}x | {r['fast_fwd_bwd_speedup']:.2f}x | "
              f"{r['autodiff_fwd_bwd_speedup']:.2f}x |")


def measure(args: argparse.Namespace, cfg: TrainConfig) -> dict:
    """Initialise the backend for ``cfg``, print the machine and the compositing table; the
    results so far (``step`` and ``quality`` add theirs)."""
    backend.init(args.arch, cfg.max_samples_per_ray)
    results = {"machine": machine(), "config": cfg.to_dict()}
    print(f"machine: {results['machine']}\n")
    rays = args.rays or (65536 if backend.current().is_cuda else 4096)
    results["compositing"] = bench_compositing(rays, args.repeats)
    print_compositing(results["compositing"], rays, args.repeats)
    return results


def run(args: argparse.Namespace) -> int:
    write_json(args.json, measure(args, bench_config(args.arch)))
    return 0
