"""Camera maths of the GUI: an upright orbit around a pivot point (plain numpy, no window).

The camera is stored as orbit parameters (pivot, distance, azimuth, elevation about the
scene's up axis), so every motion keeps the horizon level. Snapping to a training camera
keeps that camera's exact pose and intrinsics until the user moves again.
"""
import math

import numpy as np

from ..rendering.scene import MAX_ELEVATION, opening_angles
from ..stages import cameras

MIN_RADIUS_FRACTION, MAX_RADIUS_FRACTION = 0.3, 3.0  # zoom limits, relative to the scene's orbit radius


def orbit_basis(up) -> tuple[np.ndarray, np.ndarray]:
    """Two horizontal axes (a, b) perpendicular to ``up``; built like
    :func:`taichi_nerf.stages.cameras.orbit_poses`, so azimuth 0 is where the orbit video starts."""
    return cameras.axis_basis(up)[1:]


class OrbitCamera:
    """Upright orbit camera. Angles in radians; ``version`` grows with every change so
    the app can tell that the view moved."""

    def __init__(self, center, up, radius: float, elevation: float, fov_x: float, aspect: float,
                 azimuth: float = 0.0, min_radius: float | None = None, max_radius: float | None = None):
        self.up = cameras.unit(up)
        self.axis_a, self.axis_b = orbit_basis(self.up)
        self.fov_x, self.aspect = float(fov_x), float(aspect)
        self.min_radius = MIN_RADIUS_FRACTION * radius if min_radius is None else min_radius
        self.max_radius = MAX_RADIUS_FRACTION * radius if max_radius is None else max_radius
        self.home = (np.asarray(center, dtype=np.float64).copy(), float(radius), float(azimuth), float(elevation))
        self.version = 0
        self.snapped_index: int | None = None  # training camera we sit exactly on, if any
        self._exact_pose: np.ndarray | None = None
        self._exact_intrinsics: tuple[np.ndarray, int, int] | None = None  # row, width, height
        self.reset()

    @classmethod
    def from_scene(cls, scene) -> "OrbitCamera":
        azimuth, elevation = opening_angles(scene)
        return cls(scene.center, scene.up, scene.orbit_radius, elevation, scene.fov_x, scene.aspect, azimuth=azimuth)

    # --- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        center, self.radius, self.azimuth, self.elevation = self.home
        self.center = center.copy()
        self._leave_snap()
        self.version += 1

    @property
    def eye(self) -> np.ndarray:
        if self._exact_pose is not None:
            return self._exact_pose[:3, 3].copy()
        ce = math.cos(self.elevation)
        horizontal = math.cos(self.azimuth) * self.axis_a + math.sin(self.azimuth) * self.axis_b
        return self.center + self.radius * (ce * horizontal + math.sin(self.elevation) * self.up)

    def pose(self) -> np.ndarray:
        """(4, 4) camera-to-world, OpenGL convention like the rest of the project."""
        if self._exact_pose is not None:
            return self._exact_pose.copy()
        return cameras.look_at(self.eye, self.center, self.up).double().numpy()

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """(8,) pinhole row for a ``width`` x ``height`` render of this view."""
        if self._exact_intrinsics is not None:
            row, train_w, train_h = self._exact_intrinsics
            sx, sy = width / train_w, height / train_h
            return np.array([row[0] * sx, row[1] * sy, row[2] * sx, row[3] * sy, *row[4:8]], dtype=np.float64)
        f = cameras.focal_from_fov(width, self.fov_x)
        return np.array([f, f, width / 2.0, height / 2.0, 0.0, 0.0, 0.0, 0.0])

    # --- motions -------------------------------------------------------------------------
    def orbit(self, d_azimuth: float, d_elevation: float) -> None:
        self._leave_snap()
        self.azimuth = math.remainder(self.azimuth + d_azimuth, 2.0 * math.pi)
        self.elevation = float(np.clip(self.elevation + d_elevation, -MAX_ELEVATION, MAX_ELEVATION))
        self.version += 1

    def pan(self, dx: float, dy: float) -> None:
        """Drag the scene by (dx, dy) view widths/heights: the pivot moves the other way,
        scaled so that the point at the pivot's depth follows the cursor."""
        pose = self.pose()
        self._leave_snap()
        half_w = self.radius * math.tan(0.5 * self.fov_x)
        half_h = half_w / self.aspect
        self.center = self.center - pose[:3, 0] * (2.0 * half_w * dx) - pose[:3, 1] * (2.0 * half_h * dy)
        self.version += 1

    def move(self, forward: float, right: float, up: float) -> None:
        """Fly eye and pivot together; distances in units of the orbit radius."""
        pose = self.pose()
        self._leave_snap()
        step = self.radius * (-pose[:3, 2] * forward + pose[:3, 0] * right + pose[:3, 1] * up)
        self.center = self.center + step
        self.version += 1

    def zoom(self, factor: float) -> None:
        """Multiply the distance to the pivot by ``factor`` (< 1 moves closer), clamped."""
        self._leave_snap()
        self.radius = float(np.clip(self.radius * factor, self.min_radius, self.max_radius))
        self.version += 1

    def set_radius(self, radius: float) -> None:
        self.zoom(radius / self.radius)

    # --- training cameras ----------------------------------------------------------------
    def snap_to(self, pose, intrinsics_row, width: int, height: int, index: int | None = None) -> None:
        """Sit exactly on a training camera. The orbit parameters are set to the same view
        (pivot on the view axis, level with the scene centre) so the next drag continues
        smoothly from here."""
        pose = np.asarray(pose, dtype=np.float64)
        eye, forward = pose[:3, 3], -pose[:3, 2]
        depth = float(np.dot(self.home[0] - eye, forward))
        if depth < 1e-3:  # looking away from the scene: pivot at the usual distance
            depth = self.home[1]
        self.center = eye + forward * depth
        self.radius = depth
        offset = -forward
        self.elevation = math.asin(float(np.clip(np.dot(offset, self.up), -1.0, 1.0)))
        self.azimuth = math.atan2(float(np.dot(offset, self.axis_b)), float(np.dot(offset, self.axis_a)))
        self._exact_pose = pose.copy()
        self._exact_intrinsics = (np.asarray(intrinsics_row, dtype=np.float64).copy(), int(width), int(height))
        self.snapped_index = index
        self.version += 1

    def nearest(self, poses) -> int:
        """Index of the training camera whose viewing direction is closest to ours."""
        poses = np.asarray(poses, dtype=np.float64)
        ours = -self.pose()[:3, 2]
        theirs = -poses[:, :3, 2]
        # Prefer cameras that also look from a similar place: direction first, position second.
        score = theirs @ ours - 0.01 * np.linalg.norm(poses[:, :3, 3] - self.eye, axis=1)
        return int(np.argmax(score))

    def _leave_snap(self) -> None:
        if self._exact_pose is not None:
            # Continue from where the exact pose was, minus any roll (the orbit is upright).
            self._exact_pose = None
            self._exact_intrinsics = None
        self.snapped_index = None

    def describe(self) -> dict:
        return {"center": [round(float(v), 4) for v in self.center], "radius": round(self.radius, 4),
                "azimuth_deg": round(math.degrees(self.azimuth), 3),
                "elevation_deg": round(math.degrees(self.elevation), 3),
                "snapped": self.snapped_index, "version": self.version}
