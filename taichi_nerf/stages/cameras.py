"""Camera stage: poses (look-at, orbits, sphere layouts) and the ray-generation kernels.

Poses are camera-to-world 4x4 in the OpenGL/Blender convention (camera looks down -z,
+y up). Ray directions are unit length.
"""

import math

import numpy as np
import taichi as ti
import torch

from ..backend import autodiff_leaf, serial_loop


def unit(v) -> np.ndarray:
    """Vectors (..., 3) scaled to unit length along the last axis, as float64 numpy; a zero
    vector stays zero instead of becoming NaN."""
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """Camera-to-world pose (4, 4) looking from ``eye`` at ``target``."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    up = torch.as_tensor(up, dtype=torch.float64)
    back = eye - target
    back = back / back.norm()
    right = torch.linalg.cross(up, back)
    if right.norm() < 1e-8:  # looking straight along up: use the axis least aligned with the view
        axis = torch.zeros(3, dtype=torch.float64)
        axis[int(back.abs().argmin())] = 1.0
        right = torch.linalg.cross(axis, back)
    right = right / right.norm()
    true_up = torch.linalg.cross(back, right)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, back, eye
    return pose.float()


def axis_basis(up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(up, a, b), float64: ``up`` made unit and two unit axes across it, a = up x (x, or y where up
    is near x) and b = up x a. Azimuth 0 (along a) is where the orbit video starts; the GUI's orbit,
    the default video's choice and the camera paths measure their angles in this basis."""
    up = unit(up)
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) <= 0.9 else np.array([0.0, 1.0, 0.0])
    a = unit(np.cross(up, helper))
    return up, a, np.cross(up, a)


def orbit_poses(
    frames: int,
    radius: float,
    elevation_deg: float = 30.0,
    center=(0.0, 0.0, 0.0),
    up=(0.0, 0.0, 1.0),
    start_deg: float = 0.0,
) -> torch.Tensor:
    """(frames, 4, 4) poses on a circle around ``center`` about the ``up`` axis."""
    up_t, a, b = (torch.from_numpy(v) for v in axis_basis(up))
    c = torch.as_tensor(center, dtype=torch.float64)
    el = math.radians(elevation_deg)
    poses = []
    for k in range(frames):
        az = math.radians(start_deg) + 2.0 * math.pi * k / frames
        offset = radius * (math.cos(el) * (math.cos(az) * a + math.sin(az) * b) + math.sin(el) * up_t)
        poses.append(look_at(c + offset, c, up_t))
    return torch.stack(poses)


def sphere_poses(count: int, radius: float, *, upper_only: bool = True, seed: int = 0, center=(0.0, 0.0,
                                                                                               0.0)) -> torch.Tensor:
    """(count, 4, 4) poses spread evenly (Fibonacci lattice, randomly rotated by ``seed``)
    over the sphere or its upper half (z up), all looking at ``center``."""
    gen = torch.Generator().manual_seed(seed)
    phase = float(torch.rand((), generator=gen)) * 2.0 * math.pi
    golden = math.pi * (3.0 - math.sqrt(5.0))
    c = torch.as_tensor(center, dtype=torch.float64)
    poses = []
    for i in range(count):
        u = (i + 0.5) / count
        z = (0.05 + 0.9 * u) if upper_only else (1.0 - 2.0 * u)  # keep clear of the pole and horizon
        r = math.sqrt(max(0.0, 1.0 - z * z))
        az = phase + golden * i
        eye = c + radius * torch.tensor([r * math.cos(az), r * math.sin(az), z], dtype=torch.float64)
        poses.append(look_at(eye, c))
    return torch.stack(poses)


def median_neighbour_spacing(centres: np.ndarray, same_place: float = 0.0, rows: int = 1024):
    """The median distance from each camera centre (N, 3) to its nearest other one further than
    ``same_place`` (a tripod's turns, a paused video's repeated frames share a place), computed in blocks of
    ``rows`` cameras (a video's thousands of frames: no N x N array); None where no camera has such a neighbour."""
    nearest = []
    for start in range(0, len(centres), rows):
        gaps = np.linalg.norm(centres[start:start + rows, None] - centres[None], axis=-1)
        gaps[gaps <= same_place] = np.inf  # itself, and cameras at its place
        nearest.append(gaps.min(axis=1))
    nearest = np.concatenate(nearest) if nearest else np.empty(0)
    nearest = nearest[np.isfinite(nearest)]
    return float(np.median(nearest)) if len(nearest) else None


def strided_pixels(width: int, height: int, stride: int) -> torch.Tensor:
    """(K,) int64 row-major indices of every ``stride``-th row and column, starting half a stride
    in (so the kept pixels sit centred in the image)."""
    rows = torch.arange(stride // 2, height, stride)
    cols = torch.arange(stride // 2, width, stride)
    return (rows[:, None] * width + cols[None, :]).reshape(-1)


def focal_from_fov(width: int, fov_x_rad: float) -> float:
    """Focal length in pixels for a field of view (radians) across ``width`` pixels (a height and a
    vertical field of view give fy)."""
    return 0.5 * width / math.tan(0.5 * fov_x_rad)


def fov_from_focal(width: float, focal: float) -> float:
    """Field of view (radians) across ``width`` pixels for a focal length in pixels: focal_from_fov's inverse."""
    return 2.0 * math.atan(0.5 * width / focal)


# --- ray generation kernels -------------------------------------------------------------

@ti.func
def undistort(xd: ti.f32, yd: ti.f32, k1: ti.f32, k2: ti.f32, p1: ti.f32, p2: ti.f32):
    """Invert OpenCV radial-tangential distortion by fixed-point iteration (image y down)."""
    x, y = xd, yd
    for _ in range(12):
        r2 = x * x + y * y
        radial = 1.0 + k1 * r2 + k2 * r2 * r2
        dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return x, y


@ti.func
def _pixel_ray(pose: ti.template(), intr: ti.template(), cam: ti.i32, px: ti.f32, py: ti.f32,
               origins: ti.template(), dirs: ti.template(), r: ti.i32):
    fx, fy, cx, cy = intr[cam, 0], intr[cam, 1], intr[cam, 2], intr[cam, 3]
    x = (px - cx) / fx
    y = (py - cy) / fy
    if intr[cam, 4] != 0.0 or intr[cam, 5] != 0.0 or intr[cam, 6] != 0.0 or intr[cam, 7] != 0.0:
        x, y = undistort(x, y, intr[cam, 4], intr[cam, 5], intr[cam, 6], intr[cam, 7])
    # OpenGL camera: image y grows downwards, camera y upwards; the camera looks down -z.
    d = ti.Vector([0.0, 0.0, 0.0])
    for k in ti.static(range(3)):
        d[k] = pose[cam, k, 0] * x - pose[cam, k, 1] * y - pose[cam, k, 2]
    d = d.normalized()
    for k in ti.static(range(3)):
        origins[r, k] = pose[cam, k, 3]
        dirs[r, k] = d[k]


@ti.kernel
def _batch_rays_kernel(poses: ti.types.ndarray(), intr: ti.types.ndarray(), image_index: ti.types.ndarray(),
                       pixel_index: ti.types.ndarray(), width: ti.i32,
                       origins: ti.types.ndarray(), dirs: ti.types.ndarray()):
    for r in range(pixel_index.shape[0]):
        p = pixel_index[r]
        _pixel_ray(poses, intr, image_index[r], ti.f32(p % width) + 0.5, ti.f32(p // width) + 0.5, origins, dirs, r)


@ti.kernel
def _image_rays_kernel(poses: ti.types.ndarray(), intr: ti.types.ndarray(), camera: ti.i32, width: ti.i32,
                       first_pixel: ti.i32, origins: ti.types.ndarray(), dirs: ti.types.ndarray()):
    for r in range(origins.shape[0]):
        p = first_pixel + r
        _pixel_ray(poses, intr, camera, ti.f32(p % width) + 0.5, ti.f32(p // width) + 0.5, origins, dirs, r)


@ti.func
def _gather_pixel(rgba: ti.template(), img, y, x, background: ti.template(), r, target_rgb: ti.template(),
                  target_alpha: ti.template()):
    a = ti.f32(rgba[img, y, x, 3]) / 255.0
    b = r if background.shape[0] > 1 else 0
    for c in ti.static(range(3)):
        # Straight alpha composited on the (per-ray) background, as the renderer does.
        target_rgb[r, c] = ti.f32(rgba[img, y, x, c]) / 255.0 * a + (1.0 - a) * background[b, c]
    target_alpha[r] = a


@ti.kernel
def _training_rays_kernel(poses: ti.types.ndarray(), intr: ti.types.ndarray(), rgba: ti.types.ndarray(),
                          image_index: ti.types.ndarray(), pixel_index: ti.types.ndarray(),
                          background: ti.types.ndarray(), origins: ti.types.ndarray(), dirs: ti.types.ndarray(),
                          target_rgb: ti.types.ndarray(), target_alpha: ti.types.ndarray(),
                          serial: ti.template()):
    # One launch for the rays and their targets: on the CPU a launch costs ~100 us before any
    # work (CONTRIBUTING.md), more than this kernel's work at a training batch's size.
    width = rgba.shape[2]
    ti.loop_config(serialize=serial)
    for r in range(pixel_index.shape[0]):
        img, p = image_index[r], pixel_index[r]
        y, x = p // width, p % width
        _pixel_ray(poses, intr, img, ti.f32(x) + 0.5, ti.f32(y) + 0.5, origins, dirs, r)
        _gather_pixel(rgba, img, y, x, background, r, target_rgb, target_alpha)


def _check_cameras(poses: torch.Tensor, intrinsics: torch.Tensor) -> None:
    """The kernels index these without bounds checks (Taichi's release mode): a (N, 4) intrinsics
    tensor would make them read its neighbours in memory as distortion, silently."""
    if poses.dim() != 3 or tuple(poses.shape[1:]) not in ((4, 4), (3, 4)):
        raise ValueError(f"poses must be (cameras, 4, 4) or (cameras, 3, 4), got {tuple(poses.shape)}")
    if intrinsics.dim() != 2 or intrinsics.shape[1] != 8 or intrinsics.shape[0] != poses.shape[0]:
        raise ValueError(f"intrinsics must be (cameras, 8): fx, fy, cx, cy, k1, k2, p1, p2 for each of the "
                         f"{poses.shape[0]} poses; got {tuple(intrinsics.shape)}")


def batch_rays(poses: torch.Tensor, intrinsics: torch.Tensor, image_index: torch.Tensor,
               pixel_index: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through arbitrary (image, pixel) pairs: the Monte Carlo batches of training."""
    _check_cameras(poses, intrinsics)
    n = pixel_index.shape[0]
    origins = torch.empty(n, 3, device=pixel_index.device)
    dirs = torch.empty(n, 3, device=pixel_index.device)
    if n:
        _batch_rays_kernel(poses, intrinsics, image_index, pixel_index, width, origins, dirs)
    return origins, dirs


def image_rays(poses: torch.Tensor, intrinsics: torch.Tensor, camera: int, width: int,
               first_pixel: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays for ``count`` consecutive pixels (row-major) of one camera: chunks of a render."""
    _check_cameras(poses, intrinsics)
    if not 0 <= camera < poses.shape[0]:  # (read past the poses' end: an image of NaN, or another tensor's numbers)
        raise IndexError(f"camera {camera} is not one of the {poses.shape[0]} poses (0 to {poses.shape[0] - 1})")
    origins = torch.empty(count, 3, device=poses.device)
    dirs = torch.empty(count, 3, device=poses.device)
    if count:
        _image_rays_kernel(poses, intrinsics, camera, width, first_pixel, origins, dirs)
    return origins, dirs


def training_rays(poses: torch.Tensor, intrinsics: torch.Tensor, rgba: torch.Tensor, image_index: torch.Tensor,
                  pixel_index: torch.Tensor, background: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch: the rays through (image, pixel) pairs of ``rgba`` (images, H, W, 4 uint8)
    and their targets, composited on ``background`` ((1, 3) or per ray (N, 3)): (origins, dirs,
    target colours, alphas)."""
    _check_cameras(poses, intrinsics)
    n, dev = pixel_index.shape[0], pixel_index.device
    origins, dirs, rgb = (torch.empty(n, 3, device=dev) for _ in range(3))
    alpha = torch.empty(n, device=dev)
    if n:
        _training_rays_kernel(poses, intrinsics, rgba, image_index, pixel_index, background.contiguous(), origins,
                              dirs, rgb, alpha, serial_loop(n))
    return origins, dirs, rgb, alpha


# --- normalised device coordinates (forward-facing scenes) -------------------------------

@ti.kernel
def _ndc_rays_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), focal: ti.f32, width: ti.f32,
                     height: ti.f32, near: ti.f32, out_origins: ti.types.ndarray(), out_dirs: ti.types.ndarray()):
    for r in range(origins.shape[0]):  # nothing outside the loop: Taichi's kernel.grad needs one loop alone
        ax = -2.0 * focal / width
        ay = -2.0 * focal / height
        # Each value is assigned once (no d.z = ...): Taichi's reverse pass warns about, and
        # can misread, locals that are overwritten in place.
        dz = ti.min(dirs[r, 2], -1e-6)  # a ray not heading into the scene (-z) has no NDC image
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dz])
        # Move the origin onto the near plane z = -near first, so t = 0 is the near plane.
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        o = o + (-(near + origins[r, 2]) / dz) * d
        out_origins[r, 0] = ax * o.x / o.z
        out_origins[r, 1] = ay * o.y / o.z
        out_origins[r, 2] = 1.0 + 2.0 * near / o.z
        out_dirs[r, 0] = ax * (d.x / dz - o.x / o.z)
        out_dirs[r, 1] = ay * (d.y / dz - o.y / o.z)
        out_dirs[r, 2] = -2.0 * near / o.z


def ndc_rays(origins: torch.Tensor, dirs: torch.Tensor, scene, near: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of a forward-facing scene in normalised device coordinates (NeRF's appendix C).

    World space is the re-centred LLFF frame (cameras look down -z); the NDC frustum is the
    training camera's (``scene.ndc_focal``, ``ndc_width``, ``ndc_height``) from the plane
    z = -``near`` to infinity, mapped to the cube [-1, 1]^3. Returned directions are not unit:
    t in [0, 1] runs from the near plane (z = -1) to infinity (z = 1). Differentiable (Taichi's
    ``kernel.grad``) where the rays need gradients: pose refinement.
    """
    frustum = (float(scene.ndc_focal), float(scene.ndc_width), float(scene.ndc_height), float(near))
    if torch.is_grad_enabled() and (origins.requires_grad or dirs.requires_grad):
        return _NdcRays.apply(origins, dirs, frustum)
    return _ndc(origins.detach().contiguous(), dirs.detach().contiguous(), frustum)


def ndc_to_world(points: torch.Tensor, scene, near: float = 1.0) -> torch.Tensor:
    """The world points of NDC points: the inverse of :func:`ndc_rays`' map (z' = 1 + 2 near / z,
    x' = -2 f / W * x / z, y' likewise), for points in front of the near plane (z' < 1)."""
    ax = -2.0 * float(scene.ndc_focal) / float(scene.ndc_width)
    ay = -2.0 * float(scene.ndc_focal) / float(scene.ndc_height)
    z = 2.0 * near / (points[:, 2] - 1.0).clamp(max=-1e-6)
    return torch.stack([points[:, 0] * z / ax, points[:, 1] * z / ay, z], 1)


def _ndc(origins: torch.Tensor, dirs: torch.Tensor, frustum: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    out_o = torch.empty(origins.shape[0], 3, device=origins.device)
    out_d = torch.empty(origins.shape[0], 3, device=origins.device)
    if origins.shape[0]:
        _ndc_rays_kernel(origins, dirs, *frustum, out_o, out_d)
    return out_o, out_d


class _NdcRays(torch.autograd.Function):
    @staticmethod
    def forward(ctx, origins, dirs, frustum):
        origins, dirs = origins.detach().contiguous(), dirs.detach().contiguous()  # Taichi attaches .grad otherwise
        ctx.save_for_backward(origins, dirs)
        ctx.frustum = frustum
        return _ndc(origins, dirs, frustum)

    @staticmethod
    def backward(ctx, g_origins, g_dirs):
        origins, dirs = ctx.saved_tensors
        o_in, d_in = autodiff_leaf(origins), autodiff_leaf(dirs)
        out_o, out_d = autodiff_leaf(origins, g_origins), autodiff_leaf(dirs, g_dirs)  # kernel.grad reads, zeroes
        if origins.shape[0]:
            _ndc_rays_kernel.grad(o_in, d_in, *ctx.frustum, out_o, out_d)
        return o_in.grad, d_in.grad, None
