"""``data from-photos`` stage by stage on the test suite's capture rendered at full size, the
recovered cameras checked against the true ones, and optionally training on the recovered poses
compared with training on the true ones (docs/BENCHMARKS.md, "COLMAP ingestion"; needs pycolmap).

The accuracy check matters: COLMAP can register every photo with a sub-pixel reprojection error
and still return wrong cameras (at 800 px this capture's skyline windows, one repeated pattern
all around the dome, give views that share nothing ~90 consistent-looking false matches each,
and the model folds). So each row carries the pose errors after a similarity alignment, the
same measure as tests/test_colmap.py."""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from taichi_nerf import backend
from taichi_nerf.capture.pose_alignment import pose_errors
from taichi_nerf.config import TrainConfig

from .. import at_least
from .common import add_common_arguments, machine, write_json

POSE_OK_DEG, POSE_OK_RADIUS = 2.0, 0.02  # the test suite's thresholds (issue 11)


def render_capture(folder: Path, views: int, width: int) -> tuple:
    """The test suite's capture at full size: the built-in scene in its dome, walked around by
    hand-held cameras (60 degree horizontal field of view, 4:3), as JPEGs; returns (true poses,
    focal length). The renders are deterministic, so photos already in ``folder`` are reused."""
    from PIL import Image

    from taichi_nerf.scenes.synthetic import render_scene
    from taichi_nerf.scenes.testsets import ngp_poses

    height = width * 3 // 4
    focal = 0.5 * width / math.tan(math.radians(30.0))
    poses = ngp_poses(views, seed=3)
    names = [folder / f"IMG_{k:04d}.jpg" for k in range(views)]
    if folder.is_dir() and sorted(folder.iterdir()) == names and Image.open(names[0]).size == (width, height):
        return poses, focal
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, views, 4):
        rgba, _ = render_scene(poses[start:start + 4], width, height, focal, focal, width / 2, height / 2, 2,
                               environment="dome")
        for k, image in enumerate(rgba.numpy()):
            Image.fromarray(image[..., :3]).save(names[start + k], quality=92)
    return poses, focal


def pose_accuracy(dataset: Path, truth: np.ndarray) -> dict:
    """Recovered cameras (files IMG_<index>.jpg) against the true ones (``pose_errors``)."""
    _, angle, centre = pose_errors(dataset, truth, lambda name: int(Path(name).stem[4:]))
    return {"rotation_err_deg_median": round(float(np.median(angle)), 3),
            "rotation_err_deg_max": round(float(angle.max()), 3),
            "centre_err_radius_median": round(float(np.median(centre)), 4),
            "poses_ok": bool(np.median(angle) < POSE_OK_DEG and np.median(centre) < POSE_OK_RADIUS)}


def bench_colmap(root: Path, counts: tuple, width: int, train_s: float) -> list[dict]:
    """Per photo count: from-photos stage times, registration and pose errors; with ``train_s``
    > 0 also the val PSNR after ``train_s`` seconds of training on the recovered poses and on
    the true ones."""
    from taichi_nerf.capture.photos import from_photos

    rows = []
    for n in counts:
        folder = root / f"{n}x{width}"
        start = time.perf_counter()
        poses, focal = render_capture(folder / "photos", n, width)
        print(f"rendered {n} photos in {time.perf_counter() - start:.0f} s", flush=True)
        report = from_photos(folder / "photos", folder / "dataset", overwrite=True, progress=True)
        print(report.table(), flush=True)
        row = {"photos": n, "width": width, **{f"{k}_s": round(v, 1) for k, v in report.seconds.items()},
               "registered": len(report.registered), "points3D": report.points3D,
               "reprojection_px": round(report.mean_reprojection_error, 3), "pairs": report.pairs,
               **pose_accuracy(folder / "dataset", poses.double().numpy())}
        print(f"pose errors against the truth: median rotation {row['rotation_err_deg_median']} deg, median centre "
              f"{100 * row['centre_err_radius_median']:.2f}% of the radius"
              + ("" if row["poses_ok"] else "  << WRONG POSES: timings only, do not train on this"), flush=True)
        if train_s > 0 and not row["poses_ok"]:
            print("not training on these poses: they are wrong (see above)", flush=True)
        elif train_s > 0:
            truth = folder / "truth"
            (truth / "images").mkdir(parents=True, exist_ok=True)
            frames = []
            for name in report.registered:
                (truth / "images" / name).unlink(missing_ok=True)
                (truth / "images" / name).symlink_to(folder / "photos" / name)
                frames.append({"file_path": f"images/{name}", "transform_matrix": poses[int(name[4:8])].tolist()})
            meta = {"fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": width * 3 / 8, "w": width, "h": width * 3 // 4,
                    "frames": frames}
            (truth / "transforms.json").write_text(json.dumps(meta))
            for label, data in (("recovered", folder / "dataset"), ("true", truth)):
                from taichi_nerf.training.trainer import Trainer

                cfg = TrainConfig(data=str(data), out=str(folder / f"run_{label}"), time_limit_s=train_s,
                                  steps=10 ** 6, progress=False, downscale=4)
                result = Trainer(cfg).run()
                row[f"psnr_{label}"] = round(result.val_psnr, 2)
        rows.append(row)
    return rows


def photo_counts(text: str) -> tuple[int, ...]:
    """--counts: photo counts, each at least 2 (COLMAP needs a pair)."""
    parse = at_least(2)
    try:
        return tuple(parse(count) for count in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"must be photo counts of at least 2, comma-separated, got {text}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--counts", type=photo_counts, default=(50, 100), help="comma-separated photo counts")
    parser.add_argument("--width", type=at_least(16), default=800, help="photo width (4:3)")
    parser.add_argument("--train", type=at_least(0, float), default=0.0,
                        help="also train this many seconds on the recovered and on the true poses and compare "
                        "val PSNR (0: no training)")
    parser.add_argument("--dir", default="/tmp/taichi-nerf-colmap", help="where the photos and datasets go")


def run(args: argparse.Namespace) -> int:
    backend.init(args.arch, 512)
    print(f"machine: {machine()}\n", flush=True)
    rows = bench_colmap(Path(args.dir), args.counts, args.width, args.train)
    print(json.dumps({"machine": machine(), "colmap": rows}, indent=1))
    write_json(args.json, {"machine": machine(), "colmap": rows})
    return 0
