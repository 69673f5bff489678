"""Benchmarks and tools that are not part of the package. A package so that benchmark.py's
subcommands (``scripts/bench/``) and the Keras baseline (``scripts/baselines.py``) import
each other by name from any working folder (benchmark.py puts the repository root on sys.path)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

EXIT_USAGE = 2  # as the CLI's


def one_line_errors(prog: str, main: Callable[[], int | None]) -> int:
    """``main()``'s status, with a user's mistake (a ``ValueError``: a dataset, checkpoint or size the
    package refuses; an ``OSError``: a missing or unwritable path) said in one line, ``PROG: error:
    ...``, as the CLI says it. ``TAICHI_NERF_DEBUG=1`` re-raises it with its traceback."""
    try:
        return main() or 0
    except (ValueError, OSError) as exc:
        if os.environ.get("TAICHI_NERF_DEBUG"):
            raise
        path = getattr(exc, "filename", None)
        said = f"{path}: {exc.strerror}" if path and getattr(exc, "strerror", None) else str(exc)
        print(f"{prog}: error: {said}", file=sys.stderr)
        return EXIT_USAGE


def at_least(minimum: float, kind: type = int) -> Callable[[str], float]:
    """An argparse ``type``: a ``kind`` number not below ``minimum``. A number no run can use (0
    repeats, 1 timed step, -5 rays) then stops at parsing, in argparse's one line naming the flag,
    rather than as a traceback or a message about empty data after minutes of work."""
    def parse(text: str):
        value = kind(text)  # a ValueError: argparse says "invalid int value: 'x'"
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def positive(text: str) -> float:
    """An argparse ``type``: seconds (or any float) above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


positive.__name__ = "float"


def testset_names(*also: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse ``type`` for a comma-separated list of test sets (taichi_nerf/scenes/testsets.py, and
    ``also``: the matrix's ``builtin``): at least one, each known, refused at parsing in one line listing
    the names there are (make_testsets.py --only, benchmark.py matrix --sets)."""
    def parse(text: str) -> tuple[str, ...]:
        from taichi_nerf.scenes.testsets import TESTSETS

        known = (*also, *TESTSETS)
        names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))  # each once
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{'unknown test set ' + ', '.join(unknown) if unknown else 'no test set'}"
                                             f" (have: {', '.join(known)})")
        return names

    parse.__name__ = "test set names"
    return parse


def checkout_env(**extra: str) -> dict:
    """The environment for a child process of this checkout (``python -m taichi_nerf``, pytest on a
    device) that the scripts and the tests start: this repository first on PYTHONPATH, the caller's
    entries kept after it (a device machine's Taichi may live only there: the first H200 run lost
    its wheels without them), unbuffered output, and ``extra``. Without it the child imports the
    installed copy, which need not be this checkout (a stale editable install once failed four CLI
    tests with "No module named taichi_nerf")."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}
