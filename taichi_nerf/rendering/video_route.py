"""Which video suits a capture, judged from its training cameras when the scene is made.

* forward-facing captures: the spiral in front of the cameras;
* cameras that surround the object (no gap wider than SURROUND_MAX_GAP_DEG between their
  directions around the up axis): the full orbit;
* anything else (a partial arc, a hand-held sweep): a smooth path through the training
  cameras, from one end of their arc to the other and back, so that no frame looks from
  where no camera ever looked.

The choice, its reason and the keyframes of the path are saved in the scene (so in every
checkpoint): rendering the default video needs no dataset. Plain numpy: rendering/scene.py calls it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config_checks import positive_number

SURROUND_MAX_GAP_DEG = 90.0  # widest gap between neighbouring camera directions of a surround capture
MAX_KEYFRAMES = 16  # training cameras the arc path passes through (evenly spread along it)
MIN_OFF_AXIS = 0.05  # cameras closer to the up axis than this share of their distance have no azimuth
# The file each default video is written to (with _depth.mp4 and .gif beside it): named after
# its path, as ``taichi-nerf render --spiral`` / ``--path`` name theirs.
VIDEO_FILES = {"orbit": "orbit.mp4", "spiral": "spiral.mp4", "train": "path.mp4"}
DEFAULT_FRAMES, DEFAULT_SIZE, DEFAULT_FPS = 60, 200, 24  # a video's, unless the caller says (train, render)
# The slowest a video plays: a GIF keeps each frame's delay in hundredths of a second, and Pillow writes at most
# 32767 of them (--fps 0.001 died in its writer with "OverflowError: int too big to convert", after every frame
# was rendered). 0.01 fps, a frame every 100 s, is well inside.
MIN_FPS = 0.01
VIDEO_FORMATS = (".mp4", ".gif")  # what a video is written as (an mp4 gets a gif beside it)
TRAINED_WIDTHS = (100, 400)  # a trained field's video: as wide as its photos, within these (render time; legibility)


def check_fps(value, name: str = "fps") -> float:
    """``value`` as a video's frame rate, or a ValueError naming ``name``: a number of at least MIN_FPS."""
    fps = positive_number(name, value)
    if fps < MIN_FPS:
        raise ValueError(f"{name} must be at least {MIN_FPS:g} (a frame every {1 / MIN_FPS:g} s), got {fps:g}")
    return fps


def trained_video_width(scene) -> int:
    """The width of a trained field's videos (train's at the end, render's by default): its
    training images', within TRAINED_WIDTHS, so that ``render`` redraws what ``train`` wrote;
    DEFAULT_SIZE for a scene that does not know its images (built by hand)."""
    low, high = TRAINED_WIDTHS
    return min(high, max(scene.image_width, low)) if scene.image_width > 0 else DEFAULT_SIZE


def video_kind(scene) -> str:
    """"orbit", "spiral" or "train": the default video of ``scene`` (rendering/scene.py); checkpoints
    from before the choice was saved get the spiral when forward-facing, else the orbit."""
    if scene.video_path:
        return scene.video_path
    return "spiral" if scene.forward_facing and len(scene.path_pose) == 16 else "orbit"


def video_files(out, gif: bool = True, depth: bool = True) -> list[Path]:
    """What a video written to ``out`` consists of, in order: ``out``, ``<stem>_depth`` beside it
    (``depth``), and a ``.gif`` beside an mp4 (``gif``)."""
    out = Path(out)
    files = [out] + ([out.with_name(out.stem + "_depth" + out.suffix)] if depth else [])
    return files + ([out.with_suffix(".gif")] if gif and out.suffix.lower() != ".gif" else [])


def camera_azimuths(poses, centre, up) -> np.ndarray:
    """(N,) directions of the camera centres around the ``up`` axis through ``centre``, in
    degrees [0, 360); NaN for cameras (nearly) on the axis."""
    from ..stages.cameras import axis_basis  # here: the CLI imports this module's constants before taichi

    p = np.asarray(poses, dtype=np.float64)
    up, a, b = axis_basis(up)
    rel = p[:, :3, 3] - np.asarray(centre, dtype=np.float64)
    along = rel @ up
    flat = rel - along[:, None] * up
    off_axis = np.linalg.norm(flat, axis=1)
    az = np.degrees(np.arctan2(flat @ b, flat @ a)) % 360.0
    return np.where(off_axis > MIN_OFF_AXIS * np.linalg.norm(rel, axis=1), az, np.nan)


def largest_gap(azimuths: np.ndarray) -> tuple[float, float]:
    """(width, start) in degrees of the widest empty sector between camera directions; the
    sector runs from ``start`` counter-clockwise. (360, 0) with fewer than two directions."""
    az = np.sort(azimuths[np.isfinite(azimuths)])
    if len(az) < 2:
        return 360.0, 0.0
    gaps = np.diff(np.concatenate([az, az[:1] + 360.0]))
    k = int(np.argmax(gaps))
    return float(gaps[k]), float(az[k])


def arc_order(poses, centre, up) -> np.ndarray:
    """Indices of the cameras from one end of their arc to the other: by azimuth, starting
    just after the widest gap (so the path never crosses it). Cameras on the axis last."""
    az = camera_azimuths(poses, centre, up)
    gap, start = largest_gap(az)
    along = (az - (start + gap)) % 360.0
    return np.argsort(np.where(np.isfinite(along), along, 1e9), kind="stable")


def choose_video(poses, centre, up, forward_facing: bool) -> dict:
    """Scene fields of the default video: ``video_path`` ("spiral", "orbit" or "train"),
    ``video_reason`` (one line) and ``video_keyframes`` (the "train" path's cameras in arc
    order, each a row-major 4x4 flattened)."""
    if forward_facing:
        return {"video_path": "spiral", "video_reason": "forward-facing capture: a spiral in front of the cameras",
                "video_keyframes": []}
    p = np.asarray(poses, dtype=np.float64)
    gap, _ = largest_gap(camera_azimuths(p, centre, up))
    if gap <= SURROUND_MAX_GAP_DEG:
        return {"video_path": "orbit", "video_reason": f"the cameras surround the object: the widest gap between "
                                                      f"them is {gap:.0f} deg, at most {SURROUND_MAX_GAP_DEG:.0f}",
                "video_keyframes": []}
    order = arc_order(p, centre, up)
    if len(order) > MAX_KEYFRAMES:
        order = order[np.round(np.linspace(0, len(order) - 1, MAX_KEYFRAMES)).astype(int)]
    if math.isclose(gap, 360.0):
        why = "the cameras stand near the object's axis, not around it"
    else:
        why = (f"the cameras cover {360.0 - gap:.0f} deg around the object, a gap of {gap:.0f} deg > "
               f"{SURROUND_MAX_GAP_DEG:.0f}")
    return {"video_path": "train",
            "video_reason": f"{why}: an orbit would look from where no camera did, so a path through the training "
                            "cameras, there and back",
            "video_keyframes": [[float(v) for v in p[i].reshape(-1)] for i in order]}
