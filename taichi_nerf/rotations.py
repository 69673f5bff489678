"""Rotations in float64 numpy, one home for every layer: quaternions (w, x, y, z), axis-angle
vectors, the angle between two rotations, and the camera-axis flip between OpenCV (y down,
looking down +z) and this project's OpenGL convention (y up, looking down -z; stages/cameras.py).
The differentiable torch axis-angle of pose refinement (training/pose_refinement.py) is apart:
it carries gradients, these do not."""
import math

import numpy as np

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])  # flips camera y (down -> up) and z (forward -> backward)
# Largest |R^T R - I| entry a camera's 3x3 part may have: JSON rounded to 4 decimals passes, a
# 0.5% scale or a shear (a distorted frame) does not.
ROTATION_TOLERANCE = 5e-3


def quaternion_to_matrix(wxyz) -> np.ndarray:
    """(..., 3, 3) rotations of quaternions (..., 4) as (w, x, y, z); each normalised first."""
    q = np.asarray(wxyz, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


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


def nearest_rotation(matrix) -> np.ndarray:
    """The rotation closest to a (3, 3) matrix (its polar factor; a mirrored frame is turned back
    into a rotation): what a hand-edited or rounded camera matrix was meant to be."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    if np.linalg.det(u @ vt) < 0:
        return u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return u @ vt


def rotation_deviation(matrix) -> float:
    """The largest entry of |R^T R - I|: 0 for a rotation (or a mirror), above ROTATION_TOLERANCE for a
    matrix that would distort a camera's picture (a scale, an uneven scale, a shear)."""
    m = np.asarray(matrix, dtype=np.float64)
    return float(np.abs(m.T @ m - np.eye(3)).max())


def axis_angle_to_matrix(axis_angle) -> np.ndarray:
    """(3, 3) rotation by ``|v|`` radians about ``v / |v|`` (Rodrigues)."""
    v = np.asarray(axis_angle, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-15:
        return np.eye(3)
    k = v / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1.0 - math.cos(angle)) * cross @ cross


def rotation_onto_z(up) -> np.ndarray:
    """(3, 3) the smallest rotation taking unit vector ``up`` to +z."""
    up = np.asarray(up, dtype=np.float64)
    axis = np.cross(up, [0.0, 0.0, 1.0])
    s, c = float(np.linalg.norm(axis)), float(up[2])
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return axis_angle_to_matrix(axis / s * math.atan2(s, c))


def angle_between_deg(a, b) -> np.ndarray:
    """(N,) degrees of the rotation taking each of ``a`` (N, 3, 3) to ``b`` (N, 3, 3)."""
    relative = np.einsum("nji,njk->nik", np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos))
