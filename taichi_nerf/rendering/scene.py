"""The Scene: where the content is, which way is up, and how to orbit it for videos.

A :class:`Scene` is derived from a dataset and saved in every checkpoint, so rendering a
checkpoint needs no dataset.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..stages import cameras
from .video_route import choose_video


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
    # The background is part of the scene, far in every direction: space outside ``aabb`` is
    # contracted (taichi_nerf/stages/space.py) and rays march out to ``far``.
    unbounded: bool = False
    # The colour renders and evaluation composite onto (None: from the run's configuration;
    # checkpoints from before backgrounds were chosen from the data).
    background: list[float] | None = None
    # Forward-facing video path: the average training camera (c2w, row-major 4x4), the spiral's
    # radii along its right/up/back axes and the distance ahead it keeps looking at.
    path_pose: list[float] = field(default_factory=list)
    path_radii: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    path_focus: float = 0.0
    # The default video (rendering/video_route.py): "orbit", "spiral" or "train" (a path through
    # ``video_keyframes``, flattened 4x4 training poses); "" in checkpoints from before: the orbit.
    video_path: str = ""
    video_reason: str = ""
    video_keyframes: list[list[float]] = field(default_factory=list)
    # Mask files cut the object out of its photos (--mask-mode transparent): kind_defaults.CUT_OUT_DEFAULTS.
    cut_out: bool = False

    @property
    def fov_y(self) -> float:
        """Vertical field of view of the training cameras (radians)."""
        return 2.0 * math.atan(math.tan(0.5 * self.fov_x) / self.aspect)

    @property
    def image_width(self) -> int:
        """The training images' width in pixels (0: not known). Every scene kind saves it, as the
        NDC frustum's ``ndc_width``."""
        return int(self.ndc_width)

    @classmethod
    def from_dataset(cls, ds) -> "Scene":
        train = ds.split("train")
        fx = float(train.intrinsics[0, 0])
        forward_facing = bool(getattr(ds, "forward_facing", False))
        path = {}
        if forward_facing:
            focus = float(getattr(ds, "focus_distance", 0.0) or ds.orbit_radius)
            path = spiral_frame(train.poses, focus)
        return cls(
            near=float(ds.near), far=float(ds.far), aabb=[float(v) for v in ds.aabb],
            center=[float(v) for v in ds.center], up=[float(v) for v in ds.up],
            orbit_radius=float(ds.orbit_radius), orbit_elevation_deg=float(ds.orbit_elevation_deg),
            fov_x=cameras.fov_from_focal(train.width, fx), aspect=train.width / train.height,
            ndc=bool(getattr(ds, "ndc", False)), ndc_focal=fx, ndc_width=train.width, ndc_height=train.height,
            forward_facing=forward_facing, unbounded=bool(getattr(ds, "unbounded", False)), **path,
            cut_out=getattr(ds, "mask_mode", "") == "transparent",
            **choose_video(train.poses, ds.center, ds.up, forward_facing and bool(path)),
        )


def seen_from(scene: Scene, eye, widen: bool = False) -> Scene:
    """``scene`` as a camera at ``eye`` sees it: :func:`at_distance` of its distance to the centre."""
    if scene.ndc or scene.forward_facing:  # (their near/far stay; nothing else is read)
        return scene
    return at_distance(scene, math.dist([float(v) for v in eye], [float(v) for v in scene.center]), widen)


def at_distance(scene: Scene, distance: float, widen: bool = False) -> Scene:
    """``scene`` with near/far moved by how much further than the orbit radius from its centre
    a camera is, so a camera closer to or further from the object than the training cameras
    sees what they see instead of a clipped (or empty) picture. Forward-facing scenes are left
    as they are: their near/far describe the capture (in NDC for LLFF). ``widen``: near only
    comes closer and far only goes further (videos): the orbit radius of an unbounded scene is
    the cameras' median distance, and a path through training cameras beyond it would start its
    rays past what those cameras saw in front of them."""
    if scene.ndc or scene.forward_facing:
        return scene
    shift = float(distance) - scene.orbit_radius
    if abs(shift) < 1e-6:
        return scene
    near, far = max(1e-2, scene.near + shift), max(2e-2, scene.far + shift)
    if widen:
        near, far = min(near, scene.near), max(far, scene.far)
    return dataclasses.replace(scene, near=near, far=far)


MAX_ELEVATION = math.radians(85.0)  # viewers orbit clear of the pole, where "upright" is undefined
SPIRAL_TURNS = 2  # the path circles twice while moving once in and out
RADIUS_PERCENTILE = 90  # spiral as wide as most cameras are off the average one (not the outliers)


def spiral_frame(poses: torch.Tensor, focus: float, up=None) -> dict:
    """Scene fields of the forward-facing path: average camera, spiral radii, focus distance.
    ``up``: the scene's, for the average camera's roll (default: the cameras' mean up, which is
    the photographer's for a forward-facing capture)."""
    p = poses.detach().double().cpu()
    center = p[:, :3, 3].mean(0)
    back = p[:, :3, 2].mean(0)
    back = back / back.norm().clamp_min(1e-12)
    up = p[:, :3, 1].mean(0) if up is None else torch.as_tensor(up, dtype=torch.float64)
    right = torch.linalg.cross(up, back)
    right = right / right.norm().clamp_min(1e-12)
    up = torch.linalg.cross(back, right)
    avg = torch.eye(4, dtype=torch.float64)
    avg[:3, 0], avg[:3, 1], avg[:3, 2], avg[:3, 3] = right, up, back, center
    local = (p[:, :3, 3] - center) @ avg[:3, :3]  # camera centres in the average camera's axes
    radii = torch.quantile(local.abs(), RADIUS_PERCENTILE / 100.0, dim=0)
    radii = torch.where(radii > 1e-9, radii, torch.full_like(radii, 0.05 * max(focus, 1e-3)))
    return {"path_pose": avg.flatten().tolist(), "path_radii": radii.tolist(), "path_focus": float(focus)}


def spiral_poses(scene: Scene, frames: int, scale: float = 1.0, up=None) -> torch.Tensor:
    """(frames, 4, 4) poses on a spiral in front of the training cameras, all looking at the
    point ``path_focus`` ahead of the average camera; ``up`` for their roll (default: the
    average camera's)."""
    avg = torch.tensor(scene.path_pose, dtype=torch.float64).view(4, 4)
    rx, ry, rz = (scale * r for r in scene.path_radii)
    focus_point = avg[:3, 3] - scene.path_focus * avg[:3, 2]
    poses = []
    for k in range(frames):
        theta = 2.0 * math.pi * SPIRAL_TURNS * k / frames
        local = torch.tensor([rx * math.cos(theta), ry * math.sin(theta), rz * math.sin(0.5 * theta)],
                             dtype=torch.float64)
        eye = avg[:3, 3] + avg[:3, :3] @ local
        poses.append(cameras.look_at(eye, focus_point, avg[:3, 1] if up is None else up))
    return torch.stack(poses)


def opening_angles(scene: Scene) -> tuple[float, float]:
    """(azimuth, elevation), radians, in :func:`cameras.axis_basis` of ``scene.up``, of where a viewer
    opens (the GUI window's home, the browser's first view), ``orbit_radius`` from the centre: the
    orbit video's start, or for a forward-facing capture the side its cameras look from (the average
    camera's back axis): the orbit's start is behind such a scene, where nothing was seen (and, in
    NDC, nothing renders)."""
    if not (scene.forward_facing and len(scene.path_pose) == 16):
        return 0.0, math.radians(scene.orbit_elevation_deg)
    up, a, b = cameras.axis_basis(scene.up)
    back = cameras.unit(torch.tensor(scene.path_pose, dtype=torch.float64).view(4, 4)[:3, 2].numpy())
    elevation = math.asin(max(-1.0, min(1.0, float(back @ up))))
    return math.atan2(float(back @ b), float(back @ a)), max(-MAX_ELEVATION, min(MAX_ELEVATION, elevation))


def orbit_cameras(scene: Scene, frames: int, width: int, height: int | None = None,
                  elevation_deg: float | None = None, radius: float | None = None):
    """Poses and intrinsics for a turntable orbit that frames the scene like the training views
    (a spiral in front of the cameras for forward-facing scenes)."""
    height = height or max(1, round(width / scene.aspect))
    if scene.forward_facing and len(scene.path_pose) == 16:
        # Forward-facing captures have nothing behind them: circle in front instead of orbiting.
        scale = 1.0 if radius is None else radius / max(scene.orbit_radius, 1e-9)
        poses = spiral_poses(scene, frames, scale)
    else:
        poses = cameras.orbit_poses(frames, radius or scene.orbit_radius,
                                        scene.orbit_elevation_deg if elevation_deg is None else elevation_deg,
                                        scene.center, scene.up)
    f = cameras.focal_from_fov(width, scene.fov_x)
    intr = torch.tensor([[f, f, width / 2.0, height / 2.0, 0.0, 0.0, 0.0, 0.0]]).repeat(frames, 1)
    return poses, intr, width, height
