"""Surroundings for the built-in scene: why the users'-data test sets (scenes/testsets.py) look
like real captures rather than objects floating on a transparent background.

* ``environment="backdrop"``: a tiled floor at z = -0.6 and a brick wall (the plane
  y = +2.5, facing -y) for forward-facing cameras looking along +y: every ray hits something;
* ``environment="dome"``: textured ground at z = -0.6 inside a sphere of radius 12 around
  the origin painted with sky, clouds and a skyline: far background in every direction (360);
* ``distortion=(k1, k2, p1, p2)``: OpenCV radial-tangential distortion, really in the
  pixels: each (sub)pixel's ray is the undistorted direction of that distorted image point,
  by the ray kernel's own inverse (cameras.undistort), so ``cameras.image_rays`` with these
  intrinsics shoots the rays the renderer used (``pixel_directions`` returns them).

``synthetic.render_scene`` switches to ``render_env_kernel`` here when any of these is on;
with none of them it keeps the original kernel, so the default images stay bit-for-bit.
Non-square images and any principal point work with every kernel. Environment surfaces are
opaque (alpha 1); floor, wall and ground are lit like the objects and receive their soft
shadows and ambient occlusion; the dome is emissive. Their textures are tiling RGB images
made once in numpy (value noise, bricks, tiles, clouds, a skyline) and sampled bilinearly.

The scene's geometry and shading come from sdf.py, as in synthetic.py.
"""
# (no "from __future__ import annotations": Taichi reads kernel annotations as objects)

import functools
import math

import numpy as np
import taichi as ti
import torch

from .. import backend
from ..stages.cameras import undistort
from .sdf import albedo, check_poses, lit, march, normal, scene_material, vec3

# --- geometry ----------------------------------------------------------------------------
ENV_NONE, ENV_BACKDROP, ENV_DOME = 0, 1, 2
ENVIRONMENTS = {"none": ENV_NONE, "backdrop": ENV_BACKDROP, "dome": ENV_DOME}
FLOOR_Z = -0.6  # the objects stand on it (invisible without an environment)
WALL_Y = 2.5  # backdrop wall: the plane y = WALL_Y, seen from -y
DOME_RADIUS = 12.0  # the 360 enclosure: a sphere around the origin
SURF_NONE, SURF_OBJECT, SURF_FLOOR, SURF_WALL, SURF_DOME = 0, 1, 2, 3, 4
_FAR_AWAY = 1e30

# --- textures (numpy, display-space RGB; axis 0 is v, axis 1 is u) -----------------------
# name -> (texels v, texels u, world period along u, world period along v); the dome's u, v
# are azimuth and elevation fractions instead.
TEXTURES = {
    "wall": (256, 512, 4.0, 2.0),  # bricks 0.5 x 0.25, world (x, z)
    "floor": (512, 512, 3.2, 3.2),  # tiles 0.4, world (x, y)
    "ground": (1024, 1024, 16.0, 16.0),  # world (x, y)
    "dome": (512, 1024, 1.0, 1.0),  # equirectangular: azimuth, elevation
}
TEX_WALL, TEX_FLOOR, TEX_GROUND, TEX_DOME = range(4)


def _hues(h: np.ndarray) -> np.ndarray:
    """Fully saturated colours of hue ``h`` in [0, 1) (numpy twin of ``synthetic._hue``)."""
    k = np.mod(h[..., None] + np.array([0.0, 2.0 / 3.0, 1.0 / 3.0]), 1.0) * 6.0 - 3.0
    return np.clip(np.abs(k) - 1.0, 0.0, 1.0)


def _tiling_noise(rng: np.random.Generator, shape, cells, octaves: int = 4) -> np.ndarray:
    """Value noise in [0, 1] that tiles: ``cells`` (v, u) random lattice values per period,
    doubled each octave, smoothstep-interpolated with wrap-around."""
    h, w = shape
    total, out, amp = 0.0, np.zeros(shape), 0.5
    for o in range(octaves):
        cv, cu = cells[0] << o, cells[1] << o
        grid = rng.random((cv, cu))
        y = (np.arange(h) + 0.5) / h * cv
        x = (np.arange(w) + 0.5) / w * cu
        y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
        fy, fx = y - y0, x - x0
        fy, fx = (fy * fy * (3 - 2 * fy))[:, None], (fx * fx * (3 - 2 * fx))[None, :]
        y0, y1, x0, x1 = y0 % cv, (y0 + 1) % cv, x0 % cu, (x0 + 1) % cu
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
        bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
        out += amp * (top * (1 - fy) + bottom * fy)
        total += amp
        amp *= 0.5
    return out / total


def _cells(shape, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per texel: integer cell (v, u) and position inside it in [0, 1), for ``counts`` cells."""
    h, w = shape
    v = (np.arange(h) + 0.5) / h * counts[0]
    u = (np.arange(w) + 0.5) / w * counts[1]
    cv, cu = np.meshgrid(np.floor(v).astype(int), np.floor(u).astype(int), indexing="ij")
    fv, fu = np.meshgrid(v - np.floor(v), u - np.floor(u), indexing="ij")
    return cv, cu, fv, fu


def _wall_texture(rng, h, w) -> np.ndarray:
    """Bricks of random hues (8 x 8 per period, rows offset by half) in pale mortar, mottled."""
    rows = 8
    v = (np.arange(h) + 0.5) / h * rows
    row = np.floor(v).astype(int)
    u = (np.arange(w) + 0.5) / w * 8
    u = u[None, :] + 0.5 * (row % 2)[:, None]
    col = np.floor(u).astype(int) % 8
    fu, fv = u - np.floor(u), (v - row)[:, None]
    mortar = np.minimum(np.minimum(fu, 1 - fu) * 0.5, np.minimum(fv, 1 - fv) * 0.25) < 0.011  # world units
    brick_hue = rng.random((rows, 8))
    brick_light = 0.8 + 0.35 * rng.random((rows, 8))
    rr = np.broadcast_to(row[:, None], col.shape)
    terracotta = np.array([0.72, 0.33, 0.22])
    colour = 0.45 * _hues(brick_hue[rr, col]) + 0.55 * terracotta
    colour *= (brick_light[rr, col] * (0.65 + 0.6 * _tiling_noise(rng, (h, w), (8, 16))))[..., None]
    colour[mortar] = [0.78, 0.76, 0.72]
    return colour


def _floor_texture(rng, h, w) -> np.ndarray:
    """Checker tiles (8 x 8 per period) of a slate and a sand stone, each tinted, with grain."""
    cv, cu, _, _ = _cells((h, w), (8, 8))
    dark = (cv + cu) % 2 == 0
    colour = np.where(dark[..., None], [0.25, 0.30, 0.38], [0.86, 0.80, 0.64])
    tint, light = rng.random((8, 8)), rng.random((8, 8))
    colour = colour * (0.75 + 0.5 * light[cv, cu])[..., None] + 0.12 * (_hues(tint[cv, cu]) - 0.5)
    grain = _tiling_noise(rng, (h, w), (6, 24))  # streaks along x
    return colour * (0.7 + 0.6 * grain)[..., None]


def _ground_texture(rng, h, w) -> np.ndarray:
    """Grass, earth and sand patches over 1-unit paving squares (each tinted), with fine noise."""
    patch = _tiling_noise(rng, (h, w), (7, 7))
    colour = np.where((patch < 0.42)[..., None], [0.45, 0.30, 0.17],
                      np.where((patch > 0.6)[..., None], [0.85, 0.76, 0.52], [0.22, 0.48, 0.14]))
    cv, cu, _, _ = _cells((h, w), (16, 16))
    tint, light = rng.random((16, 16)), rng.random((16, 16))
    colour = colour * (0.7 + 0.2 * ((cv + cu) % 2) + 0.25 * light[cv, cu])[..., None]
    colour += 0.1 * (_hues(tint[cv, cu]) - 0.5)
    return colour * (0.7 + 0.6 * _tiling_noise(rng, (h, w), (64, 64), octaves=3))[..., None]


def _dome_texture(rng, h, w) -> np.ndarray:
    """Equirectangular far surroundings: sky gradient, colourful clouds and, up to 17 degrees
    above the horizon, a skyline of 64 blocks of random height and colour with lit windows."""
    elevation = ((np.arange(h) + 0.5) / h - 0.5) * np.pi  # row 0 looks straight down
    up = np.clip(np.sin(elevation) * 1.5, 0.0, 1.0)[:, None, None]
    sky = (1 - up) * np.array([0.75, 0.82, 0.95]) + up * np.array([0.20, 0.38, 0.78])
    cloud = _tiling_noise(rng, (h, w), (4, 8))
    cloud_colour = 0.35 + 0.6 * _hues(_tiling_noise(rng, (h, w), (2, 4)))
    mix = np.clip((cloud - 0.42) / 0.22, 0.0, 1.0)
    mix = (mix * mix * (3 - 2 * mix))[..., None]
    colour = np.broadcast_to(sky, (h, w, 3)) * (1 - mix) + cloud_colour * mix
    blocks = 64
    block = np.floor((np.arange(w) + 0.5) / w * blocks).astype(int)
    top = np.radians(3.0 + 14.0 * rng.random(blocks))
    wall = 0.25 + 0.55 * _hues(rng.random(blocks))
    building = elevation[:, None] < top[block][None, :]
    colour = np.where(building[..., None], wall[block][None, :, :], colour)
    wu = np.mod((np.arange(w) + 0.5) / w * blocks * 4, 1.0)[None, :]
    wv = np.mod(np.degrees(elevation) / 1.5, 1.0)[:, None]
    window = building & (wu > 0.3) & (wu < 0.7) & (wv > 0.3) & (wv < 0.75)
    lit = rng.random(window.shape) > 0.5
    lit = np.repeat(np.repeat(lit[::8, ::4], 8, axis=0), 4, axis=1)[:h, :w]  # one draw per window
    colour = np.where((window & lit)[..., None], [0.98, 0.90, 0.55], colour)
    colour = np.where((window & ~lit)[..., None], [0.10, 0.12, 0.18], colour)
    below = elevation[:, None, None] < 0.0  # under the horizon (mostly hidden by the ground)
    return np.where(below & ~building[..., None], [0.30, 0.26, 0.20], colour)


@functools.lru_cache(maxsize=2)
def environment_textures(seed: int = 0) -> dict[str, np.ndarray]:
    """Every environment texture as float32 (v, u, 3) display-space RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    make = {"wall": _wall_texture, "floor": _floor_texture, "ground": _ground_texture, "dome": _dome_texture}
    out = {}
    for name, (h, w, _, _) in TEXTURES.items():
        out[name] = np.clip(make[name](rng, h, w), 0.0, 1.0).astype(np.float32)
    return out


def texture_atlas(seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """All textures in one flat float32 buffer + (4, 3) int32 (offset, width, height)."""
    textures = environment_textures(seed)
    chunks, info, offset = [], [], 0
    for name in TEXTURES:
        tex = textures[name]
        chunks.append(tex.reshape(-1))
        info.append((offset, tex.shape[1], tex.shape[0]))
        offset += tex.size
    atlas = torch.from_numpy(np.concatenate(chunks)).to(device)
    return atlas, torch.tensor(info, dtype=torch.int32, device=device)


# --- kernel functions --------------------------------------------------------------------
@ti.func
def _texel(atlas: ti.template(), info: ti.template(), which, x, y):
    w, h = info[which, 1], info[which, 2]
    xi = (x % w + w) % w  # u wraps
    yi = ti.math.clamp(y, 0, h - 1) if which == TEX_DOME else (y % h + h) % h  # elevation does not
    k = info[which, 0] + (yi * w + xi) * 3
    return vec3(atlas[k], atlas[k + 1], atlas[k + 2])


@ti.func
def _sample(atlas: ti.template(), info: ti.template(), which, u, v):
    """Bilinear lookup at (u, v) in texture periods, texel centres at +0.5."""
    x = u * info[which, 1] - 0.5
    y = v * info[which, 2] - 0.5
    x0, y0 = ti.floor(x), ti.floor(y)
    fx, fy = x - x0, y - y0
    ix, iy = ti.cast(x0, ti.i32), ti.cast(y0, ti.i32)
    top = _texel(atlas, info, which, ix, iy) * (1.0 - fx) + _texel(atlas, info, which, ix + 1, iy) * fx
    bottom = _texel(atlas, info, which, ix, iy + 1) * (1.0 - fx) + _texel(atlas, info, which, ix + 1, iy + 1) * fx
    return top * (1.0 - fy) + bottom * fy


@ti.func
def _env_hit(o, d, env: ti.template()):
    """(distance, surface) of the first environment surface along the unit ray."""
    t = _FAR_AWAY
    kind = SURF_NONE
    if d.z < -1e-9:
        tf = (FLOOR_Z - o.z) / d.z
        if tf > 0.0:
            t, kind = tf, SURF_FLOOR
    if ti.static(env == ENV_BACKDROP):
        if d.y > 1e-9:
            tw = (WALL_Y - o.y) / d.y
            if 0.0 < tw < t:
                t, kind = tw, SURF_WALL
    elif ti.static(env == ENV_DOME):  # from inside: the far root of |o + t d| = R
        b = o.dot(d)
        disc = b * b - (o.dot(o) - DOME_RADIUS * DOME_RADIUS)
        ts = -b + ti.sqrt(ti.max(disc, 0.0))
        if disc > 0.0 and 0.0 < ts < t:
            t, kind = ts, SURF_DOME
    return t, kind


@ti.func
def _shade_any(p, kind, env: ti.template(), atlas: ti.template(), info: ti.template()):
    """Display-space colour of an object or environment point. Objects are lit as in _shade;
    one call site per kernel, as each inlined copy of the SDF lighting costs compile time."""
    c = vec3(0.0)
    if kind == SURF_DOME:
        q = p.normalized()
        azimuth = ti.atan2(q.y, q.x) / (2.0 * math.pi) + 0.5
        elevation = ti.asin(ti.math.clamp(q.z, -1.0, 1.0)) / math.pi + 0.5
        c = _sample(atlas, info, TEX_DOME, azimuth, elevation)
    else:
        n = vec3(0.0, 0.0, 1.0)
        alb = vec3(0.0)
        if kind == SURF_OBJECT:
            n = normal(p)
            alb = albedo(p, scene_material(p))
        elif kind == SURF_WALL:
            n = vec3(0.0, -1.0, 0.0)
            alb = _sample(atlas, info, TEX_WALL, p.x / TEXTURES["wall"][2], p.z / TEXTURES["wall"][3])
        elif ti.static(env == ENV_BACKDROP):
            alb = _sample(atlas, info, TEX_FLOOR, p.x / TEXTURES["floor"][2], p.y / TEXTURES["floor"][3])
        else:
            alb = _sample(atlas, info, TEX_GROUND, p.x / TEXTURES["ground"][2], p.y / TEXTURES["ground"][3])
        c = lit(p, n, alb)
    return c


@ti.func
def _camera(poses: ti.template(), n):
    o = vec3(poses[n, 0, 3], poses[n, 1, 3], poses[n, 2, 3])
    rot = ti.math.mat3(0.0)
    for r, c in ti.static(ti.ndrange(3, 3)):
        rot[r, c] = poses[n, r, c]
    return o, rot


@ti.func
def _pixel_dir(rot, x, y, fx, fy, cx, cy, dist):
    """Unit world ray through image point (x, y) of a camera with distortion ``dist`` =
    (k1, k2, p1, p2): the point is undistorted by the ray kernel's own inverse first."""
    xn = (x - cx) / fx
    yn = (y - cy) / fy
    if dist[0] != 0.0 or dist[1] != 0.0 or dist[2] != 0.0 or dist[3] != 0.0:
        xn, yn = undistort(xn, yn, dist[0], dist[1], dist[2], dist[3])
    return (rot @ vec3(xn, -yn, -1.0)).normalized()


@ti.kernel
def render_env_kernel(poses: ti.types.ndarray(), rgba: ti.types.ndarray(), depth: ti.types.ndarray(),
                       fx: ti.f32, fy: ti.f32, cx: ti.f32, cy: ti.f32, ss: ti.i32, dist: ti.math.vec4,
                       atlas: ti.types.ndarray(), info: ti.types.ndarray(), env: ti.template(),
                       objects: ti.template()):
    for n, j, i in ti.ndrange(rgba.shape[0], rgba.shape[1], rgba.shape[2]):
        o, rot = _camera(poses, n)
        col = vec3(0.0)
        hits = 0
        # ss * ss colour subsamples, then the pixel centre for depth: one marching call site
        for s in range(ss * ss + 1):
            centre = s == ss * ss
            sx = 0.5 if centre else (s % ss + 0.5) / ss
            sy = 0.5 if centre else (s // ss + 0.5) / ss
            d = _pixel_dir(rot, i + sx, j + sy, fx, fy, cx, cy, dist)
            t = -1.0
            if ti.static(objects):  # the built-in objects, or only their surroundings
                t = march(o, d)
            kind = SURF_OBJECT if t >= 0.0 else SURF_NONE
            if ti.static(env != ENV_NONE):
                te, ke = _env_hit(o, d, env)
                if t < 0.0 or te < t:
                    t, kind = te, ke
            if centre:
                depth[n, j, i] = t if kind != SURF_NONE else 0.0
            elif kind != SURF_NONE:
                col += _shade_any(o + d * t, kind, env, atlas, info)
                hits += 1
        if hits > 0:
            col /= hits
        for c in ti.static(range(3)):
            rgba[n, j, i, c] = col[c]
        rgba[n, j, i, 3] = hits / (ss * ss)


@ti.kernel
def _pixel_dirs_kernel(poses: ti.types.ndarray(), dirs: ti.types.ndarray(), fx: ti.f32, fy: ti.f32, cx: ti.f32,
                       cy: ti.f32, dist: ti.math.vec4):
    for n, j, i in ti.ndrange(dirs.shape[0], dirs.shape[1], dirs.shape[2]):
        _, rot = _camera(poses, n)
        d = _pixel_dir(rot, i + 0.5, j + 0.5, fx, fy, cx, cy, dist)
        for k in ti.static(range(3)):
            dirs[n, j, i, k] = d[k]


# --- public API --------------------------------------------------------------------------
def distortion_coefficients(distortion) -> tuple[float, float, float, float]:
    coeffs = tuple(float(v) for v in distortion)
    if len(coeffs) != 4 or not all(math.isfinite(v) for v in coeffs):
        raise ValueError(f"distortion must be four finite numbers (k1, k2, p1, p2), got {distortion!r}")
    return coeffs


def pixel_directions(poses: torch.Tensor, width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                     distortion=(0.0, 0.0, 0.0, 0.0)) -> torch.Tensor:
    """(N, H, W, 3) unit world directions of the pixel-centre rays of ``render_scene`` (its
    depth rays; colour subsamples go through the same function at their offsets)."""
    poses = check_poses(poses)
    dev = backend.current().device
    dirs = torch.zeros((poses.shape[0], height, width, 3), dtype=torch.float32, device=dev)
    if poses.shape[0] > 0:
        _pixel_dirs_kernel(poses.to(device=dev, dtype=torch.float32).contiguous(), dirs, float(fx), float(fy),
                           float(cx), float(cy), ti.math.vec4(*distortion_coefficients(distortion)))
    return dirs.cpu()
