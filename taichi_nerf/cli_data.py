"""``taichi-nerf data from-photos``: a folder of photos or a video -> a dataset (data/photos.py)."""
from __future__ import annotations

import argparse


def from_photos_parser(dsub) -> None:
    from .data.photos import CAMERA_MODELS, MATCHING

    p = dsub.add_parser("from-photos", help="recover camera poses for your photos or video with COLMAP (pycolmap) "
                                            "and write a trainable dataset",
                        description="Recover camera poses with COLMAP (pip install \"taichi-nerf[colmap]\") and "
                                    "write transforms.json beside the images. Photos: all of one size, overlapping.")
    p.add_argument("source", metavar="IMAGES_DIR_OR_VIDEO", help="a folder of photos, or a video file")
    p.add_argument("--out", required=True, help="the dataset folder to write (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace the dataset already in --out")
    p.add_argument("--matching", choices=MATCHING, default="auto",
                   help="image pairs to match: every pair (exhaustive), or neighbours in capture order (sequential); "
                        "auto: exhaustive for up to 200 photos, sequential for more and for videos (default: auto)")
    p.add_argument("--camera-model", choices=tuple(CAMERA_MODELS), default="simple_radial",
                   help="lens model: pinhole (no distortion), simple_radial (one radial term; a phone), radial, "
                        "opencv (k1 k2 p1 p2) (default: simple_radial)")
    p.add_argument("--per-image-cameras", action="store_true",
                   help="one camera per image (zoom changed, several devices); default: one shared camera")
    p.add_argument("--frames", type=int, default=100, metavar="N",
                   help="video: frames to keep, evenly spaced, the sharpest of each stretch (default: 100)")
    p.add_argument("--threads", type=int, default=-1, metavar="N", help="CPU threads for COLMAP (default: all)")
    p.add_argument("--masks", metavar="DIR",
                   help="masks of the photos (same names, any image format and size; white = keep): COLMAP matches "
                        "only what they keep (a turntable's object, not its still room), and they are written "
                        "beside the images, where training uses them")
    p.add_argument("--keep-degenerate", action="store_true",
                   help="write the dataset even when the cameras barely move relative to what they see "
                        "(refused by default: a turntable without masks, a tripod pan)")
    p.add_argument("--keep-database", action="store_true", help="keep COLMAP's database.db in OUT/colmap/")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=cmd_from_photos)


def cmd_from_photos(args: argparse.Namespace) -> int:
    from .data.photos import DegenerateReconstruction, from_photos

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
        print(f"warning: only {len(report.registered)} of {report.total} images registered; the field will only "
              "know the part of the scene they see (more overlap between photos helps)")
    print(f"wrote {report.out} ({len(report.registered)} posed images); train on it with: "
          f"taichi-nerf train --data {report.out}")
    return 0
