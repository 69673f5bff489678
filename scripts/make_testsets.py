#!/usr/bin/env python3
"""Write the test sets of taichi_nerf/scenes/testsets.py (users'-data look-alikes, issue 8) and
print what the loaders make of each (the `taichi-nerf data info` summary).

  python scripts/make_testsets.py --out testsets                      # every set, default sizes
  python scripts/make_testsets.py --out bench --size 100 --views 80   # a larger version
  python scripts/make_testsets.py --out t --only npz-black,ngp-360-env
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import one_line_errors, testset_names  # noqa: E402
from taichi_nerf import backend, cli  # noqa: E402
from taichi_nerf.scenes.testsets import TESTSETS, missing_input, write_testset  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write the sets into (one sub-folder per set)")
    parser.add_argument("--size", type=int, help="long side in pixels (default: each set's own)")
    parser.add_argument("--views", type=int, help="views per set (default: each set's own)")
    parser.add_argument("--only", type=testset_names(), default=tuple(TESTSETS),
                        help=f"comma-separated names (of: {', '.join(TESTSETS)}; default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", choices=backend.ARCH_CHOICES, default="auto")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    names = args.only
    missing = next(filter(None, map(missing_input, names)), None)
    if missing:  # before the sets ahead of it are written
        parser.error(missing)
    backend.init(args.arch)
    for name in names:
        start = time.perf_counter()
        path = write_testset(name, Path(args.out) / name, size=args.size, views=args.views,
                             progress=not args.no_progress, seed=args.seed)
        print(f"== {name}: {TESTSETS[name].summary}; written in {time.perf_counter() - start:.1f} s to {path}")
        status = cli.main(["data", "info", str(path)])
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors("make_testsets.py", main))
