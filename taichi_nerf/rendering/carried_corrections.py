"""Pose corrections carried from the training cameras to every other camera (val, test, a video's
path, the window's): what a run with pose refinement (training/pose_refinement.py) renders from.

A refined field is consistent with its *corrected* training cameras. A val camera from the same
capture carries the same kind of pose error, and a real capture's errors are not independent
from photo to photo: on ethiopianHead a training camera's correction, in its own frame, is
predicted by its nearest neighbour's with a correlation of 0.97 for the roll and 0.98 for the
move along the optical axis (docs/BENCHMARKS.md, "Pose corrections carried to new cameras").
So a camera that was not trained on gets the corrections of the training cameras near it,
expressed in each camera's own frame and weighted by a Gaussian of the distance between the
centres. A training camera itself gets its own correction exactly (and a camera very near it,
mostly its own: a video through the training cameras passes them without a jump).

Each correction is (rotation axis-angle, translation) in world space, applied as the rays of
training/pose_refinement.py apply it: the direction turned about the camera's centre, the centre
moved. Float64 numpy, one camera at a time: a render's cost is in its rays, not here.
"""
from __future__ import annotations

import numpy as np
import torch

from ..rotations import angle_between_deg, axis_angle_to_matrix
from ..stages.cameras import median_neighbour_spacing

# The Gaussian's width in units of the median distance from a training camera to its nearest
# neighbour. ethiopianHead's refined run scored its val views 27.78 / 27.91 / 27.91 / 27.86 dB at
# 0.5 / 1 / 1.5 / 2 (23.64 from the cameras as given); a cow whose poses were noised independently
# photo by photo (no neighbour knows another's error) scored 22.69 / 24.04 / 24.40 / 24.46 (24.19
# as given): at 1.5 the independent part averages away and the shared part is kept.
KERNEL_WIDTH = 1.5
# A camera this close to a training camera (in the same units) takes that camera's own correction,
# blending into its neighbours' by a Gaussian of this width: exact on a training camera, and no jump
# in a video whose path passes through one.
OWN_WIDTH = 0.1
# Training cameras whose centres are closer than this share a place (as a fraction of the cameras'
# extent): the spacing ignores them, and a camera there is matched by its orientation too.
SAME_PLACE = 1e-6


def corrected_pose(pose: torch.Tensor, correction) -> torch.Tensor:
    """Camera-to-world ``pose`` (4, 4) with one world-space correction (6,: rotation axis-angle |
    translation) applied as training/pose_refinement.py applies it to the camera's rays: turned about
    its centre, the centre moved. In float64, returned in the pose's dtype and on its device."""
    p = pose.detach().double().cpu().numpy()
    c = np.asarray(correction.detach().double().cpu() if torch.is_tensor(correction) else correction, np.float64)
    out = p.copy()
    out[:3, :3] = axis_angle_to_matrix(c[:3]) @ p[:3, :3]
    out[:3, 3] = p[:3, 3] + c[3:]
    return torch.as_tensor(out, dtype=pose.dtype, device=pose.device)


class CarriedCorrections:
    """``given`` (C, 4, 4) camera-to-world poses of the training cameras as written, and their
    ``corrections`` (C, 6): rotation | translation, read at each call (a live training parameter
    or a checkpoint's tensor)."""

    def __init__(self, given: torch.Tensor, corrections: torch.Tensor):
        poses = given.detach().double().cpu().numpy()
        self.rotations, self.centres = poses[:, :3, :3], poses[:, :3, 3]
        self.corrections = corrections
        extent = float(np.linalg.norm(self.centres - self.centres.mean(axis=0), axis=1).max())
        # centres closer than this are one place (a tripod's turns, a paused video's repeated frames)
        self.same_place = SAME_PLACE * max(extent, 1e-12)
        self.spacing = self._spacing(extent)
        self.width = KERNEL_WIDTH * self.spacing

    def _spacing(self, extent: float) -> float:
        """The median distance from a training camera to its nearest neighbour elsewhere; the cameras'
        extent where all share a place."""
        spacing = median_neighbour_spacing(self.centres, self.same_place)
        if spacing is not None:
            return spacing
        return extent if extent > 0 else 1.0  # one camera, or all at one point

    @classmethod
    def from_saved(cls, refinement: dict | None) -> CarriedCorrections | None:
        """From a checkpoint's ``pose_refinement`` (PoseRefinement's state); None without refinement,
        or from a run saved before it kept its training cameras (drawn as given, as they were then)."""
        if not isinstance(refinement, dict) or "given" not in refinement:
            return None
        given, corrections = refinement["given"], refinement["corrections"]
        if given.shape != (corrections.shape[0], 4, 4) or corrections.shape[1:] != (6,):
            raise RuntimeError(f"pose corrections {tuple(corrections.shape)} do not fit cameras {tuple(given.shape)}")
        return cls(given, corrections)

    def local(self) -> tuple[np.ndarray, np.ndarray]:
        """Each training camera's correction in its own frame: (C, 3) rotation, (C, 3) translation."""
        c = self.corrections.detach().double().cpu().numpy()
        to_camera = np.transpose(self.rotations, (0, 2, 1))
        return np.einsum("nij,nj->ni", to_camera, c[:, :3]), np.einsum("nij,nj->ni", to_camera, c[:, 3:])

    def weights(self, pose: np.ndarray) -> np.ndarray:
        """(C,) weights of the training cameras for a camera at ``pose`` (4, 4), summing to 1: a
        Gaussian of the centres' distance (the nearest always counts), drawn towards the nearest
        camera alone as the camera comes within OWN_WIDTH spacings of it (all of it on the camera)."""
        dist = np.linalg.norm(self.centres - pose[:3, 3], axis=1)
        here = np.flatnonzero(dist <= dist.min() + self.same_place)  # the nearest place's cameras
        turns = angle_between_deg(self.rotations[here], np.broadcast_to(pose[:3, :3], (len(here), 3, 3)))
        alike = here[turns <= turns.min() + 1e-9]  # the least turned of them
        nearest = int(alike[np.argmin(dist[alike])])  # ...and of those (a repeated frame), the nearest
        w = np.exp(-0.5 * (dist ** 2 - dist[nearest] ** 2) / self.width ** 2)
        own = float(np.exp(-0.5 * (dist[nearest] / (OWN_WIDTH * self.spacing)) ** 2))
        w *= (1.0 - own) / w.sum()
        w[nearest] += own
        return w

    def pose(self, pose: torch.Tensor) -> torch.Tensor:
        """``pose`` (4, 4) with the corrections carried to it, in its dtype and on its device."""
        p = pose.detach().double().cpu().numpy()
        w = self.weights(p)
        turn_local, move_local = self.local()
        # back from the camera's own frame to the world
        return corrected_pose(pose, np.concatenate([p[:3, :3] @ (w @ turn_local), p[:3, :3] @ (w @ move_local)]))
