"""The browser's camera in this project's convention (plain numpy; no viser needed here).

viser reports a camera as OpenCV axes (x right, y down, z forward) by a rotation ``wxyz``
(a unit quaternion, camera to world) and a ``position``, with a vertical field of view in
radians and the canvas's size. This project's poses are OpenGL camera-to-world matrices
(x right, y up, looking down -z: stages/cameras.py) and pinhole rows (fx, fy, cx, cy, k1, k2, p1,
p2) in pixels, pixel centres at +0.5. So the rotation's y and z columns flip, and a
``width`` x ``height`` render has fy = (height / 2) / tan(fov / 2), square pixels, the
principal point at the centre.
"""
from dataclasses import dataclass

import numpy as np

from ..rotations import OPENCV_TO_OPENGL, matrix_to_quaternion, quaternion_to_matrix
from ..stages.cameras import focal_from_fov, fov_from_focal


def opengl_pose(wxyz, position) -> np.ndarray:
    """(4, 4) OpenGL camera-to-world of a viser camera (OpenCV axes)."""
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(wxyz) @ OPENCV_TO_OPENGL
    pose[:3, 3] = np.asarray(position, dtype=np.float64)
    return pose


def viser_pose(pose) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) of an OpenGL camera-to-world, for viser (frustums, setting the camera)."""
    pose = np.asarray(pose, dtype=np.float64)
    return matrix_to_quaternion(pose[:3, :3] @ OPENCV_TO_OPENGL), pose[:3, 3].copy()


def vertical_fov(intrinsics_row, height: int) -> float:
    """Vertical field of view (radians) of a pinhole row for an image ``height`` pixels high."""
    return fov_from_focal(height, float(intrinsics_row[1]))


def render_size(canvas_width: int, canvas_height: int, cap: int) -> tuple[int, int]:
    """The render's size for a browser canvas: its aspect, the longer side at most ``cap``."""
    width, height = max(1, int(canvas_width)), max(1, int(canvas_height))
    scale = min(1.0, cap / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


@dataclass(frozen=True)
class BrowserCamera:
    """A browser's view, with what viewing/view.py and viewing/keyframes.py ask of a camera:
    ``pose()``, ``intrinsics(width, height)`` and ``eye``."""
    pose_gl: np.ndarray  # (4, 4) OpenGL camera-to-world
    fov_y: float  # radians
    aspect: float  # width / height of the canvas

    @classmethod
    def from_viser(cls, wxyz, position, fov: float, width: int, height: int) -> "BrowserCamera":
        return cls(opengl_pose(wxyz, position), float(fov), max(1, int(width)) / max(1, int(height)))

    def pose(self) -> np.ndarray:
        return self.pose_gl.copy()

    @property
    def eye(self) -> np.ndarray:
        return self.pose_gl[:3, 3].copy()

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """(8,) pinhole row for a ``width`` x ``height`` render of this view."""
        focal = focal_from_fov(height, self.fov_y)
        return np.array([focal, focal, width / 2.0, height / 2.0, 0.0, 0.0, 0.0, 0.0])
