"""What the package makes of a COLMAP sparse model (read by data/colmap_files.py): an oriented,
scaled ``transforms.json``-style description, and the dataset it loads as.

Conventions: COLMAP stores world-to-camera (quaternion w x y z, translation) for an OpenCV camera
(x right, y down, looking down +z) with pixel centres at +0.5, as this package does. Poses become
OpenGL camera-to-world (flip y and z). :func:`orient` then turns the world so the mean camera up
is +z, centres it on the median of the sparse points the cameras surround, and scales it so the
points' robust extent (2nd-98th percentile) is a box of half-size 1; near/far come from the
depths at which each camera saw its points.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..rotations import OPENCV_TO_OPENGL, quaternion_to_matrix, rotation_onto_z
from .colmap_files import Camera, Model, find_model, read_model
from .dataset import DataError
from .images import DATASET_SUFFIXES

# models the ray kernel represents: name -> how their parameters map to fx fy cx cy k1 k2 p1 p2
_TO_OPENCV = {
    "SIMPLE_PINHOLE": lambda p: (p[0], p[0], p[1], p[2], 0, 0, 0, 0),
    "PINHOLE": lambda p: (p[0], p[1], p[2], p[3], 0, 0, 0, 0),
    "SIMPLE_RADIAL": lambda p: (p[0], p[0], p[1], p[2], p[3], 0, 0, 0),
    "RADIAL": lambda p: (p[0], p[0], p[1], p[2], p[3], p[4], 0, 0),
    "OPENCV": lambda p: tuple(p[:8]),
    "FULL_OPENCV": lambda p: tuple(p[:8]),  # k3..k6 dropped with a warning
}
BOX_PERCENTILES = (2.0, 98.0)  # the points' robust extent
BOX_PAD = 0.05  # of the extent, on every side


# --- geometry --------------------------------------------------------------------------------
def camera_to_world(model: Model) -> np.ndarray:
    """(N, 4, 4) OpenGL camera-to-world poses in the model's frame."""
    rot = quaternion_to_matrix(model.qvecs)  # world -> camera
    c2w = np.tile(np.eye(4), (len(model.names), 1, 1))
    c2w[:, :3, :3] = np.transpose(rot, (0, 2, 1))
    c2w[:, :3, 3] = -np.einsum("nji,nj->ni", rot, model.tvecs)
    c2w[:, :3, :3] = c2w[:, :3, :3] @ OPENCV_TO_OPENGL
    return c2w


MIN_POINTS = 8  # sparse points a model needs for its box and near/far to come from them (none: a model of known poses)


def orient(c2w: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(4x4 similarity T: new = T @ old, box (6,) in the new frame, notes). Up: the mean camera
    up becomes +z. Centre: the median of the points within the median camera distance of the
    points' median (the content the cameras surround or face, not the far background). Scale:
    that content's 2nd-98th percentile box gets half-size 1."""
    up = c2w[:, :3, 1].mean(axis=0)
    if np.linalg.norm(up) < 1e-6:
        up = np.array([0.0, 0.0, 1.0])
    rot = rotation_onto_z(up / np.linalg.norm(up))
    centres = c2w[:, :3, 3]
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    framed = "sparse points (those the cameras surround)"
    if len(pts) < MIN_POINTS:  # too few points to trust: frame the cameras instead
        framed = f"camera centres (the model has {len(pts)} sparse points)"
        pts = centres
    middle = np.median(pts, axis=0)
    reach = float(np.median(np.linalg.norm(centres - middle, axis=1)))
    content = pts[np.linalg.norm(pts - middle, axis=1) <= max(reach, 1e-9)]
    if len(content) < max(8, 0.05 * len(pts)):
        content = pts
    centre = np.median(content, axis=0)
    local = (content - centre) @ rot.T
    lo, hi = np.percentile(local, BOX_PERCENTILES[0], axis=0), np.percentile(local, BOX_PERCENTILES[1], axis=0)
    pad = BOX_PAD * float((hi - lo).max())
    lo, hi = lo - pad, hi + pad
    half = float(np.abs(np.concatenate([lo, hi])).max())
    scale = 1.0 / half if half > 1e-12 else 1.0
    transform = np.eye(4)
    transform[:3, :3] = scale * rot
    transform[:3, 3] = -scale * rot @ centre
    notes = [f"oriented: mean camera up -> +z, centred on the median of {len(content)} of {len(pts)} {framed}, "
             f"scaled x{scale:.4g} so their {BOX_PERCENTILES[0]:g}-"
             f"{BOX_PERCENTILES[1]:g}th percentile box has half-size 1"]
    return transform, np.concatenate([lo, hi]) * scale, notes


def apply_similarity(transform: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world poses moved by similarity ``transform`` (rotation columns kept unit)."""
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    out = transform[None] @ c2w
    out[:, :3, :3] /= scale
    return out


def near_far(model: Model, c2w: np.ndarray, xyz: np.ndarray) -> tuple[float, float]:
    """Near/far from the depths at which each camera saw its own points (``xyz`` in the same
    frame as ``c2w``): 0.5th percentile x 0.8 and 99.5th x 1.2 over all observations."""
    index = {int(pid): k for k, pid in enumerate(model.point_ids)}
    depths = []
    for n, ids in enumerate(model.observed):
        rows = [index[int(i)] for i in ids if int(i) in index]
        if rows:
            depths.append((xyz[rows] - c2w[n, :3, 3]) @ -c2w[n, :3, 2])
    depths = np.concatenate(depths) if depths else np.zeros(0)
    depths = depths[depths > 0]
    if len(depths) < 8:
        return 0.01, 10.0
    return 0.8 * float(np.percentile(depths, 0.5)), 1.2 * float(np.percentile(depths, 99.5))


# --- to transforms.json ----------------------------------------------------------------------
MAX_ASPECT_DIFFERENCE = 0.05  # fx / fy (or fy / fx) beyond 1 + this is warned about: cameras have square pixels


def camera_keys(camera: Camera, where) -> tuple[dict, list[str]]:
    """The transforms.json intrinsics of one COLMAP camera; refuses models the rays cannot follow."""
    if camera.model not in _TO_OPENCV:
        raise DataError(f"{where}: camera {camera.id} is {camera.model}; supported: {', '.join(_TO_OPENCV)} "
                        "(undistort fisheye images first, e.g. colmap image_undistorter)")
    fx, fy, cx, cy, k1, k2, p1, p2 = (float(v) for v in _TO_OPENCV[camera.model](camera.params))
    keys = {"camera_model": "OPENCV" if any((k1, k2, p1, p2)) else "PINHOLE", "fl_x": fx, "fl_y": fy, "cx": cx,
            "cy": cy, "w": camera.width, "h": camera.height}
    if keys["camera_model"] == "OPENCV":
        keys.update(k1=k1, k2=k2, p1=p1, p2=p2)
    warnings = []
    ratio = max(fx, fy) / min(fx, fy) if min(fx, fy) > 0 else math.inf
    if ratio > 1.0 + MAX_ASPECT_DIFFERENCE:  # from photos: a model with one focal length is the way out
        warnings.append(f"{where}: camera {camera.id}: fx {fx:.4g} and fy {fy:.4g} differ {ratio:.3g}-fold, where "
                        f"square pixels have fx = fy: {camera.model}'s two focal lengths most likely settled on wrong "
                        "ones (from-photos: use the default --camera-model simple_radial)")
    if camera.model == "FULL_OPENCV" and np.any(camera.params[8:]):
        warnings.append(f"{where}: camera {camera.id}: FULL_OPENCV terms k3..k6 are ignored")
    return keys, warnings


def transforms_meta(model: Model, image_prefix: str = "images/", where="COLMAP model") -> tuple[dict, list[str]]:
    """The oriented model as a transforms.json dict (``frames`` in file-name order; one shared
    camera at the top level, else per frame), with ``aabb``, ``near``, ``far`` and the
    ``applied_transform`` (3x4 similarity from the COLMAP frame to this one); and warnings."""
    if not model.names:
        raise DataError(f"{where}: the model has no registered images")
    c2w = camera_to_world(model)
    transform, box, notes = orient(c2w, model.xyz)
    poses = apply_similarity(transform, c2w)
    xyz = model.xyz @ transform[:3, :3].T + transform[:3, 3]
    near, far = near_far(model, poses, xyz)
    warnings, cams = [], {}
    for cid in sorted(set(model.camera_ids.tolist())):
        cams[cid], w = camera_keys(model.cameras[cid], where)
        warnings += w
    shared = len(cams) == 1
    meta = dict(next(iter(cams.values()))) if shared else {}
    frames = []
    for n, name in enumerate(model.names):
        frame = {"file_path": image_prefix + name, "transform_matrix": poses[n].tolist(),
                 "colmap_im_id": int(model.image_ids[n])}
        if not shared:
            frame.update(cams[int(model.camera_ids[n])])
        frames.append(frame)
    meta.update(frames=frames, applied_transform=transform[:3].tolist(), orientation_note=notes[0])
    if len(model.xyz) >= MIN_POINTS:  # else the box would be the cameras' own: bounds from the cameras, as for
        meta.update(aabb=[box[:3].tolist(), box[3:].tolist()], near=near, far=far)  # a transforms.json without
    return meta, warnings


def registration(model: Model) -> dict:
    """Figures for reports: registered images, 3D points, mean reprojection error (pixels)."""
    error = float(model.errors.mean()) if len(model.errors) else math.nan
    return {"registered": len(model.names), "points3D": int(len(model.point_ids)), "mean_reprojection_error": error}


# --- the loader (--format colmap) ------------------------------------------------------------
def is_colmap(path: Path) -> bool:
    return find_model(Path(path)) is not None


def load_colmap(path, downscale: int = 1, every: int = 1, limit: int | None = None, val_every: int | None = None,
                **_options):
    """A COLMAP project (``sparse/0`` + ``images/``): read, oriented and bounded as
    ``data from-photos`` does, then loaded like a transforms.json."""
    from ..config import DEFAULT_VAL_EVERY
    from .transforms import load_transforms_meta

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    found = find_model(path)
    if found is None:
        raise DataError(f"{path}: no COLMAP model here (need sparse/0/cameras, images, points3D (.bin or .txt) "
                        "and an images/ folder)")
    folder, images = found
    model = read_model(folder)
    meta, warnings = transforms_meta(model, "", str(folder))
    on_disk = sorted(p.name for p in images.iterdir() if p.suffix.lower() in DATASET_SUFFIXES and p.name[0] != ".")
    left_out = [n for n in on_disk if n not in set(model.names)]
    meta["colmap"] = {**registration(model), "total": len(model.names) + len(left_out), "unregistered": left_out,
                      "cameras": len(model.cameras),
                      "camera_model": "/".join(sorted({c.model for c in model.cameras.values()}))}
    ds = load_transforms_meta(meta, images, folder, downscale, every, limit,
                              DEFAULT_VAL_EVERY if val_every is None else val_every, format="colmap")
    ds.warnings.extend(warnings)
    ds.notes.insert(0, meta["orientation_note"])
    return ds
