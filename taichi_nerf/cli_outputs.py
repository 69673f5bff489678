"""``taichi-nerf render`` and ``taichi-nerf export``: what a trained checkpoint becomes
(videos along the orbit or any camera path, a split's views as PNGs with their metrics,
meshes, point clouds). Registered in :data:`taichi_nerf.cli.PARSERS`; errors the user can
fix raise :class:`taichi_nerf.cli.UserError` (or ValueError) and print one line."""
from __future__ import annotations

from pathlib import Path


def _user_error(message: str):
    from .cli import UserError

    return UserError(message)


def render_parser(sub) -> None:
    from .cli import _add_arch

    p = sub.add_parser("render", help="render a trained field: orbit or camera-path videos, or a split's views as PNGs",
                       description="Without --split: a video (mp4 + depth mp4 + gif, or a gif) along the orbit, "
                                   "--path or --spiral. With --split: every view of that split as PNG plus "
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
    v.add_argument("--frames", type=int, help="frames (default: 60; a camera path file: one per camera)")
    v.add_argument("--size", type=int, help="video width in pixels (default: 200, or the camera path's)")
    v.add_argument("--fps", type=float, help="frames per second (default: the camera path's, else 24)")
    p.add_argument("--data", help="dataset, for --split, --path train and --spiral (default: the one the checkpoint "
                                  "was trained on)")
    s = p.add_argument_group("--split options")
    s.add_argument("--limit", type=int, help="only the first N views")
    s.add_argument("--depth", action="store_true", help="also write each view's depth (colour-mapped PNG)")
    s.add_argument("--compare", action="store_true", help="also write prediction | ground truth side by side")
    p.add_argument("--out", help="video file (.mp4 or .gif; default orbit.mp4 or path.mp4), or with --split the "
                                 "folder (default render_SPLIT)")
    p.add_argument("--no-progress", action="store_true")
    _add_arch(p)
    p.set_defaults(run=cmd_render)


def cmd_render(args) -> int:
    if args.split is not None:
        return _render_split(args)
    if args.depth or args.compare or args.limit is not None:
        raise _user_error("--depth, --compare and --limit go with --split")
    if args.path is not None and args.spiral:
        raise _user_error("--path and --spiral are two different camera paths: give one")
    default = "orbit.mp4" if args.path is None and not args.spiral else "path.mp4"
    out = args.out or default
    if Path(out).suffix.lower() not in (".mp4", ".gif"):
        raise _user_error(f"--out must end in .mp4 or .gif, got {out}")
    if (args.frames is not None and args.frames < 1) or (args.size is not None and args.size < 8) or (
            args.fps is not None and args.fps <= 0):
        raise _user_error("--frames and --fps must be at least 1 and --size at least 8")
    from .outputs import render_path

    paths = render_path(args.ckpt, out, path=args.path, spiral=args.spiral, frames=args.frames, size=args.size,
                        fps=args.fps, arch=args.arch, progress=not args.no_progress, data=args.data, say=print)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _render_split(args) -> int:
    if args.path is not None or args.spiral:
        raise _user_error("--split renders the dataset's own cameras; drop --path/--spiral")
    if args.frames is not None or args.size is not None or args.fps is not None:
        raise _user_error("--frames, --size and --fps are video options; --split renders at the dataset's size")
    if args.limit is not None and args.limit < 1:
        raise _user_error(f"--limit must be at least 1, got {args.limit}")
    out = Path(args.out or f"render_{args.split}")
    if out.suffix.lower() in (".mp4", ".gif", ".png"):
        raise _user_error(f"--out with --split is a folder, got {out}")
    from .api import evaluate

    result = evaluate(args.ckpt, args.split, data=args.data, arch=args.arch, limit=args.limit,
                      progress=not args.no_progress, images_dir=out, depth=args.depth, compare=args.compare)
    print(f"rendered {result['count']} {args.split} views to {out}/ (PSNR {result['psnr']:.2f} dB, "
          f"SSIM {result['ssim']:.3f}); metrics: {out / 'metrics.json'}")
    return 0


def export_parser(sub) -> None:
    from .cli import _add_arch

    p = sub.add_parser("export", help="export a trained field as a mesh or a point cloud")
    esub = p.add_subparsers(dest="export_command", required=True)
    m = esub.add_parser("mesh", help="marching-cubes mesh of the density, with vertex colours (PLY or OBJ)")
    m.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    m.add_argument("--resolution", type=int, default=256, help="density grid points per side (default 256)")
    m.add_argument("--threshold", default="auto", metavar="auto|SIGMA",
                   help="density of the surface (default auto: from the density where the rendered surface is)")
    m.add_argument("--out", default="mesh.ply", help="output .ply (binary) or .obj (default mesh.ply)")
    m.add_argument("--no-progress", action="store_true")
    _add_arch(m)
    m.set_defaults(run=cmd_export_mesh)

    pts = esub.add_parser("points", help="coloured surface points of rendered views (PLY or OBJ)")
    pts.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    pts.add_argument("--views", choices=("train", "orbit"), default="train",
                     help="the training cameras (default) or an orbit around the scene")
    pts.add_argument("--max-points", type=int, metavar="N", help="keep at most N points (a random subset)")
    pts.add_argument("--data", help="with --views train: the dataset (default: the one the checkpoint was trained on)")
    pts.add_argument("--out", default="points.ply", help="output .ply (binary) or .obj (default points.ply)")
    pts.add_argument("--no-progress", action="store_true")
    _add_arch(pts)
    pts.set_defaults(run=cmd_export_points)


def _threshold(text: str):
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise _user_error(f"--threshold must be 'auto' or a positive density, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise _user_error(f"--threshold must be 'auto' or a positive density, got {text!r}")
    return value


def cmd_export_mesh(args) -> int:
    import time

    from .outputs import export_mesh

    threshold = _threshold(args.threshold)
    start = time.perf_counter()
    path, mesh = export_mesh(args.ckpt, args.out, resolution=args.resolution, threshold=threshold, arch=args.arch,
                             progress=not args.no_progress)
    print(mesh.threshold_note)
    print(f"wrote {path}: {len(mesh.vertices)} vertices, {len(mesh.faces)} triangles "
          f"({mesh.resolution}^3 grid, {100 * mesh.evaluated_fraction:.0f}% of it queried, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def cmd_export_points(args) -> int:
    from .outputs import export_points

    path, count = export_points(args.ckpt, args.out, views=args.views, max_points=args.max_points, arch=args.arch,
                                progress=not args.no_progress, data=args.data)
    print(f"wrote {path}: {count} points")
    return 0

