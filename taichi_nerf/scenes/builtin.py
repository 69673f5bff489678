"""The built-in scene as a dataset on disk: rendered once per size into the user's cache."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..config import BUILTIN_SIZE, BUILTIN_VIEWS

BUILTIN_VERSION = 1


def cache_dir() -> Path:
    root = os.environ.get("TAICHI_NERF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "taichi-nerf")
    return Path(root)


def builtin_scene(views: int = BUILTIN_VIEWS, size: int = BUILTIN_SIZE, progress: bool = True) -> Path:
    """Path of the built-in scene at this size, rendering it on first use. Rendered into a
    temporary folder and renamed, so an interrupted render never leaves a half scene behind."""
    from .synthetic import write_synthetic_dataset

    path = cache_dir() / f"builtin-v{BUILTIN_VERSION}-{views}views-{size}px"
    if (path / "transforms_train.json").is_file():
        return path
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic_dataset(tmp, views=views, size=size, progress=progress)
    try:
        tmp.rename(path)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return path
