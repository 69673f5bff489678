"""taichi_nerf/rotations.py, the one home of rotation maths (quaternions, axis-angle, the angle
between rotations, the nearest rotation), checked by identities between its functions;
the viewer's own quaternion round trip is in test_viewer.py."""
import math

import numpy as np
import pytest

from taichi_nerf.rotations import (
    angle_between_deg,
    axis_angle_to_matrix,
    matrix_to_quaternion,
    nearest_rotation,
    quaternion_to_matrix,
)


def test_quaternions_batch_as_one_at_a_time():
    q = np.random.default_rng(1).normal(size=(3, 5, 4))
    batch = quaternion_to_matrix(q)
    assert batch.shape == (3, 5, 3, 3)
    for i in range(3):
        for j in range(5):
            assert np.allclose(batch[i, j], quaternion_to_matrix(q[i, j]), atol=1e-15)
    assert np.allclose(quaternion_to_matrix(5.0 * q), batch, atol=1e-15)  # normalised first


@pytest.mark.parametrize("angle", [0.0, 1e-9, 0.3, math.pi / 2, math.pi - 1e-6])
def test_axis_angle_is_the_quaternion_of_half_the_angle(angle):
    axis = np.array([1.0, -2.0, 0.5]) / math.sqrt(5.25)
    want = quaternion_to_matrix(np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis]))
    got = axis_angle_to_matrix(angle * axis)
    assert np.allclose(got, want, atol=1e-12)
    assert np.allclose(got @ axis, axis, atol=1e-12)  # the axis stays put
    assert angle_between_deg(np.eye(3)[None], got[None])[0] == pytest.approx(math.degrees(angle), abs=1e-5)


def test_angle_between_is_symmetric_and_ignores_a_shared_turn():
    rng = np.random.default_rng(2)
    a = quaternion_to_matrix(rng.normal(size=(8, 4)))
    b = quaternion_to_matrix(rng.normal(size=(8, 4)))
    shared = quaternion_to_matrix(rng.normal(size=4))
    assert np.allclose(angle_between_deg(a, b), angle_between_deg(b, a), atol=1e-9)
    assert np.allclose(angle_between_deg(shared @ a, shared @ b), angle_between_deg(a, b), atol=1e-6)
    assert np.allclose(angle_between_deg(a, a), 0.0, atol=1e-5)


def test_nearest_rotation_undoes_rounding_and_mirroring():
    rotation = quaternion_to_matrix(np.array([0.9, 0.1, -0.3, 0.2]))
    rounded = np.round(rotation, 3)
    assert np.allclose(nearest_rotation(rounded), rotation, atol=2e-3)
    fixed = nearest_rotation(rotation @ np.diag([1.0, 1.0, -1.0]))  # a mirrored frame
    assert np.linalg.det(fixed) == pytest.approx(1.0) and np.allclose(fixed @ fixed.T, np.eye(3), atol=1e-12)
    assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(fixed)), fixed, atol=1e-12)
