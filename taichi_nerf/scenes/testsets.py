"""Test sets with the properties of users' data (issue 8), written by the project's own
renderers into the real on-disk layouts, so every default can be checked on all of them.

``write_testset(name, out_dir, size=..., views=...)`` writes one set and returns the path to
give ``load_dataset`` (a folder, or the ``.npz`` file); ``TESTSETS`` lists them:

========================  =============  ====================================================
name                      layout         what makes it like users' data
========================  =============  ====================================================
``npz-black``             npz            tiny-NeRF/Keras file: RGB float32, no alpha, on black
``npz-white``             npz            the same on white
``blender-wide``          blender        2:1 centred crop of the square cameras (alpha kept)
``blender-portrait``      blender        9:16 portrait, camera_angle_x for the narrow side
``llff-backdrop``         llff           ~20 hand-held forward-facing 4:3 photos (JPEG) of the
                                         objects before a brick wall on a tiled floor: every
                                         pixel is opaque; COLMAP-style arbitrary world frame
``ngp-360-env``           instant-ngp    hand-held 360 walk-around (JPEG, portrait) inside a
                                         far textured dome over textured ground: unbounded,
                                         real OpenCV distortion, some frames unregistered
``cow``                   blender        the cow mesh through ``write_mesh_dataset``
``npz-cow``               npz            the Keras file's layout and count (106) with one
                                         object in the middle, as its lego: the cow on black
``llff-real``             llff           ``llff-backdrop`` with what real photos add
                                         (capture_effects.py): poses off by ~0.5 deg and 1%
                                         of the distance, exposure +-0.5 stop and white
                                         balance per photo, JPEG quality 75, motion blur
``ngp-360-real``          instant-ngp    ``ngp-360-env`` with the same
========================  =============  ====================================================

``size`` is the long side in pixels; ``views`` the training views of the Blender layouts
(plus small val/test splits) and the listed images of the single-list layouts (whose
loaders hold out their own val frames). Every set is deterministic for a given ``seed``.
"""
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..data.blender import write_split
from ..data.dataset import DataError
from ..stages.cameras import focal_from_fov, look_at, sphere_poses, unit
from .capture_effects import REAL_CAPTURE, RECORD_FILE, CaptureEffects, effects_record, noisy_poses, photometric
from .environment import pixel_directions
from .synthetic import CAMERA_ANGLE_X, CAMERA_RADIUS, render_scene

RENDER_BATCH = 8  # views per render call: bounds the float32 frame buffers
SUPERSAMPLE = 2

# llff-backdrop: a phone held in front of the objects, looking along +y at the wall.
LLFF_FOV_X_DEG = 63.5  # the LLFF fern photos' horizontal field of view
LLFF_GRID_CENTRE = (0.0, -3.6, 0.35)
LLFF_TARGET = (0.0, 0.0, -0.15)
LLFF_SPACING = (0.14, 0.10)  # grid step along x and z
LLFF_FIRST_IMAGE = 4026  # IMG_4026.JPG, like the fern scene
# ngp-360-env: a phone walked around the objects, inside the dome.
NGP_FOV_Y_DEG = 60.0
NGP_DISTORTION = (-0.045, 0.012, 0.0006, -0.0004)  # OpenCV k1 k2 p1 p2, a phone main camera
NGP_PRINCIPAL = (0.506, 0.495)  # (cx / w, cy / h): slightly off-centre as COLMAP finds it
NGP_FX_OVER_FY = 1.004
NGP_TARGET = (0.0, 0.0, -0.1)
# nerfstudio's applied_transform for COLMAP data (already part of every pose)
NERFSTUDIO_APPLIED = [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]]


@dataclass(frozen=True)
class Recipe:
    name: str
    layout: str  # the format load_dataset detects
    summary: str
    size: int  # default long side, pixels
    views: int  # default view count (see the module docstring)
    aspect: float  # width / height
    alpha: bool  # alpha is a real silhouette (False: every pixel opaque)
    fills_frame: bool  # an environment is behind the objects in every pixel
    write: Callable
    needs_cow: bool = False  # rendered from the cow mesh in the shared data folder (cow_mesh_path)


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="view", disable=not progress)


def _render(poses: torch.Tensor, width: int, height: int, fx: float, fy: float, cx: float, cy: float, bar,
            render=render_scene, supersample: int = SUPERSAMPLE, **options) -> tuple[np.ndarray, np.ndarray]:
    """Render in batches: (rgba uint8 (N, H, W, 4), depth float32 (N, H, W)); ``render`` is
    the built-in scene's renderer (taking ``options``) or a mesh renderer's ``render``."""
    rgbas, depths = [], []
    for start in range(0, poses.shape[0], RENDER_BATCH):
        rgba, depth = render(poses[start:start + RENDER_BATCH], width, height, fx, fy, cx, cy, supersample, **options)
        rgbas.append(rgba.numpy())
        depths.append(depth.numpy())
        bar.update(rgba.shape[0])
    return np.concatenate(rgbas), np.concatenate(depths)


def _held_out(views: int) -> int:
    return max(2, views // 8)


# --- tiny-NeRF .npz ---------------------------------------------------------------------
def _write_npz(out: Path, size: int, views: int, seed: int, progress: bool, background: float) -> Path:
    """The Keras example's file: images (N, H, W, 3) float32 composited on ``background``,
    poses (N, 4, 4) float32, focal a float64 scalar. The built-in scene's cameras."""
    poses = sphere_poses(views, CAMERA_RADIUS, upper_only=True, seed=seed)
    focal = focal_from_fov(size, CAMERA_ANGLE_X)
    with _bar(views, "npz", progress) as bar:
        rgba, _ = _render(poses, size, size, focal, focal, 0.5 * size, 0.5 * size, bar)
    return _save_npz(out, rgba, poses, focal, background)


def _write_cow_npz(out: Path, size: int, views: int, seed: int, progress: bool) -> Path:
    """The Keras example's file with one object in the middle, as its lego is: the cow on
    black, from the same cameras (radius 4, camera_angle_x of the lego: focal 138.9 at 100 px)."""
    poses = sphere_poses(views, CAMERA_RADIUS, upper_only=True, seed=seed)
    focal = focal_from_fov(size, CAMERA_ANGLE_X)
    with _bar(views, "npz-cow", progress) as bar:
        rgba, _ = _render(poses, size, size, focal, focal, 0.5 * size, 0.5 * size, bar, render=_cow_renderer().render,
                          supersample=3)
    return _save_npz(out, rgba, poses, focal, 0.0)


def _save_npz(out: Path, rgba: np.ndarray, poses: torch.Tensor, focal: float, background: float) -> Path:
    colour = rgba[..., :3].astype(np.float32) / 255.0
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    images = colour * alpha + np.float32(background) * (1.0 - alpha)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tiny_nerf_data.npz"
    np.savez(path, images=images.astype(np.float32), poses=poses.numpy().astype(np.float32),
             focal=np.array(focal, dtype=np.float64))
    return path


# --- Blender layout, non-square ------------------------------------------------------------
def _write_blender(out: Path, width: int, height: int, views: int, seed: int, progress: bool) -> Path:
    """The built-in scene's cameras at ``width`` x ``height``, ``camera_angle_x`` across the
    width, as users' Blender renders are: RGBA PNGs and the standard keys only (no near/far,
    box or depth files, which only our own renders write)."""
    focal = focal_from_fov(width, CAMERA_ANGLE_X)
    plan = [("train", views, seed), ("val", _held_out(views), seed + 1000), ("test", _held_out(views), seed + 2000)]
    with _bar(sum(c for _, c, _ in plan), "blender", progress) as bar:
        for split, count, split_seed in plan:
            poses = sphere_poses(count, CAMERA_RADIUS, upper_only=True, seed=split_seed)
            rgba, _ = _render(poses, width, height, focal, focal, 0.5 * width, 0.5 * height, bar)
            write_split(out, split, rgba, poses.numpy(), CAMERA_ANGLE_X)
    return out


# --- LLFF forward-facing --------------------------------------------------------------------
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _roll(pose: torch.Tensor, angle: float) -> torch.Tensor:
    """Turn the camera about its own viewing axis by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    turn = torch.eye(4, dtype=pose.dtype)
    turn[0, 0], turn[0, 1], turn[1, 0], turn[1, 1] = c, -s, s, c
    return pose @ turn


def llff_poses(views: int, seed: int = 0) -> torch.Tensor:
    """Hand-held forward-facing cameras: a jittered grid in the plane y = -3.6, all looking
    the same way (+y, slightly down) with a degree or two of wobble and roll."""
    rng = np.random.default_rng(seed)
    cols = max(1, round(math.sqrt(views * 4.0 / 3.0)))
    rows = math.ceil(views / cols)
    centre = np.asarray(LLFF_GRID_CENTRE)
    forward = unit(np.asarray(LLFF_TARGET) - centre)
    poses = []
    for k in range(views):
        r, c = divmod(k, cols)
        grid = ((c - 0.5 * (cols - 1)) * LLFF_SPACING[0], 0.0, (0.5 * (rows - 1) - r) * LLFF_SPACING[1])
        eye = centre + np.array(grid)
        eye = eye + rng.normal(0.0, 0.02, 3)
        look = unit(forward + rng.normal(0.0, 0.02, 3))
        poses.append(_roll(look_at(eye, eye + look), float(rng.normal(0.0, math.radians(1.0)))))
    return torch.stack(poses)


def _write_llff(out: Path, size: int, views: int, seed: int, progress: bool,
                effects: CaptureEffects | None = None) -> Path:
    """``images/IMG_XXXX.JPG`` + ``poses_bounds.npy`` as LLFF's imgs2poses writes them from
    COLMAP: world frame arbitrary (a random similarity of ours), per row the 3x5 matrix
    [down, right, back, centre, (h, w, focal)] flattened, then the 0.1 and 99.9 percentiles
    of the z-depths of what that camera sees (COLMAP's points: here the rendered surfaces).
    ``effects``: what real captures add (capture_effects.py), recorded in capture_effects.json."""
    width, height = size, round(size * 3 / 4)
    focal = focal_from_fov(width, math.radians(LLFF_FOV_X_DEG))
    poses = llff_poses(views, seed)
    with _bar(views, "llff", progress) as bar:
        rgba, depth = _render(poses, width, height, focal, focal, 0.5 * width, 0.5 * height, bar,
                              environment="backdrop", texture_seed=seed)
    dirs = pixel_directions(poses, width, height, focal, focal, 0.5 * width, 0.5 * height).double().numpy()
    forward = -poses[:, :3, 2].double().numpy()
    z = depth * np.einsum("nhwk,nk->nhw", dirs, forward)  # ray distance -> depth along the optical axis
    bounds = np.stack([[np.percentile(zi[zi > 0], 0.1), np.percentile(zi[zi > 0], 99.9)] for zi in z])
    # COLMAP's frame: any rotation, scale and origin.
    rng = np.random.default_rng(seed + 7)
    rot, scale, shift = _random_rotation(rng), float(rng.uniform(0.3, 3.0)), rng.normal(0.0, 2.0, 3)

    def file_frame(c2w: np.ndarray) -> np.ndarray:
        framed = np.repeat(np.eye(4)[None], len(c2w), axis=0)
        framed[:, :3, :3] = np.einsum("ij,njk->nik", rot, c2w[:, :3, :3])
        framed[:, :3, 3] = scale * c2w[:, :3, 3] @ rot.T + shift
        return framed

    written, rgb, draws = _apply_effects(poses, rgba[..., :3], LLFF_TARGET, effects, seed)
    framed = file_frame(written.double().numpy())
    axes, centres = framed[:, :3, :3], framed[:, :3, 3]
    hwf = np.broadcast_to(np.array([height, width, focal], dtype=np.float64), (views, 3))
    mats = np.stack([-axes[:, :, 1], axes[:, :, 0], axes[:, :, 2], centres, hwf], axis=2)  # (N, 3, 5)
    rows = np.concatenate([mats.reshape(views, 15), bounds * scale], axis=1)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for stale in (out / "images").glob("IMG_*.JPG"):  # an earlier, larger write: the loader counts files
        stale.unlink()
    names = [f"images/IMG_{LLFF_FIRST_IMAGE + k:04d}.JPG" for k in range(views)]
    for k in range(views):
        Image.fromarray(rgb[k]).save(out / names[k], quality=_jpeg_quality(effects, 95))
    np.save(out / "poses_bounds.npy", rows.astype(np.float64))
    if effects is not None:
        target = scale * np.asarray(LLFF_TARGET) @ rot.T + shift
        record = effects_record(effects, names, file_frame(poses.double().numpy()), framed, draws, target)
        (out / RECORD_FILE).write_text(json.dumps(record, indent=1))
    return out


def _apply_effects(poses: torch.Tensor, rgb: np.ndarray, target, effects: CaptureEffects | None, seed: int):
    """(written poses, photos, per-image draws): the true ones when ``effects`` is None."""
    if effects is None:
        return poses, rgb, None
    rng = np.random.default_rng(seed + 24)
    written = noisy_poses(poses, target, effects, rng)
    rgb, draws = photometric(rgb, effects, rng) if effects.photometric else (rgb, None)
    return written, rgb, draws


def _jpeg_quality(effects: CaptureEffects | None, default: int) -> int:
    return default if effects is None or effects.jpeg_quality is None else int(effects.jpeg_quality)


# --- Instant-NGP / nerfstudio 360 capture ------------------------------------------------------
def ngp_poses(count: int, seed: int = 0) -> torch.Tensor:
    """A walk around the objects holding a phone: one loop, distance 3.2-4.0 and height
    0.2-1.1 drifting, aim and roll wobbling."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    poses = []
    for k in range(count):
        a = phase + 2.0 * math.pi * (k + rng.uniform(-0.3, 0.3)) / count
        r = 3.6 + 0.35 * math.sin(3.0 * a + 1.0) + rng.normal(0.0, 0.05)
        z = 0.65 - 0.45 * math.cos(2.0 * a) + rng.normal(0.0, 0.05)
        eye = np.array([r * math.cos(a), r * math.sin(a), z])
        target = np.asarray(NGP_TARGET) + rng.normal(0.0, 0.12, 3)
        poses.append(_roll(look_at(eye, target), float(rng.normal(0.0, math.radians(2.0)))))
    return torch.stack(poses)


def ngp_intrinsics(size: int) -> dict:
    """Portrait phone camera of long side ``size``: the transforms.json camera keys."""
    width, height = round(size * 3 / 4), size
    fl_y = focal_from_fov(height, math.radians(NGP_FOV_Y_DEG))
    k1, k2, p1, p2 = NGP_DISTORTION
    return {"w": width, "h": height, "fl_x": fl_y * NGP_FX_OVER_FY, "fl_y": fl_y, "cx": NGP_PRINCIPAL[0] * width,
            "cy": NGP_PRINCIPAL[1] * height, "k1": k1, "k2": k2, "p1": p1, "p2": p2}


def _write_ngp(out: Path, size: int, views: int, seed: int, progress: bool,
               effects: CaptureEffects | None = None) -> Path:
    """``images/frame_XXXXX.jpg`` (JPEG quality 90, the distortion in the pixels) and a
    nerfstudio-style ``transforms.json`` (OPENCV camera, global intrinsics). As in real
    captures, some frames COLMAP could not register are on disk but not in the list, and the
    list is in registration order, not file order."""
    dropped = max(2, views // 12)
    total = views + dropped
    cam = ngp_intrinsics(size)
    poses = ngp_poses(total, seed)
    with _bar(total, "instant-ngp", progress) as bar:
        rgba, _ = _render(poses, cam["w"], cam["h"], cam["fl_x"], cam["fl_y"], cam["cx"], cam["cy"], bar,
                          environment="dome", distortion=NGP_DISTORTION, texture_seed=seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = [f"images/frame_{k + 1:05d}.jpg" for k in range(total)]
    true_poses = poses
    poses, rgb, draws = _apply_effects(poses, rgba[..., :3], NGP_TARGET, effects, seed)
    for k in range(total):
        Image.fromarray(rgb[k]).save(out / names[k], quality=_jpeg_quality(effects, 90))
    if effects is not None:
        record = effects_record(effects, names, true_poses.double().numpy(), poses.double().numpy(), draws, NGP_TARGET)
        (out / RECORD_FILE).write_text(json.dumps(record, indent=1))
    rng = np.random.default_rng(seed + 11)
    unregistered = set(rng.choice(np.arange(1, total), size=dropped, replace=False).tolist())
    listed = [k for k in rng.permutation(total).tolist() if k not in unregistered]
    frames = [{"file_path": names[k], "transform_matrix": poses[k].double().numpy().tolist(), "colmap_im_id": k + 1}
              for k in listed]
    # aabb_scale 16, as Instant-NGP's colmap2nerf writes for scenery around a walk-around:
    # the loader must not take its 48-unit cube for the scene box.
    meta = {**cam, "camera_model": "OPENCV", "aabb_scale": 16, "frames": frames,
            "applied_transform": NERFSTUDIO_APPLIED}
    (out / "transforms.json").write_text(json.dumps(meta, indent=2))
    return out


# --- the cow mesh ----------------------------------------------------------------------------
def shared_dir() -> Path:
    """The project's shared data folder: $TAICHI_NERF_SHARED, else ``shared/`` in or next to
    the repository root."""
    if os.environ.get("TAICHI_NERF_SHARED"):
        return Path(os.environ["TAICHI_NERF_SHARED"])
    root = Path(__file__).resolve().parents[2]
    for candidate in (root / "shared", root.parent / "shared"):
        if candidate.is_dir():
            return candidate
    return root.parent / "shared"


def cow_mesh_path() -> Path:
    return shared_dir() / "data" / "cow_mesh" / "cow.obj"


def _existing_cow_mesh() -> Path:
    obj = cow_mesh_path()
    if not obj.is_file():
        raise DataError(f"{obj}: cow mesh not found; set TAICHI_NERF_SHARED to the folder holding data/cow_mesh/")
    return obj


def _cow_renderer():
    from .mesh import MeshRenderer
    from .obj import read_obj

    return MeshRenderer(read_obj(_existing_cow_mesh()), "y")


def _write_cow(out: Path, size: int, views: int, seed: int, progress: bool) -> Path:
    from .mesh import write_mesh_dataset

    path, _ = write_mesh_dataset(_existing_cow_mesh(), out, views=views, size=size, val_views=_held_out(views),
                                 test_views=_held_out(views), seed=seed, progress=progress)
    return path


def render_cow_in(poses: torch.Tensor, width: int, height: int, focal: float, environment: str = "dome",
                  supersample: int = 3) -> np.ndarray:
    """(N, H, W, 3) uint8 photos of the cow standing on the ground of ``environment`` (the
    built-in objects' surroundings without them): the mesh renderer's cow composited over
    the environment by depth, as a capture for ``data from-photos`` (issue 11)."""
    from .environment import FLOOR_Z

    cow_mesh = _cow_renderer()
    lift = FLOOR_Z - float(cow_mesh.positions[cow_mesh.faces.long()][..., 2].min())  # hooves on the ground
    moved = poses.clone().float()
    moved[:, 2, 3] -= lift  # the cameras move down instead of the cow up
    cx, cy = width / 2, height / 2
    cow, cow_depth = cow_mesh.render(moved, width, height, focal, focal, cx, cy, supersample)
    scene, scene_depth = render_scene(poses, width, height, focal, focal, cx, cy, 2, environment=environment,
                                      objects=False)
    alpha = cow[..., 3:].float() / 255.0
    in_front = ((cow_depth < scene_depth) | (scene_depth <= 0) | (cow_depth <= 0))[..., None]  # edges: by alpha
    alpha = torch.where(in_front, alpha, torch.zeros_like(alpha))
    rgb = cow[..., :3].float() * alpha + scene[..., :3].float() * (1.0 - alpha)
    return (rgb + 0.5).clamp(0, 255).to(torch.uint8).numpy()


# --- registry --------------------------------------------------------------------------------
def _portrait_width(size: int) -> int:
    return round(size * 9 / 16)


TESTSETS = {r.name: r for r in (
    Recipe("npz-black", "npz", "tiny-NeRF .npz, RGB on black, no alpha", 100, 40, 1.0, False, False,
           lambda out, size, views, seed, progress: _write_npz(out, size, views, seed, progress, 0.0)),
    Recipe("npz-white", "npz", "tiny-NeRF .npz, RGB on white, no alpha", 100, 40, 1.0, False, False,
           lambda out, size, views, seed, progress: _write_npz(out, size, views, seed, progress, 1.0)),
    Recipe("blender-wide", "blender", "Blender layout, 2:1 centred crop, alpha", 100, 30, 2.0, True, False,
           lambda out, size, views, seed, progress: _write_blender(out, size, size // 2, views, seed, progress)),
    Recipe("blender-portrait", "blender", "Blender layout, 9:16 portrait, alpha", 100, 30, 9 / 16, True, False,
           lambda out, size, views, seed, progress: _write_blender(out, _portrait_width(size), size, views, seed,
                                                                  progress)),
    Recipe("llff-backdrop", "llff", "LLFF forward-facing 4:3 JPEGs, wall + floor fill the frame", 128, 20, 4 / 3,
           False, True, _write_llff),
    Recipe("ngp-360-env", "instant-ngp", "transforms.json 360 walk-around in a far dome, distorted JPEGs", 96, 40,
           3 / 4, False, True, _write_ngp),
    Recipe("cow", "blender", "the cow mesh rendered by write_mesh_dataset, alpha silhouettes", 100, 30, 1.0, True,
           False, _write_cow, needs_cow=True),
    Recipe("npz-cow", "npz", "tiny-NeRF .npz of one object on black, as the Keras lego: the cow", 100, 106, 1.0,
           False, False, _write_cow_npz, needs_cow=True),
    # issue 24: the two real-capture look-alikes with what real captures add (capture_effects.py)
    Recipe("llff-real", "llff", "llff-backdrop with pose error, per-photo exposure/white balance, JPEG q75, "
           "motion blur", 128, 20, 4 / 3, False, True,
           lambda out, size, views, seed, progress: _write_llff(out, size, views, seed, progress, REAL_CAPTURE)),
    Recipe("ngp-360-real", "instant-ngp", "ngp-360-env with pose error, per-photo exposure/white balance, JPEG "
           "q75, motion blur", 96, 40, 3 / 4, False, True,
           lambda out, size, views, seed, progress: _write_ngp(out, size, views, seed, progress, REAL_CAPTURE)),
)}


def write_testset(name: str, out_dir, size: int | None = None, views: int | None = None, progress: bool = False,
                  seed: int = 0) -> Path:
    """Write test set ``name`` into ``out_dir``; returns the path to pass to ``load_dataset``."""
    if name not in TESTSETS:
        raise ValueError(f"unknown test set {name!r} (have: {', '.join(TESTSETS)})")
    recipe = TESTSETS[name]
    size = recipe.size if size is None else int(size)
    views = recipe.views if views is None else int(views)
    if size < 16 or views < 4:
        raise ValueError(f"test set {name}: need size >= 16 and views >= 4, got size {size}, views {views}")
    missing = missing_input(name)
    if missing:
        raise DataError(missing)
    from .. import backend

    backend.current()  # Taichi must be up before the renderers' kernels run
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Path(recipe.write(out, size, views, seed, progress))


def missing_input(name: str) -> str | None:
    """Why test set ``name`` cannot be written here (the cow mesh is not in the shared data folder), or
    None: for a caller writing several to refuse before it writes the first."""
    if TESTSETS[name].needs_cow and not cow_mesh_path().is_file():
        return f"test set {name}: {cow_mesh_path()}: cow mesh not found; set TAICHI_NERF_SHARED to the folder " \
               "holding data/cow_mesh/"
    return None
