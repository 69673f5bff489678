"""``python -m taichi_nerf`` and the ``taichi-nerf`` command: a Ctrl-C while the command starts
(importing torch takes seconds) is one line and status 130, as later, not a traceback."""
import sys


def main() -> int:
    from .interrupts import guard_startup

    guard_startup()
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:
        print("taichi-nerf: interrupted", file=sys.stderr)
        return 130  # cli.EXIT_INTERRUPTED, which this import did not reach
    try:
        return run_command()
    except KeyboardInterrupt:  # before the command's own handling begins (its imports, parsing the flags)
        print("taichi-nerf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
