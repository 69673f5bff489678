"""The checks of a training configuration (``TrainConfig.validate``): every value of its
declared type and finite, then in range and consistent with the others. Each check adds one
phrase to the list that the one-line error joins, so a user sees every problem at once."""
from __future__ import annotations

import math
import numbers
import types
import typing

# Encoding frequencies 2^k: past ~2^24 a float32 position has no bits left and sin/cos of it are
# noise, but finite; the PyTorch3D tutorial's recipe uses 60 (presets.py), so only overflow is refused.
MAX_FREQUENCIES = 64
MAX_SAMPLES = 8192  # samples per ray: Taichi's autodiff stack is sized by it


def number_at_least(name: str, value, least, whole: bool = True):
    """``value`` as a Python int (a float unless ``whole``) when it is a number of at least ``least``
    (numpy's numbers count, 2.0 frames too; True, 2.5 frames and NaN do not), else a ValueError
    naming ``name``: the one check every API function's counts and sizes go through."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= least
            or (whole and (not math.isfinite(value) or value != int(value)))):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {kind} of at least {least:g}, got {value!r}")
    return int(value) if whole else float(value)


def positive_number(name: str, value) -> float:
    """``value`` as a float when it is a finite number above 0 (numpy's numbers count; True, NaN
    and infinity do not), else a ValueError naming ``name``: a rate or a level, not a count."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def without_none(hint):
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def type_problems(cfg, hints: dict) -> list[str]:
    """Each field holds its declared type (``hints``: the resolved type hints; a --config file
    can hold anything) and every number is finite: NaN passes every comparison, so the range
    checks cannot see it."""
    problems = []
    for name, hint in hints.items():
        value = getattr(cfg, name)
        kind = without_none(hint)
        if value is None and kind is not hint:
            continue
        if typing.get_origin(kind) is list:
            kind = typing.get_args(kind)[0]
            if not isinstance(value, (list, tuple)):
                problems.append(f"{name} must be a list, got {value!r}")
                continue
            values = value
        else:
            values = [value]
        for v in values:
            if kind is bool and not isinstance(v, bool):
                problems.append(f"{name} must be true or false, got {v!r}")
            elif kind is int and (isinstance(v, bool) or not isinstance(v, int)):
                problems.append(f"{name} must be a whole number, got {v!r}")
            elif kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
                problems.append(f"{name} must be a number, got {v!r}")
            elif kind is float and not math.isfinite(v):
                problems.append(f"{name} must be a finite number, got {v}")
            elif kind is str and not isinstance(v, str):
                problems.append(f"{name} must be text, got {v!r}")
            else:
                continue
            break
    return problems


def range_problems(cfg, hints: dict, choices: dict[str, tuple]) -> list[str]:
    """Every value in its range and consistent with the others; ``choices``: the Literal fields'."""
    problems = []
    for name, allowed in choices.items():  # None is a choice where the type is Optional
        hint, value = hints[name], getattr(cfg, name)
        if value not in allowed and not (value is None and hint != without_none(hint)):
            problems.append(f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}")
    for name in ("steps", "samples_per_ray", "width", "depth", "downscale", "scene_views", "scene_size",
                 "log_every", "grid_update_every", "march_steps", "render_march_steps", "grid_resolution",
                 "eval_views", "every", "proposal_width"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            problems.append(f"{name} must be at least 1")
    if cfg.val_every is not None and cfg.val_every < 2:  # 1 would hold out every photo, 0 none
        problems.append("val_every must be at least 2 (every N-th photo held out as val)")
    if cfg.limit is not None and cfg.limit < 0:
        problems.append("limit must not be negative (0: every frame)")
    for name in ("fine_samples", "pos_frequencies", "dir_frequencies", "grid_warmup", "time_limit_s",
                 "silhouette_weight", "distortion_weight", "batch_images", "render_samples_per_ray",
                 "eval_every", "preview_every", "checkpoint_every"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name} must not be negative")
    if cfg.density_noise is not None and not 0 <= cfg.density_noise <= 100:
        problems.append("density_noise must be between 0 and 100")
    for name in ("pos_frequencies", "dir_frequencies"):
        if getattr(cfg, name) > MAX_FREQUENCIES:  # 2^k overflows float32 precision long before
            problems.append(f"{name} must be at most {MAX_FREQUENCIES}")
    for name in ("samples_per_ray", "render_samples_per_ray", "fine_samples", "march_steps", "render_march_steps"):
        # Taichi's autodiff stack is sized by this, per thread
        if getattr(cfg, name) is not None and getattr(cfg, name) > MAX_SAMPLES:
            problems.append(f"{name} must be at most {MAX_SAMPLES}")
    if not 0 <= cfg.seed < 2**64:
        problems.append("seed must be from 0 to 2^64 - 1")
    if cfg.near is not None and cfg.near < 0:
        problems.append("near must not be negative")
    if cfg.near is not None and cfg.far is not None and not cfg.near < cfg.far:
        problems.append(f"near must be less than far, got near {cfg.near:g} and far {cfg.far:g}")
    if cfg.far is not None and cfg.far <= 0:
        problems.append("far must be positive")
    if cfg.aabb is not None and (len(cfg.aabb) != 6 or not all(hi > lo for lo, hi in zip(cfg.aabb[:3],
                                                                                           cfg.aabb[3:]))):
        problems.append("aabb must be six numbers xmin ymin zmin xmax ymax zmax with max > min")
    if cfg.batch_rays < (0 if cfg.batch_images > 0 else 1):
        problems.append("batch_rays must be at least 1 (0 only with batch_images: every pixel of those images)")
    if cfg.skip_layer is not None and not 0 <= cfg.skip_layer < cfg.depth:
        problems.append(f"skip_layer must be from 0 (none) to depth - 1 = {cfg.depth - 1}")
    if cfg.appearance_dim is not None and not 0 <= cfg.appearance_dim <= 256:
        problems.append("appearance_dim must be from 0 (none) to 256")
    if cfg.color_width is not None and cfg.color_width < 0:
        problems.append("color_width must not be negative")
    if not cfg.frequency_base > 0:
        problems.append("frequency_base must be positive")
    elif cfg.frequency_base * 2.0 ** (min(max(cfg.pos_frequencies, cfg.dir_frequencies), MAX_FREQUENCIES) - 1) \
            > 2.0**MAX_FREQUENCIES:
        problems.append(f"frequency_base is too large: the highest encoding frequency passes 2^{MAX_FREQUENCIES}")
    if not 0 < cfg.lr_step_at < 1:
        problems.append(f"lr_step_at must be above 0 and below 1 (the share of the steps after which lr_final "
                        f"holds), got {cfg.lr_step_at:g}")  # "between 0 and 1" refused 1 and 0 without saying so
    if not 0 <= cfg.adam_beta2 < 1:
        problems.append("adam_beta2 must be in [0, 1)")
    if not 0 < cfg.adam_eps <= 1:
        problems.append("adam_eps must be in (0, 1]")
    if cfg.intervals == "gaps" and cfg.sampler != "stratified":
        problems.append("intervals gaps needs the stratified sampler (the others place their own intervals)")
    if cfg.huber_delta <= 0:
        problems.append("huber_delta must be positive")
    if cfg.sampler in ("hierarchical", "proposal") and cfg.fine_samples < 1:
        problems.append(f"the {cfg.sampler} sampler needs fine_samples of at least 1")
    for name in ("lr", "lr_final", "pose_lr"):  # each named: the message says which flag or key to fix
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            problems.append(f"{name} must be positive, got {getattr(cfg, name):g}")
    if cfg.lr_warmup is not None and cfg.lr_warmup < 0:
        problems.append("lr_warmup must not be negative")
    # Without data the run trains on the built-in scene (an object in the blender layout): these would be
    # refused only after it rendered, naming its cache folder, and a dry run (which does not render it) passed them.
    if cfg.data is None and cfg.ndc:
        problems.append("ndc applies to forward-facing LLFF captures, and without data the run trains on the "
                        "built-in scene (an object): give data, or leave ndc out")
    if cfg.data is None and cfg.data_format not in (None, "blender"):
        problems.append(f"data_format {cfg.data_format} needs data: without it the run trains on the built-in "
                        "scene (blender layout)")
    if not cfg.out:
        problems.append("out must name a folder")
    if cfg.data is not None and not str(cfg.data).strip():  # "" read the current folder as the dataset
        problems.append("data must name a dataset (a folder or file), or be left out for the built-in scene")
    return problems
