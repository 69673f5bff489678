#!/usr/bin/env python3
"""taichi-nerf benchmarks; prints markdown tables (paste them into docs/BENCHMARKS.md).

  python scripts/benchmark.py                      # training step + compositing (~2 min on CPU)
  python scripts/benchmark.py --quality            # + time-to-quality vs the Keras recipe (~30 min)
  python scripts/benchmark.py --matrix             # only: defaults on every user-like test set (~25 min)
  python scripts/benchmark.py --compositing-only   # only: compositing against dense torch (~1 min on CPU)
  python scripts/benchmark.py --profile            # only: where a training step's time goes, per stage
  python scripts/benchmark.py --startup            # only: launch to first step, cold and warm kernel cache
  python scripts/benchmark.py --colmap             # only: data from-photos stage times, 50/100 photos at 800 px

Timings exclude validation renders; every number is wall-clock on the machine it runs on.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taichi_nerf import backend, reference  # noqa: E402
from taichi_nerf.compositing import composite  # noqa: E402
from taichi_nerf.config import TrainConfig  # noqa: E402
from taichi_nerf.metrics import psnr  # noqa: E402
from taichi_nerf.packing import Samples, fixed_layout  # noqa: E402


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


def timed(fn, repeats: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


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
                  "dense": (sigma.view(rays, s).clone().requires_grad_(), rgb.view(rays, s, 3).clone().requires_grad_())}

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
    print("| samples/ray | fast fwd ms | fast fwd+bwd ms | autodiff fwd+bwd ms | torch cumprod fwd ms | torch fwd+bwd ms "
          "| fast vs torch, fwd | fast vs torch, fwd+bwd | autodiff vs torch, fwd+bwd |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['samples']} | {r['fast_fwd_ms']:.2f} | {r['fast_fwd_bwd_ms']:.2f} | {r['autodiff_fwd_bwd_ms']:.2f} | "
              f"{r['torch_fwd_ms']:.2f} | {r['torch_fwd_bwd_ms']:.2f} | {r['fast_fwd_speedup']:.2f}x | "
              f"{r['fast_fwd_bwd_speedup']:.2f}x | {r['autodiff_fwd_bwd_speedup']:.2f}x |")


def bench_training(cfg: TrainConfig, grid_steps: int) -> dict:
    from taichi_nerf.training import Trainer

    tr = Trainer(cfg)
    phases = {}
    for phase, steps in (("stratified warm-up", cfg.grid_warmup if cfg.sampler == "grid" else grid_steps),
                         ("occupancy grid", grid_steps if cfg.sampler == "grid" else 0)):
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
        phases[phase] = {"ms_per_step": 1000 * dt, "rays_per_s": cfg.batch_rays / dt, "samples_per_ray": statistics.mean(spr)}
    return phases


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
    return {"curve": curve}


def first_time(curve, db):
    for t, v, _ in curve:
        if v >= db:
            return t
    return None


def value_at(curve, seconds):
    best = None
    for t, v, _ in curve:
        if t <= seconds + 1e-6:
            best = v
    return best


def quality_runs(cfg: TrainConfig, budget: float, baseline_budget: float, views: int, eval_every: float) -> dict:
    from baselines import KerasRecipe  # scripts/baselines.py, beside this file
    from taichi_nerf.training import Trainer

    # Black background for both runs: the recipe has no background term (its data had black
    # backgrounds), so white would handicap it.
    cfg = cfg.replace(background="black")
    tr = Trainer(cfg)
    val = tr.val.subset(range(min(views, tr.val.count)))
    bg = torch.zeros(1, 3)

    def ours_eval():
        tr.field.eval()
        scores = [psnr(tr.render_view(val, i, bg).get("rgb").cpu(), tr.target_rgb(val, i, bg)) for i in range(val.count)]
        tr.field.train()
        return statistics.mean(scores)

    def ours_step():
        if tr.step_count >= cfg.steps:
            return False
        tr.step()

    ours = time_to_quality(ours_step, ours_eval, budget, eval_every, "taichi-nerf")
    base = KerasRecipe(tr.dataset.split("train"), background=0.0, device=backend.current().device)

    def base_eval():
        base.model.eval()
        scores = [psnr(base.render_view(val, i).clamp(0, 1).cpu(), base.target(val, i).cpu()) for i in range(val.count)]
        base.model.train()
        return statistics.mean(scores)

    keras = time_to_quality(base.step, base_eval, baseline_budget, eval_every, "keras recipe")
    return {"ours": ours, "keras": keras}


MATRIX_SETS = ("builtin", "npz-black", "npz-white", "blender-wide", "blender-portrait", "llff-backdrop",
               "ngp-360-env", "cow", "llff-real", "ngp-360-real")


def matrix_runs(root: Path, budget: float, checkpoints: tuple, names=MATRIX_SETS, sheet: Path | None = None) -> list[dict]:
    """Train every test set (taichi_nerf/data/testsets.py) with the default configuration for
    ``budget`` seconds of training time; val PSNR (all val views) at each of ``checkpoints``."""
    import numpy as np

    from taichi_nerf.data.testsets import TESTSETS, write_testset
    from taichi_nerf.diagnostics import flat_colour_psnr
    from taichi_nerf.training import Trainer

    rows, tiles = [], []
    for name in names:
        data = None if name == "builtin" else str(write_testset(name, root / name))
        tr = Trainer(TrainConfig(data=data, out=str(root / "runs" / name), progress=False))
        flat = flat_colour_psnr([tr.target_rgb(tr.val, i) for i in range(tr.val.count)])
        marks = list(checkpoints)

        def evaluate():
            tr.field.eval()
            value = tr.validate()
            tr.field.train()
            return value

        def step():
            if tr.step_count >= tr.cfg.steps:
                return False
            tr.step()

        curve = time_to_quality(step, evaluate, budget, min(marks), name)["curve"]
        split = tr.val
        out = tr.render_view(split, 0)
        tiles.append(np.concatenate([out["rgb"].clamp(0, 1).cpu().numpy(), tr.target_rgb(split, 0).numpy()], axis=1))
        kind = "NDC" if tr.scene.ndc else ("unbounded" if tr.scene.unbounded else "box")
        rows.append({"set": name, "layout": tr.dataset.format, "size": f"{split.width}x{split.height}",
                     "train_images": tr.train.count, "background": tr.background_choice.description.split(" (")[0],
                     "scene": kind, "flat_psnr": round(flat, 2),
                     **{f"psnr_{int(m)}s": value_after(curve, m) for m in marks},
                     "steps": curve[-1][2], "samples_per_ray": round(tr.last_samples_per_ray or 0.0, 1),
                     "rays_per_s": round(tr.rays_per_s), "curve": curve})
    if sheet is not None:
        from taichi_nerf.data.images import write_png

        height = max(t.shape[0] for t in tiles)
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=1.0) for t in tiles]
        write_png(sheet, np.concatenate(padded, axis=1))
    return rows


def value_after(curve, seconds):
    """The evaluation at the mark: evaluations run at the first step boundary past it."""
    for t, v, _ in curve:
        if t >= seconds - 1e-6:
            return v
    return None


def print_matrix(rows: list[dict], checkpoints: tuple) -> None:
    cols = " | ".join(f"PSNR @ {int(m)} s" for m in checkpoints)
    print(f"| set | layout | size | background (auto) | scene | flat-colour PSNR | {cols} | steps | samples/ray | rays/s |")
    print("|---|---|---|---|---|---:|" + "---:|" * len(checkpoints) + "---:|---:|---:|")
    for r in rows:
        vals = " | ".join("-" if r[f"psnr_{int(m)}s"] is None else f"{r[f'psnr_{int(m)}s']:.1f}" for m in checkpoints)
        print(f"| {r['set']} | {r['layout']} | {r['size']} | {r['background']} | {r['scene']} | {r['flat_psnr']:.1f} | "
              f"{vals} | {r['steps']} | {r['samples_per_ray']} | {r['rays_per_s']} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="auto", choices=backend.ARCH_CHOICES)
    p.add_argument("--rays", type=int, default=0, help="rays in the compositing benchmark (default 4096 CPU, 65536 CUDA)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--compositing-only", action="store_true", help="only the compositing benchmark")
    p.add_argument("--grid-steps", type=int, default=200, help="timed training steps after the grid warm-up")
    p.add_argument("--quality", action="store_true", help="also run time-to-quality against the Keras recipe")
    p.add_argument("--budget", type=float, default=300.0, help="taichi-nerf training seconds for --quality")
    p.add_argument("--baseline-budget", type=float, default=1200.0, help="Keras recipe training seconds for --quality")
    p.add_argument("--scene-size", type=int, default=100)
    p.add_argument("--val-views", type=int, default=8)
    p.add_argument("--eval-every", type=float, default=10.0, help="seconds of training between evaluations (both runs)")
    p.add_argument("--json", help="write all results to this JSON file")
    p.add_argument("--profile", action="store_true", help="only the per-stage profile of a default training step")
    p.add_argument("--startup", action="store_true", help="only: launch to first training step, cold and warm kernel cache")
    p.add_argument("--matrix", action="store_true", help="only the test-set matrix: defaults on user-like data")
    p.add_argument("--matrix-budget", type=float, default=180.0, help="training seconds per test set (--matrix)")
    p.add_argument("--matrix-sets", default=",".join(MATRIX_SETS), help="comma-separated test sets (--matrix)")
    p.add_argument("--matrix-dir", default="/tmp/taichi-nerf-matrix", help="where the test sets and runs go")
    p.add_argument("--matrix-sheet", help="write prediction | truth of each set's first val view to this PNG")
    p.add_argument("--colmap", action="store_true", help="only: data from-photos stage times (needs pycolmap)")
    p.add_argument("--colmap-counts", default="50,100", help="photo counts for --colmap")
    p.add_argument("--colmap-width", type=int, default=800, help="photo width for --colmap (4:3)")
    p.add_argument("--colmap-train", type=float, default=0.0, help="--colmap: also train this many seconds on the "
                   "recovered and on the true poses and compare val PSNR (0: no training)")
    p.add_argument("--colmap-dir", default="/tmp/taichi-nerf-colmap", help="where --colmap's photos and datasets go")
    args = p.parse_args(argv)
    if args.colmap:
        backend.init(args.arch, 512)
        print(f"machine: {machine()}\n", flush=True)
        from colmap_bench import bench_colmap  # scripts/colmap_bench.py

        rows = bench_colmap(Path(args.colmap_dir), tuple(int(c) for c in args.colmap_counts.split(",")),
                            args.colmap_width, args.colmap_train)
        print(json.dumps({"machine": machine(), "colmap": rows}, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "colmap": rows}, indent=1))
        return 0
    if args.matrix:
        backend.init(args.arch, 512)
        marks = (60.0, args.matrix_budget) if args.matrix_budget > 60 else (args.matrix_budget,)
        print(f"machine: {machine()}\n", flush=True)
        rows = matrix_runs(Path(args.matrix_dir), args.matrix_budget, marks, tuple(args.matrix_sets.split(",")),
                           Path(args.matrix_sheet) if args.matrix_sheet else None)
        print(f"\n### Defaults on user-like data ({args.matrix_budget:.0f} s of training per set)\n")
        print_matrix(rows, marks)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "matrix": rows}, indent=1))
        return 0

    cfg = TrainConfig(arch=args.arch, progress=False, out="/tmp/taichi-nerf-bench", scene_size=args.scene_size)
    if args.startup:
        from startup import print_startup, startup_table

        print(f"machine: {machine()}\n")
        results = startup_table(backend.resolve_arch(args.arch))
        print_startup(results)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "startup": results}, indent=1))
        return 0
    if args.profile:
        from profile_step import print_profile, profile_training

        cfg = dataclasses.replace(cfg, eval_every=0, preview_every=0, checkpoint_every=0)
        print(f"machine: {machine()}")
        phases = profile_training(cfg, args.grid_steps)
        print_profile(phases)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "profile": phases}, indent=1))
        return 0
    backend.init(args.arch, cfg.max_samples_per_ray)
    results = {"machine": machine(), "config": cfg.to_dict()}
    print(f"machine: {results['machine']}\n")

    rays = args.rays or (65536 if backend.current().is_cuda else 4096)
    comp = bench_compositing(rays, args.repeats)
    results["compositing"] = comp
    print_compositing(comp, rays, args.repeats)
    if args.compositing_only:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        return 0

    train = bench_training(cfg, args.grid_steps)
    results["training"] = train
    print(f"\n### Training step, default settings ({cfg.batch_rays} rays/step, built-in scene {args.scene_size}px)\n")
    print("| phase | ms/step | rays/s | samples/ray |")
    print("|---|---:|---:|---:|")
    for phase, r in train.items():
        print(f"| {phase} | {r['ms_per_step']:.1f} | {r['rays_per_s']:.0f} | {r['samples_per_ray']:.1f} |")

    if args.quality:
        print(f"\n### Time to quality (val PSNR on {args.val_views} views)\n", flush=True)
        q = quality_runs(cfg, args.budget, args.baseline_budget, args.val_views, args.eval_every)
        results["quality"] = q
        ours, keras = q["ours"]["curve"], q["keras"]["curve"]
        keras_final = keras[-1][1]
        ours_to_keras = first_time(ours, keras_final)
        keras_final_t = first_time(keras, keras_final)  # when the baseline first got there
        print("| run | s to 20 dB | s to 25 dB | PSNR @ 60 s | PSNR @ 300 s | PSNR at end (s) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, curve in (("taichi-nerf defaults", ours), ("Keras recipe (pure torch)", keras)):
            fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            print(f"| {name} | {fmt(first_time(curve, 20))} | {fmt(first_time(curve, 25))} | {fmt(value_at(curve, 60))} | "
                  f"{fmt(value_at(curve, 300))} | {curve[-1][1]:.2f} ({curve[-1][0]:.0f}) |")
        ratio = None if ours_to_keras in (None, 0) else keras_final_t / max(ours_to_keras, 1e-9)
        q["keras_final_psnr"] = keras_final
        q["ours_seconds_to_keras_final"] = ours_to_keras
        q["speedup"] = ratio
        print(f"\nKeras recipe reached its final {keras_final:.2f} dB after {keras_final_t:.0f} s; taichi-nerf reached it after "
              f"{'never' if ours_to_keras is None else f'{ours_to_keras:.1f} s'}"
              + (f" ({ratio:.0f}x less time)" if ratio else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
