"""What users make from a trained checkpoint, on top of the renderer: per-view PNGs of a
split (``render --split``, written by :func:`taichi_nerf.api.evaluate`), camera-path videos
(``render --path/--spiral``), meshes and point clouds (``export``)."""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import torch

from ..config_checks import number_at_least
from ..files import check_writable_file, write_png
from ..rendering.backgrounds import scene_background
from ..rendering.video_route import (
    DEFAULT_FPS,
    DEFAULT_FRAMES,
    VIDEO_FORMATS,
    check_fps,
    trained_video_width,
    video_files,
)
from ..runs import checkpoint
from ..runs.datasets import run_dataset
from ..runs.rank_env import rank_zero_only
from ..wording import flag_or_keyword
from . import mesh_checks
from .depth_view import depth_colors

ORBIT_VIEWS, ORBIT_WIDTH = 24, 160  # `export points --views orbit`


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
    write_png(folder / files["rgb"], rgb)
    if depth:
        files["depth"] = f"{stem}_depth.png"
        write_png(folder / files["depth"], depth_colors(view["depth"], view["opacity"], scene))
    if compare:
        files["compare"] = f"{stem}_compare.png"
        write_png(folder / files["compare"], torch.cat([rgb, target.cpu().clamp(0, 1)], dim=1))
    return files


def _training_poses(cfg, progress: bool, data=None, ckpt=None):
    return run_dataset(cfg, data, source=checkpoint.find_checkpoint(ckpt) if ckpt is not None else None,
                       progress=progress).split("train")


def render_path(ckpt, out="path.mp4", path=None, spiral: bool = False, frames: int | None = None,
                size: int | None = None, fps: float | None = None, arch: str = "auto",
                progress: bool = True, data=None, note=print, appearance_image: int | None = None) -> list[Path]:
    """A video along a camera path: ``path`` a nerfstudio ``camera_path.json`` or a
    transforms-style pose list (one frame per camera unless ``frames`` says), camera-to-world
    matrices ((N, 4, 4) numpy or torch, in the run's frame, with the training cameras' field of
    view), or "train" (a loop through the training cameras); ``spiral``: the forward-facing
    spiral; neither: the video that suits the capture (outputs/default_video.py). mp4 + depth mp4
    + gif, over the scene's background. ``data``: where the training dataset is now, when a path
    needs its cameras and it has moved. ``note`` is told what was chosen or filled in (which
    default video and why; a camera path's missing field of view). ``appearance_image``: that training image's look
    (appearance code) instead of the mean."""
    rank_zero_only("render_path")
    from . import camera_path as cp
    from .default_video import write_default_video
    from .video import write_path

    # (0 used to mean the default)
    frames = None if frames is None else number_at_least("frames", frames, 1)
    size = None if size is None else number_at_least("size", size, 8)
    # any rate a GIF can hold, as a camera path file's "fps" and the CLI's --fps take (0.5: a slide show)
    fps = None if fps is None else check_fps(fps)
    if Path(out).suffix.lower() not in VIDEO_FORMATS:  # the CLI says it of --out; the API of out
        raise ValueError(f"{out}: a video is written as .mp4 (+ depth .mp4 + .gif) or .gif; name it so")
    for file in video_files(out):  # before minutes of rendering, not after
        check_writable_file(file)
    renderer, cfg, _ = checkpoint.load(ckpt, arch, appearance_image)
    scene, bg = renderer.scene, scene_background(renderer.scene, cfg)
    width = size or trained_video_width(scene)
    if path is None and not spiral:  # the video that suits the capture (api.render_orbit too)
        return write_default_video(renderer, Path(out), frames or DEFAULT_FRAMES, width,
                                   fps or DEFAULT_FPS, progress, bg, note)
    if spiral:
        needs_cameras = not (scene.forward_facing and len(scene.path_pose) == 16)
        train = _training_poses(cfg, progress, data, ckpt).poses if needs_cameras else None
        route = cp.spiral_path(scene, frames or DEFAULT_FRAMES, width, train)
    elif isinstance(path, (str, os.PathLike)) and str(path) == "train":
        route = cp.train_path(_training_poses(cfg, progress, data, ckpt).poses, scene, frames or DEFAULT_FRAMES,
                              width)
    else:
        route = cp.load_camera_path(path, scene, size)
        if not isinstance(path, (str, os.PathLike)):  # matrices: named, not printed, in what follows
            path = "poses"
        for line in route.notes:
            note(line)
        if not cp.cameras_seeing_the_scene(route, scene):
            note(f"warning: {path}: no camera of the path has the scene in its picture, so the video will show "
                 f"only the background; paths are read in the run's frame (for LLFF captures and COLMAP models, "
                 f"the loader's rescaled and re-centred one: docs/OUTPUTS.md)")
        if frames:
            route = cp.with_frames(route, frames)
    if route.width < 8:
        raise ValueError(f"{path}: the video would be {route.width} pixels wide; need at least 8: set "
                         f"{flag_or_keyword('--size', 'size=')}")
    return write_path(renderer, Path(out), route.poses, route.intrinsics, route.width, route.height,
                      fps=fps or route.fps or DEFAULT_FPS, progress=progress, background=bg)


def export_mesh(ckpt, out="mesh.ply", resolution: int = 256, threshold="auto", arch: str = "auto",
                progress: bool = True):
    """Marching-cubes mesh of the field (taichi_nerf/outputs/export.py), written as PLY or OBJ;
    returns (path, export.MeshResult); its ``warnings`` say when the mesh is the box."""
    rank_zero_only("export_mesh")
    from . import export

    export.check_geometry_file(out)  # (the CLI checks its flags first, in their words)
    resolution, threshold = export.check_resolution(resolution), export.check_threshold(threshold)
    try:
        import skimage.measure  # noqa: F401
    except ImportError:
        raise export.ExportError("mesh export needs scikit-image: pip install 'taichi-nerf[export]'") from None
    check_writable_file(out)  # before the density grid and marching cubes, not after
    renderer, cfg, state = checkpoint.load(ckpt, arch)
    mesh = export.extract_mesh(renderer, scene_background(renderer.scene, cfg), resolution, threshold, progress)
    mesh.warnings[:0] = mesh_checks.step_warning(state.get("step"))
    return export.write_geometry(out, mesh.vertices, mesh.colors, mesh.faces), mesh


def check_points_views(views, data, views_name: str = "views", data_name: str = "data") -> None:
    """export_points' ``views`` and ``data``, named as the caller spells them (the CLI: --views, --data)."""
    from .export import ExportError

    train = f"{views_name} train" if views_name.startswith("--") else f"{views_name}='train'"
    if views not in ("train", "orbit"):
        raise ExportError(f"{views_name} must be 'train' or 'orbit', got {views!r}")
    if views == "orbit" and data is not None:  # said, not ignored: the user meant some cameras
        raise ExportError(f"{data_name} picks the cameras of {train}; an orbit needs no dataset (drop {data_name}, "
                          f"or use {train})")


def export_points(ckpt, out="points.ply", views: str = "train", max_points: int | None = None, arch: str = "auto",
                  progress: bool = True, data=None, orbit_views: int = ORBIT_VIEWS, orbit_size: int = ORBIT_WIDTH):
    """Coloured surface points seen from the training cameras or an orbit (``orbit_views``
    views ``orbit_size`` pixels wide), written as PLY (or OBJ); returns (path, number of points)."""
    rank_zero_only("export_points")
    from ..rendering.scene import orbit_cameras
    from . import export

    export.check_geometry_file(out)  # (the CLI checks its flags first, in their words)
    check_points_views(views, data)
    # numbers before anything loads: max_points="5" was a comparison's TypeError, orbit_views=0 torch.stack's
    max_points = None if max_points is None else number_at_least("max_points", max_points, 1)
    orbit_views = number_at_least("orbit_views", orbit_views, 1)
    orbit_size = number_at_least("orbit_size", orbit_size, 8)
    check_writable_file(out)  # before rendering every view, not after
    renderer, cfg, state = checkpoint.load(ckpt, arch)
    if views == "train":
        train = _training_poses(cfg, progress, data, ckpt)
        poses, intr, w, h = train.poses, train.intrinsics, train.width, train.height
    else:
        poses, intr, w, h = orbit_cameras(renderer.scene, orbit_views, orbit_size)
    try:
        points, colors = export.extract_points(renderer, scene_background(renderer.scene, cfg), poses, intr, w, h,
                                               max_points, progress=progress)
    except export.NothingOpaque as exc:  # how far the run trained, and how it trains on
        if state.get("step") is None:
            raise
        run = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
        step = state["step"]
        raise export.NothingOpaque(exc.views, exc.min_opacity,
                                   f"its checkpoint is at step {step}: train it longer first (taichi-nerf "
                                   f"train --resume {shlex.quote(str(run))} --steps N, N over {step})") from None
    return export.write_geometry(out, points, colors), len(points)
