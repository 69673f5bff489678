"""Find the right loader for a path; generate and cache the built-in scene when none is given."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .blender import is_blender, load_blender
from .dataset import DataError, Dataset

# name -> (detector, loader). Detectors look at what is in the folder or file.
FORMATS = {
    "blender": (is_blender, load_blender),
}

BUILTIN_VERSION = 1


def cache_dir() -> Path:
    root = os.environ.get("TAICHI_NERF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "taichi-nerf")
    return Path(root)


def builtin_scene(views: int = 100, size: int = 100, progress: bool = True) -> Path:
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


def detect_format(path: Path) -> str:
    for name, (detect, _) in FORMATS.items():
        if detect(path):
            return name
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(f"{path}: unknown dataset layout (supported: {', '.join(FORMATS)})")


def load_dataset(path=None, format: str | None = None, downscale: int = 1, **builtin_options) -> Dataset:
    if path is None:
        path = builtin_scene(**builtin_options)
    path = Path(path)
    if format is None:
        format = detect_format(path)
    if format not in FORMATS:
        raise DataError(f"unknown --format {format!r} (supported: {', '.join(FORMATS)})")
    if downscale < 1:
        raise DataError(f"--downscale must be a positive integer, got {downscale}")
    return FORMATS[format][1](path, downscale=downscale)
