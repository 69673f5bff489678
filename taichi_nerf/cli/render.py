"""``taichi-nerf render``: videos along the orbit or any camera path, or a split's views as
PNGs with their metrics."""
from __future__ import annotations

from pathlib import Path

from ..rendering.video_route import DEFAULT_FPS, DEFAULT_FRAMES, MIN_FPS, TRAINED_WIDTHS, VIDEO_FORMATS, check_fps
from ..wording import counted
from .common import UserError, add_arch, at_least
from .interrupted import watch_outputs, watch_render_folder


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="render a trained field: orbit or camera-path videos, or a split's views as PNGs",
                       description="Without --split: a video (mp4 + depth mp4 + gif, or gif + depth gif) along the "
                                   "orbit, --path or --spiral. With --split: every view of that split as PNG plus "
                                   "metrics.json (per-image PSNR/SSIM, as `eval`).")
    p.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    what = p.add_argument_group("what to render (default: the video that suits the capture: the orbit if the "
                                "cameras surround the object, the spiral if they face forward, else a path "
                                "through the training cameras)")
    what.add_argument("--split", help="render every view of this split (test, val, train) into the --out folder")
    what.add_argument("--path", metavar="FILE|train",
                      help="camera path: a nerfstudio camera_path.json, a transforms-style pose list (frames[]."
                           "transform_matrix), or 'train' for a smooth loop through the training cameras")
    what.add_argument("--spiral", action="store_true", help="the forward-facing spiral in front of the cameras")
    v = p.add_argument_group("video options")
    v.add_argument("--frames", type=int, help=f"frames (default: {DEFAULT_FRAMES}; a camera path file: one per camera)")
    v.add_argument("--size", type=int, help=f"video width in pixels (default: the camera path's, else the training "
                                             f"images', {TRAINED_WIDTHS[0]} to {TRAINED_WIDTHS[1]})")
    v.add_argument("--fps", type=float,
                   help=f"frames per second (default: the camera path's, else {DEFAULT_FPS}); a GIF's frames last "
                        "whole hundredths of a second, so its rate is the nearest such (24: 25), at most 50; at least "
                        f"{MIN_FPS:g}")
    p.add_argument("--data", help="dataset, for --split, --path train and --spiral (default: the one the checkpoint "
                                  "was trained on)")
    s = p.add_argument_group("--split options")
    s.add_argument("--limit", type=int, help="only the first N views")
    s.add_argument("--depth", action="store_true", help="also write each view's depth (colour-mapped PNG)")
    s.add_argument("--compare", action="store_true", help="also write prediction | ground truth side by side")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an earlier render in --out (only its metrics.json and PNGs; other files stay)")
    p.add_argument("--out", help="video file (.mp4 or .gif; default named after the path: orbit.mp4, spiral.mp4 "
                                 "or path.mp4), or with --split the folder (default render_SPLIT)")
    p.add_argument("--appearance-image", type=int, metavar="N",
                   help="a field trained with appearance codes: render with training image N's look (exposure, "
                        "white balance) instead of the mean of all")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    add_arch(p)
    p.set_defaults(run=cmd_render)


def cmd_render(args) -> int:
    if args.split is not None:
        return _render_split(args)
    if args.depth or args.compare or args.limit is not None or args.overwrite:
        raise UserError("--depth, --compare, --limit and --overwrite go with --split")
    if args.path is not None and args.spiral:
        raise UserError("--path and --spiral are two different camera paths: give one")
    if args.data is not None and args.path != "train" and not args.spiral:  # it would be read by nothing
        needs_none = "the video that suits the capture" if args.path is None else "a camera path file"
        raise UserError(f"--data gives the training cameras of --split, --path train and --spiral; {needs_none} "
                        "needs no dataset: drop --data")
    at_least(args, {"--frames": 1, "--size": 8, "--appearance-image": 0})
    if args.fps is not None:
        try:
            check_fps(args.fps, "--fps")
        except ValueError as exc:
            raise UserError(str(exc)) from None
    out = args.out or ("spiral.mp4" if args.spiral else "path.mp4" if args.path is not None else None)
    if out is None:  # the video that suits the capture, named after its path as train names it
        from ..outputs.default_video import checkpoint_video_name

        out = checkpoint_video_name(args.ckpt)
    if Path(out).suffix.lower() not in VIDEO_FORMATS:
        raise UserError(f"--out must end in .mp4 or .gif, got {out}")
    from ..outputs.from_checkpoint import render_path
    from ..rendering.video_route import video_files

    replaced = [p.resolve() for p in video_files(out) if p.is_file()]
    watch_outputs(args, *video_files(out))
    paths = render_path(args.ckpt, out, path=args.path, spiral=args.spiral, frames=args.frames, size=args.size,
                        fps=args.fps, arch=args.arch, progress=not args.no_progress, data=args.data,
                        appearance_image=args.appearance_image)
    for p in (Path(p).resolve() for p in paths):
        print(f"wrote {p}" + (" (replacing the earlier one)" if p in replaced else ""))
    return 0


def _render_split(args) -> int:
    if args.path is not None or args.spiral:
        raise UserError("--split renders the dataset's own cameras; drop --path/--spiral")
    if args.frames is not None or args.size is not None or args.fps is not None:
        raise UserError("--frames, --size and --fps are video options; --split renders at the dataset's size")
    at_least(args, {"--limit": 1, "--appearance-image": 0})
    out = Path(args.out or f"render_{args.split}")
    if out.suffix.lower() in (*VIDEO_FORMATS, ".png"):
        raise UserError(f"--out with --split is a folder, got {out}")
    from ..api import evaluate
    from ..outputs.render_folder import check_render_folder

    check_render_folder(out, args.overwrite)  # refused in the flags' words; evaluate says it in Python's
    watch_render_folder(args, out)
    result = evaluate(args.ckpt, args.split, data=args.data, arch=args.arch, limit=args.limit,
                      progress=not args.no_progress, images_dir=out, depth=args.depth, compare=args.compare,
                      overwrite=args.overwrite, appearance_image=args.appearance_image)
    whole = "inf" if result["psnr"] is None else f"{result['psnr']:.2f}"  # None: perfect (JSON has no inf)
    alone = (f", {result['object_psnr']:.2f} dB on the object's pixels alone"
             if result.get("object_psnr") is not None else "")
    print(f"rendered {counted(result['count'], args.split + ' view')} to {out}/ (PSNR {whole} dB{alone}, "
          f"SSIM {result['ssim']:.3f}); metrics: {out / 'metrics.json'}")
    return 0
