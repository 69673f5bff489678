"""Writing files so that readers never see half of one: atomic replaces (checkpoints, configs,
status files, camera paths), PNG images, and JSON whose numbers every reader accepts."""
from __future__ import annotations

import errno
import fcntl
import glob
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def temp_name(path: Path) -> Path:
    """``.NAME.tmpPID`` beside ``path``: the partial file of an atomic write in progress (a
    killed writer's is removed by the next write of ``path``, :func:`remove_dead_partials`)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


PID_MAX = 1 << 22  # Linux's largest pid_max


def remove_dead_partials(path) -> list[Path]:
    """Delete the partial files of ``path`` that killed writers left beside it (``.NAME.tmpPID`` of
    :func:`write_atomic`, ``.STEM.partialPID.SUFFIX`` of a video), never one whose process still
    runs (a write in progress): each write of ``path`` clears what an earlier, killed one left.
    Returns the files it deleted."""
    path = Path(path)
    removed = []
    for prefix, suffix in ((f".{path.name}.tmp", ""), (f".{path.stem}.partial", path.suffix)):
        for entry in path.parent.glob(glob.escape(prefix) + "*" + glob.escape(suffix)):
            if not writer_gone(entry.name[len(prefix):len(entry.name) - len(suffix)]):
                continue
            try:
                entry.unlink(missing_ok=True)
            except OSError:  # another user's, in a sticky folder: tidying up must not fail the write
                continue
            removed.append(entry)
    return removed


def writer_gone(pid: str) -> bool:
    """Whether the process whose PID a partial file's name ends with, ``pid``, has ended: what it
    left may go. Not for this process's own, a live one's, or a name no PID can be (not ours:
    os.kill raised OverflowError on one, failing the write)."""
    return pid.isdigit() and 0 < int(pid) <= PID_MAX and int(pid) != os.getpid() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (someone else's, which we may not signal, counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: another user's process; leave what it owns alone
    return True


def flock_holder(lock) -> int | None:
    """Who holds an exclusive ``flock`` on the file ``lock`` now: None if nobody does (or there is
    no such file), else the PID the file names (-1 if it names none). The OS lets go of a lock when
    its process ends, however it ends, so a killed holder is never mistaken for a live one."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_writable(folder, *, for_file=None) -> None:
    """Refuse an output folder that cannot be made or written, before the work whose files would
    be lost (an OSError naming it: a file in the way, a link to nothing, a read-only folder or
    mount, no permission). Changes nothing on disk: it tries a temporary file in the folder, or in its
    nearest existing parent. ``for_file``: the file to be written there, named when a file is in the way."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # its target is gone (an unmounted disk): mkdir there says only "File exists"
            raise FileNotFoundError(errno.ENOENT, f"is a link to {os.readlink(existing)}, which does not exist",
                                    str(existing))
        existing = existing.parent
    if not existing.is_dir():
        # (of an --out FILE/x.ply it said "FILE: is a file, so FILE cannot be a folder")
        what = f"{folder} cannot be a folder" if for_file is None else f"{Path(for_file).absolute()} cannot be written"
        raise NotADirectoryError(errno.ENOTDIR, f"is a file, so {what}", str(existing))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write there ({exc.strerror})", str(existing)) from None


def check_writable_file(path) -> None:
    """:func:`check_writable` of ``path``'s folder, and refuse a ``path`` that is a folder (the
    rename at the end of the write would fail there, after the work)."""
    path = Path(path)
    check_writable(path.parent, for_file=path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; --out names the file to write", str(path))


class RunFolderLost(OSError):
    """A write into the folder of a run this process trains, which another run has taken over."""


# The folders of runs this process trains in, each with what keeps it theirs (runs/run_folder.RunLock.keep_folder):
# a write there made a removed run folder again without a word or a lock, so a second run could start in it and
# the two mixed their files. It is now made again with its lock, said; one that another run took stops the write.
held_folders: dict[str, Callable[[], bool]] = {}


def make_parent(path: Path) -> None:
    """Make ``path``'s folder where missing; in a run folder this process trains in (:data:`held_folders`), only
    while it is still this run's: a :class:`RunFolderLost` naming the folder where another run took it."""
    where = os.path.abspath(path)
    for folder, keep in list(held_folders.items()):
        if (where == folder or where.startswith(folder + os.sep)) and not keep():
            raise RunFolderLost(errno.EEXIST, "the run folder was removed while this process trained in it, and "
                                              "another run started there; this one stopped rather than mix its "
                                              "files in (what it trained since its last checkpoint is lost)", folder)
    path.parent.mkdir(parents=True, exist_ok=True)


def write_atomic(path, write, *, binary: bool = False, sync: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``:
    a kill leaves the old contents or the new, never half. ``sync``: fsync before the rename,
    so a power cut cannot leave an empty file either (checkpoints)."""
    path = Path(path)
    make_parent(path)
    remove_dead_partials(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb" if binary else "w") as fh:
            write(fh)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise naming(exc, path, tmp) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def naming(exc: OSError, path, partial=None) -> OSError:
    """``exc``, naming ``path`` where it names no file (a failed write, on a full disk, says only its
    reason) or names ``partial``, the hidden file ``path`` was being written as."""
    if exc.filename is not None and (partial is None or str(exc.filename) != str(partial)):
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def saying_more(exc: OSError, more: str, filename=None) -> OSError:
    """``exc`` with ``more`` after its reason (what the failure leaves, how to go on), naming ``filename``
    (default: the file it names), as the CLI's one line prints it: "FILE: REASON; MORE"."""
    return OSError(exc.errno, f"{exc.strerror or exc}; {more}", exc.filename if filename is None else filename)


def append_line(path, line: str) -> None:
    """Append ``line`` to ``path`` (a log such as metrics.jsonl), making its folder; a failed write names the file."""
    path = Path(path)
    make_parent(path)
    try:
        with open(path, "a") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        raise naming(exc, path) from exc


def write_text_atomic(path, text: str) -> Path:
    return write_atomic(path, lambda fh: fh.write(text))


def first_bytes(path, count: int = 64) -> bytes:
    """The first ``count`` bytes of a file (b"" if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(count)
    except OSError:
        return b""


def lfs_pointer(path) -> str | None:
    """Why a file a decoder refused is not the file: a Git LFS pointer (a clone without `git lfs pull`
    leaves each large file as a text stub of that name), said in the user's words; else None."""
    if first_bytes(path).startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the file itself: fetch the files with git lfs pull"
    return None


def first_unused(name_of, taken=lambda path: path.exists()) -> Path:
    """``name_of(0)``, else the first of ``name_of(1)``, ``name_of(2)``, ... not ``taken``: a file a window or
    browser session saves never replaces one an earlier session saved under the same step."""
    n = 0
    while taken(Path(name_of(n))):
        n += 1
    return Path(name_of(n))


def finite_number(value) -> bool:
    """A real number, not NaN or infinity (a metrics row read back: a perfect PSNR was written as null)."""
    return isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def json_safe(value):
    """``value`` with every NaN or infinity as None: JSON has no such numbers (a perfect
    PSNR is infinite), and ``json.dumps`` would write ones strict readers reject. numpy
    scalars become Python numbers."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path, obj, indent: int | None = 2) -> Path:
    """``obj`` as strict JSON (non-finite numbers as null), written atomically."""
    return write_text_atomic(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False))


def read_jsonl(path) -> list[dict]:
    """The rows of a JSON-lines log (gui.jsonl, viewer.jsonl); a line cut off by a crash is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def metric_rows(path) -> list[dict]:
    """The rows of a run's metrics.jsonl that carry a step, for the curves: a line torn by a kill is
    skipped (runs/run_folder.read_metrics is the strict reader that a resume uses)."""
    return [row for row in read_jsonl(path) if isinstance(row, dict) and isinstance(row.get("step"), int)]


def to_uint8(image) -> np.ndarray:
    """uint8 as it is; float in [0, 1] (numpy or torch) clipped and rounded to uint8."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return a


def write_png(path, image) -> Path:
    """Write uint8 (H, W[, C]) or float in [0, 1] (numpy or torch) as PNG, creating its folder;
    atomically, so a viewer reloading a preview never reads half a file."""
    from PIL import Image

    picture = Image.fromarray(to_uint8(image))
    return write_atomic(path, lambda fh: picture.save(fh, format="PNG"), binary=True)
