#!/usr/bin/env python3
"""data from-photos stage times and pose accuracy: the same as ``python scripts/benchmark.py colmap [options]``
(the code is in scripts/bench/colmap.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["colmap", *sys.argv[1:]]))
