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
live in data/environment.py; all are off by default, and without them the images are
bit-for-bit those of ``_render_kernel`` here, which is kept as it was.
"""
# (no "from __future__ import annotations": Taichi reads kernel annotations as objects)

import math
from pathlib import Path

import taichi as ti
import torch

from .. import backend
from ..cameras import focal_from_fov, sphere_poses
from .blender import write_split

SCENE_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)  # box handed to the trainer (a bit larger than the objects)
NEAR, FAR = 2.0, 6.0
CAMERA_RADIUS = 4.0
CAMERA_ANGLE_X = 0.6911112070083618  # the Blender lego value
OBJECT_BOUND = 1.2  # every object lies inside [-OBJECT_BOUND, OBJECT_BOUND]^3

# --- scene definition (Python constants become compile-time constants in the kernel) -------
SPHERE_CENTER = (0.55, 0.55, -0.15)
SPHERE_RADIUS = 0.45
SPHERE_CELLS = (12, 6)  # longitude x latitude checker cells; cell (k, j) is red when k + j is odd

BOX_CENTER = (-0.55, -0.55, -0.3)
BOX_HALF = 0.3
BOX_ROUND = 0.05
BOX_ANGLE = math.radians(25.0)  # rotation about z

TORUS_CENTER = (0.55, -0.55, -0.09)
TORUS_MAJOR, TORUS_MINOR = 0.38, 0.13
# The ring stands upright; its axis is horizontal, pointing along (1, -1, 0) / sqrt(2).

CYLINDER_CENTER = (-0.55, 0.55, -0.05)
CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT = 0.28, 0.55
CYLINDER_BANDS = 10

CONE_CENTER = (0.0, 0.0, 0.025)
CONE_HALF_HEIGHT, CONE_R_BOTTOM, CONE_R_TOP = 0.625, 0.3, 0.05

LIGHT_DIR = (0.42, -0.55, 0.72)  # towards the light (normalised in the kernel)

# Materials (display-space albedo; the kernel shades in linear space and re-encodes).
MAT_SPHERE, MAT_BOX, MAT_TORUS, MAT_CYLINDER, MAT_CONE = 0, 1, 2, 3, 4

_MAX_STEPS = 160
_SHADOW_STEPS = 40
_C_BOX, _S_BOX = math.cos(BOX_ANGLE), math.sin(BOX_ANGLE)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_CONE_K2_X = CONE_R_TOP - CONE_R_BOTTOM
_CONE_K2_Y = 2.0 * CONE_HALF_HEIGHT
_CONE_K2_DOT = _CONE_K2_X * _CONE_K2_X + _CONE_K2_Y * _CONE_K2_Y

vec2 = ti.math.vec2
vec3 = ti.math.vec3


# --- signed distance functions ----------------------------------------------------------
@ti.func
def _sd_sphere(p):
    return (p - vec3(*SPHERE_CENTER)).norm() - SPHERE_RADIUS


@ti.func
def _box_local(p):
    q = p - vec3(*BOX_CENTER)
    return vec3(_C_BOX * q.x + _S_BOX * q.y, -_S_BOX * q.x + _C_BOX * q.y, q.z)


@ti.func
def _sd_box(p):
    q = ti.abs(_box_local(p)) - (BOX_HALF - BOX_ROUND)
    return ti.max(q, 0.0).norm() + ti.min(ti.max(q.x, ti.max(q.y, q.z)), 0.0) - BOX_ROUND


@ti.func
def _torus_local(p):
    # (u, v, w): u along the in-plane horizontal (1, 1, 0)/sqrt2, v = z, w along the axis.
    q = p - vec3(*TORUS_CENTER)
    return vec3((q.x + q.y) * _INV_SQRT2, q.z, (q.x - q.y) * _INV_SQRT2)


@ti.func
def _sd_torus(p):
    q = _torus_local(p)
    return vec2(vec2(q.x, q.y).norm() - TORUS_MAJOR, q.z).norm() - TORUS_MINOR


@ti.func
def _sd_cylinder(p):
    q = p - vec3(*CYLINDER_CENTER)
    d = ti.abs(vec2(vec2(q.x, q.y).norm(), q.z)) - vec2(CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT)
    return ti.min(ti.max(d.x, d.y), 0.0) + ti.max(d, 0.0).norm()


@ti.func
def _sd_cone(p):
    # Exact capped (truncated) cone along z (after Inigo Quilez's sdCappedCone).
    r = p - vec3(*CONE_CENTER)
    q = vec2(vec2(r.x, r.y).norm(), r.z)
    k1 = vec2(CONE_R_TOP, CONE_HALF_HEIGHT)
    k2 = vec2(_CONE_K2_X, _CONE_K2_Y)
    rad = CONE_R_BOTTOM if q.y < 0.0 else CONE_R_TOP
    ca = vec2(q.x - ti.min(q.x, rad), ti.abs(q.y) - CONE_HALF_HEIGHT)
    cb = q - k1 + k2 * ti.math.clamp((k1 - q).dot(k2) / _CONE_K2_DOT, 0.0, 1.0)
    s = -1.0 if (cb.x < 0.0 and ca.y < 0.0) else 1.0
    return s * ti.sqrt(ti.min(ca.dot(ca), cb.dot(cb)))


@ti.func
def _scene_dist(p):
    d = _sd_sphere(p)
    d = ti.min(d, _sd_box(p))
    d = ti.min(d, _sd_torus(p))
    d = ti.min(d, _sd_cylinder(p))
    d = ti.min(d, _sd_cone(p))
    return d


@ti.func
def _scene_material(p):
    d = _sd_sphere(p)
    m = MAT_SPHERE
    db = _sd_box(p)
    if db < d:
        d = db
        m = MAT_BOX
    dt = _sd_torus(p)
    if dt < d:
        d = dt
        m = MAT_TORUS
    dc = _sd_cylinder(p)
    if dc < d:
        d = dc
        m = MAT_CYLINDER
    dk = _sd_cone(p)
    if dk < d:
        d = dk
        m = MAT_CONE
    return m


@ti.func
def _normal(p):
    e = 5e-4
    k0 = vec3(1.0, -1.0, -1.0)
    k1 = vec3(-1.0, -1.0, 1.0)
    k2 = vec3(-1.0, 1.0, -1.0)
    k3 = vec3(1.0, 1.0, 1.0)
    n = (
        k0 * _scene_dist(p + e * k0)
        + k1 * _scene_dist(p + e * k1)
        + k2 * _scene_dist(p + e * k2)
        + k3 * _scene_dist(p + e * k3)
    )
    return n.normalized()


# --- textures ----------------------------------------------------------------------------
@ti.func
def _hue(h):
    k = ti.math.fract(vec3(h, h + 2.0 / 3.0, h + 1.0 / 3.0)) * 6.0 - 3.0
    return ti.math.clamp(ti.abs(k) - 1.0, 0.0, 1.0)


@ti.func
def _albedo(p, m):
    c = vec3(0.0)
    if m == MAT_SPHERE:
        q = (p - vec3(*SPHERE_CENTER)) / SPHERE_RADIUS
        u = (ti.atan2(q.y, q.x) / (2.0 * math.pi) + 1.0) * SPHERE_CELLS[0]
        v = ti.acos(ti.math.clamp(q.z, -1.0, 1.0)) / math.pi * SPHERE_CELLS[1]
        parity = (ti.cast(ti.floor(u), ti.i32) + ti.cast(ti.floor(v), ti.i32)) % 2
        c = vec3(0.92, 0.08, 0.06) if parity == 1 else vec3(0.95, 0.93, 0.88)
    elif m == MAT_BOX:
        q = ti.abs(_box_local(p))
        third = BOX_HALF / 3.0
        g = ti.min(ti.abs(q - third), 1.0)
        line = ti.min(g.x, ti.min(g.y, g.z)) < 0.022
        c = vec3(0.95, 0.95, 0.97) if line else vec3(0.08, 0.28, 0.92)
    elif m == MAT_TORUS:
        q = _torus_local(p)
        h = ti.atan2(q.y, q.x) / (2.0 * math.pi) + 0.5
        c = 0.1 + 0.85 * _hue(h)
    elif m == MAT_CYLINDER:
        q = p - vec3(*CYLINDER_CENTER)
        yellow = vec3(0.98, 0.82, 0.05)
        c = yellow
        if ti.abs(q.z) < CYLINDER_HALF_HEIGHT - 2e-3:
            band = ti.cast(ti.floor((q.z / CYLINDER_HALF_HEIGHT + 1.0) * 0.5 * CYLINDER_BANDS), ti.i32)
            c = vec3(0.08, 0.68, 0.18) if band % 2 == 0 else yellow
    else:  # cone
        q = p - vec3(*CONE_CENTER)
        s = ti.math.fract(ti.atan2(q.y, q.x) / (2.0 * math.pi) * 2.0 + q.z * 1.6)
        c = vec3(0.95, 0.95, 0.95) if s < 0.28 else vec3(0.55, 0.12, 0.78)
    return c


# --- lighting ----------------------------------------------------------------------------
@ti.func
def _soft_shadow(ro, rd):
    res = 1.0
    t = 0.01
    for _ in range(_SHADOW_STEPS):
        h = _scene_dist(ro + rd * t)
        res = ti.min(res, 10.0 * h / t)
        t += ti.math.clamp(h, 0.01, 0.25)
        if res < 0.002 or t > 3.5:
            break
    res = ti.math.clamp(res, 0.0, 1.0)
    return res * res * (3.0 - 2.0 * res)


@ti.func
def _ambient_occlusion(p, n):
    occ = 0.0
    sca = 1.0
    for k in ti.static(range(4)):
        h = 0.02 + 0.05 * k
        occ += (h - _scene_dist(p + h * n)) * sca
        sca *= 0.8
    return ti.math.clamp(1.0 - 2.5 * occ, 0.0, 1.0)


@ti.func
def _lit(p, n, albedo):
    """Display-space ``albedo`` under sun (soft shadows) + sky ambient (occlusion); environments too."""
    alb = ti.pow(albedo, 2.2)  # to linear
    light = vec3(*LIGHT_DIR).normalized()
    ndl = ti.max(n.dot(light), 0.0)
    sh = 1.0
    if ndl > 0.0:
        sh = _soft_shadow(p + n * 2e-3, light)
    ao = _ambient_occlusion(p, n)
    ambient = (0.22 + 0.10 * n.z) * ao
    lin = alb * (ambient + 0.95 * ndl * sh)
    return ti.pow(ti.math.clamp(lin, 0.0, 1.0), 1.0 / 2.2)  # back to display space


@ti.func
def _shade(p, n):
    return _lit(p, n, _albedo(p, _scene_material(p)))


# --- marching ----------------------------------------------------------------------------
@ti.func
def _box_span(o, d):
    """Entry/exit distances of the ray through the object bound (t1 < t0 when it misses)."""
    inv = vec3(0.0)
    for k in ti.static(range(3)):
        inv[k] = 1.0 / (d[k] if ti.abs(d[k]) > 1e-9 else 1e-9)
    ta = (-OBJECT_BOUND - o) * inv
    tb = (OBJECT_BOUND - o) * inv
    tmin = ti.min(ta, tb)
    tmax = ti.max(ta, tb)
    t0 = ti.max(ti.max(tmin.x, tmin.y), ti.max(tmin.z, 0.0))
    t1 = ti.min(ti.min(tmax.x, tmax.y), tmax.z)
    return t0, t1


@ti.func
def _march(o, d):
    """Distance to the first surface along the unit ray, or -1 when it misses."""
    t0, t1 = _box_span(o, d)
    hit_t = -1.0
    if t1 > t0:
        t = t0
        for _ in range(_MAX_STEPS):
            h = _scene_dist(o + d * t)
            if h < 1e-4 * (1.0 + t):
                hit_t = t
                break
            t += h
            if t > t1:
                break
    return hit_t


@ti.func
def _ray_dir(rot, x, y, fx, fy, cx, cy):
    return (rot @ vec3((x - cx) / fx, -(y - cy) / fy, -1.0)).normalized()


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
        dc = _ray_dir(rot, i + 0.5, j + 0.5, fx, fy, cx, cy)
        tc = _march(o, dc)
        depth[n, j, i] = ti.max(tc, 0.0)
        col = vec3(0.0)
        hits = 0
        for s in range(ss * ss):
            sx = (s % ss + 0.5) / ss
            sy = (s // ss + 0.5) / ss
            d = _ray_dir(rot, i + sx, j + sy, fx, fy, cx, cy)
            t = _march(o, d)
            if t >= 0.0:
                p = o + d * t
                col += _shade(p, _normal(p))
                hits += 1
        if hits > 0:
            col /= hits
        for c in ti.static(range(3)):
            rgba[n, j, i, c] = col[c]
        rgba[n, j, i, 3] = hits / (ss * ss)


# --- public API --------------------------------------------------------------------------
def _check_poses(poses) -> torch.Tensor:
    poses = torch.as_tensor(poses)
    if poses.ndim == 2:
        poses = poses[None]
    if poses.ndim != 3 or tuple(poses.shape[1:]) not in ((4, 4), (3, 4)):
        raise ValueError(f"poses must be (N, 4, 4), got {tuple(poses.shape)}")
    return poses


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
    # imported here: environment.py imports this module for the scene's ti.funcs
    from .environment import ENVIRONMENTS, _distortion, _render_env_kernel, _texture_atlas

    poses = _check_poses(poses)
    if width <= 0 or height <= 0 or supersample < 1:
        raise ValueError("width, height and supersample must be positive")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r} (choose from {', '.join(ENVIRONMENTS)})")
    coeffs = _distortion(distortion)
    dev = backend.current().device
    n = poses.shape[0]
    p = poses.to(device=dev, dtype=torch.float32).contiguous()
    rgba = torch.zeros((n, height, width, 4), dtype=torch.float32, device=dev)
    depth = torch.zeros((n, height, width), dtype=torch.float32, device=dev)
    if n > 0 and environment == "none" and not any(coeffs) and objects:
        _render_kernel(p, rgba, depth, float(fx), float(fy), float(cx), float(cy), int(supersample))
    elif n > 0:
        atlas, info = _texture_atlas(texture_seed, dev)
        _render_env_kernel(p, rgba, depth, float(fx), float(fy), float(cx), float(cy), int(supersample),
                           ti.math.vec4(*coeffs), atlas, info, ENVIRONMENTS[environment], bool(objects))
    rgba8 = (rgba.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    return rgba8.cpu(), depth.cpu()


def write_synthetic_dataset(
    out_dir,
    views: int = 100,
    size: int = 100,
    val_views: int = 8,
    test_views: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Render train/val/test splits and write them in the Blender layout; returns out_dir."""
    from tqdm import tqdm

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
        for name, count, split_seed in plan:
            poses = sphere_poses(count, CAMERA_RADIUS, upper_only=True, seed=split_seed)
            rgbas, depths = [], []
            for k in range(count):
                rgba, depth = render_scene(poses[k : k + 1], size, size, focal, focal, 0.5 * size, 0.5 * size)
                rgbas.append(rgba)
                depths.append(depth)
                bar.update(1)
            write_split(out, name, torch.cat(rgbas).numpy(), poses.numpy(), CAMERA_ANGLE_X,
                        depth=torch.cat(depths).numpy(), extra=extra)
    finally:
        bar.close()
    return out


@ti.kernel
def _scene_sdf_kernel(points: ti.types.ndarray(), out: ti.types.ndarray()):
    for i in range(points.shape[0]):
        out[i] = _scene_dist(vec3(points[i, 0], points[i, 1], points[i, 2]))


def scene_sdf(points) -> torch.Tensor:
    """Signed distance (P,) from world points (P, 3) to the objects' surface (negative inside):
    the ground truth that exported meshes and point clouds are measured against (tests)."""
    dev = backend.current().device
    p = torch.as_tensor(points, dtype=torch.float32).to(dev).reshape(-1, 3).contiguous()
    out = torch.empty(p.shape[0], dtype=torch.float32, device=dev)
    if p.shape[0]:
        _scene_sdf_kernel(p, out)
    return out.cpu()
