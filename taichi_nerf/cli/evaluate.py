"""``taichi-nerf eval``: PSNR and SSIM of a trained field on a split, as JSON."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .common import UserError, add_arch, at_least
from .interrupted import watch_outputs

SCORES_MAX_BYTES = 64 << 20  # an eval.json of 100k views is ~15 MB; a larger --out file is not one


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="PSNR and SSIM of a trained field on a split, as JSON")
    p.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    p.add_argument("--split", help="test, val or train (default: test where the data has one, else val)")
    p.add_argument("--data", help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--out", help="also write the JSON to this file (a folder: FOLDER/eval.json)")
    p.add_argument("--align-cameras", type=int, default=0, metavar="STEPS",
                   help="also score each view from its camera aligned to its photo (STEPS Adam steps, the field "
                        "frozen; BARF's test-time alignment): for COLMAP poses, whose val cameras are as inexact as "
                        "the training ones. Adds aligned_psnr, aligned_ssim and each camera's move (0: off)")
    p.add_argument("--as-given", action="store_true",
                   help="a run that refined its training poses: score the cameras as written, without the training "
                        "cameras' corrections carried to them (what a run without refinement is scored from)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    add_arch(p)
    p.set_defaults(run=cmd_eval)


def _refuse_a_runs_file(out: Path, ckpt) -> None:
    """``--out RUN/checkpoint.pt`` (the --ckpt copied into --out) replaced the trained field with
    the scores; a run's own files (checkpoint, config, metrics) and the checkpoint given are not
    --out's to replace, nor is any other file but an earlier eval's scores (``--out
    DATA/transforms_train.json`` replaced a dataset's cameras) or an empty one."""
    from ..runs.run_folder import RUN_MARKERS, holds_run

    given = Path(ckpt)
    if out.is_file() and ((out.name in RUN_MARKERS and holds_run(out.parent))
                          or (given.is_file() and out.resolve() == given.resolve())):
        raise UserError(f"{out}: a run's own file, which eval's scores would replace; give another --out "
                        f"(a folder: FOLDER/eval.json)")
    if out.is_file() and out.stat().st_size and not _earlier_scores(out):  # a dataset's transforms_train.json, say
        raise UserError(f"{out}: holds something other than an earlier eval's scores, which eval would replace; give "
                        f"another --out (a new file, or a folder: FOLDER/eval.json)")


def _earlier_scores(out: Path) -> bool:
    """Whether the file ``out`` holds an earlier eval's JSON: the one file --out may replace."""
    try:
        if out.stat().st_size > SCORES_MAX_BYTES:
            return False
        scores = json.loads(out.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return False
    return isinstance(scores, dict) and {"checkpoint", "split", "psnr", "images"} <= set(scores)


def cmd_eval(args) -> int:
    from ..api import evaluate
    from ..files import check_writable_file, json_safe, write_text_atomic

    at_least(args, {"--limit": 1, "--align-cameras": 0})  # before the output file is checked
    out = None
    if args.out:
        out = Path(args.out)
        if args.out.endswith(("/", os.sep)) or out.is_dir():  # a folder: the file goes inside it
            out = out / "eval.json"
        _refuse_a_runs_file(out, args.ckpt)
        check_writable_file(out)  # before the evaluation, whose scores would be lost
        watch_outputs(args, out)
    else:
        args.left_when_interrupted = lambda: "no scores printed"
    result = evaluate(args.ckpt, args.split, data=args.data, arch=args.arch, limit=args.limit,
                      progress=not args.no_progress, align_steps=args.align_cameras, as_given=args.as_given)
    text = json.dumps(json_safe(result), indent=2, allow_nan=False)
    try:  # the file first (a reader of stdout may have gone: `eval | head`); the scores shown even if it fails
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out, text)  # never a torn eval.json beside a finished run
    finally:
        print(text)
    for line in result.get("warnings", []):  # stderr: stdout stays one JSON document
        print(f"warning: {line}", file=sys.stderr)
    return 0
