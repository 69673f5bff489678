"""The hidden folder ``.NAME.partial-PID`` beside ``--out`` that from-photos, ``data synthetic`` and
``data from-mesh`` build their dataset in: moved into place at the end, removed on a failure, Ctrl-C,
SIGTERM or a hang-up (SIGHUP), and, when a process was killed outright (SIGKILL, a power cut), removed
by the next of them into the same parent once that process is gone."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from pathlib import Path

from ..data.loaders import remove_files
from ..files import flock_holder, process_alive
from ..interrupts import StopRequest, held_signals

_PARTIAL = re.compile(r"^\..+\.partial-(\d+)$")


def partial_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.partial-{os.getpid()}"


def _lock_of(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")  # beside the folder: the folder becomes the dataset


@contextlib.contextmanager
def claimed(out: Path):
    """This process's partial folder for ``out`` (emptied), with its lock held from before it
    exists until the end: a from-photos elsewhere (another host on a shared disk, another PID
    namespace, where the PID in the name means nothing) sees the lock held and leaves it alone."""
    tmp = partial_folder(out)
    lock = _lock_of(tmp)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # our own name: free unless our PID's old run is here
        shutil.rmtree(tmp, ignore_errors=True)
        yield tmp
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def remove_leftovers(parent: Path) -> list[Path]:
    """Delete the partial folders in ``parent`` whose process no longer runs (a copy of every
    photo each, which nothing else would ever remove); a live one is another from-photos at work."""
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        match = _PARTIAL.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and _abandoned(entry, int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            _lock_of(entry).unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _abandoned(folder: Path, pid: int) -> bool:
    """Nobody builds ``folder`` any more: its lock is free (the OS let go of it when its process
    ended, however it ended). A folder without a lock (written before locks) goes by its PID."""
    lock = _lock_of(folder)
    if not lock.is_file():
        return not (pid == os.getpid() or process_alive(pid))  # ours: we may be building it now
    return flock_holder(lock) is None


class Interrupts(StopRequest):
    """SIGTERM and SIGHUP end from-photos as Ctrl-C does: KeyboardInterrupt, so the partial folder
    is removed and the CLI prints its one line. Without it SIGTERM meets the handler pycolmap's
    glog installs (a C++ stack dump, the folder left) and SIGHUP kills outright. COLMAP's stages
    have no step boundary to stop at, so unlike a training run's, the stop is at once; StopRequest
    leaves a hang-up ignored under ``nohup`` ignored."""

    def _handle(self, signum, frame):
        raise KeyboardInterrupt


def move_into_place(tmp: Path, out: Path, outputs: tuple[str, ...]) -> None:
    """Put the dataset built in ``tmp`` into ``out``. A new ``out`` is ``tmp`` renamed; in an
    existing one (empty, or a dataset check_out allowed to go) only ``outputs`` are swapped, the
    old ones renamed aside first and deleted last: the user's other files there stay."""
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    old.mkdir()
    for name in outputs:
        if (out / name).exists() or (out / name).is_symlink():
            (out / name).rename(old / name)
    for name in outputs:
        if (tmp / name).exists():
            (tmp / name).rename(out / name)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def built_beside(out: Path):
    """The partial folder to build ``out``'s new dataset in (:func:`claimed`), after the ones killed
    writers left in its parent are gone; removed if the block fails or is interrupted, so ``out``
    keeps what it held."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent)
    with claimed(out) as tmp:
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def swap_in_render(tmp: Path, out: Path, earlier: list[Path]) -> None:
    """Replace the earlier render of ours in ``out`` (its files, ``loaders.refuse_foreign_dataset``'s
    ``earlier``) with the whole one built in ``tmp``; other files in ``out`` stay. Quick (renames),
    so Ctrl-C, SIGTERM and SIGHUP wait for its end: never half the new render beside half the old.
    The listings (transforms_*.json) go first and come last: a reader never sees one whose views
    are another render's."""
    with held_signals():
        if not out.exists():
            tmp.rename(out)
            return
        listings = [path for path in earlier if path.parent == out and path.name.startswith("transforms_")]
        remove_files(out, listings)
        new = sorted((path for path in tmp.rglob("*") if path.is_file()),
                     key=lambda path: (path.parent == tmp and path.name.startswith("transforms_"), str(path)))
        placed = set()
        for path in new:
            target = out / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            placed.add(target.resolve())
        # (resolved: a listing may name a view ./train/../train/r_000)
        remove_files(out, [path for path in earlier if path not in listings and path.resolve() not in placed])
        shutil.rmtree(tmp, ignore_errors=True)
