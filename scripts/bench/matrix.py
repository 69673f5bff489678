"""The defaults on every user-like test set (``taichi_nerf/scenes/testsets.py``): val PSNR
after 60 s and after the budget, steps, samples/ray and rays/s per set (~25 min)."""
from __future__ import annotations

import argparse
from pathlib import Path

from taichi_nerf import backend
from taichi_nerf.config import TrainConfig

from .. import at_least, positive, testset_names
from .common import add_common_arguments, check_output_file, machine, trainer_curve, write_json

MATRIX_SETS = ("builtin", "npz-black", "npz-white", "blender-wide", "blender-portrait", "llff-backdrop",
               "ngp-360-env", "cow", "llff-real", "ngp-360-real")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--budget", type=positive, default=180.0, help="training seconds per test set")
    parser.add_argument("--sets", type=testset_names("builtin"), default=MATRIX_SETS,
                        help="comma-separated test sets (default: all)")
    parser.add_argument("--dir", default="/tmp/taichi-nerf-matrix", help="where the test sets and runs go")
    parser.add_argument("--sheet", help="write prediction | truth of each set's first val view to this PNG")
    parser.add_argument("--capture", type=Path,
                        help="a real capture to add as the last row when the folder exists (issue 24: "
                             "vork/ethiopianHead, kept outside the repository); trained as a user would, "
                             "with --downscale --capture-downscale, masks by default")
    parser.add_argument("--capture-downscale", type=at_least(1), default=16, help="--downscale for the capture row")
    parser.add_argument("--capture-budget", type=positive, default=240.0,
                        help="training seconds for the capture row (issue 24 judges real captures at 240 s)")


def matrix_runs(root: Path, budget: float, checkpoints: tuple, names=MATRIX_SETS,
                sheet: Path | None = None, capture: tuple | None = None) -> list[dict]:
    """Train every test set (taichi_nerf/scenes/testsets.py) with the default configuration and
    a time limit of ``budget`` seconds of training time; val PSNR (all val views) at each of ``checkpoints``.
    ``capture`` = (folder, downscale, budget) adds a real capture's row, trained the same way."""
    import numpy as np

    from taichi_nerf.scenes.testsets import write_testset
    from taichi_nerf.training.diagnostics import flat_colour_psnr
    from taichi_nerf.training.trainer import Trainer

    runs = [(name, None if name == "builtin" else str(write_testset(name, root / name)), 1, budget)
            for name in names]
    if capture is not None:
        folder, downscale, capture_budget = capture
        runs.append((Path(folder).name, str(folder), downscale, capture_budget))
    rows, tiles = [], []
    for name, data, downscale, seconds in runs:
        # as a user runs it: the defaults and --time-limit (the schedule decays within the budget)
        tr = Trainer(TrainConfig(data=data, downscale=downscale, out=str(root / "runs" / name), progress=False,
                                 time_limit_s=seconds))
        flat = flat_colour_psnr([tr.target_rgb(tr.val, i) for i in range(tr.val.count)])
        marks = [m for m in checkpoints if m < seconds] + [seconds]
        curve = trainer_curve(tr, seconds, min(marks), name)["curve"]
        split = tr.val
        out = tr.render_view(split, 0)
        tiles.append(np.concatenate([out["rgb"].clamp(0, 1).cpu().numpy(), tr.target_rgb(split, 0).numpy()], axis=1))
        kind = "NDC" if tr.scene.ndc else ("unbounded" if tr.scene.unbounded else "box")
        rows.append({"set": name, "layout": tr.dataset.format, "size": f"{split.width}x{split.height}",
                     "train_images": tr.train.count, "background": tr.background_choice.description.split(" (")[0],
                     "scene": kind, "flat_psnr": round(flat, 2),
                     **{f"psnr_{int(m)}s": value_after(curve, m) for m in marks}, "budget_s": seconds,
                     "psnr_final": curve[-1][1], "final_at_s": curve[-1][0],  # earlier than the budget: all steps made
                     "steps": curve[-1][2], "samples_per_ray": round(tr.last_samples_per_ray or 0.0, 1),
                     "rays_per_s": round(tr.rays_per_s), "curve": curve})
    if sheet is not None:
        from taichi_nerf.files import write_png

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
    print(f"| set | layout | size | background (auto) | scene | flat-colour PSNR | {cols} "
          "| steps | samples/ray | rays/s |")
    print("|---|---|---|---|---|---:|" + "---:|" * len(checkpoints) + "---:|---:|---:|")
    for r in rows:
        ended = f"{r['psnr_final']:.1f} (all steps at {r['final_at_s']:.0f} s)"
        # a row with its own budget (the real capture) shows its end in the budget's column
        at = {m: r.get(f"psnr_{int(r['budget_s'] if m == checkpoints[-1] else m)}s") for m in checkpoints}
        own = "" if r["budget_s"] == checkpoints[-1] else f" (at {r['budget_s']:.0f} s)"
        vals = " | ".join(ended if at[m] is None else f"{at[m]:.1f}" + (own if m == checkpoints[-1] else "")
                          for m in checkpoints)
        print(f"| {r['set']} | {r['layout']} | {r['size']} | {r['background']} | {r['scene']} | {r['flat_psnr']:.1f} | "
              f"{vals} | {r['steps']} | {r['samples_per_ray']} | {r['rays_per_s']} |")


def run(args: argparse.Namespace) -> int:
    from taichi_nerf.data.dataset import DataError
    from taichi_nerf.scenes.testsets import missing_input

    check_output_file(args.sheet, "--sheet")
    missing = next(filter(None, (missing_input(name) for name in args.sets if name != "builtin")), None)
    if missing:  # before the sets ahead of it are written and trained
        raise DataError(missing)
    backend.init(args.arch, 512)
    marks = (60.0, args.budget) if args.budget > 60 else (args.budget,)
    print(f"machine: {machine()}\n", flush=True)
    capture = None
    if args.capture is not None:
        if args.capture.is_dir():
            capture = (args.capture, args.capture_downscale, args.capture_budget)
        else:
            print(f"{args.capture}: not a folder; the capture row is left out", flush=True)
    rows = matrix_runs(Path(args.dir), args.budget, marks, args.sets,
                       Path(args.sheet) if args.sheet else None, capture)
    print(f"\n### Defaults on user-like data ({args.budget:.0f} s of training per set)\n")
    print_matrix(rows, marks)
    write_json(args.json, {"machine": machine(), "matrix": rows})
    return 0
