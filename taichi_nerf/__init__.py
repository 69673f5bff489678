"""taichi-nerf: a data-oriented NeRF trainer and renderer on Taichi kernels and a torch MLP.

The folders are the pipeline's layers, bottom up: ``stages/`` (rays -> sampling -> encoding ->
field -> compositing, one module each), ``data/``, ``scenes/`` and ``capture/``, then
``rendering/``, ``runs/``, ``outputs/``, ``training/``, the front ends (``viewing/``,
``viewer/``, ``gui/``) and the entry points (``api.py``, ``cli/``); docs/ARCHITECTURE.md.
"""
import os as _os

# Taichi prints a banner on stdout at import; our commands print JSON there (eval), and the
# backend line we print says what matters.
_os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "0")

__version__ = "0.1.0"

# The API is loaded on first use (PEP 562), not here: importing one stage
# (``taichi_nerf.stages.packing``) must not pull in the trainer above it, which would make every
# lower layer depend on the top one through this file.
_API_NAMES = ("train", "render_orbit", "render_path", "evaluate", "export_mesh", "export_points", "make_synthetic",
              "load_dataset", "builtin_scene")

__all__ = ["TrainConfig", *_API_NAMES, "__version__"]


def __getattr__(name: str):
    if name in _API_NAMES:
        from . import api

        return getattr(api, name)
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'taichi_nerf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
