"""Orbit videos of a trained field: mp4 (imageio-ffmpeg) and gif, colour and depth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .metrics import colorize
from .rendering import Renderer
from .scene import orbit_cameras


def render_orbit_frames(renderer: Renderer, frames: int, width: int, height: int | None = None,
                        background=(1.0, 1.0, 1.0), elevation_deg: float | None = None,
                        progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(F, H, W, 3) uint8 colour and (F, H, W, 3) uint8 colour-mapped depth."""
    from tqdm.auto import tqdm

    if frames < 1 or width < 8:
        raise ValueError("need at least 1 frame and a width of at least 8 pixels")
    poses, intr, width, height = orbit_cameras(renderer.scene, frames, width, height, elevation_deg)
    bg = torch.tensor([background], dtype=torch.float32)
    rgb_frames, depth_frames = [], []
    for k in tqdm(range(frames), disable=not progress, unit="frame", desc="rendering orbit"):
        out = renderer.render_image(poses, intr, k, width, height, bg)
        rgb_frames.append((out["rgb"].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8))
        depth_frames.append(colorize(out["depth"].cpu().numpy(), out["opacity"].cpu().numpy() > 0.05,
                                     lo=renderer.scene.near, hi=renderer.scene.far))
    return np.stack(rgb_frames), np.stack(depth_frames)


def write_video(path: Path, frames: np.ndarray, fps: int = 24) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
    else:
        # macro_block_size=1: keep odd sizes exact instead of silently resizing to /16.
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                ffmpeg_log_level="error", pixelformat="yuv420p" if _even(frames) else "yuv444p") as w:
            for f in frames:
                w.append_data(f)
    return path


def _even(frames: np.ndarray) -> bool:
    return frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0


def write_orbit(renderer: Renderer, out: Path, frames: int = 60, width: int = 200, fps: int = 24,
                gif: bool = True, depth: bool = True, progress: bool = True) -> list[Path]:
    """Write ``out`` (mp4 or gif), plus ``<stem>_depth`` and a ``.gif`` beside an mp4."""
    out = Path(out)
    rgb, depth_frames = render_orbit_frames(renderer, frames, width, progress=progress)
    written = [write_video(out, rgb, fps)]
    if depth:
        written.append(write_video(out.with_name(out.stem + "_depth" + out.suffix), depth_frames, fps))
    if gif and out.suffix.lower() != ".gif":
        written.append(write_video(out.with_suffix(".gif"), rgb, fps))
    return written
