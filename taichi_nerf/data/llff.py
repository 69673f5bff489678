"""LLFF layout: ``poses_bounds.npy`` + ``images/`` (and pre-shrunk ``images_4/``, ``images_8/``).

Each row of ``poses_bounds.npy`` is a 3x5 matrix flattened row-major, then two depths:
columns 0-2 are the camera axes in LLFF's order [down, right, backwards], column 3 the
camera centre, column 4 (height, width, focal) of the full-size images; the depths are
the near and far bounds of what that camera sees.

What the loader does with it (docs/DATASETS.md has the reasoning):

* axes to the project's OpenGL convention: [right, up, back] = [col1, -col0, col2];
* rescale the world so the nearest stated depth becomes 1 / 0.75 (so the NDC near plane at
  depth 1 lies in front of all content), then re-centre it on the average camera (its
  centre the origin, looking down -z, +y up), which NDC needs; the similarity applied is
  kept in ``Dataset.applied_transform``;
* hold out every 8th image as val (the LLFF/NeRF convention);
* forward-facing captures (cameras looking one way) sample in NDC by default (``ndc``):
  near 0, far 1 and a box of [-1, 1] in z and at least [-1, 1] in x and y, widened just
  enough to contain every training ray; 360-degree captures stored as LLFF (e.g. the
  mip-NeRF 360 scenes) get ordinary automatic bounds instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import DEFAULT_VAL_EVERY
from ..files import first_bytes, lfs_pointer
from ..stages.cameras import unit
from .dataset import DataError, Dataset, Split
from .images import DATASET_SUFFIXES, NOT_SAME_SHAPE, read_many, same_shape

NEAR_TARGET_FACTOR = 0.75  # nearest depth -> 1 / 0.75 after rescaling
NDC_NEAR = 1.0


def opengl_poses(mats: np.ndarray) -> np.ndarray:
    """(N, 4, 4) OpenGL camera-to-world poses of poses_bounds.npy's (N, 3, 5) matrices, whose
    rotation columns are (down, right, backwards) and whose last column is height, width, focal."""
    poses = np.tile(np.eye(4), (len(mats), 1, 1))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2] = mats[:, :, 1], -mats[:, :, 0], mats[:, :, 2]
    poses[:, :3, 3] = mats[:, :, 3]
    return poses


def is_llff(path: Path) -> bool:
    in_folder = path.is_dir() and (path / "poses_bounds.npy").is_file()
    return in_folder or (path.is_file() and path.name == "poses_bounds.npy")


def average_pose(poses: np.ndarray) -> np.ndarray:
    """(4, 4) camera at the mean centre, looking along the mean direction, mean up."""
    center = poses[:, :3, 3].mean(axis=0)
    back = unit(poses[:, :3, 2].mean(axis=0))
    up = poses[:, :3, 1].mean(axis=0)
    right = unit(np.cross(up, back))
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, center
    return pose


def ndc_points(origins: np.ndarray, dirs: np.ndarray, focal: float, width: int, height: int, near: float = NDC_NEAR):
    """Rays in normalised device coordinates (float64 numpy twin of cameras.ndc_rays)."""
    t = -(near + origins[:, 2]) / dirs[:, 2]
    o = origins + t[:, None] * dirs
    ax, ay = -2.0 * focal / width, -2.0 * focal / height
    o_ndc = np.stack([ax * o[:, 0] / o[:, 2], ay * o[:, 1] / o[:, 2], 1.0 + 2.0 * near / o[:, 2]], axis=1)
    d_ndc = np.stack([ax * (dirs[:, 0] / dirs[:, 2] - o[:, 0] / o[:, 2]),
                      ay * (dirs[:, 1] / dirs[:, 2] - o[:, 1] / o[:, 2]),
                      -2.0 * near / o[:, 2]], axis=1)
    return o_ndc, d_ndc


def _border_rays(poses: np.ndarray, intr: np.ndarray, width: int, height: int):
    """Unit rays through every border pixel centre of every camera (vectorised)."""
    i = np.arange(width) + 0.5
    j = np.arange(height) + 0.5
    u = np.concatenate([i, i, np.full(height, 0.5), np.full(height, width - 0.5)])
    v = np.concatenate([np.full(width, 0.5), np.full(width, height - 0.5), j, j])
    fx, fy, cx, cy = (intr[:, k][:, None] for k in range(4))
    cam = np.stack([(u[None] - cx) / fx, -(v[None] - cy) / fy, -np.ones((len(poses), len(u)))], axis=-1)
    dirs = unit(np.einsum("nij,nkj->nki", poses[:, :3, :3], cam)).reshape(-1, 3)
    origins = np.repeat(poses[:, :3, 3], len(u), axis=0)
    return origins, dirs


def ndc_box(poses: np.ndarray, intr: np.ndarray, focal: float, width: int, height: int) -> np.ndarray:
    """NDC box: z in [-1, 1]; x, y at least [-1, 1], widened to hold every training ray."""
    o, d = _border_rays(poses, intr, width, height)
    o_ndc, d_ndc = ndc_points(o, d, focal, width, height)
    ends = np.concatenate([o_ndc, o_ndc + d_ndc])[:, :2]
    half = np.maximum(1.0, np.abs(ends).max(axis=0) * 1.001)
    return np.array([-half[0], -half[1], -1.0, half[0], half[1], 1.0])


def pre_shrunk_folders(root: Path, stem: str = "images") -> list[Path]:
    """The ``images_K/`` (``<stem>_K/``) folders beside ``images/``, smallest K first."""
    return sorted((p for p in root.glob(f"{stem}_*") if p.is_dir() and p.name[len(stem) + 1:].isdigit()),
                  key=lambda p: int(p.name[len(stem) + 1:]))


def photos_folder(root: Path) -> Path | None:
    """``images/``, else the finest pre-shrunk ``images_K/`` (a capture shipped shrunk): a folder of the
    capture's photos by name, the same names in every one; None without either."""
    return next((p for p in [root / "images", *pre_shrunk_folders(root)] if p.is_dir()), None)


def _image_folder(root: Path, downscale: int) -> tuple[Path, int, str | None]:
    """(folder, extra decode factor, note): a pre-shrunk images_K when it exists."""
    if downscale > 1 and (root / f"images_{downscale}").is_dir():
        return root / f"images_{downscale}", 1, None
    if (root / "images").is_dir():
        return root / "images", downscale, None
    shrunk = pre_shrunk_folders(root)
    if shrunk:
        # The coarsest images_K that --downscale still divides, decoded by what is left of it;
        # else the finest, as it is (coarser than asked).
        fits = [p for p in shrunk if downscale % int(p.name[7:]) == 0]
        if fits:
            folder = fits[-1]
            return folder, downscale // int(folder.name[7:]), f"no images/ folder: using {folder.name}/"
        return shrunk[0], 1, (f"no images/ folder: using {shrunk[0].name}/, coarser than --downscale "
                              f"{downscale} asked")
    raise DataError(f"{root}: LLFF layout needs an images/ folder next to poses_bounds.npy")


def load_llff(path, downscale: int = 1, every: int = 1, limit: int | None = None, ndc: bool | None = None,
              val_every: int = DEFAULT_VAL_EVERY, **_options) -> Dataset:
    """``ndc``: None = on for forward-facing captures, off for 360-degree ones."""
    from .blender import select_frames
    from .bounds import apply_bounds, estimate_bounds

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    root = path.parent if path.is_file() else path
    file = root / "poses_bounds.npy"
    try:
        raw = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        npy = first_bytes(file).startswith(b"\x93NUMPY")  # else numpy's reason is about pickles, which are refused
        why = lfs_pointer(file) or (str(exc) if npy or not file.is_file() else "it does not start as one")
        raise DataError(f"{file}: not a readable .npy file ({why})") from None
    if raw.ndim != 2 or raw.shape[1] != 17 or raw.shape[0] == 0 or not np.issubdtype(raw.dtype, np.number):
        raise DataError(f"{file}: expected an (N, 17) array of poses and bounds, got shape {raw.shape}")
    raw = raw.astype(np.float64)
    bad = ~np.isfinite(raw).all(axis=1)
    if bad.any():
        raise DataError(f"{file}: row {int(np.argmax(bad))} contains NaN or infinity")
    n = raw.shape[0]
    mats = raw[:, :15].reshape(n, 3, 5)
    depth_bounds = raw[:, 15:17]
    bad = (depth_bounds[:, 0] <= 0) | (depth_bounds[:, 1] <= depth_bounds[:, 0])
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{file}: row {row} (from 0, in the order of the image names) has depth bounds near "
                        f"{depth_bounds[row, 0]:g}, far {depth_bounds[row, 1]:g} ({int(bad.sum())} of {n} rows like "
                        "it); every camera needs 0 < near < far: compute them again from the COLMAP model "
                        "(LLFF's imgs2poses.py), or fix those rows")
    full_h, full_w, focal_full = mats[0, :, 4]
    if min(full_h, full_w, focal_full) <= 0:
        raise DataError(f"{file}: height, width and focal (column 4) must be positive")

    folder, decode_factor, folder_note = _image_folder(root, downscale)
    image_paths = sorted(p for p in folder.iterdir()  # not macOS's "._IMG_0001.JPG" metadata files
                         if p.suffix.lower() in DATASET_SUFFIXES and not p.name.startswith(".") and p.is_file())
    if len(image_paths) != n:
        raise DataError(f"{folder}: {len(image_paths)} images, but poses_bounds.npy has {n} poses")

    poses = opengl_poses(mats)
    dets = np.linalg.det(poses[:, :3, :3])
    if (np.abs(dets) < 1e-6).any():
        raise DataError(f"{file}: pose {int(np.argmax(np.abs(dets) < 1e-6))} has a degenerate rotation")

    scale = 1.0 / (depth_bounds.min() * NEAR_TARGET_FACTOR)
    to_scaled = np.diag([scale, scale, scale, 1.0])
    poses[:, :3, 3] *= scale
    depth_bounds = depth_bounds * scale
    recenter = np.linalg.inv(average_pose(poses))
    poses = recenter @ poses
    applied = recenter @ to_scaled

    val_idx = list(range(0, n, val_every)) if val_every and val_every > 1 and n >= 2 else []
    parts = {"train": [i for i in range(n) if i not in set(val_idx)]}
    if val_idx:
        parts["val"] = val_idx
    splits = {}
    for name, idx in parts.items():
        idx = [idx[k] for k in select_frames(len(idx), every, limit)]
        if not idx:
            continue
        rgba = read_many([image_paths[i] for i in idx], decode_factor)
        h, w = rgba.shape[1:3]
        if not same_shape(w, h, full_w, full_h):
            raise DataError(f"{image_paths[idx[0]]}: the images are {w}x{h} as loaded, but poses_bounds.npy "
                            f"states {full_w:g}x{full_h:g}, {NOT_SAME_SHAPE}")
        intr = np.zeros((len(idx), 8), dtype=np.float32)
        intr[:, 0] = focal_full * w / full_w
        intr[:, 1] = focal_full * h / full_h
        intr[:, 2], intr[:, 3] = 0.5 * w, 0.5 * h
        splits[name] = Split(rgba=torch.from_numpy(rgba), poses=torch.tensor(poses[idx], dtype=torch.float32),
                             intrinsics=torch.from_numpy(intr), names=[image_paths[i].stem for i in idx])
    if "train" not in splits:
        raise DataError(f"{file}: zero usable frames for training after --every/--limit")

    train = splits["train"]
    train_poses = train.poses.double().numpy()
    train_intr = train.intrinsics.double().numpy()
    bounds = estimate_bounds(train_poses, train_intr, train.width, train.height,
                             depth_range=(0.9 * depth_bounds[:, 0].min(), depth_bounds[:, 1].max()))
    ds = Dataset(splits=splits, near=0.0, far=1.0, aabb=torch.zeros(6), format="llff", source=str(root),
                 applied_transform=torch.tensor(applied, dtype=torch.float32))
    ds.notes.append(f"world rescaled by {scale:.4g} (nearest depth -> {1 / NEAR_TARGET_FACTOR:.3g}) "
                    "and re-centred on the average camera")
    if folder_note:
        ds.notes.append(folder_note)
    if not bounds.forward_facing:
        ds.notes.append("cameras surround the scene: 360-degree capture, no NDC")
        bounds = estimate_bounds(train_poses, train_intr, train.width, train.height, forward_facing=False)
    apply_bounds(ds, bounds)
    use_ndc = bounds.forward_facing if ndc is None else bool(ndc)
    if use_ndc:
        if not bounds.forward_facing:
            ds.warnings.append(f"{file}: NDC asked for, but the cameras surround the scene; expect a poor fit")
        focal = float(train.intrinsics[0, 0])
        box = ndc_box(train_poses, train_intr, focal, train.width, train.height)
        ds.ndc, ds.near, ds.far = True, 0.0, 1.0
        ds.aabb = torch.tensor(box, dtype=torch.float32)
        ds.notes.append(f"NDC: near 0, far 1 (depth 1 to infinity), box x/y half-size {box[3]:.3g}/{box[4]:.3g}")
    return ds
