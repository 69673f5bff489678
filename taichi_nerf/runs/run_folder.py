"""Starting or resuming a run: the one path that every entry point takes (the CLI's ``train``
and ``gui``, the Python API, the web viewer, the multi-process launcher).

:func:`open_run` runs every check that can refuse the command first (the configuration, the
optional extras it needs, the memory, the dataset, the run folder's contents, another process
training there), and only then takes the run's lock and claims or clears the folder. So a
refused command never changes anything on disk, and ``--dry-run`` runs exactly these checks.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import files, resources
from ..backend import resolve_arch
from ..config import TrainConfig, given_config
from ..data.dataset import Dataset
from ..data.images import DATASET_SUFFIXES
from ..files import check_writable, write_text_atomic
from ..rendering.scene import Scene
from ..rendering.video_route import VIDEO_FILES, video_files
from ..scenes.builtin import builtin_cached
from ..wording import few_names
from . import checkpoint, distributed, scene_match
from .datasets import check_data_format, load_dataset, require_stored_data
from .rank_env import pin_local_device

LOCK_NAME = ".taichi-nerf.lock"
# What marks a folder as holding a run, and what runs (train, the GUI) write there: --overwrite
# removes these and nothing else. In the folders a run writes, only the files it names so.
RUN_MARKERS = ("checkpoint.pt", "metrics.jsonl", "config.json")
RUN_VIDEOS = tuple(str(name) for video in VIDEO_FILES.values() for name in video_files(video))
# What the front ends write there: their performance logs (viewing/perflog.py) and the keyframes' path.
GUI_LOG, VIEWER_LOG, CAMERA_PATH = "gui.jsonl", "viewer.jsonl", "camera_path.json"
RUN_OUTPUTS = RUN_MARKERS + ("curves.png", GUI_LOG, VIEWER_LOG, CAMERA_PATH, "camera_path_*.json") + RUN_VIDEOS + (
    "previews/step_*.png", "screenshots/gui_step*.png", "videos/*_step*.mp4", "videos/*_step*.gif",
    "tensorboard/events.out.tfevents.*")
RUN_REWRITES = ("checkpoint.pt", "config.json", "metrics.jsonl")  # what a run replaces as it goes


def holds_run(folder) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in RUN_MARKERS)


def claim_run_folder(folder, *, overwrite: bool = False, continue_hint: str = "--resume to continue it",
                     check_only: bool = False, flags: tuple[str, str] = ("--overwrite", "--out")) -> Path:
    """Make ``folder`` ready for a fresh run: a folder holding another run (its checkpoint,
    metrics or config) is refused, so two runs never mix, unless ``overwrite``, which first
    removes that run's files (only those: anything else in the folder stays). ``check_only``:
    refuse as it would, but remove nothing. ``flags``: how the caller spells overwrite and out
    (the Python API: ``overwrite=True``, ``out``). Call it through :func:`taichi_nerf.runs.run_folder.open_run`,
    which runs every other refusing check first and holds the run's lock."""
    folder = Path(folder)
    overwrite_flag, out_flag = flags
    if folder.exists() and not folder.is_dir():
        raise checkpoint.CheckpointError(f"{folder}: is a file, not a run folder; choose another {out_flag}")
    if not holds_run(folder) or (check_only and overwrite):
        return folder
    if not overwrite:
        ckpt = folder / "checkpoint.pt"
        what = "a run with a checkpoint" if ckpt.is_file() else "an unfinished run with no checkpoint"
        hint = f"{continue_hint}, " if ckpt.is_file() else ""
        raise checkpoint.CheckpointError(f"{folder}: already holds {what}; add {hint}{overwrite_flag} to replace "
                                         f"it, or choose another {out_flag}")
    if check_only:
        return folder
    for pattern in RUN_OUTPUTS:
        for target in folder.glob(pattern):
            if target.is_file() or target.is_symlink():
                target.unlink()
        parent = (folder / pattern).parent
        if parent != folder and parent.is_dir() and not parent.is_symlink() and not any(parent.iterdir()):
            parent.rmdir()  # a folder the run made, now empty
    remove_stale_temps(folder)
    return folder


def remove_stale_temps(folder) -> list[Path]:
    """Delete the partial files of the run's own atomic writes (checkpoint, config, metrics) that a
    killed run left in ``folder``; :func:`files.remove_dead_partials` keeps any of a live writer."""
    return [gone for name in RUN_REWRITES for gone in files.remove_dead_partials(Path(folder) / name)]


def resume_config(run_dir, *, api: bool = False, **overrides) -> TrainConfig:
    """The configuration a run was started with, writing into ``run_dir``, with overrides
    (typically a larger ``steps``) applied. The run's own preset among them changes nothing (applied
    again, it would reset what the run set over it); another preset is refused. ``api``: a
    refusal says how to start again in Python (``train(...)``), not with flags."""
    refuse_if_locked(run_dir)  # a live run there: say that, not what its folder holds so far
    if Path(run_dir).is_dir() and holds_run(run_dir) and not (Path(run_dir) / "checkpoint.pt").is_file():
        config, folder = Path(run_dir) / "config.json", shlex.quote(str(run_dir))
        if api:
            again = (f"train(TrainConfig.from_file({str(config)!r}), out={str(run_dir)!r}, overwrite=True) (its own "
                     f"settings)") if config.is_file() else f"train(out={str(run_dir)!r}, overwrite=True, ...)"
        else:
            again = (f"taichi-nerf train --config {shlex.quote(str(config))} --out {folder} --overwrite (its own "
                     f"settings)") if config.is_file() else f"--out {folder} --overwrite"
        raise checkpoint.CheckpointError(f"{run_dir}: the run there stopped before its first checkpoint, so there "
                                         f"is nothing to resume; start it again with {again}")
    path = checkpoint.find_checkpoint(run_dir)
    if path.name != "checkpoint.pt":  # the run goes on from its folder's checkpoint.pt, not from this file
        raise checkpoint.CheckpointError(f"{path}: a resume continues a run folder from its checkpoint.pt; to go on "
                                         f"from this file, copy it as checkpoint.pt into a folder of its own and "
                                         f"resume that folder")
    saved = checkpoint.saved_config(path)
    preset = overrides.pop("preset", None)
    if preset not in (None, saved.preset):
        raise ValueError(f"preset {preset!r} sets a model of its own, and a resumed run keeps the one it trained "
                         f"({saved.preset or 'no preset'}): drop the preset, or start a new run with it")
    cfg = saved.replace(**overrides)
    return cfg.replace(out=os.path.abspath(path.parent))


def check_resume(run_dir, cfg: TrainConfig) -> None:
    """Refuse, as :func:`open_run` would, a resume of the run in ``run_dir`` with ``cfg`` that its
    checkpoint cannot continue (another model, fewer steps than it made): for a caller that says
    what the resume changes, before it says so."""
    path = checkpoint.find_checkpoint(run_dir)
    checkpoint.check_resumable(checkpoint.read_state(path), path, cfg.validate())


class RunLocked(checkpoint.CheckpointError):
    """Another live process holds the run's lock."""


class RunLock:
    """An exclusive ``flock`` on ``RUN/.taichi-nerf.lock``, held while a process trains there.
    The OS releases it when the process ends, however it ends, so a SIGKILL leaves no stale
    lock (only a file that the next run takes over). The file holds the PID, for the refusal
    message, and is removed on a normal release."""

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                refuse_if_locked(self.path.parent)
                continue  # its holder has just let go: try again
            try:  # the holder we waited on may have removed the file: lock the one at the path
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        files.held_folders[os.path.abspath(self.path.parent)] = self.keep_folder  # a write there asks first
        return self

    def still_ours(self) -> bool:
        """Whether the lock file at the path is still the one this lock holds: not when the run folder was
        removed, or removed and another run started there."""
        try:
            here, held = os.stat(self.path), os.fstat(self.fd)
        except (OSError, TypeError):  # gone; or released
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def keep_folder(self) -> bool:
        """Whether the run folder is still this lock's, made again and locked where it was removed mid-run (said:
        its files from before are gone); False where another run has started in it since (its lock file)."""
        if self.still_ours():
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another run's lock file
            return False
        except OSError:  # the folder cannot be made: the write that asked says why
            return True
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file this process has just made: nobody else holds it
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.close(self.fd)
        self.fd = fd
        print(f"warning: {self.path.parent} was removed while this run trained in it: made again, without the files "
              f"it held (metrics rows, config.json, previews); the run goes on, its checkpoints are saved there",
              file=sys.stderr)
        return True

    def release(self) -> None:
        if self.fd is not None:
            files.held_folders.pop(os.path.abspath(self.path.parent), None)
            try:
                if self.still_ours():  # not another run's, which started where this run's folder was removed
                    self.path.unlink(missing_ok=True)  # while still locked: nobody can take the old file
            except OSError:  # a folder gone read-only: the file stays (the next run takes it over), and the
                pass  # error that stopped the run, not this one, is what the user must read
            os.close(self.fd)
            self.fd = None

    @property
    def held(self) -> bool:
        return self.fd is not None


def lock_holder(folder) -> int | None:
    """The PID training in ``folder`` now, or None (no lock, or its holder has ended)."""
    return files.flock_holder(Path(folder) / LOCK_NAME)


def read_metrics(path) -> tuple[list[tuple[dict, str]], bool]:
    """The rows of a run's metrics.jsonl with their lines, and whether its last line was torn (a
    kill mid-write: dropped). A damaged row before the last is refused, naming file and line."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step", 0), int):
                raise ValueError("not a metrics row")
        except ValueError as exc:
            if number == len(lines):
                return rows, True
            raise ValueError(f"{path}: line {number} is not a metrics row ({exc}); fix or delete that line") from None
        rows.append((row, line))
    return rows, False


def refuse_if_locked(folder) -> None:
    """A one-line refusal naming the process that trains in ``folder`` now, if one does."""
    holder = lock_holder(folder)
    if holder is not None:
        raise RunLocked(f"{folder}: a run is already training there (process {holder}); "
                        f"wait for it to finish or stop it first")


def truncate_metrics(path, step: int, redo_final: bool, redo_start: bool = False) -> None:
    """On resume, the checkpoint at ``step`` is the truth: drop the rows of ``path`` logged after
    it (a hard kill leaves them, and a torn last line when it struck mid-write); the resumed run
    logs them again. ``redo_final``: the run will redo its final validation at ``step``, so that
    row goes too; ``redo_start``: a run stopped at step 0 validates its start again, so its rows
    at step 0 go."""
    path = Path(path)
    if not path.is_file():
        return
    rows, torn = read_metrics(path)
    if torn:  # the write a kill interrupted
        print(f"note: {path}: dropped a torn last line (the checkpoint at step {step} is the truth)")
    keep = [line for row, line in rows
            if row.get("step", 0) <= step and not (redo_final and row.get("final") and row.get("step", 0) == step)
            and not (redo_start and row.get("step", 0) == 0)]
    write_text_atomic(path, "".join(line + "\n" for line in keep))


@dataclass
class Run:
    """A checked run, its folder locked and ready (unless it was a dry run). Use it as a
    context manager, or call :meth:`close`, to release the lock before the process ends."""

    cfg: TrainConfig
    dataset: Dataset | None  # None: a dry run of the built-in scene
    resume: bool
    out: Path
    lock: RunLock | None = None
    notes: list[str] = field(default_factory=list)
    resumed_step: int | None = None  # a resume's: the step its checkpoint holds (read once, by the checks)
    resumed_clock_s: float = 0.0  # ... and the seconds of training before it (what --time-limit counts)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def refuse_dataset_folder(cfg: TrainConfig, out_flag: str = "--out") -> None:
    """A run written into its own dataset's folder (or a folder of its images inside it) mixes its files with
    the photos', and a later --overwrite would delete the dataset's own config.json or camera_path.json: a new
    run there is refused.
    A dataset file (an .npz) may have a run beside it."""
    clash = None if cfg.data is None else dataset_folder_clash(cfg.data, cfg.out, RUN_OUTPUTS)
    if clash:
        raise checkpoint.CheckpointError(f"{cfg.out}: {clash}; a run goes in a folder of its own, so its files never "
                                         f"mix with the dataset's: choose another {out_flag} (runs/NAME, say)")


def dataset_folder_clash(data, out, ignored=frozenset()) -> str | None:
    """Why files written into the folder ``out`` would mix with the dataset at ``data``: it is the dataset's folder,
    or a folder inside it that holds the dataset's images (`--out data/mine/train`; image files named in ``ignored``,
    the writer's own, do not count). None when neither (a dataset file, an .npz, may have outputs beside it)."""
    data = Path(data)
    folder = data if data.is_dir() else data.parent if data.suffix.lower() == ".json" else None
    if folder is None:
        return None
    out, folder = (Path(os.path.realpath(p)) for p in (out, folder))  # (resolve(): a link loop's RuntimeError)
    if folder == out:
        return "is the dataset's folder"
    images = sorted(p.name for p in out.iterdir() if p.suffix.lower() in DATASET_SUFFIXES and p.name not in
                    ignored and p.is_file()) if folder in out.parents and out.is_dir() else []
    return f"holds the dataset's images ({few_names(images)})" if images else None


def open_run(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, dry_run: bool = False,
             data_given: bool | None = None, continue_hint: str = "--resume to continue it",
             dataset: Dataset | None = None, claim: bool = True,
             flags: tuple[str, str] = ("--overwrite", "--out")) -> Run:
    """Check everything that can refuse the run, then lock and claim its folder.

    ``cfg``: the run's configuration (for a resume, the saved one with the user's overrides:
    :func:`resume_config`). ``resume``: continue the run in ``cfg.out``;
    ``overwrite``: replace a run there (only the files a run writes go); ``dry_run``: the
    checks alone, nothing on disk changes. ``data_given``: the dataset path came from the
    user now (a resume otherwise needs the stored path to exist). ``dataset``: one already
    loaded for this config. ``claim`` False: check, but neither lock nor touch the folder.
    ``continue_hint``, ``flags``: how the caller's refusals spell continuing and overwriting.
    Under torchrun every rank makes the checks; rank 0 alone takes the lock and claims.
    """
    given_config(cfg, "cfg")  # (a dict failed inside: no attribute 'validate')
    # distributed: this rank's GPU, before anything below asks the CUDA driver (resolve_arch, the memory check, the
    # built-in scene's render), which reads CUDA_VISIBLE_DEVICES once: the API's path has no cmd_train to do it
    pin_local_device()
    # a script's next run under torchrun: every rank has left the last (rank 0 released its lock) before any checks
    distributed.current().wait_for_all()
    if resume and overwrite:
        raise ValueError("resume continues the run in its folder, overwrite replaces it: give one")
    cfg = cfg.validate().with_absolute_paths()
    check_data_format(cfg)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise checkpoint.CheckpointError(f"{out}: is a file, not a run folder; choose another {flags[1]}")
    if not resume:  # (a run already there may go on)
        refuse_dataset_folder(cfg, flags[1])
    check_writable(out)  # a dry run says so too, and a real one refuses before loading the data
    refuse_if_locked(out)  # a live run there: say that, not what its folder holds so far (again below)
    if resume:  # the checkpoint and the metrics it continues must be readable before anything starts
        path = checkpoint.find_checkpoint(out)
        state = checkpoint.read_state(path)
        checkpoint.check_resumable(state, path, cfg)
        if (out / "metrics.jsonl").is_file():
            read_metrics(out / "metrics.jsonl")
    elif not overwrite:
        claim_run_folder(out, continue_hint=continue_hint, check_only=True, flags=flags)
    _check_extras(cfg)
    device = "cuda" if resolve_arch(cfg.arch) == "cuda" else "cpu"
    resources.check_training(cfg, device)  # before minutes of loading, not after
    if resume and not data_given:
        require_stored_data(cfg, checkpoint.find_checkpoint(out))
    # A dry run does not render the built-in scene, but checks it (near/far, --ndc...) where it is cached;
    # a resume's is checked for a moved scene below.
    unrendered = cfg.data is None and not builtin_cached(cfg.scene_views, cfg.scene_size)
    if dataset is None and not (dry_run and unrendered and not resume):
        dataset = load_dataset(cfg.data, **cfg.dataset_options())
    if resume and dataset is not None:  # data that moves the scene would retrain the field in other coordinates
        scene_match.resumed_scene(state, path, Scene.from_dataset(dataset), cfg)
    if cfg.batch_rays == 0 and dataset is not None:  # every pixel of batch_images images: the images' size decides
        split = dataset.split("train")
        resources.check_training(cfg, device, split.width * split.height)
    refuse_if_locked(out)  # a run that started while the data loaded
    run = Run(cfg, dataset, resume, out, resumed_step=int(state["step"]) if resume else None,
              resumed_clock_s=float(state.get("clock_s", 0.0)) if resume else 0.0)
    if dry_run or not claim:
        return run
    # Under torchrun, rank 0 alone locks and claims the folder; its refusal stops every rank.
    run.lock = distributed.join(cfg.arch).on_writer(_lock_and_claim, out, resume, overwrite, continue_hint, flags)
    return run


def _lock_and_claim(out: Path, resume: bool, overwrite: bool, continue_hint: str, flags: tuple[str, str]) -> RunLock:
    lock = RunLock(out).acquire()
    try:
        if not resume:
            claim_run_folder(out, overwrite=overwrite, continue_hint=continue_hint, flags=flags)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_extras(cfg: TrainConfig) -> None:
    """Optional extras the configuration needs, installed before anything starts."""
    if cfg.logger == "tensorboard":
        from .tensorboard_log import missing_tensorboard

        missing = missing_tensorboard()
        if missing:
            raise ValueError(missing)
