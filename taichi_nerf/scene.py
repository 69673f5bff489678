"""Scene stage: where the content is, which way is up, and how to orbit it for videos.

A :class:`Scene` is derived from a dataset and saved in every checkpoint, so rendering a
checkpoint needs no dataset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import cameras


@dataclass
class Scene:
    """Where the content is and how to look at it; saved in every checkpoint."""
    near: float
    far: float
    aabb: list[float]
    center: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    up: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.0])
    orbit_radius: float = 4.0
    orbit_elevation_deg: float = 30.0
    fov_x: float = 0.6911  # horizontal field of view of the training cameras
    aspect: float = 1.0  # width / height of the training images
    ndc: bool = False  # forward-facing (LLFF) scenes: rays live in NDC space, aabb and near/far too
    ndc_focal: float = 0.0  # training camera focal length and size that define the NDC frustum
    ndc_width: int = 0
    ndc_height: int = 0
    forward_facing: bool = False  # render a spiral in front of the cameras, not a turntable

    @classmethod
    def from_dataset(cls, ds) -> "Scene":
        train = ds.split("train")
        fx = float(train.intrinsics[0, 0])
        return cls(
            near=float(ds.near), far=float(ds.far), aabb=[float(v) for v in ds.aabb],
            center=[float(v) for v in ds.center], up=[float(v) for v in ds.up],
            orbit_radius=float(ds.orbit_radius), orbit_elevation_deg=float(ds.orbit_elevation_deg),
            fov_x=2.0 * math.atan(0.5 * train.width / fx), aspect=train.width / train.height,
            ndc=bool(getattr(ds, "ndc", False)), ndc_focal=fx, ndc_width=train.width, ndc_height=train.height,
            forward_facing=bool(getattr(ds, "forward_facing", False)),
        )


def orbit_cameras(scene: Scene, frames: int, width: int, height: int | None = None,
                  elevation_deg: float | None = None, radius: float | None = None):
    """Poses and intrinsics for a turntable orbit that frames the scene like the training views."""
    height = height or max(1, round(width / scene.aspect))
    poses = cameras.orbit_poses(frames, radius or scene.orbit_radius,
                                scene.orbit_elevation_deg if elevation_deg is None else elevation_deg,
                                scene.center, scene.up)
    f = cameras.focal_from_fov(width, scene.fov_x)
    intr = torch.tensor([[f, f, width / 2.0, height / 2.0, 0.0, 0.0, 0.0, 0.0]]).repeat(frames, 1)
    return poses, intr, width, height
