#!/usr/bin/env bash
# The check to run the first time a GPU is lent (issue 24), in under 8 minutes:
#   the CUDA kernel and zero-copy tests, one built-in run, one 800x800 synthetic-object run
#   (time to 25 and 30 dB), the compositing and training-step benchmarks.
# Writes OUT/gpu_check.json and OUT/gpu_check.md (OUT: --out, default gpu_check/ in the working folder).
#
#   scripts/gpu_check.sh                          # on the GPU machine (--arch cuda)
#   scripts/gpu_check.sh --small --arch cpu       # the same, shrunk: under a minute on a 2-core CPU
#   scripts/gpu_check.sh --out /tmp/gc --object builtin
#
# Every option goes to scripts/gpu_check.py (--help lists them). Exit 0: all ran and the
# kernel tests passed; 1: a kernel test failed (the rest still ran); 2: no such device, or an
# --out that cannot be written (nothing ran, no folder made).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# No cd to the root: a relative --out is the caller's folder (it landed in the repository).
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" "$here/gpu_check.py" "$@"
