"""Training configuration: one dataclass, loadable from JSON, overridable from the CLI."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path


# TrainConfig fields that say what to train on: the flags `train` and `gui` share.
DATASET_FIELDS = ("data", "data_format", "near", "far", "aabb", "every", "limit", "ndc")


@dataclass
class TrainConfig:
    # data
    data: str | None = None  # None: the built-in scene (generated once, cached)
    data_format: str | None = None  # override the detected layout (docs/DATASETS.md)
    near: float | None = None  # override the automatic near/far/box
    far: float | None = None
    aabb: list[float] | None = None
    every: int | None = None  # keep every k-th frame of each split
    limit: int | None = None  # at most N frames per split
    ndc: bool | None = None  # LLFF: None = automatic (on for forward-facing captures)
    downscale: int = 1
    background: str = "white"  # white | black | random (random: per-ray, training only)
    # field
    pos_frequencies: int = 8
    dir_frequencies: int = 4
    width: int = 64
    depth: int = 4
    density_bias: float = -4.0  # softplus(-4) ~ 0.018: rays start ~95% transparent
    # sampling
    sampler: str = "grid"  # grid (occupancy grid + packed marching) | stratified | hierarchical
    samples_per_ray: int = 32  # stratified / hierarchical coarse samples (and the grid's warm-up)
    render_samples_per_ray: int = 0  # 0: same as training
    fine_samples: int = 64  # hierarchical: importance samples added per ray
    grid_resolution: int = 64
    grid_warmup: int = 100  # steps of plain stratified sampling before the first grid update
    grid_update_every: int = 16
    march_steps: int = 192  # grid marching steps across the scene box's diagonal
    # optimisation
    steps: int = 5000
    batch_rays: int = 2048
    lr: float = 5e-3
    lr_final: float = 5e-4  # exponential decay from lr to lr_final over `steps`
    loss: str = "mse"  # mse | huber
    huber_delta: float = 0.1
    silhouette_weight: float = 0.0  # weight of the opacity-vs-alpha loss (PyTorch3D tutorial)
    seed: int = 0
    mixed_precision: bool = False  # CUDA only: run the MLP in bf16 autocast (TF32 is always on)
    # bookkeeping
    out: str = "runs/latest"
    eval_every: int = 250  # 0: validate only at the end
    eval_views: int = 4  # validation views rendered each time (all at the end)
    preview_every: int = 500  # 0: never (except at the end)
    checkpoint_every: int = 500  # 0: only at the end (and on Ctrl-C)
    log_every: int = 25
    arch: str = "auto"
    progress: bool = True
    # built-in scene
    scene_views: int = 100
    scene_size: int = 100
    time_limit_s: float = 0.0  # stop (and save) after this much wall time; 0: no limit

    def validate(self) -> "TrainConfig":
        problems = []
        if self.background not in ("white", "black", "random"):
            problems.append("background must be white, black or random")
        if self.sampler not in ("grid", "stratified", "hierarchical"):
            problems.append("sampler must be grid, stratified or hierarchical")
        if self.loss not in ("mse", "huber"):
            problems.append("loss must be mse or huber")
        for name in ("steps", "batch_rays", "samples_per_ray", "width", "depth", "downscale", "scene_views", "scene_size",
                     "log_every", "grid_update_every", "march_steps", "grid_resolution", "eval_views"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        for name in ("fine_samples", "pos_frequencies", "dir_frequencies", "grid_warmup", "time_limit_s", "silhouette_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if self.huber_delta <= 0:
            problems.append("huber_delta must be positive")
        if self.sampler == "hierarchical" and self.fine_samples < 1:
            problems.append("the hierarchical sampler needs fine_samples of at least 1")
        if self.lr <= 0 or self.lr_final <= 0:
            problems.append("learning rates must be positive")
        if problems:
            raise ValueError("bad configuration: " + "; ".join(problems))
        return self

    @property
    def eval_samples(self) -> int:
        return self.render_samples_per_ray or self.samples_per_ray

    @property
    def max_samples_per_ray(self) -> int:
        """Largest ray any sampler can emit: sizes Taichi's autodiff stack."""
        most = max(self.samples_per_ray, self.eval_samples)
        if self.sampler == "grid":
            most = max(most, self.march_steps + 1)
        if self.sampler == "hierarchical":
            most = most + self.fine_samples
        return most

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path) -> "TrainConfig":
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{path}: config file not found") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: config must be a JSON object")
        return cls.from_dict(values)

    def dataset_options(self) -> dict:
        """Keyword arguments of :func:`taichi_nerf.data.loaders.load_dataset` for this run."""
        return dict(format=self.data_format, downscale=self.downscale, near=self.near, far=self.far, aabb=self.aabb,
                    every=self.every, limit=self.limit, ndc=self.ndc, views=self.scene_views, size=self.scene_size,
                    progress=self.progress)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
