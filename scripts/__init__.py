"""Benchmarks and tools that are not part of the package. A package so that benchmark.py's
subcommands (``scripts/bench/``) and the Keras baseline (``scripts/baselines.py``) import
each other by name from any working folder (benchmark.py puts the repository root on sys.path)."""
