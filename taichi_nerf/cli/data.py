"""``taichi-nerf data``: make datasets (the built-in scene, a mesh's renders, COLMAP poses for
photos or a video) and inspect them."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..wording import counted
from .common import HelpFormatter, UserError, add_config_flags, at_least, config_overrides
from .interrupted import watch_dataset


def add_parser(sub) -> None:
    from ..config import BUILTIN_SIZE, BUILTIN_VIEWS, DATASET_FIELDS

    p = sub.add_parser("data", help="make or inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synthetic", help="render the built-in scene in the Blender layout")
    s.add_argument("--out", required=True, help="dataset folder to write (Blender layout)")
    s.add_argument("--views", type=int, default=BUILTIN_VIEWS,
                   help=f"training views (default {BUILTIN_VIEWS}; val and test get 8 each)")
    s.add_argument("--size", type=int, default=BUILTIN_SIZE,
                   help=f"image width and height in pixels (default {BUILTIN_SIZE})")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    s.set_defaults(run=cmd_data_synthetic)

    i = dsub.add_parser("info", help="load a dataset and print its format, splits, cameras and chosen bounds",
                        formatter_class=HelpFormatter)
    i.add_argument("path", help="dataset folder or file")
    add_config_flags(i, set(DATASET_FIELDS) - {"data"})  # the dataset flags of train, less --data (the PATH)
    i.set_defaults(run=cmd_data_info)

    m = dsub.add_parser("from-mesh", help="render a (textured) OBJ mesh from many cameras into the Blender layout")
    m.add_argument("model", help="the .obj file (its .mtl and textures are found beside it)")
    m.add_argument("--out", required=True, help="dataset folder to write (Blender layout)")
    m.add_argument("--views", type=int, default=40, help="training views (default 40)")
    m.add_argument("--val-views", type=int, default=8, help="validation views (default 8; 0: none)")
    m.add_argument("--test-views", type=int, default=8, help="test views (default 8; 0: none)")
    m.add_argument("--size", type=int, default=128, help="image width and height in pixels (default 128)")
    m.add_argument("--supersample", type=int, default=3,
                   help="odd subsamples per pixel side for soft edges (default 3)")
    m.add_argument("--up", default="y", help="the mesh's up axis: y (OBJ's usual), z, x, -y or -z (default y)")
    m.add_argument("--full-sphere", action="store_true", help="cameras all around, not just the upper half")
    m.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    m.set_defaults(run=cmd_data_from_mesh)

    from_photos_parser(dsub)


def _load_with_options(args):
    from ..config import TrainConfig
    from ..runs.datasets import check_data_format, load_dataset, run_in

    cfg = TrainConfig(data=str(args.path)).replace(**config_overrides(args)).validate()  # (its data: --ndc applies)
    check_data_format(cfg)
    if (run := run_in(args.path)) is not None:  # load_dataset refuses it too; this line says the command to run
        data = run.data
        raise UserError(f"{args.path}: a run folder, not a dataset; it trained on "
                        + (f"{data}: taichi-nerf data info {shlex.quote(str(data))}" if data else "the built-in scene"))
    return load_dataset(args.path, **cfg.dataset_options())


def cmd_data_info(args) -> int:
    from ..data.dataset import INTRINSICS

    ds = _load_with_options(args)

    def vec(t):  # float32 noise ("-6.955e-09" for a centred axis) shows as 0
        values = [float(v) for v in t]
        tiny = 1e-6 * max([1.0, *map(abs, values)])
        return "(" + ", ".join(f"{v if abs(v) > tiny else 0.0:.4g}" for v in values) + ")"

    print(f"format:   {ds.format}")
    print(f"source:   {ds.source}")
    for name, split in ds.splits.items():
        intr = split.intrinsics
        same = bool((intr == intr[0]).all())
        described = ", ".join(f"{k} {float(v):.4g}" for k, v in zip(INTRINSICS, intr[0])
                              if k[0] in "fc" or float(v) != 0.0)
        print(f"{name + ':':9} {counted(split.count, 'image')}, {split.width}x{split.height}; "
              f"{'intrinsics' if same else 'first camera'}: {described}")
    print(f"near/far: {ds.near:.4g} / {ds.far:.4g}" + ("  (NDC)" if ds.ndc else "")
          + ("  (unbounded: space beyond the box is contracted)" if ds.unbounded else ""))
    print(f"box:      min {vec(ds.aabb[:3])}, max {vec(ds.aabb[3:])}")
    print(f"centre:   {vec(ds.center)}; up {vec(ds.up)}")
    if ds.forward_facing:
        print(f"video:    spiral in front of the cameras, looking {ds.focus_distance:.4g} ahead (forward-facing)")
    else:
        from ..rendering.video_route import choose_video

        elevation = ds.orbit_elevation_deg if abs(ds.orbit_elevation_deg) > 1e-4 else 0.0  # "-4.88e-08": float noise
        print(f"orbit:    radius {ds.orbit_radius:.4g}, elevation {elevation:.3g} deg")
        video = choose_video(ds.split("train").poses, ds.center, ds.up, False)
        print(f"video:    {video['video_path']} ({video['video_reason']})")
    if ds.background is not None:
        from ..rendering.backgrounds import resolve_background

        chosen = resolve_background("auto", ds.background)
        print(f"background: {chosen.description}; --background overrides it")
    for note in ds.notes:
        print(f"note:     {note}")
    for warning in ds.warnings:
        print(f"warning:  {warning}")
    return 0


def cmd_data_from_mesh(args) -> int:
    from ..scenes.mesh import write_mesh_dataset

    at_least(args, {"--views": 1, "--size": 8, "--val-views": 0, "--test-views": 0})
    if args.supersample < 1 or args.supersample % 2 == 0:
        raise UserError("--supersample must be an odd positive number (1, 3, 5)")
    watch_dataset(args, args.out)
    out, warnings = write_mesh_dataset(args.model, args.out, views=args.views, size=args.size, val_views=args.val_views,
                                       test_views=args.test_views, supersample=args.supersample, up=args.up,
                                       full_sphere=args.full_sphere, progress=not args.no_progress)
    for w in warnings:
        print(f"warning: {w}")
    print(f"wrote {args.model} as a dataset ({args.views} training views, {args.size}x{args.size}, "
          f"with alpha and depth) to {out}")
    print(f"train on it with: taichi-nerf train --data {shlex.quote(str(out))}")
    return 0


def cmd_data_synthetic(args) -> int:
    from ..api import make_synthetic

    at_least(args, {"--views": 1, "--size": 8})
    watch_dataset(args, args.out)
    path = make_synthetic(args.out, views=args.views, size=args.size, progress=not args.no_progress)
    print(f"wrote the built-in scene ({args.views} training views, {args.size}x{args.size}) to {path}")
    return 0


def from_photos_parser(dsub) -> None:
    from ..capture.photos import CAMERA_MODELS, MATCHING
    from ..capture.video_frames import VIDEO_FRAMES

    p = dsub.add_parser("from-photos", help="recover camera poses for your photos or video with COLMAP (pycolmap) "
                                            "and write a trainable dataset",
                        description="Recover camera poses with COLMAP (pip install \"taichi-nerf[colmap]\") and "
                                    "write transforms.json beside the images. Photos: all of one size, overlapping.")
    p.add_argument("source", metavar="IMAGES_DIR_OR_VIDEO",
                   help="a folder of photos, or a video file (an mp4 or other ffmpeg format, or a GIF)")
    p.add_argument("--out", required=True, help="the dataset folder to write (new or empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the dataset already in --out")
    p.add_argument("--matching", choices=MATCHING, default="auto",
                   help="image pairs to match: every pair (exhaustive), or neighbours in capture order (sequential); "
                        "auto: exhaustive for up to 200 photos, sequential for more and for videos (default: auto)")
    p.add_argument("--camera-model", choices=tuple(CAMERA_MODELS), default="simple_radial",
                   help="lens model: pinhole (no distortion), simple_radial (one radial term; a phone), radial, "
                        "opencv (k1 k2 p1 p2) (default: simple_radial)")
    p.add_argument("--per-image-cameras", action="store_true",
                   help="one camera per image (zoom changed, several devices); default: one shared camera")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="video: frames to keep, evenly spaced, the sharpest of each stretch; a shorter video keeps "
                        f"every frame (default: {VIDEO_FRAMES}; a folder's photos are all used)")
    p.add_argument("--threads", type=int, default=-1, metavar="N", help="CPU threads for COLMAP (default: all)")
    p.add_argument("--masks", metavar="DIR",
                   help="masks of the photos (same names, any image format and size; white = keep): COLMAP matches "
                        "only what they keep (a turntable's object, not its still room), and they are written "
                        "beside the images, where training uses them")
    p.add_argument("--keep-degenerate", action="store_true",
                   help="write the dataset even when it cannot train a good field (refused by default: cameras "
                        "that barely move relative to what they see, a turntable without masks, a tripod pan, "
                        "fewer than 8 photos registered, a video whose cameras jump between neighbouring frames)")
    p.add_argument("--keep-database", action="store_true", help="keep COLMAP's database.db in OUT/colmap/")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, scripts)")
    p.set_defaults(run=cmd_from_photos)


def cmd_from_photos(args: argparse.Namespace) -> int:
    from ..capture.degenerate import DegenerateReconstruction, more_views_hint
    from ..capture.photos import from_photos
    from ..capture.video_frames import VIDEO_FRAMES

    if args.frames is not None and Path(args.source).is_dir():  # not a silent no-op: every photo would be used
        raise UserError(f"{args.source}: --frames picks a video's frames; a folder's photos are all used (move those "
                        "you do not want out of it, or drop --frames)")
    args.frames = VIDEO_FRAMES if args.frames is None else args.frames
    watch_dataset(args, args.out, "transforms.json")  # a Ctrl-C says what became of --out
    try:
        report = from_photos(args.source, args.out, matching=args.matching, camera_model=args.camera_model,
                             per_image_cameras=args.per_image_cameras, frames=args.frames, overwrite=args.overwrite,
                             keep_database=args.keep_database, progress=not args.no_progress, threads=args.threads,
                             masks=args.masks, keep_degenerate=args.keep_degenerate)
    except DegenerateReconstruction as exc:
        print(exc.table)  # the figures behind the refusal; the one-line error follows
        raise
    print(report.table())
    for w in report.warnings:
        print(f"warning: {w}")
    if len(report.registered) < 0.8 * report.total:
        helps = more_views_hint(report.total, args.frames if Path(args.source).is_file() else None, report.cut_short)
        print(f"warning: only {len(report.registered)} of {report.total} images registered; the field will only "
              f"know the part of the scene they see (to register more: {helps})")
    print(f"wrote {report.out} ({len(report.registered)} posed images); train on it with: "
          f"taichi-nerf train --data {shlex.quote(str(report.out))}")
    return 0
