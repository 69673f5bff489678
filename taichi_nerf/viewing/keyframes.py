"""Keyframes of a camera path set in the window: K adds the current view, BackSpace removes
the last, V renders the path through them. The path (camera_path.resample: a spline on the
positions, slerp on the rotations) is saved as a nerfstudio ``camera_path.json`` in the run
folder, one entry per video frame, and the video is rendered from that file as
``taichi-nerf render --path`` reads it, so ``taichi-nerf render --ckpt RUN --path
RUN/camera_path.json`` renders the same frames."""
import json
import math
import os
from pathlib import Path

import numpy as np

from ..files import first_unused, write_text_atomic
from ..outputs import camera_path
from ..runs.run_folder import CAMERA_PATH
from ..stages.cameras import fov_from_focal

MIN_KEYFRAMES = 2  # a path needs somewhere to go


class Keyframes:
    """The views added so far: camera-to-world poses and vertical fields of view."""

    def __init__(self, scene):
        self.scene = scene
        self.poses: list[np.ndarray] = []
        self.fov_deg: list[float] = []
        # width / height of the view the first keyframe was framed in (a browser's canvas; the window shows the
        # scene's): the path's frames keep it, so what was framed is what the video shows
        self.aspect: float | None = None
        self.kept: Path | None = None  # where an earlier session's camera_path.json went (save)
        self._saved = False  # this session wrote camera_path.json: it is this session's to rewrite

    def __len__(self) -> int:
        return len(self.poses)

    def add(self, camera, width: int, height: int) -> None:
        """The camera's view as a ``width`` x ``height`` frame sees it."""
        fy = float(camera.intrinsics(width, height)[1])
        if not self.poses:
            self.aspect = width / height
        self.poses.append(np.asarray(camera.pose(), dtype=np.float64).copy())
        self.fov_deg.append(math.degrees(fov_from_focal(height, fy)))

    def remove_last(self) -> bool:
        if not self.poses:
            return False
        self.poses.pop()
        self.fov_deg.pop()
        if not self.poses:
            self.aspect = None
        return True

    def path_poses(self, frames: int) -> np.ndarray:
        """(frames, 4, 4) along the path, first and last frame on the first and last keyframe.
        Around an object the spline runs on the distance to its centre and the direction from
        it (like the ``train`` path), so a path between orbit views keeps their distance."""
        centre = None if (self.scene.forward_facing or self.scene.ndc) else self.scene.center
        return camera_path.resample(np.stack(self.poses), frames, closed=False, centre=centre).double().numpy()

    def to_json(self, frames: int, width: int, height: int, fps: float) -> dict:
        """nerfstudio's camera_path.json: ``camera_path`` holds every frame (what ``render
        --path`` reads, one frame per entry); ``keyframes`` the views they pass through."""
        fov = self.fov_deg[0]  # one field of view for the whole path
        aspect = width / height

        def entry(pose, fov_deg):
            return {"camera_to_world": [float(v) for v in np.asarray(pose).reshape(-1)], "fov": float(fov_deg),
                    "aspect": aspect}

        return {"camera_type": "perspective", "render_width": int(width), "render_height": int(height),
                "fps": float(fps), "seconds": frames / float(fps), "is_cycle": False, "smoothness_value": 0.5,
                "keyframes": [entry(p, f) for p, f in zip(self.poses, self.fov_deg)],
                "camera_path": [entry(p, fov) for p in self.path_poses(frames)]}

    def save(self, out_dir: Path, frames: int, width: int, height: int, fps: float) -> Path | None:
        """Write (or with no keyframes left, remove) ``out_dir/camera_path.json``. An earlier session's file
        there is kept first, as ``camera_path_1.json`` (or the next number free): ``kept`` says where."""
        path = Path(out_dir) / CAMERA_PATH
        if not self._saved and path.exists():  # the first K of a new session rewrote the last session's path
            self.kept = first_unused(lambda n: path.with_name(f"{path.stem}_{n + 1}{path.suffix}"))
            os.replace(path, self.kept)
        self._saved = True
        if not self.poses:
            path.unlink(missing_ok=True)
            return None
        # a render reading it never sees half a file
        return write_text_atomic(path, json.dumps(self.to_json(frames, width, height, fps), indent=1))

    def load_path(self, path: Path) -> camera_path.CameraPath:
        """The saved file as ``render --path`` reads it."""
        return camera_path.load_camera_path(path, self.scene)
