#!/usr/bin/env python3
"""Where a training step's time goes, stage by stage: the same as ``python scripts/benchmark.py profile [options]``
(the code is in scripts/bench/profile.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
