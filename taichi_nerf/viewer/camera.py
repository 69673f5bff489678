"""The browser's camera in this project's convention (plain numpy; no viser needed here).

viser reports a camera as OpenCV axes (x right, y down, z forward) by a rotation ``wxyz``
(a unit quaternion, camera to world) and a ``position``, with a vertical field of view in
radians and the canvas's size. This project's poses are OpenGL camera-to-world matrices
(x right, y up, looking down -z: stages/cameras.py) and pinhole rows (fx, fy, cx, cy, k1, k2, p1,
p2) in pixels, pixel centres at +0.5. So the rotation's y and z columns flip, and a
``width`` x ``height`` render has fy = (height / 2) / tan(fov / 2), square pixels, the
principal point at the centre.
"""
import math
from dataclasses import dataclass

import numpy as np

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])  # flips camera y (down -> up) and z (forward -> backward)


def quaternion_to_matrix(wxyz) -> np.ndarray:
    """(3, 3) rotation of a quaternion (w, x, y, z); normalised first."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def matrix_to_quaternion(rotation) -> np.ndarray:
    """(w, x, y, z) with w >= 0 of a (3, 3) rotation, from its largest diagonal term (stable
    for every rotation, half-turns included)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > max(m[0, 0], m[1, 1], m[2, 2]):
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1e-300, 1.0 + m[i, i] - m[j, j] - m[k, k]))
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i], q[1 + j], q[1 + k] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return (q if q[0] >= 0 else -q) / np.linalg.norm(q)


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
    return 2.0 * math.atan(0.5 * height / float(intrinsics_row[1]))


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
        focal = 0.5 * height / math.tan(0.5 * self.fov_y)
        return np.array([focal, focal, width / 2.0, height / 2.0, 0.0, 0.0, 0.0, 0.0])
