"""Automatic scene bounds: where the content is, which way is up and how to orbit it, chosen
from the camera poses alone (and from points or depth ranges when a format has them).

Two kinds of capture are told apart by how the cameras look:

* inward-facing (360 degrees: Blender, turntables, meshes): the optical axes meet near the
  object, so the centre is the point closest to all of them in the least-squares sense; the
  object is framed by the views, so its radius is about distance * sin(half field of view),
  taken along the image's LONGER side (a landscape or portrait frame cuts a tall or wide
  object on its short side, yet the object is still there) and at a high percentile over the
  cameras (close-ups see only part of it); the box is the cube around that sphere. Too large
  only costs resolution (the occupancy grid carves the empty space away); too small cuts the
  object, which nothing later can repair;
* forward-facing (LLFF): the cameras all look one way, so the content is the slab of their
  frusta between the stated (or guessed) depth range.

Cameras that look away from each other (outward-facing rings, panoramas) cannot be framing an
object: ``Bounds.unbounded`` marks such captures, and ``unbounded_reason`` adds the pixel
evidence (a textured image surround, data/surround.py), so an unbounded-scene mode can contract
space instead of trusting the object box.

Everything here is vectorised numpy in float64; nothing touches pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..stages.cameras import unit

FORWARD_FACING_COS = 0.9  # mean view direction this long => cameras look one way (~25 deg spread)
CONTENT_MARGIN = 1.1  # the box is this much larger than the sphere that fits the views
CONTENT_PERCENTILE = 90.0  # of the per-camera content radii: close-ups see only part of the object
SNAP_DEG = 5.0  # an up direction this close to a world axis is taken to be that axis


@dataclass
class Bounds:
    near: float
    far: float
    aabb: np.ndarray  # (6,) min xyz, max xyz
    center: np.ndarray  # (3,)
    up: np.ndarray  # (3,) unit
    orbit_radius: float
    orbit_elevation_deg: float
    forward_facing: bool
    focus_distance: float = 0.0
    notes: list[str] = field(default_factory=list)
    # content reaches beyond any object box (the cameras look outward, or the image surround is
    # scenery): the box only holds the middle, distant content needs contraction
    unbounded: bool = False


def _fmt(v) -> str:
    v = np.asarray(v, dtype=np.float64).ravel()
    v = np.where(np.abs(v) < 1e-9, 0.0, v)  # float noise printed as 0
    return "(" + ", ".join(f"{x:.3g}" for x in v) + ")"


def detect_up(poses: np.ndarray) -> tuple[np.ndarray, str]:
    """Mean camera up vector; replaced by the normal of the cameras' plane when they clearly
    lie on one (a turntable ring), signed to agree with the cameras' up."""
    cam_up = unit(poses[:, :3, 1])
    mean_up = cam_up.mean(axis=0)
    if np.linalg.norm(mean_up) < 1e-6:
        return np.array([0.0, 0.0, 1.0]), "up: cameras disagree, assumed +z"
    up = unit(mean_up)
    how = "mean camera up"
    centres = poses[:, :3, 3]
    if len(centres) >= 4:
        spread = centres - centres.mean(axis=0)
        _, s, vt = np.linalg.svd(spread, full_matrices=False)
        # planar: the thinnest direction is far thinner than the other two, which are both real
        if s[0] > 1e-9 and s[2] < 0.15 * s[1] and s[1] > 0.3 * s[0]:
            normal = vt[2] * (1.0 if vt[2] @ up >= 0 else -1.0)
            if normal @ up > math.cos(math.radians(45.0)):
                up, how = normal, "normal of the plane the cameras lie on"
    axis = np.argmax(np.abs(up))
    if abs(up[axis]) > math.cos(math.radians(SNAP_DEG)):  # captures are usually axis-aligned
        up = np.sign(up[axis]) * np.eye(3)[axis]
        how += f", snapped to the nearest axis (within {SNAP_DEG:g} deg)"
    return up, f"up {_fmt(up)} from the {how}"


def _closest_point_to_axes(centres: np.ndarray, forward: np.ndarray) -> np.ndarray | None:
    """Least-squares point nearest to every optical axis; None when the axes are (nearly) parallel."""
    proj = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]  # (N, 3, 3) projectors
    a = proj.sum(axis=0)
    b = (proj @ centres[:, :, None]).sum(axis=0)[:, 0]
    if np.linalg.cond(a) > 1e4:
        return None
    return np.linalg.solve(a, b)


def _box_distances(centres: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per camera: distance to the nearest point and to the farthest corner of the box."""
    lo, hi = box[:3], box[3:]
    nearest = np.linalg.norm(np.maximum(np.maximum(lo - centres, 0.0), centres - hi), axis=1)
    farthest = np.linalg.norm(np.maximum(np.abs(centres - lo), np.abs(centres - hi)), axis=1)
    return nearest, farthest


def _half_fov(intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per camera: the larger of the horizontal and vertical half field of view (radians),
    measured from the principal point to the farther image edge (an off-centre principal
    point widens one side)."""
    fx, fy, cx, cy = (intrinsics[:, k] for k in range(4))
    half_x = np.arctan(np.maximum(cx, width - cx) / fx)
    half_y = np.arctan(np.maximum(cy, height - cy) / fy)
    return np.maximum(half_x, half_y)


def frustum_points(poses: np.ndarray, intrinsics: np.ndarray, width: int, height: int, depth: float) -> np.ndarray:
    """(N * 4, 3) world points of each image's corners at ``depth`` along the camera's -z."""
    fx, fy, cx, cy = (intrinsics[:, k][:, None] for k in range(4))
    u = np.array([0.0, width, 0.0, width])[None]
    v = np.array([0.0, 0.0, height, height])[None]
    cam = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u - cx)], axis=-1) * depth  # (N, 4, 3)
    world = np.einsum("nij,nkj->nki", poses[:, :3, :3], cam) + poses[:, None, :3, 3]
    return world.reshape(-1, 3)


def estimate_bounds(
    poses,
    intrinsics,
    width: int,
    height: int,
    points=None,
    depth_range: tuple[float, float] | None = None,
    forward_facing: bool | None = None,
    box=None,
) -> Bounds:
    """Scene box, near/far, centre, up and orbit for cameras ``poses`` (N, 4, 4) c2w.

    ``points`` (P, 3): known scene points (the box then hugs them). ``depth_range``: the
    format's own near/far depths (LLFF). ``forward_facing``: None to detect it. ``box``:
    a box the file states (6,); near and far then follow from it.
    """
    with np.errstate(all="ignore"):  # absurd inputs end as non-finite bounds, which the loaders refuse
        try:
            return _estimate(np.asarray(poses, dtype=np.float64), np.asarray(intrinsics, dtype=np.float64),
                             width, height, points, depth_range, forward_facing, box)
        except np.linalg.LinAlgError as exc:
            from .dataset import DataError

            raise DataError(f"cannot place the scene from these cameras ({exc})") from None


def _estimate(poses, intrinsics, width, height, points, depth_range, forward_facing, box) -> Bounds:
    centres = poses[:, :3, 3]
    forward = unit(-poses[:, :3, 2])
    up, up_note = detect_up(poses)
    notes = [up_note]
    mean_forward = forward.mean(axis=0)
    if forward_facing is None:
        forward_facing = bool(np.linalg.norm(mean_forward) > FORWARD_FACING_COS)
        if forward_facing:
            notes.append("cameras all look one way: treated as a forward-facing capture")
    if box is not None:
        bounds = _stated_box(np.asarray(box, dtype=np.float64), centres, up, forward_facing, notes)
    elif forward_facing:
        bounds = _forward_facing(poses, intrinsics, width, height, centres, forward, up, points, depth_range, notes)
    else:
        bounds = _inward_facing(intrinsics, width, height, centres, forward, up, points, notes)
    return bounds


def _stated_box(box, centres, up, forward_facing, notes) -> Bounds:
    nearest, farthest = _box_distances(centres, box)
    near = max(float(nearest.min()), 0.01 * float((box[3:] - box[:3]).max()))
    far = float(farthest.max())
    center = 0.5 * (box[:3] + box[3:])
    offset = centres - center
    distance = np.linalg.norm(offset, axis=1)
    elevation = np.degrees(np.arcsin(np.clip((offset @ up) / np.maximum(distance, 1e-12), -1.0, 1.0)))
    notes.append(f"near {near:.3g} / far {far:.3g}: the stated box's nearest and farthest points from the cameras")
    radius = float(np.median(distance))
    return Bounds(near=near, far=far, aabb=box, center=center, up=up, orbit_radius=radius,
                  orbit_elevation_deg=0.0 if forward_facing else float(np.median(elevation)),
                  forward_facing=forward_facing, focus_distance=radius if forward_facing else 0.0, notes=notes)


def _inward_facing(intrinsics, width, height, centres, forward, up, points, notes) -> Bounds:
    unbounded = False
    if points is not None and len(points):
        pts = np.asarray(points, dtype=np.float64)
        lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
        pad = 0.05 * (hi - lo).max()
        box = np.concatenate([lo - pad, hi + pad])
        center = 0.5 * (box[:3] + box[3:])
        notes.append(f"box from {len(pts)} scene points")
    else:
        center = _closest_point_to_axes(centres, forward)
        depths = None if center is None else ((center - centres) * forward).sum(axis=1)
        if center is None or np.median(depths) <= 0:
            # Axes do not meet in front of the cameras: look one mean distance ahead instead.
            reach = np.linalg.norm(centres - centres.mean(axis=0), axis=1).mean() or 1.0
            center = (centres + forward * reach).mean(axis=0)
            notes.append(f"centre {_fmt(center)}: optical axes do not meet, guessed ahead of the cameras")
            notes.append("unbounded: the cameras look away from each other, so they frame no single "
                         "object; the box only holds what lies between them")
            unbounded = True
        else:
            notes.append(f"centre {_fmt(center)}: the point closest to every optical axis")
        distance = np.linalg.norm(centres - center, axis=1)
        seen = distance * np.sin(_half_fov(intrinsics, width, height))  # what each view frames
        radius = CONTENT_MARGIN * float(np.percentile(seen, CONTENT_PERCENTILE))
        box = np.concatenate([center - radius, center + radius])
        notes.append(f"box half-size {radius:.3g}: content the views frame ({CONTENT_MARGIN} x distance x "
                     f"sin(half fov of the longer side), {CONTENT_PERCENTILE:g}th percentile of the cameras)")
    nearest, farthest = _box_distances(centres, box)
    size = float((box[3:] - box[:3]).max())
    near = max(float(nearest.min()), 0.01 * size)
    far = float(farthest.max())
    offset = centres - center
    distance = np.linalg.norm(offset, axis=1)
    elevation = np.degrees(np.arcsin(np.clip((offset @ up) / np.maximum(distance, 1e-12), -1.0, 1.0)))
    notes.append(f"near {near:.3g} / far {far:.3g}: the box's nearest and farthest points from the cameras")
    return Bounds(near=near, far=far, aabb=box, center=center, up=up, orbit_radius=float(np.median(distance)),
                  orbit_elevation_deg=float(np.median(elevation)), forward_facing=False, notes=notes,
                  unbounded=unbounded)


def _forward_facing(poses, intrinsics, width, height, centres, forward, up, points, depth_range, notes) -> Bounds:
    baseline = float(np.linalg.norm(centres - centres.mean(axis=0), axis=1).max())
    if depth_range is not None:
        near, far = (float(v) for v in depth_range)
        notes.append(f"near {near:.3g} / far {far:.3g}: the file's depth bounds (near with a 10% margin)")
    elif points is not None and len(points):
        depth = ((np.asarray(points, np.float64)[None] - centres[:, None]) * forward[:, None]).sum(-1)
        near, far = float(np.percentile(depth, 1)) * 0.9, float(np.percentile(depth, 99)) * 1.1
        notes.append(f"near {near:.3g} / far {far:.3g}: depths of the scene points")
    else:
        scale = max(baseline, 1e-3)
        near, far = 0.5 * scale, 50.0 * scale
        notes.append(f"near {near:.3g} / far {far:.3g}: guessed from the camera spread (no depth data); "
                     "set them if the scene looks cut off")
    near = max(near, 1e-3)
    far = max(far, near * 1.01)
    corners = np.concatenate([frustum_points(poses, intrinsics, width, height, near),
                              frustum_points(poses, intrinsics, width, height, far)])
    box = np.concatenate([corners.min(axis=0), corners.max(axis=0)])
    focus = 2.0 / (1.0 / near + 1.0 / far)  # harmonic mean: nearer content dominates what is seen
    center = centres.mean(axis=0) + unit(forward.mean(axis=0)) * focus
    notes.append(f"box: the cameras' frusta between near and far; the video path looks {focus:.3g} ahead")
    return Bounds(near=near, far=far, aabb=box, center=center, up=up, orbit_radius=focus,
                  orbit_elevation_deg=0.0, forward_facing=True, focus_distance=focus, notes=notes)


def apply_bounds(dataset, bounds: Bounds, *, keep_near_far_box: bool = False) -> None:
    """Write ``bounds`` into ``dataset`` (in place); ``keep_near_far_box`` leaves the file's
    explicit near/far/aabb alone and only fills centre, up and orbit."""
    if not keep_near_far_box:
        dataset.near, dataset.far = float(bounds.near), float(bounds.far)
        dataset.aabb = torch.tensor(np.asarray(bounds.aabb, dtype=np.float32))
    dataset.center = torch.tensor(np.asarray(bounds.center, dtype=np.float32))
    dataset.up = torch.tensor(np.asarray(bounds.up, dtype=np.float32))
    dataset.orbit_radius = float(bounds.orbit_radius)
    dataset.orbit_elevation_deg = float(bounds.orbit_elevation_deg)
    dataset.forward_facing = bool(bounds.forward_facing)
    dataset.focus_distance = float(bounds.focus_distance)
    dataset.cameras_look_outward = bool(bounds.unbounded)
    dataset.notes.extend(bounds.notes)


def auto_bounds(dataset, *, keep_near_far_box: bool = False, **hints) -> None:
    """Estimate bounds from the training cameras of ``dataset`` and apply them."""
    train = dataset.split("train")
    bounds = estimate_bounds(train.poses.double().numpy(), train.intrinsics.double().numpy(),
                             train.width, train.height, **hints)
    apply_bounds(dataset, bounds, keep_near_far_box=keep_near_far_box)


def unbounded_reason(*, forward_facing: bool, cameras_look_outward: bool, background=None) -> str | None:
    """Why the content reaches beyond the object box, or None: the cameras look away from each
    other, or an inward-facing capture's image surround is scenery (``background``: a
    data/surround.py ``BackgroundChoice`` named "scene": what fills the image borders is real and
    must be modelled somewhere). Forward-facing captures are never flagged: their NDC space
    already reaches to infinity."""
    if forward_facing:
        return None
    if cameras_look_outward:
        return "the cameras look outward"
    if background is not None and background.name == "scene":
        return "the images' surround is scenery"
    return None


def make_unbounded(dataset) -> None:
    """Turn an inward-facing dataset's bounds into an unbounded scene's: the box stays as the
    detailed inner region, near shrinks (content may sit right in front of the cameras) and
    far reaches out to where contraction has squeezed space to within 1% of infinity."""
    from ..stages.space import FAR_SCALE

    box = dataset.aabb.double().numpy()
    centre, half = 0.5 * (box[:3] + box[3:]), 0.5 * (box[3:] - box[:3])
    centres = np.concatenate([s.poses[:, :3, 3].double().numpy() for s in dataset.splits.values()])
    reach = float(np.linalg.norm(centres - centre, axis=1).max())
    before = f"{dataset.near:.3g} / {dataset.far:.3g}"  # a note above may state them (a file's): say they changed
    dataset.unbounded = True
    dataset.near = float(0.02 * half.min())
    dataset.far = float(reach + FAR_SCALE * np.linalg.norm(half))
    dataset.notes.append(f"unbounded scene: the box is the detailed inner region, space beyond it is contracted; "
                         f"near {dataset.near:.3g} / far {dataset.far:.3g} in place of {before}")
