"""The video a run gets when nobody names a camera path: the one that suits the capture
(taichi_nerf/rendering/video_route.py decides when the scene is made), with the reason said aloud.
Used by ``taichi-nerf render`` without --path/--spiral and by the video at the end of training."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..rendering.scene import Scene, orbit_cameras
from ..rendering.video_route import DEFAULT_FPS, VIDEO_FILES, video_kind
from .camera_path import CameraPath, resample

OLD_CHECKPOINT = "checkpoint from before the video was chosen from the cameras: the orbit"


def there_and_back(keyframes: torch.Tensor, frames: int, centre) -> torch.Tensor:
    """(frames, 4, 4) poses from the first keyframe to the last along a smooth spline (at the
    cameras' distance from ``centre``) and back again, so the video loops without a jump."""
    # frame k is 2k / frames of the way along and back: every step the same, for an odd count too
    # (the halves of 61 frames made the step where the video loops twice as long)
    forward = resample(keyframes, frames + 1, closed=False, centre=centre)  # 1 / frames of the way apart
    return forward[[min(2 * k, 2 * (frames - k)) for k in range(frames)]]


def default_route(scene: Scene, frames: int, width: int) -> tuple[str, str, CameraPath | None]:
    """(kind, reason, path): the video that suits ``scene``; the path is None for the orbit
    and the spiral, which :class:`~taichi_nerf.outputs.video.VideoRecorder` makes itself."""
    if scene.video_path == "train" and scene.video_keyframes:
        keys = torch.tensor(scene.video_keyframes, dtype=torch.float64).view(-1, 4, 4)
        poses = there_and_back(keys, frames, scene.center)
        _, intr, w, h = orbit_cameras(scene, 1, width)
        return "train", scene.video_reason, CameraPath(poses.float(), intr.repeat(frames, 1), w, h)
    return video_kind(scene), scene.video_reason if scene.video_path else OLD_CHECKPOINT, None


def default_video_name(scene: Scene) -> str:
    """The default video's file name: orbit.mp4, spiral.mp4 or path.mp4 (a path through the
    training cameras), as ``render`` names the video of that path."""
    return VIDEO_FILES[video_kind(scene)]


def checkpoint_video_name(ckpt) -> str:
    """:func:`default_video_name` of the checkpoint ``ckpt``'s scene (orbit.mp4 when its scene does
    not read: loading it then says why)."""
    from ..runs.checkpoint import saved_scene

    scene = saved_scene(ckpt)
    return "orbit.mp4" if scene is None else default_video_name(scene)


def write_default_video(renderer, out: Path, frames: int, width: int, fps: float = DEFAULT_FPS, progress: bool = True,
                        background=(1.0, 1.0, 1.0), say: Callable[[str], None] | None = None) -> list[Path]:
    """Write the default video of ``renderer``'s scene to ``out`` (+ depth, + gif beside an
    mp4), telling ``say`` which path was chosen and why."""
    from .video import write_orbit, write_path

    kind, reason, route = default_route(renderer.scene, frames, width)
    if say is not None:
        say(f"video path: {kind} ({reason})")
    if route is None:
        return write_orbit(renderer, Path(out), frames=frames, width=width, fps=fps, progress=progress,
                           background=background)
    return write_path(renderer, Path(out), route.poses, route.intrinsics, route.width, route.height, fps=fps,
                      progress=progress, background=background)
