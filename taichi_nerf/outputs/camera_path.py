"""Camera paths for videos: nerfstudio ``camera_path.json`` files, transforms-style pose
lists, a smooth path through the training cameras, and the forward-facing spiral.

Every path ends as (poses (N, 4, 4) camera-to-world in the project's OpenGL convention,
intrinsics (N, 8), width, height, fps) for :class:`taichi_nerf.outputs.video.VideoRecorder`.
Resampling a path to another number of frames moves along it at constant speed: a
Catmull-Rom spline through the camera positions, slerp between their rotations.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.blender import MAX_COORDINATE
from ..rendering.scene import Scene, orbit_cameras, spiral_frame, spiral_poses
from ..rendering.video_route import MAX_KEYFRAMES, check_fps, trained_video_width
from ..rotations import (
    ROTATION_TOLERANCE,
    matrix_to_quaternion,
    nearest_rotation,
    quaternion_to_matrix,
    rotation_deviation,
)
from ..stages.cameras import axis_basis, focal_from_fov

ARC_SAMPLES = 32  # spline steps per segment when measuring its length (constant-speed frames)


# The length of the mean of the cameras' viewing directions below which they have no average view
# to spiral in front of: ~0.64 for cameras spread over a half circle, 0 for a full ring.
MIN_SPIRAL_AGREEMENT = 0.5


class CameraPathError(ValueError):
    """A camera path file that cannot be used: one line naming the file."""


@dataclass
class CameraPath:
    poses: torch.Tensor  # (N, 4, 4) float32 camera-to-world
    intrinsics: torch.Tensor  # (N, 8) fx, fy, cx, cy, k1, k2, p1, p2
    width: int
    height: int
    fps: float | None = None  # the file's, when it says
    notes: list[str] = dataclasses.field(default_factory=list)  # what was filled in from the dataset
    closed: bool = False  # a loop (nerfstudio's is_cycle): resampling runs on from the last camera to the first

    @property
    def frames(self) -> int:
        return int(self.poses.shape[0])


def _intrinsics(fx, fy, width: int, height: int, cx=None, cy=None) -> list[float]:
    return [float(fx), float(fy), float(width / 2.0 if cx is None else cx), float(height / 2.0 if cy is None else cy),
            0.0, 0.0, 0.0, 0.0]


def _matrix(values, where: str) -> np.ndarray:
    try:
        m = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise CameraPathError(f"{where}: the matrix is not numbers") from None
    if m.size not in (12, 16):
        raise CameraPathError(f"{where}: expected a 4x4 (16 numbers) or 3x4 (12) matrix, got {m.size} numbers")
    m = m.reshape(-1, 4)
    if not np.isfinite(m).all():
        raise CameraPathError(f"{where}: the matrix holds NaN or infinite values")
    if np.abs(m[:3]).max() > MAX_COORDINATE:  # finite here, infinite in the float32 rays (a video of background)
        raise CameraPathError(f"{where}: the matrix has values beyond {MAX_COORDINATE:g}, which the renderer's float32 "
                              "rays cannot hold; write the path in the scene's coordinates")
    pose = np.eye(4)
    pose[:3] = m[:3]
    if abs(np.linalg.det(pose[:3, :3])) < 1e-9:
        raise CameraPathError(f"{where}: the rotation is singular")
    check_rotation(pose[:3, :3], where)
    return pose


def check_rotation(r: np.ndarray, where: str) -> None:
    """One line naming ``where`` unless ``r`` is orthonormal with determinant +1 (a mirror, a
    scale or a shear would render a distorted frame)."""
    deviation = rotation_deviation(r)
    if deviation > ROTATION_TOLERANCE:
        lengths = ", ".join(f"{v:.3g}" for v in np.linalg.norm(r, axis=0))
        raise CameraPathError(f"{where}: the 3x3 part of the matrix is not a rotation (scaled or sheared: column "
                              f"lengths {lengths}, |R^T R - I| up to {deviation:.3g}, tolerance "
                              f"{ROTATION_TOLERANCE:g})")
    if np.linalg.det(r) < 0:
        raise CameraPathError(f"{where}: the 3x3 part of the matrix is a mirror (determinant -1), not a rotation")


def _number(value, name: str, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise CameraPathError(f"{where}: '{name}' must be a number, got {value!r}")
    return v


def _positive(value, name: str, where: str) -> float:
    v = _number(value, name, where)
    if v <= 0:
        raise CameraPathError(f"{where}: '{name}' must be positive, got {value!r}")
    return v


def _pixels(value, name: str, where: str) -> float:
    """A picture's side as the file gives it: a number of pixels, at least 1 (0.4 made a video 0 rows
    high, refused by the GIF writer after every frame was rendered)."""
    v = _number(value, name, where)
    if v < 1:
        raise CameraPathError(f"{where}: '{name}' is a number of pixels, at least 1; got {value!r}")
    return v


def _fps(meta: dict, path: Path) -> float | None:
    """The file's "fps" (None: it gives none), a number of at least MIN_FPS."""
    if meta.get("fps") is None:
        return None
    try:
        return check_fps(_positive(meta["fps"], "fps", str(path)), f"{path}: 'fps'")
    except ValueError as exc:
        raise CameraPathError(str(exc)) from None


def cameras_seeing_the_scene(route: CameraPath, scene: Scene) -> int:
    """How many of the path's cameras have the scene in their picture: a corner or the centre of
    its box in front of them and inside the image, or the camera inside the box. Forward-facing
    scenes (whose box is in NDC) use the point the spiral looks at instead."""
    if scene.ndc:
        if len(scene.path_pose) != 16:
            return route.frames  # nothing to judge by (checkpoints from before the spiral)
        average = torch.tensor(scene.path_pose, dtype=torch.float64).reshape(4, 4)
        points = (average[:3, 3] - scene.path_focus * average[:3, 2])[None]
        inside = torch.zeros(route.frames, dtype=torch.bool)
    else:
        lo, hi = torch.tensor(scene.aabb[:3], dtype=torch.float64), torch.tensor(scene.aabb[3:], dtype=torch.float64)
        corners = torch.stack([torch.where(torch.tensor([(k >> a) & 1 for a in range(3)], dtype=torch.bool), hi, lo)
                               for k in range(8)])
        points = torch.cat([corners, (0.5 * (lo + hi))[None]])
        centres = route.poses[:, :3, 3].double()
        inside = ((centres >= lo) & (centres <= hi)).all(dim=1)
    poses = route.poses.double()
    local = torch.einsum("nji,npj->npi", poses[:, :3, :3], points[None] - poses[:, None, :3, 3])  # R^T (p - t)
    depth = -local[..., 2]  # OpenGL cameras look down -z
    fx, fy, cx, cy = (route.intrinsics[:, k, None].double() for k in range(4))
    u = cx + fx * local[..., 0] / depth.clamp_min(1e-9)
    v = cy - fy * local[..., 1] / depth.clamp_min(1e-9)
    seen = (depth > 0) & (u >= 0) & (u < route.width) & (v >= 0) & (v < route.height)
    return int((seen.any(dim=1) | inside).sum())


def load_camera_path(path, scene: Scene, size: int | None = None) -> CameraPath:
    """Read a nerfstudio ``camera_path.json`` or a transforms-style pose list; ``size``
    overrides the file's width (the height follows the aspect). From Python, ``path`` may also be
    the camera-to-world matrices themselves ((N, 4, 4) or (N, 3, 4): numpy, torch or lists), seen
    with the training cameras' field of view."""
    if not isinstance(path, (str, os.PathLike)):
        return _transforms({"camera_angle_x": scene.fov_x, "frames": [{"transform_matrix": m} for m in _poses(path)]},
                           "poses", scene, size)
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a byte-order mark, as Windows editors write
    except FileNotFoundError:
        raise CameraPathError(f"{path}: no such camera path file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CameraPathError(f"{path}: not a readable JSON camera path ({str(exc).splitlines()[0]})") from None
    if isinstance(meta, dict) and "camera_path" in meta:
        return _nerfstudio(meta, path, size, scene)
    if isinstance(meta, dict) and "frames" in meta:
        return _transforms(meta, path, scene, size)
    raise CameraPathError(f"{path}: neither a nerfstudio camera path ('camera_path') nor a pose list ('frames')")


def _poses(values) -> np.ndarray:
    """(N, 4, 4) or (N, 3, 4) matrices given in Python, or one line saying what they are not."""
    if isinstance(values, torch.Tensor):  # on any device, of any dtype
        values = values.detach().cpu().double().numpy()
    try:
        poses = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise CameraPathError(f"a camera path is a file's path, \"train\" or camera-to-world matrices, got "
                              f"{type(values).__name__}") from None
    if poses.ndim == 2:  # one camera
        poses = poses[None]
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)) or not len(poses):
        raise CameraPathError(f"poses: expected camera-to-world matrices of shape (N, 4, 4) or (N, 3, 4), "
                              f"got shape {tuple(poses.shape)}")
    return poses


def _nerfstudio(meta: dict, path: Path, size: int | None, scene: Scene) -> CameraPath:
    cams = meta["camera_path"]
    if not isinstance(cams, list) or not cams:
        raise CameraPathError(f"{path}: 'camera_path' holds no cameras")
    kind = meta.get("camera_type", "perspective")
    if kind != "perspective":
        raise CameraPathError(f"{path}: camera_type {kind!r} is not supported (only perspective)")
    width0 = meta.get("render_width")
    height0 = meta.get("render_height")
    poses, intr, notes = [], [], []
    width = height = None
    scene_fov = math.degrees(scene.fov_y)  # vertical, as the file's
    for k, cam in enumerate(cams):
        where = f"{path}: camera_path[{k}]"
        if not isinstance(cam, dict) or "camera_to_world" not in cam:
            raise CameraPathError(f"{where}: no 'camera_to_world'")
        poses.append(_matrix(cam["camera_to_world"], where))
        fov = cam.get("fov", meta.get("default_fov"))
        if fov is None:
            fov = scene_fov
            if not notes:
                notes.append(f"note: {path} gives no 'fov' for camera {k} (nor 'default_fov'): using the training "
                             f"cameras' vertical field of view, {scene_fov:.1f} degrees")
        fov = _positive(fov, "fov", where)
        if fov >= 180:
            raise CameraPathError(f"{where}: 'fov' must be below 180 degrees, got {fov:g}")
        if width is None:
            w0 = _pixels(width0, "render_width", str(path)) if width0 is not None else None
            h0 = _pixels(height0, "render_height", str(path)) if height0 is not None else None
            # the picture's shape: render_width x render_height, as nerfstudio renders the file (with
            # --size too); else the camera's aspect; else the training cameras'
            aspect = (w0 / h0 if w0 and h0 else
                      _positive(cam["aspect"], "aspect", where) if cam.get("aspect") is not None else scene.aspect)
            width = int(size or w0 or trained_video_width(scene))
            height = int(h0) if h0 and (not size or size == w0) else max(1, round(width / aspect))
        fy = focal_from_fov(height, math.radians(fov))  # nerfstudio's fov is vertical
        intr.append(_intrinsics(fy, fy, width, height))
    fps = _fps(meta, path)
    return CameraPath(torch.tensor(np.stack(poses), dtype=torch.float32), torch.tensor(intr, dtype=torch.float32),
                      width, height, fps, notes, closed=meta.get("is_cycle") is True)


def _transforms(meta: dict, path: Path, scene: Scene, size: int | None) -> CameraPath:
    frames = meta["frames"]
    if not isinstance(frames, list) or not frames:
        raise CameraPathError(f"{path}: 'frames' holds no cameras")
    poses, intr, notes = [], [], []
    width = height = None
    for k, frame in enumerate(frames):
        where = f"{path}: frames[{k}]"
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise CameraPathError(f"{where}: no 'transform_matrix'")
        poses.append(_matrix(frame["transform_matrix"], where))
        get = {**meta, **frame}.get
        w0 = _pixels(get("w"), "w", where) if get("w") is not None else None
        h0 = _pixels(get("h"), "h", where) if get("h") is not None else None
        if width is None:
            width = int(size or w0 or trained_video_width(scene))
            height = max(1, round(h0 * width / w0) if (w0 and h0) else round(width / scene.aspect))
        scale = width / w0 if w0 else 1.0
        if get("fl_x") is not None:
            if w0 is None:
                raise CameraPathError(f"{where}: 'fl_x' needs the image width 'w' it belongs to")
            fx = _positive(get("fl_x"), "fl_x", where) * scale
            fy = _positive(get("fl_y"), "fl_y", where) * scale if get("fl_y") is not None else fx
            cx = _number(get("cx"), "cx", where) * scale if get("cx") is not None else None
            cy = _number(get("cy"), "cy", where) * scale if get("cy") is not None else None
        else:
            if get("camera_angle_x") is None and not notes:
                notes.append(f"note: {path} gives no 'camera_angle_x' or 'fl_x' for frame {k}: using the training "
                             f"cameras' horizontal field of view, {math.degrees(scene.fov_x):.1f} degrees")
            angle = _positive(get("camera_angle_x", scene.fov_x), "camera_angle_x", where)
            if angle >= math.pi:
                raise CameraPathError(f"{where}: 'camera_angle_x' is in radians and must be below pi, got {angle:g}")
            fx = fy = focal_from_fov(width, angle)
            cx = cy = None
        intr.append(_intrinsics(fx, fy, width, height, cx, cy))
    fps = _fps(meta, path)
    return CameraPath(torch.tensor(np.stack(poses), dtype=torch.float32), torch.tensor(intr, dtype=torch.float32),
                      width, height, fps, notes)


# --- rotations and splines ------------------------------------------------------------------
def slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    if np.dot(q0, q1) < 0:  # the short way round
        q1 = -q1
    dot = min(1.0, float(np.dot(q0, q1)))
    if dot > 0.9995:
        q = q0 + u * (q1 - q0)
        return q / np.linalg.norm(q)
    angle = math.acos(dot)
    return (math.sin((1 - u) * angle) * q0 + math.sin(u * angle) * q1) / math.sin(angle)


def _catmull_rom(p0, p1, p2, p3, u: float) -> np.ndarray:
    return 0.5 * ((2 * p1) + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u * u
                  + (3 * p1 - p0 - 3 * p2 + p3) * u ** 3)


def resample(poses, frames: int, closed: bool = False, centre=None) -> torch.Tensor:
    """(frames, 4, 4) poses along the spline through ``poses`` (K, 4, 4) at constant speed
    (by the spline's arc length); ``closed`` returns to the first pose. With ``centre`` the
    spline runs on the distance to it and the direction from it, so a path between cameras
    around an object keeps their distance instead of cutting the chords."""
    return resample_with(poses, None, frames, closed, centre)[0]


def resample_with(poses, values, frames: int, closed: bool = False, centre=None):
    """:func:`resample`, and ``values`` (K, D) given per keyframe (None: none) interpolated
    linearly at the same points along the path: (poses, values or None)."""
    p = np.asarray(torch.as_tensor(poses, dtype=torch.float64))
    vals = None if values is None else np.asarray(torch.as_tensor(values, dtype=torch.float64))
    k = len(p)
    if k == 1 or frames < 1:
        n = max(frames, 0)
        return (torch.as_tensor(np.repeat(p[:1], n, axis=0), dtype=torch.float32),
                None if vals is None else torch.as_tensor(np.repeat(vals[:1], n, axis=0), dtype=torch.float32))
    quats = [matrix_to_quaternion(nearest_rotation(m[:3, :3])) for m in p]
    segments = k if closed else k - 1
    c = np.zeros(3) if centre is None else np.asarray(centre, dtype=np.float64)
    rel = p[:, :3, 3] - c
    radius = np.linalg.norm(rel, axis=1)
    # Spline on (direction, radius) around the centre, or on plain positions.
    key = np.hstack([rel / np.maximum(radius, 1e-12)[:, None], radius[:, None]]) if centre is not None else rel

    def at(j):
        return key[j % k] if closed else key[min(max(j, 0), k - 1)]

    def point(i, u):
        q = _catmull_rom(at(i - 1), at(i), at(i + 1), at(i + 2), u)
        if centre is None:
            return c + q
        return c + q[3] * q[:3] / max(np.linalg.norm(q[:3]), 1e-12)

    # Arc length along each segment, tabulated at ARC_SAMPLES steps of the spline parameter.
    us = np.linspace(0.0, 1.0, ARC_SAMPLES + 1)
    table = []
    for i in range(segments):
        pts = np.stack([point(i, u) for u in us])
        table.append(np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]))
    lengths = np.array([t[-1] for t in table])
    if lengths.sum() < 1e-12:  # cameras that only turn: spread the frames over the segments evenly
        lengths, table = np.ones(segments), [us.copy() for _ in range(segments)]
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    out, out_vals = [], []
    for f in range(frames):
        s = cum[-1] * f / frames if closed else cum[-1] * f / max(frames - 1, 1)
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, segments - 1)
        u = float(np.interp(s - cum[i], table[i], us))
        m = np.eye(4)
        m[:3, 3] = point(i, u)
        m[:3, :3] = quaternion_to_matrix(slerp(quats[i], quats[(i + 1) % k], u))
        out.append(m)
        if vals is not None:
            out_vals.append((1 - u) * vals[i] + u * vals[(i + 1) % k])
    return (torch.tensor(np.stack(out), dtype=torch.float32),
            None if vals is None else torch.tensor(np.stack(out_vals), dtype=torch.float32))


# --- paths from the scene and its training cameras ----------------------------------------
def order_cameras(poses, scene: Scene) -> np.ndarray:
    """Indices of the cameras in the order a closed path visits them: by angle around the
    scene's up axis through its centre (surround captures), or around the mean viewing axis
    through the cameras' centroid (forward-facing captures)."""
    p = np.asarray(torch.as_tensor(poses, dtype=torch.float64))
    pos = p[:, :3, 3]
    if scene.forward_facing:
        axis, centre = p[:, :3, 2].mean(0), pos.mean(0)
    else:
        axis, centre = np.asarray(scene.up, dtype=np.float64), np.asarray(scene.center, dtype=np.float64)
    _, a, b = axis_basis(axis)
    rel = pos - centre
    return np.argsort(np.arctan2(rel @ b, rel @ a), kind="stable")


def train_path(train_poses, scene: Scene, frames: int, width: int) -> CameraPath:
    """A closed loop through (up to MAX_KEYFRAMES of) the training cameras, in angular order."""
    order = order_cameras(train_poses, scene)
    if len(order) > MAX_KEYFRAMES:
        order = order[np.linspace(0, len(order), MAX_KEYFRAMES, endpoint=False).astype(int)]
    keys = torch.as_tensor(train_poses, dtype=torch.float32)[torch.as_tensor(order.copy())]
    centre = None if scene.forward_facing else scene.center  # around the object: keep the cameras' distance
    poses = resample(keys, frames, closed=len(order) > 2, centre=centre)
    return _with_scene_intrinsics(poses, scene, width)


def spiral_path(scene: Scene, frames: int, width: int, train_poses=None) -> CameraPath:
    """The forward-facing spiral (what the orbit video does for forward-facing scenes); for
    other scenes a spiral in front of the average training camera, upright, looking at the centre,
    where the cameras share a general view (an arc, not a ring: a ring's views average out)."""
    up = None  # a forward-facing capture's spiral: the photographer's up (the average camera's)
    if not (scene.forward_facing and len(scene.path_pose) == 16):
        if train_poses is None:
            raise CameraPathError("--spiral on a surround scene needs its training cameras (the dataset)")
        poses = torch.as_tensor(train_poses, dtype=torch.float64)
        if float(poses[:, :3, 2].mean(0).norm()) < MIN_SPIRAL_AGREEMENT:
            raise CameraPathError("--spiral circles in front of the cameras' average view, but this capture's "
                                  "cameras look in from all around, so their views average out: use the default "
                                  "video (the orbit) or --path train")
        focus = float((poses[:, :3, 3].mean(0) - torch.tensor(scene.center, dtype=torch.float64)).norm())
        up = scene.up
        scene = dataclasses.replace(scene, **spiral_frame(poses, max(focus, 1e-3), up=up))
    return _with_scene_intrinsics(spiral_poses(scene, frames, up=up).float(), scene, width)


def _with_scene_intrinsics(poses: torch.Tensor, scene: Scene, width: int) -> CameraPath:
    _, intr, w, h = orbit_cameras(scene, 1, width)
    return CameraPath(poses.float(), intr.repeat(poses.shape[0], 1), w, h)


def with_frames(path: CameraPath, frames: int) -> CameraPath:
    """The path resampled to ``frames`` frames (a spline through its cameras, closed for a loop); a zoom
    (field of view changing along the path) is kept: the image-plane scale 1/focal and the
    principal point are interpolated between cameras as the poses are."""
    if frames == path.frames:
        return path
    intr = path.intrinsics.double()
    # 1/fx, 1/fy: tan(fov/2) is linear in them, so a zoom between two cameras moves as their fov does
    per_camera = torch.cat([1.0 / intr[:, :2], intr[:, 2:]], dim=1)
    poses, values = resample_with(path.poses, per_camera, frames, closed=path.closed)
    intrinsics = torch.cat([1.0 / values[:, :2].double(), values[:, 2:].double()], dim=1).float()
    return CameraPath(poses, intrinsics, path.width, path.height, path.fps, path.notes, path.closed)
