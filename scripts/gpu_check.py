#!/usr/bin/env python3
"""The GPU check (scripts/gpu_check.sh runs this): everything worth knowing the first time a
GPU is lent, in under 8 minutes, written to one JSON file and one Markdown table.

1. the Taichi kernel tests and the zero-copy test on the device (TAICHI_NERF_TEST_ARCH);
2. one run on the built-in scene with the defaults: val PSNR at 60 s, time to 25 dB; and the
   same with a large batch (4096 rays a step), which decides the batch a GPU should default to;
3. one 800x800 synthetic-object run (the cow mesh when shared/ has it, else the built-in
   objects): time to 25 and 30 dB;
4. the compositing benchmark and the training-step benchmark (scripts/benchmark.py);
5. where a step's time goes, stage by stage, at a small and a large batch (scripts/bench/profile.py):
   on the first H200 (2026-12) a step cost about 8 ms plus 4 us per ray, far from the GPU's rate.

``--small`` shrinks every part (fewer tests, 32-64 px images, seconds of training) so the
whole check runs on a 2-core CPU in under a minute: that is how it is tested.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this tree's taichi_nerf and scripts.bench, from any folder

from scripts import checkout_env  # noqa: E402

KERNEL_TESTS = ["tests/test_backend.py", "tests/test_compositing.py", "tests/test_rays_sampling_encoding.py",
                "tests/test_ray_gradients.py", "tests/test_occupancy.py"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What each part does; FULL on a GPU, SMALL on a CPU (the test of this script)."""
    tests: tuple[str, ...]
    test_keywords: str | None  # pytest -k (None: every test not marked slow)
    test_timeout_s: float
    builtin_size: int
    builtin_views: int
    builtin_budget_s: float
    large_batch: int  # rays per step of the second built-in run
    object_size: int
    object_views: int
    object_budget_s: float
    eval_every_s: float
    eval_views: int
    compositing_rays: int
    compositing_repeats: int
    step_cfg: dict
    step_count: int
    profile_batches: tuple[int, ...]  # rays per step of each stage profile
    profile_steps: int


FULL = Plan(tests=tuple(KERNEL_TESTS), test_keywords=None, test_timeout_s=240.0, builtin_size=100,
            builtin_views=100, builtin_budget_s=60.0, large_batch=4096, object_size=800, object_views=100,
            object_budget_s=120.0, eval_every_s=10.0, eval_views=4, compositing_rays=65536,
            compositing_repeats=10, step_cfg={}, step_count=200, profile_batches=(512, 8192), profile_steps=60)
SMALL = Plan(tests=("tests/test_backend.py", "tests/test_compositing.py"),
             test_keywords="backend or opaque_last_interval or dense_cumprod", test_timeout_s=120.0,
             builtin_size=32, builtin_views=16, builtin_budget_s=1.0, large_batch=1024, object_size=48,
             object_views=16, object_budget_s=1.0, eval_every_s=0.5, eval_views=2, compositing_rays=1024,
             compositing_repeats=2, step_count=4,
             step_cfg={"scene_size": 32, "scene_views": 16, "grid_warmup": 4, "batch_rays": 1024},
             profile_batches=(256, 1024), profile_steps=4)


def stage_profiles(plan: Plan, arch: str, work: Path) -> dict:
    """The step's stages (taichi_nerf.profiling) on the built-in scene at each profile batch size,
    the grid phase only: which stage grows with the batch."""
    from scripts.bench.profile import profile_training
    from taichi_nerf.config import TrainConfig

    result = {}
    for rays in plan.profile_batches:
        cfg = TrainConfig(arch=arch, progress=False, out=str(work / f"profile_{rays}"), eval_every=0,
                          preview_every=0, checkpoint_every=0, grid_warmup=8, batch_rays=rays,
                          scene_size=plan.builtin_size, scene_views=plan.builtin_views)
        phases = profile_training(cfg, plan.profile_steps)
        result[str(rays)] = list(phases.values())[-1]  # the phase after the warm-up
    return result


def run_tests(plan: Plan, arch: str, out: Path) -> dict:
    """pytest on the device in a subprocess (its own Taichi); counts from its JUnit XML."""
    report = out / "kernel_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", f"--junitxml={report}",
           *(["-k", plan.test_keywords] if plan.test_keywords else []), *plan.tests]
    env = checkout_env(TAICHI_NERF_TEST_ARCH=arch)  # the caller's PYTHONPATH kept
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=plan.test_timeout_s)
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        code, tail = 124, f"timed out after {plan.test_timeout_s:.0f} s"
    result = {"files": list(plan.tests), "exit_code": code, "seconds": round(time.perf_counter() - start, 1)}
    if report.is_file():
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        for key in ("tests", "failures", "errors", "skipped"):
            result[key] = int(suite.get(key, 0))
    if code != 0:
        result["output_tail"] = tail
    return result


def timed_run(cfg, budget: float, every: float, views: int, marks=(25.0, 30.0), label: str = "") -> dict:
    """Train ``cfg`` for ``budget`` s of training time (validation not counted), validating on
    ``views`` val views every ``every`` s: the curve, time to each PSNR mark, steps, rays/s,
    samples/ray, and the wall time of it all (set-up and validation included)."""
    from scripts.bench.common import trainer_curve
    from scripts.bench.quality import first_time, value_at
    from taichi_nerf.training.trainer import Trainer

    start = time.perf_counter()
    tr = Trainer(cfg)
    setup = time.perf_counter() - start
    curve = trainer_curve(tr, budget, every, label, views)["curve"]
    return {"image": f"{tr.train.width}x{tr.train.height}", "train_images": tr.train.count, "val_views": views,
            "setup_s": round(setup, 1), "wall_s": round(time.perf_counter() - start, 1), "budget_s": budget,
            "steps": curve[-1][2],
            "final_psnr": curve[-1][1], "psnr_at_60s": value_at(curve, 60.0, budget),
            **{f"seconds_to_{int(m)}db": first_time(curve, m) for m in marks},
            "rays_per_s": round(tr.rays_per_s or 0.0), "samples_per_ray": round(tr.last_samples_per_ray or 0.0, 1),
            "curve": curve}


def object_data(plan: Plan, root: Path, choice: str) -> tuple[str, str | None]:
    """(name, data path) of the synthetic-object set: the cow if asked for and present."""
    from taichi_nerf.scenes.testsets import cow_mesh_path, write_testset

    if choice == "cow" or (choice == "auto" and cow_mesh_path().is_file()):
        path = write_testset("cow", root / "cow", size=plan.object_size, views=plan.object_views)
        return "cow mesh (Blender layout, alpha)", str(path)
    return "built-in objects (Blender layout, alpha)", None


def cpu_note(arch: str, small: bool) -> str | None:
    """What a check on the CPU leaves out, said at its start and in its table: none of the CUDA
    backend ran (its kernels, zero-copy in GPU memory, its float traps), so it is no GPU check."""
    if arch == "cuda":
        return None
    return ("on the CPU backend, not a GPU: the CUDA parts are skipped (the kernel and zero-copy tests on a CUDA "
            "device, CUDA timings)" + ("" if small else "; the full plan on a CPU takes far longer than its 8 "
                                       "minutes (--small shrinks it)"))


def markdown(result: dict) -> str:
    def num(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)

    t, b, o = result["tests"], result["builtin"], result["object"]
    lines = [f"### GPU check: {result['machine']}{' (--small)' if result['small'] else ''}", "",
             f"{result['date']}; total {result['total_s']:.0f} s", "",
             *([f"**Skipped**: {note}.", ""] if (note := cpu_note(result["arch"], result["small"])) else []),
             "| part | what | result |", "|---|---|---|",
             (f"| kernel + zero-copy tests | {len(t['files'])} files on {result['arch']} | "
              f"{t.get('tests', 0) - t.get('failures', 0) - t.get('errors', 0) - t.get('skipped', 0)} passed, "
              f"{t.get('failures', 0) + t.get('errors', 0)} failed, {t.get('skipped', 0)} skipped "
              f"in {t['seconds']:.0f} s (exit {t['exit_code']}) |")]
    runs = (("built-in run (defaults)", b), (f"built-in run, {result['large_batch']} rays/step",
                                             result["builtin_large_batch"]), (f"{result['object_name']} run", o))
    for name, r in runs:
        lines.append(f"| {name} | {r['image']}, {r['train_images']} images, {r['budget_s']:.0f} s | "
                     f"{r['final_psnr']:.2f} dB after {r['steps']} steps; 25 dB at {num(r['seconds_to_25db'])} s, "
                     f"30 dB at {num(r['seconds_to_30db'])} s; {r['rays_per_s']} rays/s, "
                     f"{r['samples_per_ray']} samples/ray |")
    for row in result["compositing"]:
        lines.append(f"| compositing, {row['rays']} rays x {row['samples']} samples | fast fwd / fwd+bwd; torch fwd+bwd"
                     f" | {row['fast_fwd_ms']:.2f} / {row['fast_fwd_bwd_ms']:.2f} ms; {row['torch_fwd_bwd_ms']:.2f} ms"
                     f" ({row['fast_fwd_bwd_speedup']:.1f}x) |")
    for phase, row in result["step"].items():
        lines.append(f"| training step, {phase} | {result['step_batch_rays']} rays/step | "
                     f"{row['ms_per_step']:.1f} ms, {row['rays_per_s']:.0f} rays/s, "
                     f"{row['samples_per_ray']:.1f} samples/ray |")
    for rays, p in result["profiles"].items():
        top = p["stages"][:4]  # largest first
        lines.append(f"| step profile, {rays} rays/step | median of {p['steps']} steps, "
                     f"{p['samples_per_ray']:.1f} samples/ray | {p['ms_per_step_median']:.1f} ms: "
                     + ", ".join(f"{row['stage']} {row['ms_per_step']:.2f}" for row in top) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="shrink every part: a 2-core CPU in under a minute")
    p.add_argument("--arch", default="cuda", choices=("cuda", "cpu", "auto"))
    p.add_argument("--out", default="gpu_check", help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--object", default="auto", choices=("auto", "cow", "builtin"),
                   help="the synthetic object of the 800x800 run (auto: the cow when its mesh is there)")
    args = p.parse_args(argv)
    plan = SMALL if args.small else FULL
    out = Path(args.out)
    start = time.perf_counter()

    from taichi_nerf import backend, files

    try:
        arch = backend.resolve_arch(args.arch)
        files.check_writable(out)  # before the work, and no folder made for a check that cannot run
    except (backend.BackendUnavailable, OSError) as e:
        said = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else str(e)
        print(f"gpu_check: {said}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if note := cpu_note(arch, args.small):
        print(f"gpu_check: {note}", file=sys.stderr, flush=True)
    tests = run_tests(plan, arch, out)
    print(f"kernel tests: exit {tests['exit_code']}, {tests.get('tests', 0)} tests in {tests['seconds']} s", flush=True)

    backend.init(arch, 512)
    from scripts.bench.common import machine
    from scripts.bench.compositing import bench_compositing
    from scripts.bench.step import bench_training
    from taichi_nerf.config import TrainConfig

    # The runs' folders are scratch: the figures go into the JSON and the table.
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        work = Path(scratch)
        common = {"arch": arch, "progress": False, "preview_every": 0, "checkpoint_every": 0, "steps": 10**7}
        builtin = timed_run(TrainConfig(data=None, out=str(work / "builtin"), scene_size=plan.builtin_size,
                                        scene_views=plan.builtin_views, **common),
                            plan.builtin_budget_s, plan.eval_every_s, plan.eval_views, label="builtin")
        large = timed_run(TrainConfig(data=None, out=str(work / "large"), scene_size=plan.builtin_size,
                                      scene_views=plan.builtin_views, batch_rays=plan.large_batch, **common),
                          plan.builtin_budget_s, plan.eval_every_s, plan.eval_views, label=f"{plan.large_batch} rays")
        name, data = object_data(plan, work / "data", args.object)
        obj_cfg = TrainConfig(data=data, out=str(work / "object"), scene_size=plan.object_size,
                              scene_views=plan.object_views, **common)
        obj = timed_run(obj_cfg, plan.object_budget_s, plan.eval_every_s, plan.eval_views, label="object")

        bench_start = time.perf_counter()
        compositing = bench_compositing(plan.compositing_rays, plan.compositing_repeats)
        step_cfg = TrainConfig(arch=arch, progress=False, out=str(work / "step"), eval_every=0, preview_every=0,
                               checkpoint_every=0, **plan.step_cfg)
        step = bench_training(step_cfg, plan.step_count)
        profiles = stage_profiles(plan, arch, work)

    result = {"machine": machine(), "arch": arch, "small": args.small, "date": time.strftime("%Y-%m-%d %H:%M"),
              "tests": tests, "builtin": builtin, "large_batch": plan.large_batch,
              "builtin_large_batch": large, "object_name": name, "object": obj, "compositing": compositing,
              "step": step, "step_batch_rays": step_cfg.batch_rays, "profiles": profiles,
              "benchmarks_wall_s": round(time.perf_counter() - bench_start, 1),
              "total_s": round(time.perf_counter() - start, 1)}
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 0 if tests["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
