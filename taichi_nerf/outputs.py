"""What users make from a trained checkpoint, on top of the renderer: per-view PNGs of a
split (``render --split``, written by :func:`taichi_nerf.api.evaluate`), camera-path videos
(``render --path/--spiral``), meshes and point clouds (``export``)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .backgrounds import scene_background
from .depth_view import depth_colors

DEFAULT_FRAMES, DEFAULT_SIZE, DEFAULT_FPS = 60, 200, 24
ORBIT_VIEWS, ORBIT_WIDTH = 24, 160  # `export points --views orbit`


def _png(path: Path, image) -> None:
    from PIL import Image

    a = image.numpy() if isinstance(image, torch.Tensor) else image
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(a).save(path)


def view_stem(index: int, name: str) -> str:
    """File name stem of a split's view: its index (unique, sorts) and its name's stem."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(name)).stem).strip("._") or "view"
    return f"{index:03d}_{stem}"


def write_view(folder, index: int, name: str, view: dict, target: torch.Tensor, scene, depth: bool = False,
               compare: bool = False) -> dict:
    """Write one rendered view (``Renderer.render_image``'s dict) as PNGs; returns the file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = view_stem(index, name)
    rgb = view["rgb"].cpu().clamp(0, 1)
    files = {"rgb": f"{stem}.png"}
    _png(folder / files["rgb"], rgb)
    if depth:
        files["depth"] = f"{stem}_depth.png"
        _png(folder / files["depth"], depth_colors(view["depth"], view["opacity"], scene))
    if compare:
        files["compare"] = f"{stem}_compare.png"
        _png(folder / files["compare"], torch.cat([rgb, target.cpu().clamp(0, 1)], dim=1))
    return files


def write_json(path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
    return path


def _training_poses(cfg, progress: bool, data=None, ckpt=None):
    from .data.loaders import load_dataset

    if data is None and ckpt is not None:  # a moved dataset: say that --data gives its new place
        checkpoint.require_stored_data(cfg, checkpoint.find_checkpoint(ckpt))
    dataset = load_dataset(data if data is not None else cfg.data, **cfg.replace(progress=progress).dataset_options())
    return dataset.split("train")


def render_path(ckpt, out="path.mp4", path=None, spiral: bool = False, frames: int | None = None,
                size: int | None = None, fps: float | None = None, arch: str = "auto",
                progress: bool = True, data=None, say=None) -> list[Path]:
    """A video along a camera path: ``path`` a nerfstudio ``camera_path.json`` or a
    transforms-style pose list (one frame per camera unless ``frames`` says), or "train" (a
    loop through the training cameras); ``spiral``: the forward-facing spiral; neither: the
    video that suits the capture (default_video.py; ``say`` is told which and why). mp4 +
    depth mp4 + gif, over the scene's background. ``data``: where the training dataset is
    now, when a path needs its cameras and it has moved."""
    from . import camera_path as cp
    from .default_video import write_default_video
    from .video import write_path

    renderer, cfg, _ = checkpoint.load(ckpt, arch)
    scene, bg = renderer.scene, scene_background(renderer.scene, cfg)
    if path is None and not spiral:
        return write_default_video(renderer, Path(out), frames or DEFAULT_FRAMES, size or DEFAULT_SIZE,
                                   fps or DEFAULT_FPS, progress, bg, say)
    if spiral:
        needs_cameras = not (scene.forward_facing and len(scene.path_pose) == 16)
        train = _training_poses(cfg, progress, data, ckpt).poses if needs_cameras else None
        route = cp.spiral_path(scene, frames or DEFAULT_FRAMES, size or DEFAULT_SIZE, train)
    elif str(path) == "train":
        route = cp.train_path(_training_poses(cfg, progress, data, ckpt).poses, scene, frames or DEFAULT_FRAMES,
                              size or DEFAULT_SIZE)
    else:
        route = cp.load_camera_path(path, scene, size)
        if frames:
            route = cp.with_frames(route, frames)
    if route.width < 8:
        raise ValueError(f"{path}: the video would be {route.width} pixels wide; need at least 8 (set --size)")
    return write_path(renderer, Path(out), route.poses, route.intrinsics, route.width, route.height,
                      fps=fps or route.fps or DEFAULT_FPS, progress=progress, background=bg)


def export_mesh(ckpt, out="mesh.ply", resolution: int = 256, threshold="auto", arch: str = "auto",
                progress: bool = True):
    """Marching-cubes mesh of the field (taichi_nerf/export.py), written as PLY or OBJ;
    returns (path, export.MeshResult)."""
    from . import export

    if Path(out).suffix.lower() not in (".ply", ".obj"):
        raise export.ExportError(f"--out must end in .ply or .obj, got {out}")
    export.check_resolution(resolution)
    try:
        import skimage.measure  # noqa: F401
    except ImportError:
        raise export.ExportError("mesh export needs scikit-image: pip install 'taichi-nerf[export]'") from None
    renderer, cfg, _ = checkpoint.load(ckpt, arch)
    mesh = export.extract_mesh(renderer, scene_background(renderer.scene, cfg), resolution, threshold, progress)
    return export.write_geometry(out, mesh.vertices, mesh.colors, mesh.faces), mesh


def export_points(ckpt, out="points.ply", views: str = "train", max_points: int | None = None, arch: str = "auto",
                  progress: bool = True, data=None, orbit_views: int = ORBIT_VIEWS, orbit_size: int = ORBIT_WIDTH):
    """Coloured surface points seen from the training cameras or an orbit (``orbit_views``
    views ``orbit_size`` pixels wide), written as PLY (or OBJ); returns (path, number of points)."""
    from . import export
    from .scene import orbit_cameras

    if Path(out).suffix.lower() not in (".ply", ".obj"):
        raise export.ExportError(f"--out must end in .ply or .obj, got {out}")
    if views not in ("train", "orbit"):
        raise export.ExportError(f"--views must be train or orbit, got {views}")
    if max_points is not None and max_points < 1:
        raise export.ExportError(f"--max-points must be at least 1, got {max_points}")
    renderer, cfg, _ = checkpoint.load(ckpt, arch)
    export._check_exportable(renderer, "point cloud")
    if views == "train":
        train = _training_poses(cfg, progress, data, ckpt)
        poses, intr, w, h = train.poses, train.intrinsics, train.width, train.height
    else:
        poses, intr, w, h = orbit_cameras(renderer.scene, orbit_views, orbit_size)
    points, colors = export.extract_points(renderer, scene_background(renderer.scene, cfg), poses, intr, w, h,
                                           max_points, progress=progress)
    return export.write_geometry(out, points, colors), len(points)
