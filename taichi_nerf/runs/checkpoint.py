"""Checkpoints: written atomically, loaded into a ready-to-render model."""
from __future__ import annotations

import dataclasses
import errno
import os
import pickle
import re
import shlex
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import backend
from ..config import TrainConfig
from ..config_checks import number_at_least
from ..files import write_atomic
from ..kind_defaults import MARCH_STEPS_BEFORE_WRITTEN, scene_kind
from ..rendering.carried_corrections import CarriedCorrections
from ..rendering.renderer import Renderer
from ..rendering.scene import Scene
from ..wording import few_names

FORMAT_VERSION = 1
# Config fields that shape the model's tensors or what they mean: a resume must not change them.
ARCHITECTURE_KEYS = ("width", "depth", "pos_frequencies", "dir_frequencies", "sampler", "grid_resolution",
                     "view_dependent", "frequency_base", "include_input", "skip_layer", "activation",
                     "density_activation", "feature_layer", "color_width", "appearance_dim",
                     "refine_poses")


class CheckpointError(ValueError):
    pass


def save_atomic(obj: dict, path: Path) -> Path:
    """torch.save through a temporary file, fsynced, renamed over the target: an interrupted
    write leaves the previous checkpoint whole."""
    def write(fh):
        sink = _WriteErrors(fh)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:  # a full disk: torch says only "unexpected pos ... vs ..."
                raise sink.error from None
            raise

    return write_atomic(path, write, binary=True, sync=True)


class _WriteErrors:
    """A file for torch.save that keeps the OSError of a failed write, which torch's writer
    swallows and reports as a RuntimeError about the file position."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data):
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self):
        return self.fh.flush()


def find_checkpoint(path) -> Path:
    """Accept a checkpoint file or a run folder (its ``checkpoint.pt``)."""
    if not isinstance(path, (str, os.PathLike)):  # Path()'s "expected str, bytes or os.PathLike object": no way out
        given = type(path).__name__ + (" (give its .checkpoint)" if hasattr(path, "checkpoint") else "")
        raise TypeError(f"a checkpoint is given as the path of a run folder or of its checkpoint.pt, got {given}")
    path = Path(path)
    if path.is_dir():
        runs = sorted(p.parent for p in path.glob("*/checkpoint.pt"))
        if runs and not (path / "checkpoint.pt").is_file():  # a folder of runs, not a run
            listed = ", ".join(str(p) for p in runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
            raise CheckpointError(f"{path}: a folder of runs, not a run; give one of them: {listed}")
        layout = None if (path / "checkpoint.pt").is_file() else _dataset_layout(path)
        if layout:
            raise CheckpointError(f"{path}: a dataset ({layout} layout), not a run; train on it first "
                                  f"(taichi-nerf train --data {shlex.quote(str(path))} --out RUN), then give RUN")
        path = path / "checkpoint.pt"
    if not path.is_file():
        started = path.name == "checkpoint.pt" and (path.parent / "config.json").is_file()  # a run folder's marker
        why = "; the run there has no checkpoint yet (it stopped, or is still, before its first)" if started else ""
        # a checkpoint renamed or copied under another name (best.pt, step_5000.pt): say which to give
        folder = path.parent if path.name == "checkpoint.pt" and path.parent.is_dir() else None
        others = sorted(p.name for p in folder.glob("*.pt") if p.is_file()) if folder is not None else []
        if others:
            why = f"; {folder} holds {few_names(others)}: give that file's path (e.g. {folder / others[0]})"
        raise CheckpointError(f"{path}: no checkpoint found{why}")
    return path


def _dataset_layout(folder: Path) -> str | None:
    """The dataset layout of ``folder``, or None: what a user gives where a run belongs."""
    from ..data.dataset import DataError
    from ..data.loaders import detect_format, lone_npz

    try:
        return detect_format(lone_npz(folder) or folder)
    except DataError:
        return None


def checkpoint_file(path) -> Path:
    """:func:`find_checkpoint`, refusing at once a file that is not one (read_state's first check;
    a command can make it before starting anything, without loading the file)."""
    path = find_checkpoint(path)
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK":  # torch.save's zip; a config.json or a picture is not a checkpoint at all
        # a run's own checkpoint.pt that is not one was damaged (an empty copy, a file written over it)
        why = ("empty" if not head else "damaged") if path.name == "checkpoint.pt" else \
            "a run's checkpoint.pt is the one to give"
        raise CheckpointError(f"{path}: not a checkpoint file ({why})")
    return path


def read_state(path) -> dict:
    """The checkpoint dict, or a one-line CheckpointError. ``weights_only``: a checkpoint
    from someone else cannot run code on load."""
    path = checkpoint_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path}: not a readable taichi-nerf checkpoint ({_load_failure(exc)})") from None
    if not isinstance(state,
                      dict) or state.get("format") != "taichi-nerf" or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a taichi-nerf checkpoint")
    version = state.get("version", FORMAT_VERSION)  # none: written before the field existed
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer taichi-nerf (checkpoint format {version}; this one reads "
                              f"format {FORMAT_VERSION}): upgrade taichi-nerf to use it")
    return state


def scene_of(state: dict, path) -> Scene:
    """The checkpoint's Scene, refused in one line when its keys are not the Scene's (as
    config_of refuses unknown configuration keys)."""
    saved = state.get("scene")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: damaged or from an incompatible version (no scene)")
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(Scene)})
    if unknown:
        raise CheckpointError(f"{path}: unknown scene keys: {few_names(unknown)} (written by another version?)")
    try:
        return Scene(**saved)
    except TypeError as exc:  # a required key missing
        raise CheckpointError(f"{path}: damaged or from an incompatible version ({exc})") from None


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in a few words, without torch's advice to retry with
    ``weights_only=False``: that would run whatever code the file holds."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        unsupported = re.search(r"Unsupported (?:global|operand)[^.\n]*", text)
        detail = f": {unsupported.group(0)[0].lower()}{unsupported.group(0)[1:]}" if unsupported else ""
        return f"not plain tensor data{detail}; such files are never unpickled"
    # torch's zip reader raises a bare EINVAL where a cut-short file's directory points past its end
    if "central directory" in text or "zip archive" in text or getattr(exc, "errno", None) == errno.EINVAL:
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
            parts.append(f"{kind.lower()} {few_names(names)}")
    sizes = re.findall(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                       r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)", text)
    if sizes:
        shown = [f"{name} is {old} in the checkpoint but {new} here" for name, old, new in sizes[:2]]
        parts.append("; ".join(shown) + (f" (and {len(sizes) - 2} more)" if len(sizes) > 2 else ""))
    if not parts:
        return " ".join(text.split())[:300]
    return "; ".join(parts)


def config_of(state: dict, path) -> TrainConfig:
    """The run's configuration, with the choices its defaults made by scene kind written out
    from the tensors (appearance codes, pose corrections, the proposal network's width): a
    checkpoint keeps meaning what it was trained as when those defaults change."""
    saved = state["config"] if isinstance(state["config"], dict) else {}
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:  # a setting added since (it said only "unusable configuration (unknown configuration keys: ...)")
        from .. import __version__

        raise CheckpointError(f"{path}: configuration keys this taichi-nerf ({__version__}) does not know: "
                              f"{few_names(unknown)}; written by a newer version? upgrade taichi-nerf to use it")
    try:
        cfg = TrainConfig.from_dict(state["config"]).validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable configuration ({exc})") from None
    model = state.get("model") if isinstance(state.get("model"), dict) else {}
    codes = model.get("appearance.weight")
    if cfg.appearance_dim is None:
        cfg = cfg.replace(appearance_dim=0 if codes is None else int(codes.shape[1]))
    if cfg.refine_poses is None:
        cfg = cfg.replace(refine_poses=state.get("pose_refinement") is not None)
    if cfg.march_steps is None and isinstance(state.get("scene"), dict):  # saved before they were written out
        kind = scene_kind(SimpleNamespace(ndc=bool(state["scene"].get("ndc")),
                                          unbounded=bool(state["scene"].get("unbounded"))))
        cfg = cfg.replace(march_steps=MARCH_STEPS_BEFORE_WRITTEN[kind])
    if cfg.render_march_steps is None:  # ...and rendered as they trained
        cfg = cfg.replace(render_march_steps=cfg.march_steps)
    proposal = state.get("proposal")
    if "proposal_width" not in state["config"] and isinstance(proposal, dict) and "hidden.weight" in proposal:
        cfg = cfg.replace(proposal_width=int(proposal["hidden.weight"].shape[0]))  # 64 before it was an option
    return cfg


# What a run's defaults chose by scene kind when it started, which a resume keeps (the defaults may have changed since).
SAVED_CHOICES = ("appearance_dim", "refine_poses", "march_steps", "render_march_steps")


def with_saved_choices(cfg: TrainConfig, resume: bool) -> TrainConfig:
    """``cfg`` for a run that resumes from the checkpoint in ``cfg.out``: the saved
    ``SAVED_CHOICES`` wherever ``cfg`` leaves them to the defaults."""
    left = [name for name in SAVED_CHOICES if getattr(cfg, name) is None]
    if not resume or not left:
        return cfg
    saved = saved_config(cfg.out)
    return cfg.replace(**{name: getattr(saved, name) for name in left})


def saved_config(path) -> TrainConfig:
    path = find_checkpoint(path)
    return config_of(read_state(path), path)


def saved_scene(path) -> Scene | None:
    """The scene saved with the checkpoint at ``path``; None when it does not read as one (then
    :func:`load` says why)."""
    path = find_checkpoint(path)
    try:
        return scene_of(read_state(path), path)
    except CheckpointError:
        return None


def load(path, arch: str = "auto", appearance_image: int | None = None) -> tuple[Renderer, TrainConfig, dict]:
    """``appearance_image``: render with that training image's appearance code, not the mean."""
    if appearance_image is not None:  # 2.5 was image 2, True image 1, "3" a TypeError from a comparison
        appearance_image = number_at_least("appearance_image", appearance_image, 0)
    path = find_checkpoint(path)
    state = read_state(path)
    cfg = config_of(state, path)
    b = backend.init(arch, cfg.max_samples_per_ray)
    try:
        codes = state["model"].get("appearance.weight")  # one per training image
        renderer = Renderer.from_config(cfg, scene_of(state, path), b.device,
                                        train_images=0 if codes is None else int(codes.shape[0]))
        renderer.field.load_state_dict(state["model"])  # older key names are mapped by the modules
        if renderer.grid is not None and state.get("grid") is not None:
            renderer.grid.load_state_dict(state["grid"])
        if renderer.proposal is not None:
            renderer.proposal.load_state_dict(state["proposal"])
        renderer.carried = CarriedCorrections.from_saved(state.get("pose_refinement"))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: tensors do not fit this model: {state_dict_mismatch(exc)}") from None
    except (TypeError, KeyError, ValueError) as exc:
        reason = f"no {exc.args[0]!r} entry" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: damaged or from an incompatible version ({reason})") from None
    renderer.field.eval()
    if appearance_image is not None:
        codes = renderer.field.appearance
        if codes is None:
            raise CheckpointError(f"{path}: was trained without appearance codes (--appearance-dim), so it has no "
                                  f"image's look to choose")
        if not 0 <= appearance_image < codes.num_embeddings:
            raise CheckpointError(f"{path}: the appearance image must be a training image's index, 0 to "
                                  f"{codes.num_embeddings - 1}, got {appearance_image}")
        renderer.field.appearance_image = appearance_image
    return renderer, cfg, state


# --- the format: what a trainer saves, and how a trainer resumes from it ---------------------
def trainer_state(trainer) -> dict:
    """Everything a resumed run needs to continue bit for bit (and a render needs to draw)."""
    return {
        "format": "taichi-nerf", "version": FORMAT_VERSION,
        "config": trainer.cfg.to_dict(), "scene": asdict(trainer.scene),
        "model": trainer.field.state_dict(), "optimizer": trainer.optimizer.state_dict(),
        "pose_refinement": None if trainer.pose_refinement is None else trainer.pose_refinement.state_dict(),
        "grid": None if trainer.renderer.grid is None else trainer.renderer.grid.state_dict(),
        "proposal": None if trainer.renderer.proposal is None else trainer.renderer.proposal.state_dict(),
        "step": trainer.step_count, "elapsed": trainer.elapsed, "val_psnr": trainer.last_val_psnr,
        "clock_s": trainer.clock_s,  # what --time-limit has counted: a resume carries it on
        "schedule_progress": trainer.schedule_progress(trainer.step_count),  # time-limited runs decay by time
        "rng": {"generator": trainer.generator.get_state(), "torch": torch.get_rng_state()},
        "world_size": trainer.ranks.size,  # distributed: rank 0's generator above; the others' are reseeded
        "error_map": None if trainer.ray_batches.error_map is None else trainer.ray_batches.error_map.state_dict(),
        "end_video_frames": trainer.end_video_frames,  # the front end's (train's --video-frames); None: not said
    }


def check_resumable(state: dict, path, cfg: TrainConfig) -> None:
    """Refuse a checkpoint that ``cfg`` cannot continue: another architecture, no training state, or
    fewer ``steps`` (or a shorter time limit) than it has made (config.json would then hold a total
    the run went past)."""
    saved = config_of(state, path)
    for key in ARCHITECTURE_KEYS:
        if getattr(saved, key) != getattr(cfg, key):
            raise ValueError(f"{path}: the run trained {key}={getattr(saved, key)}, and a resume keeps its model; "
                             f"got {key}={getattr(cfg, key)}")
    missing = [key for key in ("model", "optimizer", "step", "rng") if state.get(key) is None]
    if missing:
        raise CheckpointError(f"{path}: cannot resume: the checkpoint has no {' or '.join(missing)} state "
                              f"(render and eval can still read it)")
    made = state["step"]
    given = cfg.steps is not None and cfg.steps != saved.steps  # (None: by the time limit, or the default)
    if isinstance(made, int) and given and cfg.steps < made:  # it would be written as the run's
        raise ValueError(f"bad configuration: steps must be at least {made} on this resume, the steps the run has "
                         f"made (it is the run's total, not the steps to add: {made + cfg.steps} trains "
                         f"{cfg.steps} more), got {cfg.steps}")
    used, limit = float(state.get("clock_s") or 0.0), cfg.time_limit_s
    if limit and limit != saved.time_limit_s and limit <= used:  # the same: a spent limit written again
        raise ValueError(f"bad configuration: time_limit_s must be more than the {used:.1f} s the run has trained on "
                         f"this resume (it is the run's total, not the time to add: {used + limit:.1f} s trains "
                         f"{limit:g} s more), got {limit:g}")


def restore_trainer(trainer, path: Path, state: dict | None = None) -> None:
    """Load a checkpoint written by :func:`trainer_state` into ``trainer`` (same architecture);
    ``state``: the checkpoint at ``path`` already read."""
    state = read_state(path) if state is None else state
    check_resumable(state, path, trainer.cfg)
    try:
        trainer.field.load_state_dict(state["model"])
        if trainer.pose_refinement is not None and state.get("pose_refinement") is not None:
            trainer.pose_refinement.load_state_dict(state["pose_refinement"])
        if trainer.renderer.proposal is not None:
            trainer.renderer.proposal.load_state_dict(state["proposal"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not fit this model: {state_dict_mismatch(exc)}") from None
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: its optimizer state does not fit this model "
                              f"({' '.join(str(exc).split())[:200]})") from None
    try:
        if trainer.renderer.grid is not None and state.get("grid") is not None:
            trainer.renderer.grid.load_state_dict(state["grid"])
        error_map = trainer.ray_batches.error_map
        if error_map is not None and state.get("error_map") is not None and not error_map.load_state_dict(
                state["error_map"]):  # (none saved before 2026-12-06: it starts afresh too)
            print("note: the error map (--pixel-sampling error) starts afresh: the training images changed")
        trainer.step_count = trainer.resumed_from = int(state["step"])
        trainer.elapsed = float(state.get("elapsed", 0.0))
        trainer.clock_s = trainer.clock_carried_s = float(state.get("clock_s", 0.0))  # 0: saved before
        trainer.progress_floor = float(state.get("schedule_progress", 0.0))
        torch.set_rng_state(state["rng"]["torch"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged ({' '.join(str(exc).split())[:200]})") from None
    trainer.last_val_psnr = state.get("val_psnr")
    trainer.end_video_frames = state.get("end_video_frames")
    trainer.resumed_world_size = state.get("world_size")  # start_lines says a change of ranks
    cfg = trainer.cfg
    if trainer.progress_floor >= 1.0 and cfg.lr_final != cfg.lr and not trainer.nothing_to_train():
        print(f"note: the run had ended annealed, so what it trains now is at its final learning rate "
              f"({cfg.lr_final:g}, not {cfg.lr:g}): a polish; for a fresh schedule start a new run")
    try:
        trainer.generator.set_state(state["rng"]["generator"])
    except (RuntimeError, KeyError, TypeError):  # saved on another device type: same schedule, new random stream
        print(f"warning: {path}: random state is from another device; continuing with a fresh seed")
        trainer.generator.manual_seed(trainer.cfg.seed + trainer.step_count)
