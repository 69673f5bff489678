"""``taichi-nerf train --devices N``: this machine's ranks started through torch's own launcher
(torchrun's ``torch.distributed.run``), checked before any of them starts (runs/distributed.py
is what each rank does once started)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import torch

from .. import resources
from ..files import process_alive
from .distributed import (
    LAUNCHER_PID_ENV,
    STEP_TIMEOUT_ENV,
    STEP_TIMEOUT_S,
    WAIT_TIMEOUT_ENV,
    WAIT_TIMEOUT_S,
)
from .rank_env import timeout_seconds


def without_devices_flag(argv: list[str]) -> list[str]:
    """``argv`` less ``--devices N`` / ``--devices=N``: what each launched rank runs."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            rest.append(arg)
    return rest


def check_local_devices(count: int, cuda: bool) -> None:
    """``--devices count`` fits this machine: a GPU each, or (CPU) no more ranks than cores; and
    the timeouts the ranks will read are numbers (else each rank would refuse them, once per rank)."""
    timeout_seconds(STEP_TIMEOUT_ENV, STEP_TIMEOUT_S), timeout_seconds(WAIT_TIMEOUT_ENV, WAIT_TIMEOUT_S)
    cores = resources.usable_cores()
    if not cuda and count > cores:  # each rank is a whole training process: more than the cores only thrash
        raise ValueError(f"--devices {count} starts a training process each, but this machine has {cores} CPU "
                         f"cores; give at most {cores}")
    if cuda and count > torch.cuda.device_count():
        raise ValueError(f"--devices {count} asks for a GPU each, but {torch.cuda.device_count()} are visible; "
                         f"give at most {torch.cuda.device_count()}, or --arch cpu")


def _said_by_our_report(record: logging.LogRecord) -> bool:
    """False for torchrun's own lines about a rank's failure, a signal to the launcher and the
    signals it then sends the ranks ("failed (exitcode: ...) local_rank: ...", "Received 2 death
    signal", "Sending process ... closing signal ..."): the one-line report below says the same in
    the project's words. Its other warnings (a rank that would not stop) still show."""
    return not str(record.msg).startswith(("failed (exitcode", "Received %s death signal", "Sending process",
                                           "Closing process"))


LOGS_PREFIX = "taichi_nerf_torchrun_"  # + the launcher's pid + "_": a folder whose launcher is gone is removed


def remove_orphaned_logs(folder: Path | None = None) -> list[Path]:
    """Remove the torchrun log folders (in ``folder``, default the temp folder) of launchers that are
    no longer running: one killed outright (kill -9, the OOM killer) could not remove its own.
    Returns what was removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{LOGS_PREFIX}*_*"):
        found = re.fullmatch(rf"{LOGS_PREFIX}(\d+)_.*", path.name)
        if found and path.is_dir() and not process_alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# the torchrun loggers whose lines _said_by_our_report filters
TORCHRUN_LOGGERS = ("torch.distributed.elastic.multiprocessing.api", "torch.distributed.elastic.agent.server.api")


def launch_local(count: int, argv: list[str]) -> int:
    """Start ``count`` ranks of ``taichi-nerf`` on this machine through torch's own launcher
    (``torch.distributed.run``, standalone rendezvous on a free port); each gets a share of the
    CPU cores unless OMP_NUM_THREADS says otherwise (and on GPUs its own GPU: :func:`pin_local_device`).
    Returns the exit status.
    ``count`` is checked first, by the caller (:func:`check_local_devices`, before a dry run ends)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, resources.usable_cores() // count)))
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # the ranks stop if this process dies (stop_with_launcher)
    # torchrun's own log folder (its per-attempt error files) is otherwise a /tmp/torchelastic_*
    # folder that nobody removes, one per run; what a failure says is reported below instead.
    remove_orphaned_logs()
    logs = tempfile.TemporaryDirectory(prefix=f"{LOGS_PREFIX}{os.getpid()}_")
    args = torchrun.parse_args(["--standalone", "--nproc-per-node", str(count), "--log-dir", logs.name,
                                "-m", "taichi_nerf", *without_devices_flag(argv)])
    loggers = [logging.getLogger(name) for name in TORCHRUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(_said_by_our_report)
    try:
        with logs:
            torchrun.run(args)
    except ChildFailedError as exc:
        ranks = sorted(exc.failures.items())
        codes = {f.exitcode for _, f in ranks}
        if 130 in codes and codes <= {130, -signal.SIGTERM}:
            # a signal to one rank (kill -INT/-TERM RANK_PID, a scheduler): every rank stopped
            # after the same step and rank 0 saved (it said so); torchrun then ends any rank still
            # unwinding with SIGTERM. An interrupt, as in one process, not a failure.
            print("taichi-nerf: interrupted (a rank was stopped by a signal)", file=sys.stderr)
            return 130
        # torchrun SIGTERMs the ranks still running once one fails: those did not fail (rank 0 has
        # said what it saved), they were stopped; "rank 0 was killed by SIGTERM" read as lost work
        stopped = [r for r, f in ranks if f.exitcode == -signal.SIGTERM]
        failed = [(r, f) for r, f in ranks if f.exitcode != -signal.SIGTERM] or ranks
        said = "; ".join(f"rank {r} was killed by {f.signal_name()}" if f.exitcode < 0 else
                         f"rank {r} exited with status {f.exitcode}" for r, f in failed)
        if len(failed) < len(ranks):
            said += f"; torchrun then stopped {'rank' if len(stopped) == 1 else 'ranks'} " \
                    f"{', '.join(map(str, stopped))} (SIGTERM)"
        print(f"taichi-nerf: the run stopped: {said}", file=sys.stderr)
        return 2 if codes == {2} else 1
    except SignalException as exc:
        print(f"taichi-nerf: interrupted ({exc.sigval.name})", file=sys.stderr)
        return 130
    finally:
        for logger in loggers:
            logger.removeFilter(_said_by_our_report)
    return 0
