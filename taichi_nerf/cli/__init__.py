"""``taichi-nerf`` command line: one module per command, each a thin layer over the Python
API (api.py) and the run entry point (runs/run_folder.py); shared flags and errors in common.py.

Errors the user can fix (bad data, bad config, missing checkpoint) print one line and exit
with status 2; they never surface as a traceback from inside a kernel. Nothing below the CLI
imports it.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import data, evaluate, export, gui, render, train, view
from .common import EXIT_INTERRUPTED, EXIT_USAGE, UserError, config_overrides, run_config
from .gui import GUI_DEFAULT_OUT

# Each module adds one subcommand, in this order in --help.
COMMANDS = [train, render, evaluate, export, data, gui, view]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="taichi-nerf",
                                     description="Train and render neural radiance fields with Taichi kernels.")
    parser.add_argument("--version", action="version", version=f"taichi-nerf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    from ..data.dataset import DataError
    from ..runs.checkpoint import CheckpointError
    from ..runs.distributed import PeerLost, refuse_several
    from ..training.trainer import TrainingDiverged

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for train --devices: what each rank runs
    try:
        if args.command != "train":  # under torchrun every rank would do the whole job, into the same files
            refuse_several(f"taichi-nerf {args.command}")
        return args.run(args)
    except (UserError, DataError, CheckpointError, ValueError) as exc:
        if os.environ.get("TAICHI_NERF_DEBUG") and not isinstance(exc, UserError):
            raise  # a ValueError from a bug reads as a user error too: developers get the traceback
        print(f"taichi-nerf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `taichi-nerf eval ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit is quiet too
        return 0
    except OSError as exc:  # unwritable output folder, full disk, ...
        print(f"taichi-nerf: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TrainingDiverged, PeerLost) as exc:
        if not getattr(exc, "reported", False):
            print(f"taichi-nerf: training stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("taichi-nerf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["main", "build_parser", "UserError", "EXIT_USAGE", "EXIT_INTERRUPTED", "GUI_DEFAULT_OUT", "run_config",
           "config_overrides"]
