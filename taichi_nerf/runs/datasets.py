"""Where a run's images come from: a dataset path, or the built-in scene (rendered once and
cached) when there is none; and the dataset a run or a checkpoint was trained on. The one
place that joins the format readers (data/) and the scene generators (scenes/)."""
from __future__ import annotations

from pathlib import Path

from ..config import BUILTIN_SIZE, BUILTIN_VIEWS, TrainConfig
from ..data.dataset import Dataset
from ..data.loaders import ALIASES, FORMATS, dataset_path, read_dataset
from ..scenes.builtin import builtin_scene
from ..wording import flag_or_keyword
from .rank_env import environment


def load_dataset(path=None, format: str | None = None, downscale: int = 1, *, views: int = BUILTIN_VIEWS,
                 size: int = BUILTIN_SIZE,
                 progress: bool = True, **options) -> Dataset:
    """Load the dataset at ``path`` (any supported layout), or, without one, the built-in
    scene with ``views`` training views of ``size`` pixels (rendered on first use).
    ``options``: what :func:`taichi_nerf.data.loaders.read_dataset` takes (loader options,
    ``near``/``far``/``aabb``/``unbounded``)."""
    if isinstance(path, Dataset):  # tn.load_dataset's return handed back (evaluate(data=...)): died in pathlib
        raise TypeError(f"data is a dataset's path, not a loaded Dataset: give its path, {path.source!r}")
    if path is None:  # under torchrun every rank renders it the first time (one keeps it); rank 0 shows its bar
        path = builtin_scene(views=views, size=size, progress=progress and environment()[0] == 0)
    elif (run := run_in(dataset_path(path))) is not None:  # as a dataset: "photos without camera poses" (curves.png)
        from ..data.dataset import DataError

        raise DataError(f"{path}: a run folder, not a dataset; it trained on {run.data or 'the built-in scene'}")
    return read_dataset(path, format=format, downscale=downscale, **options)


def check_data_format(cfg: TrainConfig) -> None:
    """A configuration's ``data_format``, refused as TrainConfig.validate refuses a field (the CLI then
    names the flag or the --config file that set it): the loader would call it load_dataset's ``format``."""
    if cfg.data_format is not None and ALIASES.get(cfg.data_format, cfg.data_format) not in FORMATS:
        raise ValueError(f"bad configuration: data_format must be one of {', '.join([*FORMATS, *ALIASES])}, "
                         f"got {cfg.data_format!r}")


def run_in(folder) -> TrainConfig | None:
    """The configuration of the run whose folder ``folder`` is, or None: no ``checkpoint.pt``, or
    one that is not ours (another tool's, kept beside a dataset, which must still load)."""
    from .checkpoint import CheckpointError, saved_config

    if not (Path(folder) / "checkpoint.pt").is_file():
        return None
    try:
        return saved_config(folder)
    except CheckpointError:
        return None


def run_dataset(cfg, data=None, *, source=None, progress: bool | None = None) -> Dataset:
    """The dataset of run configuration ``cfg``: ``data`` when given (the dataset moved, or
    another split of it), else the one the run names. ``source`` (its checkpoint) is named
    in the error when the stored dataset is gone."""
    if data is None:
        require_stored_data(cfg, source or cfg.out)
    options = cfg.dataset_options()
    if progress is not None:
        options["progress"] = progress
    dataset = load_dataset(data if data is not None else cfg.data, **options)
    if data is not None and source is not None:  # data given to eval or render: the run's own, maybe moved
        from ..rendering.scene import Scene
        from .checkpoint import saved_scene
        from .scene_match import check_same_scene

        saved = saved_scene(source)
        if saved is not None:
            check_same_scene(saved, Scene.from_dataset(dataset), source, data)
    return dataset


def require_stored_data(cfg, source) -> None:
    """A run's config names its dataset by an absolute path; say which flag overrides it
    when that path has gone (the dataset moved, or the run came from another machine)."""
    from .checkpoint import CheckpointError

    if cfg.data is not None and not Path(cfg.data).exists():
        raise CheckpointError(f"{cfg.data}: the dataset {source} was trained on is not there any more; "
                              f"give its new place with {flag_or_keyword('--data PATH', 'data=PATH')}")


def training_views(cfg, source, who: str, without: str):
    """The training split of a checkpoint's dataset, or None (with one line on stderr saying
    what ``who`` does ``without`` them) when it cannot be read: a viewer of a trained field
    only draws or snaps to the training cameras, so their absence must not stop it."""
    import sys

    from ..data.dataset import DataError
    from .checkpoint import CheckpointError

    if cfg.data is not None and not Path(cfg.data).exists():  # (not run_dataset's hint: these commands take no --data)
        print(f"taichi-nerf {who}: training views unavailable ({cfg.data}: the dataset {source} was trained on is "
              f"not there any more); {without}", file=sys.stderr)
        return None
    try:
        return run_dataset(cfg, source=source, progress=False).split("train")
    except (DataError, CheckpointError, OSError) as exc:
        print(f"taichi-nerf {who}: training views unavailable ({exc}); {without}", file=sys.stderr)
        return None
