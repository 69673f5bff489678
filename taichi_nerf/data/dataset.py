"""The in-memory dataset every loader produces and every later stage consumes.

Structure of arrays, owned by torch: one RGBA uint8 tensor per split (N, H, W, 4) holds the
pixels (a quarter of float32's memory; the ray-batch kernel converts and composites onto the
background per ray, which is what makes a random background per ray cheap), one (N, 4, 4)
pose tensor and one (N, 8) intrinsics tensor.

Conventions (the Blender / OpenGL ones): camera-to-world poses, camera looks down -z with
+y up and +x right; pixel (i, j) centres sit at (i + 0.5, j + 0.5); ray directions are unit
vectors, so sample distances and depths are Euclidean distances from the camera centre.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

INTRINSICS = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2")  # OpenCV radial-tangential


class DataError(ValueError):
    """Bad input data: the message names the file and the problem, in one line."""


@dataclass(repr=False)  # the generated repr prints every tensor: ~29,000 characters for a small set
class Split:
    rgba: torch.Tensor  # (N, H, W, 4) uint8, straight (not premultiplied) alpha
    poses: torch.Tensor  # (N, 4, 4) float32 camera-to-world
    intrinsics: torch.Tensor  # (N, 8) float32, see INTRINSICS
    names: list[str] = field(default_factory=list)
    depth: torch.Tensor | None = None  # (N, H, W) float32 ray distance, 0 where empty
    mask: torch.Tensor | None = None  # (N, H, W) uint8, 255 keep, 0 masked out (data/masks.py)

    @property
    def count(self) -> int:
        return int(self.rgba.shape[0])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def width(self) -> int:
        return int(self.rgba.shape[2])

    def __repr__(self) -> str:
        extras = "".join(f", {name}" for name in ("depth", "mask") if getattr(self, name) is not None)
        return f"<Split {self.count} x {self.width}x{self.height}{extras}>"

    def subset(self, indices) -> "Split":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return Split(
            rgba=self.rgba[idx].contiguous(),
            poses=self.poses[idx].contiguous(),
            intrinsics=self.intrinsics[idx].contiguous(),
            names=[self.names[i] for i in idx.tolist()] if self.names else [],
            depth=None if self.depth is None else self.depth[idx].contiguous(),
            mask=None if self.mask is None else self.mask[idx].contiguous(),
        )

    def to(self, device) -> "Split":
        return Split(
            rgba=self.rgba.to(device),
            poses=self.poses.to(device),
            intrinsics=self.intrinsics.to(device),
            names=self.names,
            depth=None if self.depth is None else self.depth.to(device),
            mask=None if self.mask is None else self.mask.to(device),
        )


@dataclass(repr=False)  # as Split's: print(load_dataset(path)) is a summary, not the pixels
class Dataset:
    splits: dict[str, Split]
    near: float
    far: float
    aabb: torch.Tensor  # (6,) float32: min xyz, max xyz; samples are confined to it
    format: str = "blender"
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    up: torch.Tensor = field(default_factory=lambda: torch.tensor([0.0, 0.0, 1.0]))
    center: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    orbit_radius: float = 4.0
    orbit_elevation_deg: float = 30.0
    ndc: bool = False  # sample forward-facing scenes in normalised device coordinates
    forward_facing: bool = False
    # Added for real datasets (append-only; every field has a default):
    notes: list[str] = field(default_factory=list)  # how bounds etc. were chosen (``data info`` prints them)
    focus_distance: float = 0.0  # forward-facing: how far in front of the cameras the video path looks
    # (4, 4) similarity the loader applied to the file's poses (dataset = T @ file); None: identity
    applied_transform: torch.Tensor | None = None
    # The background is part of the scene and reaches far in every direction: space outside
    # ``aabb`` is contracted (taichi_nerf/stages/space.py); ``far`` then reaches far out.
    unbounded: bool = False
    cameras_look_outward: bool = False  # the bounds found no point the cameras look at
    background: object | None = None  # data/surround.py BackgroundChoice: what the images' surround is
    mask_mode: str = ""  # how the masks were used (data/masks.py MASK_MODES); "": the data has none

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(f"{self.source}: no '{name}' split (have: {', '.join(self.splits)})")
        return self.splits[name]

    def summary(self) -> str:
        parts = [f"{name}: {s.count} x {s.width}x{s.height}" for name, s in self.splits.items()]
        box = ", ".join(f"{v:.2f}" for v in self.aabb.tolist())
        bounds = f"near {self.near:.2f}, far {self.far:.2f}, box [{box}]"
        return f"{self.format} dataset {self.source} ({'; '.join(parts)}); {bounds}"

    def __repr__(self) -> str:
        kind = ("forward-facing" + (", NDC" if self.ndc else "") if self.forward_facing else
                "unbounded" if self.unbounded else "bounded")
        extras = [kind]
        if self.mask_mode:
            extras.append(f"masks {self.mask_mode}")
        if self.background is not None:
            extras.append(f"background {self.background.name}")
        return f"<Dataset {self.summary()}; {', '.join(extras)}>"


def pinhole(fx: float, fy: float, cx: float, cy: float, count: int = 1) -> torch.Tensor:
    """(count, 8) intrinsics without distortion."""
    row = torch.tensor([fx, fy, cx, cy, 0.0, 0.0, 0.0, 0.0], dtype=torch.float32)
    return row.repeat(count, 1)
