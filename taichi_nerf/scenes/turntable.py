"""A turntable capture (issue 25): the built-in objects turn on a textured plate in front of a
static textured room (the ``backdrop`` environment: tiled floor, brick wall) while the camera stands
still, with exact masks, as museum pieces and products are photographed.

Relative to the objects the camera circles them, so their poses are an orbit; relative to the
room it never moves. Without masks COLMAP matches the room and finds one camera position
(``data from-photos`` refuses that as degenerate); with them it matches the objects alone and
recovers the orbit. Written as:

* ``images/TT_XXXX.jpg`` (JPEG quality 92) and ``masks/TT_XXXX.png`` (8-bit, white = the objects
  and the plate, which turn);
* ``transforms.json`` with the true object-frame poses (OpenGL camera-to-world), so the
  capture also trains directly; ``poses`` in :func:`write_turntable`'s answer are the same.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..stages.cameras import focal_from_fov, look_at
from .synthetic import render_scene

FOV_X_DEG = 60.0
CAMERA_EYE = (0.0, -3.4, 1.0)  # in the room, looking along +y at the wall behind the turntable
CAMERA_TARGET = (0.0, 0.0, -0.15)
RENDER_BATCH = 8
PLATE_RADIUS = 1.7  # the turntable's plate: a textured disc just above the floor, under the objects
PLATE_Z = -0.59  # the objects stand on the floor at -0.6 (environment.FLOOR_Z)
PLATE_TEXELS = 512


def plate_texture(seed: int = 0) -> np.ndarray:
    """(T, T, 3) float32 in [0, 1]: coloured blocks of several sizes over value noise, the kind
    of print a product turntable gets so that the photos match (plain plates give COLMAP nothing)."""
    rng = np.random.default_rng(seed + 101)
    tex = np.full((PLATE_TEXELS, PLATE_TEXELS, 3), 0.5, dtype=np.float32)
    for cells in (8, 32, 96):
        block = rng.uniform(0.0, 1.0, (cells, cells, 3)).astype(np.float32)
        tiled = np.kron(block, np.ones((PLATE_TEXELS // cells + 1,) * 2 + (1,)))
        tex = 0.5 * tex + 0.5 * tiled[:PLATE_TEXELS, :PLATE_TEXELS]
    return np.clip(1.6 * (tex - 0.5) + 0.5, 0.0, 1.0)


def render_plate(poses: torch.Tensor, width: int, height: int, focal: float, seed: int = 0):
    """(rgb (N, H, W, 3) float32 in [0, 255], depth (N, H, W), 0 where the plate is missed): the
    plate seen by pinhole cameras ``poses`` (OpenGL camera-to-world), nearest texel."""
    tex = plate_texture(seed)
    u = (np.arange(width) + 0.5 - width / 2) / focal
    v = -(np.arange(height) + 0.5 - height / 2) / focal
    cam = np.stack(np.broadcast_arrays(u[None, :], v[:, None], -1.0), axis=-1)
    cam = cam / np.linalg.norm(cam, axis=-1, keepdims=True)
    p = poses.double().numpy()
    dirs = np.einsum("nij,hwj->nhwi", p[:, :3, :3], cam)
    origin = p[:, None, None, :3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (PLATE_Z - origin[..., 2]) / dirs[..., 2]
    hit = origin + t[..., None] * dirs
    on = (t > 0) & (np.hypot(hit[..., 0], hit[..., 1]) < PLATE_RADIUS)
    ij = np.clip(((hit[..., :2] / PLATE_RADIUS + 1.0) * 0.5 * PLATE_TEXELS).astype(np.int64), 0, PLATE_TEXELS - 1)
    rgb = np.where(on[..., None], tex[ij[..., 1], ij[..., 0]] * 255.0, 0.0)
    return torch.from_numpy(rgb.astype(np.float32)), torch.from_numpy(np.where(on, t, 0.0).astype(np.float32))


def turntable_poses(views: int, wobble_deg: float = 0.0, seed: int = 0,
                    wander: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(the camera in the room (N, 4, 4), its poses relative to the turning objects (N, 4, 4)):
    view k sees the objects turned by 360 k / N degrees (plus a little ``wobble``) about +z. The
    camera stands still unless ``wander`` > 0: then each photo is taken from up to ``wander``
    (scene units) away, as by a photographer on foot (ethiopianHead's)."""
    rng = np.random.default_rng(seed)
    room, poses = [], []
    for k in range(views):
        angle = 2.0 * math.pi * k / views + math.radians(rng.uniform(-wobble_deg, wobble_deg))
        step = rng.uniform(-wander, wander, 3) if wander > 0 else np.zeros(3)
        eye = tuple(e + d for e, d in zip(CAMERA_EYE, step))
        room.append(look_at(eye, CAMERA_TARGET).float())
        c, s = math.cos(-angle), math.sin(-angle)  # the camera turns the other way round the objects
        turn = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
        poses.append(turn @ room[-1])
    return torch.stack(room), torch.stack(poses)


def render_turntable(views: int, width: int, height: int, seed: int = 0,
                     wander: float = 0.0) -> tuple[np.ndarray, np.ndarray, torch.Tensor, float]:
    """(photos (N, H, W, 3) uint8, masks (N, H, W) uint8, object-frame poses (N, 4, 4), focal)."""
    room_poses, poses = turntable_poses(views, wobble_deg=2.0, seed=seed, wander=wander)
    focal = focal_from_fov(width, math.radians(FOV_X_DEG))
    cx, cy = width / 2, height / 2
    if wander == 0:  # one photo of the room serves every view
        room, room_depth = render_scene(room_poses[:1], width, height, focal, focal, cx, cy, 2,
                                        environment="backdrop", objects=False, texture_seed=seed)
    photos = np.empty((views, height, width, 3), dtype=np.uint8)
    masks = np.empty((views, height, width), dtype=np.uint8)
    for start in range(0, views, RENDER_BATCH):
        part = poses[start:start + RENDER_BATCH]
        if wander > 0:
            room, room_depth = render_scene(room_poses[start:start + RENDER_BATCH], width, height, focal, focal, cx,
                                            cy, 2, environment="backdrop", objects=False, texture_seed=seed)
        things, depth = render_scene(part, width, height, focal, focal, cx, cy, 2)
        plate, plate_depth = render_plate(part, width, height, focal, seed)
        alpha = things[..., 3:].float() / 255.0
        under = ((plate_depth > 0) & ((depth <= 0) | (plate_depth < depth)))[..., None]  # the plate hides them
        things_rgb = things[..., :3].float() * alpha + plate * (1.0 - alpha)
        things_rgb = torch.where(under, plate, things_rgb)
        alpha = torch.where(under | (plate_depth[..., None] > 0), torch.ones_like(alpha), alpha)
        depth = torch.where(under[..., 0], plate_depth, torch.where(depth > 0, depth, plate_depth))
        in_front = ((depth < room_depth) | (room_depth <= 0) | (depth <= 0))[..., None]
        alpha = torch.where(in_front, alpha, torch.zeros_like(alpha))
        rgb = things_rgb * alpha + room[..., :3].float() * (1.0 - alpha)
        photos[start:start + len(part)] = (rgb + 0.5).clamp(0, 255).to(torch.uint8).numpy()
        masks[start:start + len(part)] = (alpha[..., 0] * 255.0 + 0.5).to(torch.uint8).numpy()
    return photos, masks, poses, focal


def write_turntable(out, views: int = 40, width: int = 256, height: int = 192, seed: int = 0,
                    wander: float = 0.0) -> dict:
    """Write the capture into ``out`` (see the module docstring); returns its paths and truth:
    ``images``, ``masks`` (folders), ``poses`` ((N, 4, 4) float64 numpy), ``focal``."""
    out = Path(out)
    photos, masks, poses, focal = render_turntable(views, width, height, seed, wander)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    frames = []
    for k in range(views):
        name = f"TT_{k:04d}"
        Image.fromarray(photos[k]).save(out / "images" / f"{name}.jpg", quality=92)
        Image.fromarray(masks[k]).save(out / "masks" / f"{name}.png")
        frames.append({"file_path": f"images/{name}.jpg", "transform_matrix": poses[k].double().numpy().tolist()})
    meta = {"w": width, "h": height, "fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": height / 2, "frames": frames}
    (out / "transforms.json").write_text(json.dumps(meta, indent=1))
    return {"images": out / "images", "masks": out / "masks", "poses": poses.double().numpy(), "focal": focal}
