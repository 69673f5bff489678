"""``taichi-nerf eval``: PSNR and SSIM of a trained field on a split, as JSON."""
from __future__ import annotations

import json
from pathlib import Path

from .common import UserError, add_arch


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="PSNR and SSIM of a trained field on a split, as JSON")
    p.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    p.add_argument("--split", default="test")
    p.add_argument("--data", help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--out", help="also write the JSON to this file")
    p.add_argument("--no-progress", action="store_true")
    add_arch(p)
    p.set_defaults(run=cmd_eval)


def cmd_eval(args) -> int:
    from ..api import evaluate
    from ..files import json_safe

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    result = evaluate(args.ckpt, args.split, data=args.data, arch=args.arch, limit=args.limit,
                      progress=not args.no_progress)
    text = json.dumps(json_safe(result), indent=2, allow_nan=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0
