#!/usr/bin/env python3
"""taichi-nerf benchmarks: ``python scripts/benchmark.py SUBCOMMAND [options]`` (``--help``
lists the subcommands; each is a module in scripts/bench/). Runs from any working folder and
uses the taichi_nerf of this repository, installed or not."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
