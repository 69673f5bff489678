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

from .api import evaluate, export_mesh, export_points, load_dataset, make_synthetic, render_orbit, render_path, train  # noqa: E402
from .config import TrainConfig  # noqa: E402

__all__ = ["TrainConfig", "train", "render_orbit", "render_path", "evaluate", "export_mesh", "export_points",
           "make_synthetic", "load_dataset", "__version__"]
