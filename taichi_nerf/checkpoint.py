"""Checkpoints: written atomically, loaded into a ready-to-render model."""
from __future__ import annotations

import os
import pickle
import re
import shutil
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


# What marks a folder as holding a run, and what a run writes there (cleared by --overwrite).
RUN_MARKERS = ("checkpoint.pt", "metrics.jsonl", "config.json")
RUN_OUTPUTS = RUN_MARKERS + ("curves.png", "previews", "orbit.mp4", "orbit_depth.mp4", "orbit.gif", "tensorboard")
# Partial files of an interrupted atomic write: save_atomic's and write_text_atomic's.
_TEMP = re.compile(r"^\.(?:checkpoint\.pt\.tmp|config\.json\.part|metrics\.jsonl\.part)(\d+)$")


def holds_run(folder) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in RUN_MARKERS)


def claim_run_folder(folder, *, overwrite: bool = False, continue_hint: str = "--resume to continue it") -> Path:
    """Make ``folder`` ready for a fresh run: a folder holding another run (its checkpoint,
    metrics or config) is refused, so two runs never mix, unless ``overwrite``, which first
    removes that run's files (only those: anything else in the folder stays)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: is a file, not a run folder; choose another --out")
    if not holds_run(folder):
        return folder
    if not overwrite:
        ckpt = folder / "checkpoint.pt"
        what = "a run with a checkpoint" if ckpt.is_file() else "an unfinished run with no checkpoint"
        hint = f"{continue_hint}, " if ckpt.is_file() else ""
        raise CheckpointError(f"{folder}: already holds {what}; add {hint}--overwrite to replace it, "
                              f"or choose another --out")
    for name in RUN_OUTPUTS:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    remove_stale_temps(folder)
    return folder


def remove_stale_temps(folder) -> list[Path]:
    """Delete ``.checkpoint.pt.tmp<pid>`` (and config/metrics ``.part<pid>``) files a killed
    writer left behind (never one whose process still runs: that is a write in progress)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier run of this pid: nothing writes it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its file alone
    return True


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
        raise CheckpointError(f"{path}: not a readable taichi-nerf checkpoint ({_load_failure(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != "taichi-nerf" or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a taichi-nerf checkpoint")
    return state


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in a few words, without torch's advice to retry with
    ``weights_only=False``: that would run whatever code the file holds."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        unsupported = re.search(r"Unsupported (?:global|operand)[^.\n]*", text)
        detail = f": {unsupported.group(0)[0].lower()}{unsupported.group(0)[1:]}" if unsupported else ""
        return f"not plain tensor data{detail}; such files are never unpickled"
    if "central directory" in text or "zip archive" in text:
        return "truncated or not a checkpoint file"
    if isinstance(exc, (EOFError, IndexError, KeyError, UnicodeDecodeError, ValueError)):
        return "damaged or not a checkpoint file"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split(". ")[0]


def state_dict_mismatch(exc: Exception) -> str:
    """torch's many-line load_state_dict error as one line: which tensors are missing,
    unexpected, or of another shape."""
    text = str(exc)
    parts = []
    for kind in ("Missing", "Unexpected"):
        keys = re.search(kind + r' key\(s\) in state_dict: ([^\n]*)', text)
        if keys:
            names = re.findall(r'"([^"]+)"', keys.group(1))
            parts.append(f"{kind.lower()} {_few(names)}")
    sizes = re.findall(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                       r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)", text)
    if sizes:
        shown = [f"{name} is {old} in the checkpoint but {new} here" for name, old, new in sizes[:2]]
        parts.append("; ".join(shown) + (f" (and {len(sizes) - 2} more)" if len(sizes) > 2 else ""))
    if not parts:
        return " ".join(text.split())[:300]
    return "; ".join(parts)


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def config_of(state: dict, path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(state["config"]).validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable configuration ({exc})") from None


def saved_config(path) -> TrainConfig:
    path = find_checkpoint(path)
    return config_of(read_state(path), path)


def resume_config(run_dir, **overrides) -> TrainConfig:
    """The configuration a run was started with, writing into ``run_dir``, with overrides
    (typically a larger ``steps``) applied."""
    if Path(run_dir).is_dir() and holds_run(run_dir) and not (Path(run_dir) / "checkpoint.pt").is_file():
        raise CheckpointError(f"{run_dir}: the run there stopped before its first checkpoint, so there is nothing to "
                              f"resume; start it again with --out {run_dir} --overwrite")
    path = find_checkpoint(run_dir)
    cfg = saved_config(path).replace(**overrides)
    return cfg.replace(out=os.path.abspath(path.parent))


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
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: tensors do not fit this model: {state_dict_mismatch(exc)}") from None
    except (TypeError, KeyError, ValueError) as exc:
        reason = f"no {exc.args[0]!r} entry" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: damaged or from an incompatible version ({reason})") from None
    renderer.field.eval()
    return renderer, cfg, state


def scene_dict(scene: Scene) -> dict:
    return asdict(scene)


def require_stored_data(cfg: TrainConfig, source) -> None:
    """A run's config names its dataset by an absolute path; say which flag overrides it
    when that path has gone (the dataset moved, or the run came from another machine)."""
    if cfg.data is not None and not Path(cfg.data).exists():
        raise CheckpointError(f"{cfg.data}: the dataset {source} was trained on is not there any more; "
                              f"give its new place with --data PATH")


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: a kill leaves the
    old contents or the new, never half of them."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
