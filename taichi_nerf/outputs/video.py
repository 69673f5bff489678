"""Videos of a trained field: mp4 (imageio-ffmpeg) and gif, colour and depth.

:class:`VideoRecorder` renders the orbit, or any camera path (``cameras=``), a frame, or a
band of rows of a frame, at a time: :func:`write_orbit` and :func:`write_path` run it to the
end in one go, the GUI a band per window frame.
"""
from __future__ import annotations

import dataclasses
import errno
import io
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import torch

from .. import resources
from ..files import naming, remove_dead_partials
from ..interrupts import held_signals
from ..rendering.renderer import Renderer, renderer_seen_from
from ..rendering.scene import at_distance, orbit_cameras
from ..rendering.video_route import DEFAULT_FPS, DEFAULT_FRAMES, DEFAULT_SIZE, video_files
from .depth_view import depth_colors


class VideoRecorder:
    """A video being rendered: :meth:`advance` renders the next rows of the current frame,
    :meth:`write` writes ``out`` (mp4 or gif), ``<stem>_depth`` beside it and a ``.gif``
    beside an mp4. ``rgb`` holds the frame in progress (rows below ``row`` are done).
    ``cameras``: (poses (N, 4, 4), intrinsics (N, 8), width, height) of any path (then
    ``frames`` and ``width`` are taken from it); default: the scene's orbit."""

    def __init__(self, renderer: Renderer, out: Path, frames: int, width: int, height: int | None = None,
                 background=(1.0, 1.0, 1.0), fps: float = DEFAULT_FPS, elevation_deg: float | None = None,
                 samples_per_ray: int | None = None, cameras=None):
        if cameras is not None:
            poses, intrinsics, width, height = cameras
            frames = int(poses.shape[0])
        if frames < 1 or width < 8:
            raise ValueError("need at least 1 frame and a width of at least 8 pixels")
        self.renderer, self.out, self.fps, self.samples_per_ray = renderer, Path(out), fps, samples_per_ray
        self.background = torch.as_tensor(background, dtype=torch.float32).reshape(1, 3)
        if cameras is None:
            poses, intrinsics, width, height = orbit_cameras(renderer.scene, frames, width, height, elevation_deg)
        self.poses, self.intrinsics = poses.float(), intrinsics.float()
        self.width, self.height = int(width), int(height)
        self.frames = frames
        # Colour every frame's depth on one scale (frames agree), centred on the path's distance
        # from the object: a path further out than the orbit was all one colour (or black).
        distance = float((self.poses[:, :3, 3].double() - torch.tensor(renderer.scene.center).double()).norm(dim=1)
                         .mean())
        moved = at_distance(renderer.scene, distance)
        self.depth_scene = moved if moved is renderer.scene else dataclasses.replace(moved, orbit_radius=distance)
        resources.check_orbit(self.width, self.height, frames,
                              str(renderer.device))  # every frame is kept until written
        self.frame, self.row = 0, 0
        self.rgb = torch.zeros(self.height, self.width, 3)
        self.depth = torch.zeros(self.height, self.width)
        self.opacity = torch.zeros(self.height, self.width)
        self.rgb_frames: list[np.ndarray] = []  # finished frames, uint8
        self.depth_frames: list[np.ndarray] = []  # finished frames' colour-mapped depth, uint8

    @property
    def done(self) -> bool:
        return self.frame >= self.frames

    def advance(self, rows: int | None = None) -> None:
        """Render the next ``rows`` rows of the current frame (None: the rest of it)."""
        if self.done:
            return
        rows = self.height - self.row if rows is None else max(1, min(int(rows), self.height - self.row))
        # near/far follow the camera, as in the window: a path further out than the training cameras
        # rendered only the background; widened only, so a path through them renders as they trained
        renderer = renderer_seen_from(self.renderer, self.poses[self.frame, :3, 3].tolist(), widen=True)
        out = renderer.render_pixels(self.poses, self.intrinsics, self.frame, self.width, self.row * self.width,
                                     rows * self.width, self.background, samples_per_ray=self.samples_per_ray)
        band = slice(self.row, self.row + rows)
        self.rgb[band] = out["rgb"].view(rows, self.width, 3).cpu()
        self.depth[band] = out["depth"].view(rows, self.width).cpu()
        self.opacity[band] = out["opacity"].view(rows, self.width).cpu()
        self.row += rows
        if self.row >= self.height:
            self.rgb_frames.append((self.rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
            self.depth_frames.append(depth_colors(self.depth, self.opacity, self.depth_scene))
            self.frame, self.row = self.frame + 1, 0

    def write(self, gif: bool = True, depth: bool = True) -> list[Path]:
        """The video files, one set (:func:`write_videos`); a Ctrl-C (or SIGTERM) while they are written
        waits until all are: one between them left this render's mp4s beside an earlier render's gif."""
        rgb = np.stack(self.rgb_frames)
        files = video_files(self.out, gif, depth)
        frames = [rgb, np.stack(self.depth_frames)] if depth else [rgb]
        frames += [rgb] * (len(files) - len(frames))  # the gif beside an mp4
        with held_signals():
            return write_videos(list(zip(files, frames)), self.fps)


def _record(recorder: VideoRecorder, progress: bool) -> None:
    from tqdm.auto import tqdm

    for _ in tqdm(range(recorder.frames), disable=not progress, unit="frame", desc="rendering video"):
        recorder.advance()


MIN_GIF_DELAY_CS = 2  # a gif frame's shortest delay, hundredths of a second: 50 fps at most


def write_video(path: Path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> Path:
    """Write the video ``path`` (mp4 or gif) of ``frames``, whole or not at all."""
    return write_videos([(path, frames)], fps)[0]


def write_videos(videos: list[tuple[Path, np.ndarray]], fps: float = DEFAULT_FPS) -> list[Path]:
    """Write each (path, frames) as one set: every file is encoded beside its path first, and only once all
    are whole are they renamed into place. A full disk at the gif left this render's mp4s beside an earlier
    render's gif; now it leaves the earlier set as it was."""
    encoded: list[tuple[Path, Path]] = []  # (partial, path)
    try:
        for path, frames in videos:
            path = Path(path)
            encoded.append((encode_partial(path, frames, fps), path))
        for partial, path in encoded:
            try:
                os.replace(partial, path)
            except OSError as exc:
                raise naming(exc, path, partial) from exc
    finally:
        for partial, _ in encoded:
            partial.unlink(missing_ok=True)
    return [path for _, path in encoded]


def encode_partial(path: Path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> Path:
    """Encode ``frames`` into the hidden file beside ``path`` that :func:`write_videos` renames over it, and
    return it; a write that fails (a full disk) leaves no partial file and names ``path``."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(path)  # what a killed render of this video left beside it
    # Written beside it, then renamed: a Ctrl-C or a full disk mid-write leaves the earlier video (or
    # none), never a truncated one. The suffix stays last: imageio picks the format by it.
    partial = path.with_name(f".{path.stem}.partial{os.getpid()}{path.suffix}")
    try:
        if path.suffix.lower() == ".gif":
            # GIF keeps a frame's duration in hundredths of a second: rounded here, not silently by Pillow;
            # at least 2 of them, as browsers play a delay of 0 or 1 at 10 (--fps 100 was 10 fps).
            # Encoded in memory: a failed write to disk inside imageio said itself again, as a traceback, at exit.
            gif = io.BytesIO()
            imageio.mimsave(gif, list(frames), format="GIF",
                            duration=10.0 * max(MIN_GIF_DELAY_CS, round(100.0 / fps)), loop=0)
            partial.write_bytes(gif.getvalue())
        else:
            # yuv420p, which every player plays (QuickTime, Safari, phones and Firefox refuse H.264 4:4:4),
            # needs even sides: an odd side gets one copied edge row or column (macro_block_size=1: not
            # resized to a multiple of 16).
            with imageio.get_writer(partial, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                    ffmpeg_log_level="error", pixelformat="yuv420p") as w:
                for f in frames:
                    w.append_data(even_sides(f))
            if not mp4_whole(partial):  # imageio-ffmpeg never looks at ffmpeg's exit status
                full = shutil.disk_usage(partial.parent).free < (1 << 20)
                raise OSError(errno.ENOSPC if full else errno.EIO, "ffmpeg could not write the video"
                              + (" (no space left on device)" if full else ""), str(path))
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming(exc, path, partial) from exc
        raise
    return partial


def mp4_whole(path: Path) -> bool:
    """Whether the mp4 at ``path`` is whole: its top-level boxes run to its end and one is the index
    (``moov``, which ffmpeg writes last). An ffmpeg that failed (a full disk) leaves none of it, or part."""
    size, at, kinds = os.path.getsize(path), 0, set()
    with open(path, "rb") as f:
        while at < size:
            f.seek(at)
            head = f.read(16)
            if len(head) < 8:
                return False
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:  # a 64-bit size follows
                length = struct.unpack(">Q", head[8:])[0]
            elif length == 0:  # runs to the end of the file
                length = size - at
            if length < 8 or at + length > size:
                return False
            kinds.add(kind)
            at += length
    return b"moov" in kinds


def even_sides(frame: np.ndarray) -> np.ndarray:
    """``frame`` (H, W, C) with its last row and/or column repeated where H or W is odd."""
    pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2)) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(frame, pad, mode="edge") if any(p[1] for p in pad) else frame


def write_orbit(renderer: Renderer, out: Path, frames: int = DEFAULT_FRAMES, width: int = DEFAULT_SIZE,
                fps: float = DEFAULT_FPS, gif: bool = True, depth: bool = True, progress: bool = True,
                background=(1.0, 1.0, 1.0)) -> list[Path]:
    """Write ``out`` (mp4 or gif), plus ``<stem>_depth`` and a ``.gif`` beside an mp4."""
    recorder = VideoRecorder(renderer, out, frames, width, background=background, fps=fps)
    _record(recorder, progress)
    return recorder.write(gif, depth)


def write_path(renderer: Renderer, out: Path, poses: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int,
               fps: float = DEFAULT_FPS, gif: bool = True, depth: bool = True, progress: bool = True,
               background=(1.0, 1.0, 1.0)) -> list[Path]:
    """A video along any camera path (taichi_nerf/outputs/camera_path.py): one frame per pose."""
    recorder = VideoRecorder(renderer, out, 0, width, background=background, fps=fps,
                             cameras=(poses, intrinsics, width, height))
    _record(recorder, progress)
    return recorder.write(gif, depth)
