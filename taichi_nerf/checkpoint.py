"""Checkpoints: written atomically, loaded into a ready-to-render model."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from . import backend
from .config import TrainConfig
from .rendering import Renderer
from .scene import Scene

FORMAT_VERSION = 1
# Config fields that shape the model's tensors or what they mean: a resume must not change them.
ARCHITECTURE_KEYS = ("width", "depth", "pos_frequencies", "dir_frequencies", "sampler", "grid_resolution",
                     "view_dependent", "frequency_base", "include_input", "skip_layer", "activation",
                     "density_activation", "feature_layer", "color_width")


class CheckpointError(ValueError):
    pass


def save_atomic(obj: dict, path: Path) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over the target:
    an interrupted write leaves the previous checkpoint whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def find_checkpoint(path) -> Path:
    """Accept a checkpoint file or a run folder (its ``checkpoint.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint found")
    return path


def read_state(path) -> dict:
    """The checkpoint dict, or a one-line CheckpointError. ``weights_only``: a checkpoint
    from someone else cannot run code on load."""
    path = find_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable taichi-nerf checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != "taichi-nerf" or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a taichi-nerf checkpoint")
    return state


def config_of(state: dict, path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable configuration ({exc})") from None


def saved_config(path) -> TrainConfig:
    path = find_checkpoint(path)
    return config_of(read_state(path), path)


def resume_config(run_dir, **overrides) -> TrainConfig:
    """The configuration a run was started with, writing into ``run_dir``, with overrides
    (typically a larger ``steps``) applied."""
    path = find_checkpoint(run_dir)
    cfg = saved_config(path).replace(**overrides)
    return cfg.replace(out=str(path.parent))


def load(path, arch: str = "auto") -> tuple[Renderer, TrainConfig, dict]:
    path = find_checkpoint(path)
    state = read_state(path)
    cfg = config_of(state, path)
    b = backend.init(arch, cfg.max_samples_per_ray)
    try:
        renderer = Renderer.from_config(cfg, Scene(**state["scene"]), b.device)
        renderer.field.load_state_dict(state["model"])  # older key names are mapped by the modules
        if renderer.grid is not None and state.get("grid") is not None:
            renderer.grid.load_state_dict(state["grid"])
    except (TypeError, KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged or from an incompatible version ({str(exc).splitlines()[0]})") from None
    renderer.field.eval()
    return renderer, cfg, state


def scene_dict(scene: Scene) -> dict:
    return asdict(scene)
