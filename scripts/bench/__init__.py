"""taichi-nerf benchmarks, one subcommand each; they print markdown tables (paste them into
docs/BENCHMARKS.md).

  python scripts/benchmark.py step          # compositing + a training step (~2 min on CPU)
  python scripts/benchmark.py quality       # step's tables + time to quality vs the Keras recipe (~30 min)
  python scripts/benchmark.py matrix        # the defaults on every user-like test set (~25 min)
  python scripts/benchmark.py compositing   # compositing against dense torch (~1 min on CPU)
  python scripts/benchmark.py profile       # where a training step's time goes, per stage
  python scripts/benchmark.py startup       # launch to first step, cold and warm kernel cache
  python scripts/benchmark.py colmap        # data from-photos stage times, 50/100 photos at 800 px
  python scripts/benchmark.py SUBCOMMAND --help

Without a subcommand it prints this help and exits with status 2 (nothing runs by accident).
Timings exclude validation renders; every number is wall-clock on the machine it runs on.
Each subcommand is a module here with ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from scripts import one_line_errors

from .common import check_output_file

SUBCOMMANDS = {
    "step": "compositing + a training step with the default settings (~2 min on CPU)",
    "compositing": "compositing against dense torch, forward and backward (~1 min on CPU)",
    "quality": "step's tables + time to quality against the Keras recipe (~30 min)",
    "matrix": "the defaults on every user-like test set (~25 min)",
    "profile": "where a training step's time goes, stage by stage",
    "startup": "launch to first training step, cold and warm kernel cache",
    "colmap": "data from-photos stage times and pose accuracy (needs pycolmap)",
}

# The flags of the one-command benchmark.py before the subcommands, so old command lines get
# a pointer instead of argparse's "unrecognized arguments".
OLD_FLAGS = {"--compositing-only": "compositing", "--quality": "quality", "--matrix": "matrix",
             "--profile": "profile", "--startup": "startup", "--colmap": "colmap"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, summary in SUBCOMMANDS.items():
        module = importlib.import_module(f"{__name__}.{name}")
        command = commands.add_parser(name, help=summary, description=module.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    old = [flag for flag in argv if flag in OLD_FLAGS]
    if old and (not argv or argv[0] not in SUBCOMMANDS):
        print(f"benchmark.py: {old[0]} is a subcommand now: python scripts/benchmark.py {OLD_FLAGS[old[0]]} "
              "[options] (--help lists them)", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2

    def checked_run():
        check_output_file(args.json, "--json")
        return args.run(args)

    return one_line_errors(f"benchmark.py {args.command}", checked_run)
