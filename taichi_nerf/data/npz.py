"""The tiny NeRF ``.npz`` of the Keras NeRF example (``tiny_nerf_data.npz``): ``images``
(N, H, W, 3) float in [0, 1], ``poses`` (N, 4, 4) camera-to-world (OpenGL convention) and a
scalar ``focal`` in pixels. Optional extras we read: ``near``/``far`` scalars, 4-channel
images (alpha kept), grey images ((N, H, W) or (N, H, W, 1)), uint8 images, floats in 0..255
(said in a note), a per-image ``focal`` (N,).

Validation split as the example does it: the first int(0.8 N) images train, the rest
validate (``val_fraction`` changes the 0.2); ``val_every`` (``--val-every``) holds out every N-th
image instead, as for the photo layouts. Bounds come from the cameras (data/bounds.py)
unless the file states near/far.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from .dataset import DataError, Dataset, Split

CHUNK = 16  # images converted to uint8 at a time: no full-size float copy is ever made
SLACK = 0.01  # float images may overshoot [0, 1] by this much (resampling ringing) and be clipped


def is_npz(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz"


def _array(data, key: str, where: str) -> np.ndarray:
    if key not in data.files:
        raise DataError(f"{where}: no '{key}' array (have: {', '.join(data.files) or 'none'})")
    try:
        return data[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{where}: cannot read '{key}' ({exc})") from None


def _float_scale(images: np.ndarray, where: str) -> tuple[float, str | None]:
    """The factor to 0..255 for float images: [0, 1] as the Keras file has them, or 0..255 as
    some exports write them (said in a note); anything else is refused, not clipped to white."""
    low = high = 0.0
    for start in range(0, len(images), CHUNK):
        part = images[start:start + CHUNK]
        if not np.isfinite(part).all():
            raise DataError(f"{where}: 'images' contains NaN or infinity")
        low, high = min(low, float(part.min())), max(high, float(part.max()))
    if low < -SLACK:
        raise DataError(f"{where}: 'images' has negative values (down to {low:.3g}); floats must be in [0, 1]")
    if high <= 1.0 + SLACK:
        return 255.0, None
    if 2.0 < high <= 255.0 + SLACK:  # 0..255 as floats: a [0, 1] image never reaches 2
        return 1.0, f"'images' are floats up to {high:.4g}: read as 0..255, not [0, 1]"
    raise DataError(f"{where}: 'images' floats reach {high:.4g}; they must be in [0, 1] (or 0..255)")


def _to_rgba8(images: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """(N, H, W, 1|3|4) float or uint8 -> (N, H, W, 4) uint8, converted in chunks; and a note on
    the float range read, if it was not [0, 1]."""
    n, h, w, c = images.shape
    out = np.empty((n, h, w, 4), dtype=np.uint8)
    out[..., 3] = 255
    is_float = np.issubdtype(images.dtype, np.floating)
    if not is_float and images.dtype != np.uint8:
        raise DataError(f"{where}: 'images' must be float in [0, 1] or uint8, got {images.dtype}")
    scale, note = _float_scale(images, where) if is_float else (1.0, None)
    for start in range(0, n, CHUNK):
        part = images[start:start + CHUNK]
        if is_float:
            part = np.clip(part * scale + 0.5, 0, 255).astype(np.uint8)
        if c == 1:  # grey: the same value in red, green and blue
            out[start:start + CHUNK, ..., :3] = part
        else:
            out[start:start + CHUNK, ..., :c] = part
    return out, note


def load_npz(path, downscale: int = 1, every: int = 1, limit: int | None = None, val_fraction: float = 0.2,
             val_every: int | None = None, **_options) -> Dataset:
    from .blender import select_frames
    from .bounds import auto_bounds

    path = Path(path)
    where = str(path)
    if path.is_dir():
        held = "" if any(path.glob("*.npz")) else " (it holds no .npz file)"
        raise DataError(f"{path}: a folder, not an .npz file; give the path of the file{held}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        # numpy suggests allow_pickle=True for bytes that are not an archive: that would run
        # whatever code the file holds, so its advice is not passed on.
        pickled = "pickle" in str(exc)
        reason = "not an .npz archive; pickled data is never loaded" if pickled else str(exc).split(". ")[0]
        raise DataError(f"{path}: not a readable .npz file ({reason})") from None
    if not hasattr(data, "files"):
        raise DataError(f"{path}: a single array, not an .npz archive of images/poses/focal")
    with data:
        images = _array(data, "images", where)
        poses = _array(data, "poses", where)
        focal = _array(data, "focal", where)
        stated = {k: _array(data, k, where) for k in ("near", "far") if k in data.files}
    if images.ndim == 3:  # grey, as (N, H, W)
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.shape[0] == 0:
        raise DataError(f"{path}: 'images' must be (N, H, W, 3), or with 4 channels (alpha) or grey, with N >= 1; "
                        f"got shape {images.shape}")
    n, h, w = images.shape[:3]
    try:
        poses = poses.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'poses' must be numbers, ({n}, 4, 4) camera-to-world; got {poses.dtype}") from None
    try:
        focal = np.broadcast_to(np.asarray(focal, dtype=np.float64).reshape(-1), (n,)).copy()
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'focal' must be one number or one per image") from None
    if poses.shape[1:] == (3, 4):
        poses = np.concatenate([poses, np.tile([[[0.0, 0, 0, 1]]], (poses.shape[0], 1, 1))], axis=1)
    if poses.shape != (n, 4, 4):
        raise DataError(f"{path}: 'poses' must be ({n}, 4, 4) to match {n} images, got shape {poses.shape}")
    bad = ~np.isfinite(poses).all(axis=(1, 2))
    if bad.any():
        raise DataError(f"{path}: pose {int(np.argmax(bad))} contains NaN or infinity")
    singular = np.abs(np.linalg.det(poses[:, :3, :3])) < 1e-6  # as the JSON layouts refuse them
    if singular.any():
        raise DataError(f"{path}: pose {int(np.argmax(singular))} has a degenerate (singular) rotation")
    if not (np.isfinite(focal) & (focal > 0)).all():
        raise DataError(f"{path}: 'focal' must be positive and finite")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val fraction must be in [0, 1), got {val_fraction}")
    rgba, range_note = _to_rgba8(images, where)
    del images
    cx, cy = 0.5 * w, 0.5 * h  # the image centre, also after a downscale: its crop keeps the top-left origin
    if downscale > 1:
        if h // downscale < 1 or w // downscale < 1:
            raise DataError(f"{path}: downscale {downscale} is too large for {w} x {h} images")
        h, w = h // downscale, w // downscale
        cx, cy = cx / downscale, cy / downscale
        # Box filter on straight colour weighted by alpha would matter only for 4-channel files.
        rgba = rgba[:, : h * downscale, : w * downscale].reshape(n, h, downscale, w, downscale, 4)
        rgba = (rgba.mean(axis=(2, 4), dtype=np.float32) + 0.5).astype(np.uint8)
        focal = focal / downscale
    intr = np.zeros((n, 8), dtype=np.float32)
    intr[:, 0] = intr[:, 1] = focal
    intr[:, 2], intr[:, 3] = cx, cy
    if val_every is not None:  # --val-every, as for the photo layouts: every N-th image (1: none)
        held = list(range(0, n, val_every)) if val_every > 1 and n >= 2 else []
        parts = {"train": [i for i in range(n) if i not in held], "val": held}
        split_note = f"split: every {val_every}th image validates (--val-every), {n - len(held)} train"
    else:
        cut = n if n < 2 or val_fraction == 0 else min(n - 1, max(1, int(n * (1.0 - val_fraction))))
        parts = {"train": list(range(cut)), "val": list(range(cut, n))}
        split_note = f"split: first {cut} images train, last {n - cut} validate (fraction {val_fraction:g})"
    splits = {}
    for name, idx in parts.items():
        idx = [idx[k] for k in select_frames(len(idx), every, limit)]
        if idx:
            # An arithmetic progression (no --val-every) is a slice: a view when every == 1.
            step = idx[1] - idx[0] if len(idx) > 1 else 1
            steady = all(b - a == step for a, b in zip(idx, idx[1:]))
            rows = slice(idx[0], idx[-1] + 1, step) if steady else np.asarray(idx)
            splits[name] = Split(rgba=torch.from_numpy(np.ascontiguousarray(rgba[rows])),
                                 poses=torch.tensor(poses[rows], dtype=torch.float32),
                                 intrinsics=torch.from_numpy(np.ascontiguousarray(intr[rows])),
                                 names=[f"{name}_{i:03d}" for i in idx])
    if "train" not in splits:
        raise DataError(f"{path}: zero usable frames for training after --every/--limit")
    why = f"only {n} image(s)" if n < 2 else "--val-every 1" if val_every is not None else "val_fraction 0"
    warnings = [] if "val" in splits else [f"{path}: {why}: no validation split"]
    ds = Dataset(splits=splits, near=0.0, far=1.0, aabb=torch.zeros(6), format="npz", source=str(path),
                 warnings=warnings)
    ds.notes += [range_note] if range_note else []
    ds.notes.append(split_note)
    auto_bounds(ds)
    for key, value in stated.items():
        try:
            setattr(ds, key, float(np.asarray(value, dtype=np.float64).reshape(())))
        except (TypeError, ValueError):
            raise DataError(f"{path}: '{key}' must be one number") from None
    if stated:
        if not (np.isfinite([ds.near, ds.far]).all() and 0 <= ds.near < ds.far):
            raise DataError(f"{path}: need 0 <= near < far, got near={ds.near}, far={ds.far}")
        ds.notes = [n for n in ds.notes if not n.startswith("near ")]  # the automatic choice, overridden
        if len(stated) == 2:
            ds.notes.append("near and far as stated in the file")
        else:  # one stated: the other is still the automatic choice, which the dropped note gave
            (key,) = stated
            ds.notes.append(f"near {ds.near:.3g} / far {ds.far:.3g}: {key} as stated in the file, "
                            f"{'far' if key == 'near' else 'near'} chosen automatically")
    return ds
