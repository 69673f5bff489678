"""taichi-nerf: a data-oriented NeRF trainer and renderer on Taichi kernels and a torch MLP.

Pipeline stages, one module each: data -> cameras (rays) -> sampling -> encoding -> field
-> compositing; rendering and training compose them; video, api and cli sit on top.
"""
__version__ = "0.1.0"

from .api import evaluate, load_dataset, make_synthetic, render_orbit, train  # noqa: E402
from .config import TrainConfig  # noqa: E402

__all__ = ["TrainConfig", "train", "render_orbit", "evaluate", "make_synthetic", "load_dataset", "__version__"]
