"""The built-in procedural scene, rendered by a Taichi SDF ray marcher (the default dataset).

Five textured objects stand on an invisible floor at z = -0.6 (z is up, there is no ground
plane, so alpha is a true silhouette), all inside [-1.2, 1.2]^3:

* a sphere with a red / white latitude-longitude checker (12 x 6 cells) at +x +y;
* a rounded cube, blue tiles split 3 x 3 per face by white grout lines, at -x -y;
* an upright torus with a rainbow hue gradient around its ring at +x -y;
* a capped cylinder with green / yellow horizontal bands (yellow caps) at -x +y;
* a purple truncated cone with a white spiral stripe at the centre.

Lighting is one directional light (Lambert diffuse with SDF soft shadows) plus a sky-tinted
ambient term with SDF ambient occlusion; no specular, so the scene is close to Lambertian.
Each pixel is supersampled (``supersample`` x ``supersample`` rays), which gives the alpha
channel fractional edge values; RGB is stored with straight (not premultiplied) alpha, like
the Blender scenes. Depth is the distance along the pixel-centre unit ray to the first hit.

Cameras follow the project's convention (OpenGL / Blender: looks down -z, +y up, pixel
centres at (i + 0.5, j + 0.5)).

Extras for the users'-data test sets (a floor and wall backdrop, a 360 dome, lens distortion)
live in scenes/environment.py (the geometry and shading in scenes/sdf.py); all are off by
default, and without them the images are
bit-for-bit those of ``_render_kernel`` here, which is kept as it was.
"""
# (no "from __future__ import annotations": Taichi reads kernel annotations as objects)

from pathlib import Path

import taichi as ti
import torch

from .. import backend
from ..capture.partial import built_beside, swap_in_render
from ..config import BUILTIN_SIZE, BUILTIN_VIEWS
from ..config_checks import number_at_least
from ..data.blender import write_split
from ..data.loaders import refuse_foreign_dataset
from ..resources import check_dataset_render
from ..stages.cameras import focal_from_fov, sphere_poses
from .environment import ENVIRONMENTS, distortion_coefficients, render_env_kernel, texture_atlas
from .sdf import check_poses, march, normal, ray_dir, scene_dist, shade, vec3

SCENE_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)  # box handed to the trainer (a bit larger than the objects)
NEAR, FAR = 2.0, 6.0
CAMERA_RADIUS = 4.0
CAMERA_ANGLE_X = 0.6911112070083618  # the Blender lego value
RENDER_BYTES = 56  # per pixel of a view rendered: float RGBA and depth buffers, the uint8 copy (52 measured)


@ti.kernel
def _render_kernel(
    poses: ti.types.ndarray(),
    rgba: ti.types.ndarray(),
    depth: ti.types.ndarray(),
    fx: ti.f32,
    fy: ti.f32,
    cx: ti.f32,
    cy: ti.f32,
    ss: ti.i32,
):
    for n, j, i in ti.ndrange(rgba.shape[0], rgba.shape[1], rgba.shape[2]):
        o = vec3(poses[n, 0, 3], poses[n, 1, 3], poses[n, 2, 3])
        rot = ti.math.mat3(0.0)
        for r, c in ti.static(ti.ndrange(3, 3)):
            rot[r, c] = poses[n, r, c]
        # depth along the pixel-centre ray
        dc = ray_dir(rot, i + 0.5, j + 0.5, fx, fy, cx, cy)
        tc = march(o, dc)
        depth[n, j, i] = ti.max(tc, 0.0)
        col = vec3(0.0)
        hits = 0
        for s in range(ss * ss):
            sx = (s % ss + 0.5) / ss
            sy = (s // ss + 0.5) / ss
            d = ray_dir(rot, i + sx, j + sy, fx, fy, cx, cy)
            t = march(o, d)
            if t >= 0.0:
                p = o + d * t
                col += shade(p, normal(p))
                hits += 1
        if hits > 0:
            col /= hits
        for c in ti.static(range(3)):
            rgba[n, j, i, c] = col[c]
        rgba[n, j, i, 3] = hits / (ss * ss)


# --- public API --------------------------------------------------------------------------
def render_scene(
    poses: torch.Tensor, width: int, height: int, fx: float, fy: float, cx: float, cy: float, supersample: int = 2,
    *,
    environment: str = "none",
    distortion=(0.0, 0.0, 0.0, 0.0),
    texture_seed: int = 0,
    objects: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """poses (N,4,4) float32 camera-to-world -> (rgba uint8 (N,H,W,4), depth float32 (N,H,W):
    distance along the unit pixel-centre ray to the first hit, 0 where the ray misses).
    Straight alpha. ``environment``: "none", "backdrop" or "dome"; ``distortion``: OpenCV
    (k1, k2, p1, p2) of the image; ``texture_seed``: which random environment textures;
    ``objects`` False: the environment alone (another object is composited in by depth)."""
    poses = check_poses(poses)
    if width <= 0 or height <= 0 or supersample < 1:
        raise ValueError("width, height and supersample must be positive")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r} (choose from {', '.join(ENVIRONMENTS)})")
    coeffs = distortion_coefficients(distortion)
    dev = backend.current().device
    n = poses.shape[0]
    p = poses.to(device=dev, dtype=torch.float32).contiguous()
    rgba = torch.zeros((n, height, width, 4), dtype=torch.float32, device=dev)
    depth = torch.zeros((n, height, width), dtype=torch.float32, device=dev)
    if n > 0 and environment == "none" and not any(coeffs) and objects:
        _render_kernel(p, rgba, depth, float(fx), float(fy), float(cx), float(cy), int(supersample))
    elif n > 0:
        atlas, info = texture_atlas(texture_seed, dev)
        render_env_kernel(p, rgba, depth, float(fx), float(fy), float(cx), float(cy), int(supersample),
                           ti.math.vec4(*coeffs), atlas, info, ENVIRONMENTS[environment], bool(objects))
    rgba8 = (rgba.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    return rgba8.cpu(), depth.cpu()


def write_synthetic_dataset(
    out_dir,
    views: int = BUILTIN_VIEWS,
    size: int = BUILTIN_SIZE,
    val_views: int = 8,
    test_views: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Render train/val/test splits and write them in the Blender layout; returns out_dir. Rendered
    beside it first (capture/partial.py): an interrupted render leaves out_dir as it was."""
    from tqdm.auto import tqdm

    views, size = number_at_least("views", views, 1), number_at_least("size", size, 8)
    earlier = refuse_foreign_dataset(out_dir)
    check_dataset_render(size, max(views, val_views, test_views), str(backend.current().device), per_pixel=RENDER_BYTES)
    out = Path(out_dir)
    focal = focal_from_fov(size, CAMERA_ANGLE_X)
    extra = {
        "near": NEAR,
        "far": FAR,
        "aabb": [list(SCENE_AABB[:3]), list(SCENE_AABB[3:])],
        "scene": "taichi-nerf built-in",
    }
    plan = [("train", views, seed), ("val", val_views, seed + 1000), ("test", test_views, seed + 2000)]
    plan = [(name, count, s) for name, count, s in plan if count > 0]
    bar = tqdm(total=sum(c for _, c, _ in plan), desc="rendering built-in scene", unit="view", disable=not progress)
    try:
        with built_beside(out) as tmp:
            for name, count, split_seed in plan:
                poses = sphere_poses(count, CAMERA_RADIUS, upper_only=True, seed=split_seed)
                rgbas, depths = [], []
                for k in range(count):
                    rgba, depth = render_scene(poses[k : k + 1], size, size, focal, focal, 0.5 * size, 0.5 * size)
                    rgbas.append(rgba)
                    depths.append(depth)
                    bar.update(1)
                write_split(tmp, name, torch.cat(rgbas).numpy(), poses.numpy(), CAMERA_ANGLE_X,
                            depth=torch.cat(depths).numpy(), extra=extra)
            swap_in_render(tmp, out, earlier)
    finally:
        bar.close()
    return out


@ti.kernel
def _scene_sdf_kernel(points: ti.types.ndarray(), out: ti.types.ndarray()):
    for i in range(points.shape[0]):
        out[i] = scene_dist(vec3(points[i, 0], points[i, 1], points[i, 2]))


def scene_sdf(points) -> torch.Tensor:
    """Signed distance (P,) from world points (P, 3) to the objects' surface (negative inside):
    the ground truth that exported meshes and point clouds are measured against (tests)."""
    dev = backend.current().device
    p = torch.as_tensor(points, dtype=torch.float32).to(dev).reshape(-1, 3).contiguous()
    out = torch.empty(p.shape[0], dtype=torch.float32, device=dev)
    if p.shape[0]:
        _scene_sdf_kernel(p, out)
    return out.cpu()
