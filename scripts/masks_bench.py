"""Turntable capture with masks, end to end (issue 25; docs/BENCHMARKS.md, "Turntable captures").

    python scripts/masks_bench.py CAPTURE --work /tmp/turntable [--size 500] [--train-seconds 240]

CAPTURE holds ``images/``, ``masks/`` (same stems) and the published ``poses_bounds.npy`` (LLFF),
as vork/ethiopianHead does; keep it outside the repository. The photos and masks are scaled to
SIZE x SIZE into WORK, then ``data from-photos`` runs with ``--masks`` (stage table, pose errors
after a similarity alignment to the published poses) and without (it must refuse). With
``--train-seconds``, ``taichi-nerf train --data CAPTURE --downscale 16`` (masks by default) runs
for that long and its validation PSNR is printed. Run it niced on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import checkout_env, one_line_errors  # noqa: E402


def llff_poses(capture: Path) -> np.ndarray:
    """The published poses as OpenGL camera-to-world (N, 4, 4)."""
    from taichi_nerf.data.llff import opengl_poses

    raw = np.load(capture / "poses_bounds.npy")
    return opengl_poses(raw[:, :15].reshape(-1, 3, 5))


def scaled_copy(capture: Path, work: Path, size: int) -> None:
    for sub, mode in (("images", "RGB"), ("masks", "L")):
        (work / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((capture / sub).iterdir()):
            target = work / sub / (path.stem + (".jpg" if sub == "images" else ".png"))
            if target.exists():
                continue
            with Image.open(path) as im:
                im.draft(mode, (size, size))
                im = im.convert(mode).resize((size, size), Image.LANCZOS if sub == "images" else Image.BILINEAR)
                im.save(target, **({"quality": 95} if sub == "images" else {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", type=Path, help="a folder with images/, masks/ and poses_bounds.npy")
    parser.add_argument("--work", type=Path, required=True,
                        help="scratch folder: the scaled images/ and masks/, the datasets with_masks/ and "
                             "without_masks/, the run train/")
    parser.add_argument("--size", type=int, default=500, help="photos and masks scaled to SIZE x SIZE (default 500)")
    parser.add_argument("--threads", type=int, default=-1, help="COLMAP's threads (default -1: all)")
    parser.add_argument("--train-seconds", type=float, default=0.0,
                        help="then train on CAPTURE this long and print its validation PSNR (default 0: no training)")
    args = parser.parse_args()

    from taichi_nerf.capture.photos import from_photos
    from taichi_nerf.capture.pose_alignment import pose_errors
    from taichi_nerf.data.dataset import DataError

    scaled_copy(args.capture, args.work, args.size)
    stems = [p.stem for p in sorted((args.capture / "images").iterdir())]
    truth = llff_poses(args.capture)
    results = {}
    out = args.work / "with_masks"
    start = time.perf_counter()
    report = from_photos(args.work / "images", out, masks=args.work / "masks", overwrite=True, progress=False,
                         threads=args.threads)
    print(report.table())
    registered, angle, centre = pose_errors(out, truth, lambda name: stems.index(Path(name).stem))
    results["with_masks"] = {"seconds": round(time.perf_counter() - start, 1), "registered": registered,
                             "median_rotation_deg": float(np.median(angle)),
                             "median_centre_percent": 100 * float(np.median(centre)), **report.as_json()}
    start = time.perf_counter()
    try:
        from_photos(args.work / "images", args.work / "without_masks", overwrite=True, progress=False,
                    threads=args.threads)
        results["without_masks"] = {"refused": False}
    except DataError as exc:
        results["without_masks"] = {"refused": True, "message": str(exc)}
    results["without_masks"]["seconds"] = round(time.perf_counter() - start, 1)
    if args.train_seconds > 0:
        run = args.work / "train"
        subprocess.run([sys.executable, "-m", "taichi_nerf", "train", "--data", str(args.capture), "--downscale", "16",
                        "--time-limit", str(args.train_seconds), "--out", str(run), "--overwrite", "--no-progress"],
                       check=True, env=checkout_env())
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        results["train"] = [r for r in rows if "val_psnr" in r]
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors("masks_bench.py", main))
