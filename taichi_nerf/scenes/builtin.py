"""The built-in scene as a dataset on disk: rendered once per size into the user's cache."""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from ..config import BUILTIN_SIZE, BUILTIN_VIEWS
from ..files import writer_gone

BUILTIN_VERSION = 1


def cache_dir() -> Path:
    root = os.environ.get("TAICHI_NERF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "taichi-nerf")
    return Path(root)


def builtin_path(views: int = BUILTIN_VIEWS, size: int = BUILTIN_SIZE) -> Path:
    """Where the built-in scene at this size is cached (rendered there when its transforms_train.json is)."""
    return cache_dir() / f"builtin-v{BUILTIN_VERSION}-{views}views-{size}px"


def builtin_cached(views: int = BUILTIN_VIEWS, size: int = BUILTIN_SIZE) -> bool:
    """Whether the built-in scene at this size is rendered already (loading it is then quick)."""
    return (builtin_path(views, size) / "transforms_train.json").is_file()


def builtin_scene(views: int = BUILTIN_VIEWS, size: int = BUILTIN_SIZE, progress: bool = True) -> Path:
    """Path of the built-in scene at this size, rendering it on first use. Rendered into a
    temporary folder and renamed, so an interrupted render never leaves a half scene behind."""
    from .synthetic import write_synthetic_dataset

    path = builtin_path(views, size)
    for stale in path.parent.glob(glob.escape(path.name) + ".tmp*"):  # a killed render's splits, not a live one's
        if writer_gone(stale.name.rsplit(".tmp", 1)[1]):
            shutil.rmtree(stale, ignore_errors=True)
    if builtin_cached(views, size):
        return path
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_synthetic_dataset(tmp, views=views, size=size, progress=progress)
    except BaseException:  # Ctrl-C: the splits rendered so far would stay in the cache
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(path)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return path
