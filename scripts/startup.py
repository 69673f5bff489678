#!/usr/bin/env python3
"""Startup time, cold and warm Taichi kernel cache: the same as ``python scripts/benchmark.py startup [options]``
(the code is in scripts/bench/startup.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["startup", *sys.argv[1:]]))
