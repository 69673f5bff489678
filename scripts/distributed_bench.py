#!/usr/bin/env python3
"""Data-parallel training on one machine's CPU cores: 2 processes x 1 thread (``train --devices 2``,
gloo) against 1 process x 2 threads, each for the same wall time on the built-in scene.
Prints a markdown table for docs/BENCHMARKS.md: wall time per global step, and the final
validation PSNR at that equal time.

  python scripts/distributed_bench.py                 # 2 x 3 runs of 60 s, ~10 min on CPU-2
  python scripts/distributed_bench.py --seconds 120 --repeats 3     # longer runs, 3 x 3 of them
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import checkout_env, one_line_errors  # noqa: E402


def run(label: str, scene: Path, out: Path, seconds: float, devices: int, threads: int, batch_rays: int) -> dict:
    env = {k: v for k, v in checkout_env().items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(threads), TI_CPU_MAX_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "taichi_nerf", "train", "--data", str(scene), "--out", str(out), "--overwrite",
           "--steps", "100000", "--time-limit-s", str(seconds), "--batch-rays", str(batch_rays), "--eval-every", "0",
           "--preview-every", "0", "--checkpoint-every", "0", "--log-every", "50", "--no-progress", "--arch", "cpu",
           "--video-frames", "0", "--devices", str(devices)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if r.get("final")][-1]
    steps = final["step"]
    return {"label": label, "global_batch": devices * batch_rays, "steps": steps,
            "ms_per_step": 1000 * seconds / steps, "psnr": final["val_psnr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of each run's training loop")
    parser.add_argument("--batch-rays", type=int, default=1024, help="the one process's rays a step")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every setup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = tmp / "scene"
        subprocess.run([sys.executable, "-m", "taichi_nerf", "data", "synthetic", "--out", str(scene), "--views", "60",
                        "--size", "64", "--no-progress"], cwd=ROOT, check=True, capture_output=True,
                       env=checkout_env())
        b = args.batch_rays
        setups = [("1 process x 2 threads", 1, 2, b), ("2 processes x 1 thread, same global batch", 2, 1, b // 2),
                  ("2 processes x 1 thread, 2x the global batch", 2, 1, b)]
        results = {label: [] for label, *_ in setups}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits every setup
            for label, devices, threads, rays in setups:
                results[label].append(run(label, scene, tmp / "run", args.seconds, devices, threads, rays))
                loads.append(os.getloadavg()[0])
    print(f"{args.seconds:.0f} s of wall time each, {args.repeats} interleaved repeats (medians); "
          f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores\n")
    print("| run | rays a global step | steps | ms per global step | val PSNR (dB) |")
    print("|---|---|---|---|---|")
    for label, runs in results.items():
        steps = statistics.median(r["steps"] for r in runs)
        print(f"| {label} | {runs[0]['global_batch']} | {steps:.0f} | "
              f"{statistics.median(r['ms_per_step'] for r in runs):.0f} | "
              f"{statistics.median(r['psnr'] for r in runs):.2f} |")


if __name__ == "__main__":
    sys.exit(one_line_errors("distributed_bench.py", main))
