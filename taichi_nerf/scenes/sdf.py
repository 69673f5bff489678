"""The built-in scene's geometry and looks, as Taichi funcs: signed distance functions of its
five objects, their materials and albedo, the lighting (Lambert with soft shadows and ambient
occlusion) and the sphere-tracing march. synthetic.py renders the scene with them;
environment.py adds surroundings that are lit the same way. (Its own module so that neither
of those two has to import the other's internals.)"""
# (no "from __future__ import annotations": Taichi reads kernel annotations as objects)

import math

import taichi as ti
import torch

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
def scene_dist(p):
    d = _sd_sphere(p)
    d = ti.min(d, _sd_box(p))
    d = ti.min(d, _sd_torus(p))
    d = ti.min(d, _sd_cylinder(p))
    d = ti.min(d, _sd_cone(p))
    return d


@ti.func
def scene_material(p):
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
def normal(p):
    e = 5e-4
    k0 = vec3(1.0, -1.0, -1.0)
    k1 = vec3(-1.0, -1.0, 1.0)
    k2 = vec3(-1.0, 1.0, -1.0)
    k3 = vec3(1.0, 1.0, 1.0)
    n = (
        k0 * scene_dist(p + e * k0)
        + k1 * scene_dist(p + e * k1)
        + k2 * scene_dist(p + e * k2)
        + k3 * scene_dist(p + e * k3)
    )
    return n.normalized()


# --- textures ----------------------------------------------------------------------------
@ti.func
def _hue(h):
    k = ti.math.fract(vec3(h, h + 2.0 / 3.0, h + 1.0 / 3.0)) * 6.0 - 3.0
    return ti.math.clamp(ti.abs(k) - 1.0, 0.0, 1.0)


@ti.func
def albedo(p, m):
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
        h = scene_dist(ro + rd * t)
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
        occ += (h - scene_dist(p + h * n)) * sca
        sca *= 0.8
    return ti.math.clamp(1.0 - 2.5 * occ, 0.0, 1.0)


@ti.func
def lit(p, n, albedo):
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
def shade(p, n):
    return lit(p, n, albedo(p, scene_material(p)))


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
def march(o, d):
    """Distance to the first surface along the unit ray, or -1 when it misses."""
    t0, t1 = _box_span(o, d)
    hit_t = -1.0
    if t1 > t0:
        t = t0
        for _ in range(_MAX_STEPS):
            h = scene_dist(o + d * t)
            if h < 1e-4 * (1.0 + t):
                hit_t = t
                break
            t += h
            if t > t1:
                break
    return hit_t


@ti.func
def ray_dir(rot, x, y, fx, fy, cx, cy):
    return (rot @ vec3((x - cx) / fx, -(y - cy) / fy, -1.0)).normalized()


def check_poses(poses) -> torch.Tensor:
    """(N, 4, 4) or (N, 3, 4) camera-to-world poses as a tensor; a single (4, 4) pose gets a batch axis."""
    poses = torch.as_tensor(poses)
    if poses.ndim == 2:
        poses = poses[None]
    if poses.ndim != 3 or tuple(poses.shape[1:]) not in ((4, 4), (3, 4)):
        raise ValueError(f"poses must be (N, 4, 4), got {tuple(poses.shape)}")
    return poses
