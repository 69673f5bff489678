"""Depth images that show structure for every scene kind (previews, GUI, videos, render outputs).

A rendered depth is the expected ray distance. Colouring it linearly from ``near`` to ``far``
suits a box scene, whose content fills that interval, but not the others:

* unbounded scenes march out to ``far`` of about a hundred box sizes, so everything nearby
  falls into one end of the colour map: they are coloured by *contracted distance* along
  the ray, t / r up to the scene radius r (``orbit_radius``: the cameras' distance to the
  centre) and 2 - r / t beyond it (disparity out there),
  so the object, the ground and the far scenery each get their share of the colours;
* forward-facing (NDC) scenes render their depth as NDC t in [0, 1], which is already
  1 - near / z, linear in disparity (the LLFF loader puts the nearest content at z ~ 1.33,
  t ~ 0.25): coloured over [0, 1];
* forward-facing scenes without NDC reach from near to ~100 near: coloured by disparity
  1 / t from 1 / near to 1 / far;
* box scenes are coloured over the box's depth as seen from the orbit: the cameras' distance
  to the centre, plus or minus half the box's longest side (within near..far). near..far spans
  the whole box from every camera, which for a box shrunk around an object (the masks' visual
  hull) leaves the object's relief a few shades of one colour. A video along a camera path uses
  its cameras' mean distance in place of the orbit's (outputs/video.py).

The scale is fixed per scene, never taken from the frame, so the frames of a video and the
bands of rows that the GUI colours one at a time agree.
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import colorize

MIN_OPACITY = 0.05  # pixels less opaque than this show no surface: drawn black


def depth_kind(scene) -> str:
    """"ndc", "unbounded", "disparity" (forward-facing without NDC) or "box": how ``scene``
    (taichi_nerf/rendering/scene.py) records its space."""
    if getattr(scene, "ndc", False):
        return "ndc"
    if getattr(scene, "unbounded", False):
        return "unbounded"
    return "disparity" if getattr(scene, "forward_facing", False) else "box"


def contracted_distance(depth: np.ndarray, radius: float) -> np.ndarray:
    """t / r up to the radius, 2 - r / t beyond it: in [0, 2), infinity maps to 2."""
    t = np.maximum(np.asarray(depth, dtype=np.float32) / max(float(radius), 1e-9), 0.0)
    return np.where(t <= 1.0, t, 2.0 - 1.0 / np.maximum(t, 1.0))


def display_depth(depth: np.ndarray, opacity: np.ndarray, scene) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(values, valid mask, lo, hi): what is coloured for ``scene``'s kind (module docstring)."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = (np.asarray(opacity) > MIN_OPACITY) & np.isfinite(depth)
    kind = depth_kind(scene)
    if kind == "unbounded":
        radius = float(getattr(scene, "orbit_radius", 0.0) or 1.0)
        values = contracted_distance(depth, radius)
        return values, valid, float(contracted_distance(np.float32(scene.near), radius)), 2.0
    if kind == "disparity":
        near, far = max(float(scene.near), 1e-6), max(float(scene.far), 2e-6)
        # negated so that colorize's "small is near" holds: -1/t grows with t
        return -1.0 / np.maximum(depth, 1e-6), valid, -1.0 / near, -1.0 / far
    if kind == "box":
        lo, hi = box_depth_range(scene)
        return depth, valid, lo, hi
    return depth, valid, float(scene.near), float(scene.far)  # NDC t in [0, 1]


def box_depth_range(scene) -> tuple[float, float]:
    """(lo, hi) of a box scene's depth colours: the orbit radius -/+ half the box's longest side
    (and the box's offset from the scene centre), within near..far. Half the side, not the
    diagonal: an object's relief gets the colours, the box's far corners share the darkest."""
    near, far = float(scene.near), float(scene.far)
    aabb = [float(v) for v in scene.aabb]
    centre = [float(v) for v in getattr(scene, "center", None) or [0.0, 0.0, 0.0]]
    # the orbit circles the scene centre; a box shrunk around an object off it reaches that much further
    off = math.dist([0.5 * (aabb[k] + aabb[k + 3]) for k in range(3)], centre)
    half = 0.5 * max(aabb[k + 3] - aabb[k] for k in range(3)) + off
    radius = float(getattr(scene, "orbit_radius", 0.0) or 0.0)
    lo, hi = max(near, radius - half), min(far, radius + half)
    return (lo, hi) if hi - lo > 1e-6 else (near, far)


def depth_colors(depth, opacity, scene) -> np.ndarray:
    """(H, W, 3) uint8 colour map of a depth image (near bright, far dark, empty black);
    ``depth``/``opacity`` are (H, W) arrays or tensors, ``scene`` a :class:`Scene`."""
    depth = depth.detach().cpu().numpy() if hasattr(depth, "detach") else np.asarray(depth)
    opacity = opacity.detach().cpu().numpy() if hasattr(opacity, "detach") else np.asarray(opacity)
    values, valid, lo, hi = display_depth(depth, opacity, scene)
    return colorize(values, valid, lo=lo, hi=hi)

