"""Score a run on a test set with capture effects against the truth (issue 24; docs/BENCHMARKS.md,
"Appearance codes and pose refinement").

    python scripts/capture_truth.py DATA RUN

DATA is a set written with capture effects (``llff-real``, ``ngp-360-real``: its
``capture_effects.json`` holds every photo's true and written pose); RUN a run trained on it.
Prints the training cameras' pose errors against the truth as written and, for a run with
``--refine-poses``, after its corrections; and the val PSNR rendered from the val cameras as
written (what training reports) and from their true poses. A pose-refined field is sharper
where the cameras agree; scored from val poses that are themselves off by ~0.5 deg it can lose
to a blurred one, which is why both columns are printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import one_line_errors  # noqa: E402
from taichi_nerf.outputs.metrics import psnr  # noqa: E402
from taichi_nerf.rendering.backgrounds import over_background, scene_background  # noqa: E402
from taichi_nerf.rendering.carried_corrections import corrected_pose  # noqa: E402
from taichi_nerf.runs import checkpoint  # noqa: E402
from taichi_nerf.runs.datasets import load_dataset  # noqa: E402
from taichi_nerf.scenes.capture_effects import camera_errors  # noqa: E402


def loader_frame(loaded: torch.Tensor, written: torch.Tensor):
    """The similarity (rotation Q, scale s, offset b) that took the file's poses to the
    loader's: loaded = s Q written + b for the centres, Q written for the rotations."""
    m = sum(loaded[i, :3, :3] @ written[i, :3, :3].T for i in range(len(loaded)))
    u, _, vt = torch.linalg.svd(m)
    q = u @ vt
    x, y = (q @ written[:, :3, 3].T).T, loaded[:, :3, 3]
    s = float(((x - x.mean(0)) * (y - y.mean(0))).sum() / ((x - x.mean(0)) ** 2).sum())
    return q, s, y.mean(0) - s * x.mean(0)


def to_loader(poses: torch.Tensor, frame) -> torch.Tensor:
    q, s, b = frame
    out = poses.clone()
    out[:, :3, :3] = q @ poses[:, :3, :3]
    out[:, :3, 3] = s * (q @ poses[:, :3, 3].T).T + b
    return out


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def main(data: str, run: str) -> None:
    truth = Path(data) / "capture_effects.json"
    if not truth.is_file():
        raise ValueError(f"{truth}: no such file: DATA must be a set written with capture effects "
                         "(make_testsets.py --only llff-real,ngp-360-real)")
    effects = {Path(e["file"]).stem: e for e in json.loads(truth.read_text())["images"]}
    renderer, cfg, state = checkpoint.load(run, arch="cpu")
    dataset = load_dataset(data, **cfg.dataset_options())
    train = dataset.split("train")

    def poses_of(split, key):
        return torch.tensor([effects[Path(n).stem][key] for n in split.names], dtype=torch.float64)

    frame = loader_frame(train.poses.double(), poses_of(train, "written_pose"))
    true_train = to_loader(poses_of(train, "true_pose"), frame)
    rot, centre = camera_errors(train.poses.double(), true_train)
    print(f"training cameras as written: rotation {rms(rot):.3f} deg RMS, centre {rms(centre):.4f} RMS")
    if state.get("pose_refinement") is not None:
        corrections = state["pose_refinement"]["corrections"].double()
        refined = torch.stack([corrected_pose(pose, c) for pose, c in zip(train.poses.double(), corrections)])
        rot, centre = camera_errors(refined, true_train)
        print(f"after refinement:            rotation {rms(rot):.3f} deg RMS, centre {rms(centre):.4f} RMS")
    val = dataset.split("val")
    bg = scene_background(renderer.scene, cfg)
    scores = {"written": [], "true": [], "carried": []}
    ways = [("written", val.poses, False), ("true", to_loader(poses_of(val, "true_pose"), frame).float(), False)]
    if renderer.carried is not None:  # a refined run draws its val cameras with the corrections carried to them
        ways.append(("carried", val.poses, True))
    for key, poses, carry in ways:
        for i in range(val.count):
            rgb = renderer.render_image(poses, val.intrinsics, i, val.width, val.height, bg, carry=carry)["rgb"].cpu()
            scores[key].append(psnr(rgb, over_background(val.rgba[i], bg)))
    carried = f"; with the corrections carried: {np.mean(scores['carried']):.2f} dB" if scores["carried"] else ""
    print(f"val PSNR from the poses as written: {np.mean(scores['written']):.2f} dB; "
          f"from the true poses: {np.mean(scores['true']):.2f} dB{carried}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", metavar="DATA", help="a test set written with capture effects")
    parser.add_argument("run", metavar="RUN", help="a run (or checkpoint) trained on it")
    args = parser.parse_args()
    sys.exit(one_line_errors("capture_truth.py", lambda: main(args.data, args.run)))
