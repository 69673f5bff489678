"""The Blender synthetic layout: ``transforms_{train,val,test}.json`` + RGBA PNGs.

Besides the standard keys (``camera_angle_x``, ``frames[].file_path``,
``frames[].transform_matrix``) we read optional ``fl_x, fl_y, cx, cy, w, h`` and
``k1, k2, p1, p2``, and our own extensions ``near``, ``far``, ``aabb`` ([[min],[max]]) and
per-frame ``depth_file_path`` (a .npy of ray distances) that the built-in scene writes.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .dataset import DataError, Dataset, Split
from .images import read_many, write_png

SPLITS = ("train", "val", "test")
DEFAULT_NEAR, DEFAULT_FAR = 2.0, 6.0  # the Blender scenes' cameras sit at radius ~4
DEFAULT_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)


def is_blender(path: Path) -> bool:
    return path.is_dir() and any((path / f"transforms_{s}.json").is_file() for s in SPLITS)


def read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object at the top level")
    return meta


def parse_pose(value, where: str) -> np.ndarray:
    try:
        pose = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: transform_matrix is not a numeric matrix") from None
    if pose.shape == (3, 4):
        pose = np.vstack([pose, [0.0, 0.0, 0.0, 1.0]])
    if pose.shape != (4, 4):
        raise DataError(f"{where}: transform_matrix must be 4x4, got shape {tuple(pose.shape)}")
    if not np.isfinite(pose).all():
        raise DataError(f"{where}: transform_matrix contains NaN or infinity")
    if abs(np.linalg.det(pose[:3, :3])) < 1e-6:
        raise DataError(f"{where}: transform_matrix has a degenerate (singular) rotation")
    return pose


def _number(meta: dict, key: str, where: str, default=None):
    value = meta.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def intrinsics_from_meta(meta: dict, width: int, height: int, where: str) -> list[float]:
    """fx, fy, cx, cy, k1, k2, p1, p2 from explicit focal lengths or camera angles.

    When the file's ``w``/``h`` differ from the loaded image (downscaled), scale to match.
    """
    src_w = _number(meta, "w", where) or width
    src_h = _number(meta, "h", where) or height
    sx, sy = width / src_w, height / src_h
    fx = _number(meta, "fl_x", where)
    fy = _number(meta, "fl_y", where)
    angle_x = _number(meta, "camera_angle_x", where)
    angle_y = _number(meta, "camera_angle_y", where)
    if fx is None and angle_x is not None:
        fx = 0.5 * src_w / math.tan(0.5 * angle_x)
    if fy is None and angle_y is not None:
        fy = 0.5 * src_h / math.tan(0.5 * angle_y)
    if fx is None and fy is None:
        raise DataError(f"{where}: no focal length (need 'camera_angle_x' or 'fl_x')")
    fx = fx if fx is not None else fy
    fy = fy if fy is not None else fx
    if fx <= 0 or fy <= 0:
        raise DataError(f"{where}: focal length must be positive")
    cx = _number(meta, "cx", where, 0.5 * src_w)
    cy = _number(meta, "cy", where, 0.5 * src_h)
    dist = [_number(meta, k, where, 0.0) for k in ("k1", "k2", "p1", "p2")]
    return [fx * sx, fy * sy, cx * sx, cy * sy, *dist]


def resolve_image(root: Path, file_path: str, where: str) -> Path:
    if not isinstance(file_path, str) or not file_path:
        raise DataError(f"{where}: 'file_path' must be a non-empty string")
    path = (root / file_path).resolve()
    if path.suffix == "":
        for ext in (".png", ".PNG", ".jpg", ".jpeg", ".JPG"):
            if path.with_suffix(ext).is_file():
                return path.with_suffix(ext)
        return path.with_suffix(".png")
    return path


def load_split(root: Path, split: str, downscale: int = 1) -> tuple[Split, dict]:
    path = root / f"transforms_{split}.json"
    meta = read_json(path)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{path}: 'frames' must be a non-empty list")
    image_paths, poses, depth_paths = [], [], []
    for i, frame in enumerate(frames):
        where = f"{path} frame {i}"
        if not isinstance(frame, dict):
            raise DataError(f"{where}: frame must be a JSON object")
        if "transform_matrix" not in frame:
            raise DataError(f"{where}: frame has no 'transform_matrix' (pose)")
        poses.append(parse_pose(frame["transform_matrix"], where))
        image_paths.append(resolve_image(root, frame.get("file_path"), where))
        if "depth_file_path" in frame:
            depth_paths.append(root / frame["depth_file_path"])
    rgba = read_many(image_paths, downscale)
    n, h, w, _ = rgba.shape
    intr = []
    for i, frame in enumerate(frames):
        merged = {**meta, **{k: v for k, v in frame.items() if k not in ("frames",)}}
        intr.append(intrinsics_from_meta(merged, w, h, f"{path} frame {i}"))
    depth = None
    if depth_paths and len(depth_paths) == n and downscale == 1:
        try:
            depth = torch.from_numpy(np.stack([np.load(p).astype(np.float32) for p in depth_paths]))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read depth files ({exc})") from None
    split_data = Split(
        rgba=torch.from_numpy(rgba),
        poses=torch.tensor(np.stack(poses), dtype=torch.float32),
        intrinsics=torch.tensor(intr, dtype=torch.float32),
        names=[p.stem for p in image_paths],
        depth=depth,
    )
    return split_data, meta


def load_blender(root, downscale: int = 1) -> Dataset:
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not is_blender(root):
        raise DataError(f"{root}: no transforms_train.json / transforms_val.json / transforms_test.json here")
    splits, metas = {}, {}
    for name in SPLITS:
        if (root / f"transforms_{name}.json").is_file():
            splits[name], metas[name] = load_split(root, name, downscale)
    if "train" not in splits:
        raise DataError(f"{root}: transforms_train.json is missing; it is needed to train")
    meta = metas["train"]
    where = str(root / "transforms_train.json")
    near = _number(meta, "near", where, DEFAULT_NEAR)
    far = _number(meta, "far", where, DEFAULT_FAR)
    if not 0 <= near < far:
        raise DataError(f"{where}: need 0 <= near < far, got near={near}, far={far}")
    aabb = meta.get("aabb", [DEFAULT_AABB[:3], DEFAULT_AABB[3:]])
    try:
        aabb_t = torch.tensor(np.asarray(aabb, dtype=np.float32).reshape(6))
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'aabb' must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]") from None
    if not bool((aabb_t[3:] > aabb_t[:3]).all()):
        raise DataError(f"{where}: 'aabb' max must exceed min on every axis")
    sizes = {(s.width, s.height) for s in splits.values()}
    if len(sizes) > 1:
        # Different splits may legitimately differ; warn rather than refuse.
        warn = [f"splits have different image sizes: {sorted(sizes)}"]
    else:
        warn = []
    radius = float(splits["train"].poses[:, :3, 3].norm(dim=1).mean())
    return Dataset(
        splits=splits, near=near, far=far, aabb=aabb_t, format="blender", source=str(root),
        warnings=warn, orbit_radius=radius,
    )


def write_split(
    root,
    split: str,
    rgba: np.ndarray,
    poses: np.ndarray,
    camera_angle_x: float,
    depth: np.ndarray | None = None,
    extra: dict | None = None,
) -> Path:
    """Write one split: ``split/r_XXX.png`` (+ ``_depth.npy``) and ``transforms_<split>.json``."""
    root = Path(root)
    (root / split).mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(rgba.shape[0]):
        stem = f"{split}/r_{i:03d}"
        write_png(root / f"{stem}.png", rgba[i])
        frame = {"file_path": f"./{stem}", "transform_matrix": np.asarray(poses[i]).tolist()}
        if depth is not None:
            np.save(root / f"{stem}_depth.npy", depth[i].astype(np.float32))
            frame["depth_file_path"] = f"./{stem}_depth.npy"
        frames.append(frame)
    meta = {"camera_angle_x": float(camera_angle_x), **(extra or {}), "frames": frames}
    path = root / f"transforms_{split}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(path)
    return path
