"""Mesh to dataset: render a (textured) OBJ from many cameras into the Blender layout, as the
PyTorch3D NeRF tutorial does with its cow, with our own Taichi z-buffer rasteriser.

Pipeline per batch of views, all on flat arrays:

1. raster kernel, parallel over (view, triangle): project the triangle, walk the pixels of
   its screen bounding box and keep, per pixel, the nearest triangle with one 64-bit
   ``atomic_min`` on (depth bits << 32 | triangle id) (positive float bits sort like floats);
2. shade kernel, parallel over (view, pixel): intersect the pixel's ray with its triangle
   exactly (depth is the ray distance, as everywhere in the project), interpolate UV,
   normal and vertex colour, sample the texture bilinearly, light it (fixed sun + ambient,
   two-sided, Lambertian, so every view sees the same colours);
3. supersampling: the image is rendered ``supersample`` times larger and box-filtered, which
   gives the alpha channel (silhouette) soft edges; depth is the centre subsample's.

The mesh is normalised like the built-in scene: centred at the origin, bounding-sphere
radius 1.2, and turned from its own up axis (OBJ files are usually +y up) to the project's +z.
"""

from pathlib import Path

import numpy as np
import taichi as ti
import torch

from .. import backend
from ..capture.partial import built_beside, swap_in_render
from ..config_checks import number_at_least
from ..data.blender import write_split
from ..data.dataset import DataError
from ..data.loaders import refuse_foreign_dataset
from ..resources import check_dataset_render
from ..stages.cameras import focal_from_fov, sphere_poses
from .obj import Mesh, read_obj

MESH_RADIUS = 1.2  # like the built-in scene's objects
CAMERA_RADIUS = 4.0
CAMERA_ANGLE_X = 0.6911112070083618
NEAR, FAR = 2.0, 6.0
SCENE_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
LIGHT_DIR = (0.42, -0.55, 0.72)  # towards the sun, as in the built-in scene
AMBIENT, DIFFUSE = 0.35, 0.75
EMPTY = (1 << 63) - 1  # z-buffer value of a pixel no triangle covers
VIEWS_PER_BATCH = 8  # bounds the z-buffer's memory: 8 x (128 * 3)^2 x 8 bytes = 9 MB
RENDER_BYTES = 48  # per subsample of a view rendered: z-buffer, float RGBA and depth, the box filter's (42 measured)

# Rotation taking the named axis of the file to the project's +z (right-handed).
UP_AXES = {
    "y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "z": np.eye(3),
    "x": np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]),
    "-y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "-z": np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]),
}

vec3 = ti.math.vec3


@ti.func
def _corner(positions: ti.template(), faces: ti.template(), f: ti.i32, k: ti.i32):
    v = faces[f, k]
    return vec3(positions[v, 0], positions[v, 1], positions[v, 2])


@ti.kernel
def _raster_kernel(positions: ti.types.ndarray(), faces: ti.types.ndarray(), w2c: ti.types.ndarray(),
                   fx: ti.f32, fy: ti.f32, cx: ti.f32, cy: ti.f32, zbuf: ti.types.ndarray()):
    height, width = zbuf.shape[1], zbuf.shape[2]
    for n, f in ti.ndrange(zbuf.shape[0], faces.shape[0]):
        sx = vec3(0.0)
        sy = vec3(0.0)
        sz = vec3(0.0)  # positive depth in front of the camera
        visible = True
        for k in ti.static(range(3)):
            p = _corner(positions, faces, f, k)
            c = vec3(0.0)
            for r in ti.static(range(3)):
                c[r] = w2c[n, r, 0] * p.x + w2c[n, r, 1] * p.y + w2c[n, r, 2] * p.z + w2c[n, r, 3]
            if c.z > -1e-4:  # behind or at the camera: meshes are far from the cameras here
                visible = False
            sz[k] = -c.z
            sx[k] = fx * c.x / sz[k] + cx
            sy[k] = -fy * c.y / sz[k] + cy  # image y grows downwards
        area = (sx[1] - sx[0]) * (sy[2] - sy[0]) - (sx[2] - sx[0]) * (sy[1] - sy[0])
        if visible and ti.abs(area) > 1e-12:
            x0 = ti.max(ti.cast(ti.floor(ti.min(sx[0], sx[1], sx[2]) - 0.5), ti.i32), 0)
            x1 = ti.min(ti.cast(ti.ceil(ti.max(sx[0], sx[1], sx[2]) - 0.5), ti.i32), width - 1)
            y0 = ti.max(ti.cast(ti.floor(ti.min(sy[0], sy[1], sy[2]) - 0.5), ti.i32), 0)
            y1 = ti.min(ti.cast(ti.ceil(ti.max(sy[0], sy[1], sy[2]) - 0.5), ti.i32), height - 1)
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    px, py = x + 0.5, y + 0.5
                    # Barycentrics from edge functions, divided by the signed area (either winding).
                    b0 = ((sx[1] - px) * (sy[2] - py) - (sx[2] - px) * (sy[1] - py)) / area
                    b1 = ((sx[2] - px) * (sy[0] - py) - (sx[0] - px) * (sy[2] - py)) / area
                    b2 = 1.0 - b0 - b1
                    if b0 >= 0.0 and b1 >= 0.0 and b2 >= 0.0:
                        depth = 1.0 / (b0 / sz[0] + b1 / sz[1] + b2 / sz[2])  # 1/z is linear on screen
                        key = (ti.cast(ti.bit_cast(depth, ti.i32), ti.i64) << 32) | ti.cast(f, ti.i64)
                        ti.atomic_min(zbuf[n, y, x], key)


@ti.func
def _texel(atlas: ti.template(), base: ti.i32, w: ti.i32, h: ti.i32, x: ti.i32, y: ti.i32):
    xi = (x % w + w) % w  # textures repeat
    yi = (y % h + h) % h
    i = base + (yi * w + xi) * 3
    return vec3(atlas[i], atlas[i + 1], atlas[i + 2])


@ti.func
def _sample_texture(atlas: ti.template(), base: ti.i32, w: ti.i32, h: ti.i32, u: ti.f32, v: ti.f32):
    # OBJ's v runs bottom-up, image rows top-down; texel centres at +0.5.
    fx = (u - ti.floor(u)) * w - 0.5
    fy = (1.0 - (v - ti.floor(v))) * h - 0.5
    x0 = ti.cast(ti.floor(fx), ti.i32)
    y0 = ti.cast(ti.floor(fy), ti.i32)
    ax = fx - x0
    ay = fy - y0
    top = (1.0 - ax) * _texel(atlas, base, w, h, x0, y0) + ax * _texel(atlas, base, w, h, x0 + 1, y0)
    bottom = (1.0 - ax) * _texel(atlas, base, w, h, x0, y0 + 1) + ax * _texel(atlas, base, w, h, x0 + 1, y0 + 1)
    return (1.0 - ay) * top + ay * bottom


@ti.kernel
def _shade_kernel(zbuf: ti.types.ndarray(), positions: ti.types.ndarray(), faces: ti.types.ndarray(),
                  corner_uv: ti.types.ndarray(), corner_normal: ti.types.ndarray(), face_mat: ti.types.ndarray(),
                  vertex_color: ti.types.ndarray(), mat_kd: ti.types.ndarray(), mat_tex: ti.types.ndarray(),
                  atlas: ti.types.ndarray(), c2w: ti.types.ndarray(), fx: ti.f32, fy: ti.f32, cx: ti.f32, cy: ti.f32,
                  rgba: ti.types.ndarray(), depth: ti.types.ndarray()):
    light = vec3(*LIGHT_DIR).normalized()
    for n, y, x in ti.ndrange(zbuf.shape[0], zbuf.shape[1], zbuf.shape[2]):
        key = zbuf[n, y, x]
        for c in ti.static(range(4)):
            rgba[n, y, x, c] = 0.0
        depth[n, y, x] = 0.0
        high = key >> 32
        if high < 0x7F800000:  # finite depth bits: some triangle covers the pixel (EMPTY is all ones)
            f = ti.cast(key - (high << 32), ti.i32)
            o = vec3(c2w[n, 0, 3], c2w[n, 1, 3], c2w[n, 2, 3])
            cam = vec3((x + 0.5 - cx) / fx, -(y + 0.5 - cy) / fy, -1.0)
            d = vec3(0.0)
            for r in ti.static(range(3)):
                d[r] = c2w[n, r, 0] * cam.x + c2w[n, r, 1] * cam.y + c2w[n, r, 2] * cam.z
            d = d.normalized()
            p0 = _corner(positions, faces, f, 0)
            e1 = _corner(positions, faces, f, 1) - p0
            e2 = _corner(positions, faces, f, 2) - p0
            # Moller-Trumbore, without rejection: the rasteriser already decided coverage,
            # and clamping keeps pixel centres on a grazing edge on the triangle.
            pv = d.cross(e2)
            inv_det = 1.0 / pv.dot(e1)
            tv = o - p0
            b1 = ti.math.clamp(tv.dot(pv) * inv_det, 0.0, 1.0)
            qv = tv.cross(e1)
            b2 = ti.math.clamp(d.dot(qv) * inv_det, 0.0, 1.0 - b1)
            b0 = 1.0 - b1 - b2
            t = e2.dot(qv) * inv_det
            m = face_mat[f]
            albedo = vec3(mat_kd[m, 0], mat_kd[m, 1], mat_kd[m, 2])
            if mat_tex[m, 1] > 0 and corner_uv[f, 0, 0] > -1e8:
                u = b0 * corner_uv[f, 0, 0] + b1 * corner_uv[f, 1, 0] + b2 * corner_uv[f, 2, 0]
                v = b0 * corner_uv[f, 0, 1] + b1 * corner_uv[f, 1, 1] + b2 * corner_uv[f, 2, 1]
                albedo *= _sample_texture(atlas, mat_tex[m, 0], mat_tex[m, 1], mat_tex[m, 2], u, v)
            vc = vec3(0.0)
            nrm = vec3(0.0)
            for k in ti.static(range(3)):
                w = b0 if k == 0 else (b1 if k == 1 else b2)
                vi = faces[f, k]
                vc += w * vec3(vertex_color[vi, 0], vertex_color[vi, 1], vertex_color[vi, 2])
                nrm += w * vec3(corner_normal[f, k, 0], corner_normal[f, k, 1], corner_normal[f, k, 2])
            albedo *= vc
            nrm = nrm.normalized()
            if nrm.dot(d) > 0.0:  # two-sided: light the side the camera sees
                nrm = -nrm
            lin = ti.pow(ti.math.clamp(albedo, 0.0, 1.0), 2.2) * (AMBIENT + DIFFUSE * ti.max(nrm.dot(light), 0.0))
            col = ti.pow(ti.math.clamp(lin, 0.0, 1.0), 1.0 / 2.2)
            for c in ti.static(range(3)):
                rgba[n, y, x, c] = col[c]
            rgba[n, y, x, 3] = 1.0
            depth[n, y, x] = t


def normalise(mesh: Mesh, up: str = "y") -> np.ndarray:
    """(V, 3) positions turned so ``up`` becomes +z, centred on the bounding-box centre of the
    used vertices, scaled to a bounding-sphere radius of MESH_RADIUS. Normals turn alike."""
    if up not in UP_AXES:
        raise DataError(f"--up must be one of {', '.join(UP_AXES)}, got {up!r}")
    used = np.unique(mesh.faces)
    p = mesh.positions @ UP_AXES[up].T  # a signed permutation: exact
    scale = np.abs(p[used]).max()
    if not scale > 0:
        raise DataError(f"{mesh.source or 'mesh'}: the mesh has no extent (all used vertices coincide)")
    with np.errstate(over="ignore"):  # unused vertices far beyond the used ones; none is drawn
        p = p / scale  # coordinates near the float64 limit (1e300) would overflow the squares below
    center = 0.5 * (p[used].min(axis=0) + p[used].max(axis=0))
    radius = np.linalg.norm(p[used] - center, axis=1).max()
    if not radius > 0:
        raise DataError(f"{mesh.source or 'mesh'}: the mesh has no extent (all used vertices coincide)")
    return (p - center) * (MESH_RADIUS / radius)


class MeshRenderer:
    """The mesh as flat device arrays, ready to render any number of views."""

    def __init__(self, mesh: Mesh, up: str = "y"):
        dev = backend.current().device
        rot = UP_AXES[up] if up in UP_AXES else None
        positions = normalise(mesh, up)
        faces = mesh.faces
        f = len(faces)
        # Per-corner UVs; -1e9 marks faces without texture coordinates.
        corner_uv = np.full((f, 3, 2), -1e9)
        has_uv = (mesh.face_uvs >= 0).all(axis=1) & (len(mesh.uvs) > 0)
        corner_uv[has_uv] = mesh.uvs[mesh.face_uvs[has_uv]]
        # Per-corner normals: the file's (turned like the positions), else the face normal.
        tri = positions[faces]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        face_n /= np.maximum(np.linalg.norm(face_n, axis=1, keepdims=True), 1e-20)
        corner_normal = np.repeat(face_n[:, None], 3, axis=1)
        has_n = (mesh.face_normals >= 0).all(axis=1) & (len(mesh.normals) > 0)
        if has_n.any():
            corner_normal[has_n] = (mesh.normals @ rot.T)[mesh.face_normals[has_n]]
        colors = mesh.vertex_colors if mesh.vertex_colors is not None else np.ones((len(positions), 3))
        # All textures in one flat atlas; per material (offset, width, height), width 0 = none.
        kd, tex, chunks, offset = [], [], [], 0
        for m in mesh.materials:
            kd.append(m.kd)
            if m.texture is not None:
                h, w = m.texture.shape[:2]
                tex.append((offset, w, h))
                chunks.append(m.texture.reshape(-1))
                offset += m.texture.size
            else:
                tex.append((0, 0, 0))
        atlas = np.concatenate(chunks) if chunks else np.zeros(3)

        def put(a, dtype=torch.float32):
            return torch.as_tensor(np.ascontiguousarray(a)).to(device=dev, dtype=dtype)

        self.positions, self.faces = put(positions), put(faces, torch.int32)
        self.corner_uv, self.corner_normal = put(corner_uv), put(corner_normal)
        self.face_mat, self.vertex_color = put(mesh.face_materials, torch.int32), put(colors)
        self.mat_kd, self.mat_tex, self.atlas = put(np.asarray(kd)), put(np.asarray(tex), torch.int32), put(atlas)
        self.device = dev

    def render(self, poses: torch.Tensor, width: int, height: int, fx: float, fy: float, cx: float, cy: float,
               supersample: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """(rgba uint8 (N, H, W, 4) straight alpha, depth float32 (N, H, W), 0 where empty)."""
        if supersample < 1 or supersample % 2 == 0:
            raise ValueError("supersample must be odd (its centre subsample gives the depth)")
        s = supersample
        c2w = poses.to(device=self.device, dtype=torch.float32).contiguous()
        w2c = torch.linalg.inv(c2w.double()).float().contiguous()
        n, hs, ws = c2w.shape[0], height * s, width * s
        intr = (fx * s, fy * s, cx * s, cy * s)
        zbuf = torch.full((n, hs, ws), EMPTY, dtype=torch.int64, device=self.device)
        _raster_kernel(self.positions, self.faces, w2c, *intr, zbuf)
        rgba = torch.empty((n, hs, ws, 4), device=self.device)
        depth = torch.empty((n, hs, ws), device=self.device)
        _shade_kernel(zbuf, self.positions, self.faces, self.corner_uv, self.corner_normal, self.face_mat,
                      self.vertex_color, self.mat_kd, self.mat_tex, self.atlas, c2w, *intr, rgba, depth)
        # Box filter: average premultiplied colour and coverage, then back to straight alpha.
        blocks = rgba.view(n, height, s, width, s, 4)
        alpha = blocks[..., 3].mean(dim=(2, 4))
        premult = (blocks[..., :3] * blocks[..., 3:]).mean(dim=(2, 4))
        rgb = premult / alpha.clamp_min(1e-8)[..., None]
        out = torch.cat([rgb, alpha[..., None]], dim=-1)
        rgba8 = (out.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
        centre = depth[:, s // 2::s, s // 2::s].contiguous()
        return rgba8.cpu(), centre.cpu()


def write_mesh_dataset(obj_path, out_dir, views: int = 40, size: int = 128, val_views: int = 8, test_views: int = 8,
                       supersample: int = 3, up: str = "y", full_sphere: bool = False, seed: int = 0,
                       progress: bool = True) -> tuple[Path, list[str]]:
    """Render train/val/test views of the mesh into the Blender layout; returns the folder and
    any warnings from reading the mesh. Rendered beside out_dir first (capture/partial.py): an
    interrupted render leaves out_dir as it was."""
    from tqdm.auto import tqdm

    views, size = number_at_least("views", views, 1), number_at_least("size", size, 8)
    val_views, test_views = number_at_least("val_views", val_views, 0), number_at_least("test_views", test_views, 0)
    earlier = refuse_foreign_dataset(out_dir)
    most = max(views, val_views, test_views)
    check_dataset_render(size, most, str(backend.current().device), per_pixel=RENDER_BYTES * supersample**2,
                         at_once=min(most, VIEWS_PER_BATCH), what=f" at --supersample {supersample}")
    mesh = read_obj(obj_path)
    renderer = MeshRenderer(mesh, up)
    out = Path(out_dir)
    focal = focal_from_fov(size, CAMERA_ANGLE_X)
    extra = {"near": NEAR, "far": FAR, "aabb": [list(SCENE_AABB[:3]), list(SCENE_AABB[3:])],
             "scene": f"mesh {Path(obj_path).name}"}
    plan = [(name, count, s) for name, count, s in
            (("train", views, seed), ("val", val_views, seed + 1000), ("test", test_views, seed + 2000)) if count > 0]
    bar = tqdm(total=sum(c for _, c, _ in plan), desc="rendering mesh", unit="view", disable=not progress)
    try:
        with built_beside(out) as tmp:
            for name, count, split_seed in plan:
                poses = sphere_poses(count, CAMERA_RADIUS, upper_only=not full_sphere, seed=split_seed)
                rgbas, depths = [], []
                for start in range(0, count, VIEWS_PER_BATCH):
                    rgba, depth = renderer.render(poses[start:start + VIEWS_PER_BATCH], size, size, focal, focal,
                                                  0.5 * size, 0.5 * size, supersample)
                    rgbas.append(rgba)
                    depths.append(depth)
                    bar.update(rgba.shape[0])
                write_split(tmp, name, torch.cat(rgbas).numpy(), poses.numpy(), CAMERA_ANGLE_X,
                            depth=torch.cat(depths).numpy(), extra=extra)
            swap_in_render(tmp, out, earlier)
    finally:
        bar.close()
    return out, mesh.warnings
