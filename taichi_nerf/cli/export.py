"""``taichi-nerf export``: a trained field as a coloured mesh or point cloud (PLY or OBJ)."""
from __future__ import annotations

from pathlib import Path

from .common import UserError, add_arch, at_least
from .interrupted import watch_outputs


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a trained field as a mesh or a point cloud")
    esub = p.add_subparsers(dest="export_command", required=True)
    m = esub.add_parser("mesh", help="marching-cubes mesh of the density, with vertex colours (PLY or OBJ)")
    m.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    m.add_argument("--resolution", type=int, default=256, help="density grid points per side (default 256)")
    m.add_argument("--threshold", default="auto", metavar="auto|SIGMA",
                   help="density of the surface (default auto: from the density where the rendered surface is)")
    m.add_argument("--out", default="mesh.ply", help="output .ply (binary) or .obj (default mesh.ply)")
    m.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    add_arch(m)
    m.set_defaults(run=cmd_export_mesh)

    pts = esub.add_parser("points", help="coloured surface points of rendered views (PLY or OBJ)")
    pts.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    pts.add_argument("--views", choices=("train", "orbit"), default="train",
                     help="the training cameras (default) or an orbit around the scene")
    pts.add_argument("--max-points", type=int, metavar="N", help="keep at most N points (a random subset)")
    pts.add_argument("--data", help="with --views train: the dataset (default: the one the checkpoint was trained on)")
    pts.add_argument("--out", default="points.ply", help="output .ply (binary) or .obj (default points.ply)")
    pts.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    add_arch(pts)
    pts.set_defaults(run=cmd_export_points)


def _threshold(text: str):
    """The flag's text as export_mesh takes it ("auto" or a number), checked in the flag's words."""
    from ..outputs.export import check_threshold

    try:
        return check_threshold(text if text == "auto" else float(text), "--threshold")
    except ValueError:  # not a number
        raise UserError(f"--threshold must be 'auto' or a positive density, got {text!r}") from None


def _replacing(out) -> str:
    """Said after "wrote PATH" when PATH was there before, as render says it of its videos (an
    export replaced an earlier mesh without a word)."""
    return " (replacing the earlier one)" if Path(out).is_file() else ""


def cmd_export_mesh(args) -> int:
    import time

    from ..outputs.export import MIN_RESOLUTION, check_geometry_file, check_resolution
    from ..outputs.from_checkpoint import export_mesh

    # each flag in its own words first: export_mesh names its keywords
    at_least(args, {"--resolution": MIN_RESOLUTION})
    check_resolution(args.resolution, "--resolution")
    threshold = _threshold(args.threshold)
    check_geometry_file(args.out, "--out")
    replacing = _replacing(args.out)
    watch_outputs(args, args.out)
    start = time.perf_counter()
    path, mesh = export_mesh(args.ckpt, args.out, resolution=args.resolution, threshold=threshold, arch=args.arch,
                             progress=not args.no_progress)
    print(mesh.threshold_note)
    for warning in mesh.warnings:
        print(f"warning: {warning}")
    print(f"wrote {path}{replacing}: {len(mesh.vertices)} vertices, {len(mesh.faces)} triangles "
          f"({mesh.resolution}^3 grid, {100 * mesh.evaluated_fraction:.0f}% of it queried, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def cmd_export_points(args) -> int:
    from ..outputs.export import check_geometry_file
    from ..outputs.from_checkpoint import check_points_views, export_points

    at_least(args, {"--max-points": 1})  # each flag in its own words first: export_points names its keywords
    check_geometry_file(args.out, "--out")
    check_points_views(args.views, args.data, "--views", "--data")
    replacing = _replacing(args.out)
    watch_outputs(args, args.out)
    path, count = export_points(args.ckpt, args.out, views=args.views, max_points=args.max_points, arch=args.arch,
                                progress=not args.no_progress, data=args.data)
    print(f"wrote {path}{replacing}: {count} point{'' if count == 1 else 's'}")
    return 0
