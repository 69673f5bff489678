"""``taichi-nerf view --ckpt RUN``: a trained field in the browser (taichi_nerf/viewer/)."""
from __future__ import annotations

from .common import (
    add_arch,
    add_viewer_flags,
    check_before_serving,
    check_file_to_write,
    check_seconds,
    check_video_frames,
    check_viewer_flags,
    viewer_options,
)


def add_parser(sub) -> None:
    from ..viewing import VIDEO_FRAMES

    p = sub.add_parser("view", help="look around a trained field in a browser (for machines without a display)",
                       description="Serve a trained checkpoint to a browser: orbit, pan and zoom, render modes, "
                                   "training cameras, keyframes and path videos.")
    p.add_argument("--ckpt", required=True, metavar="RUN", help="checkpoint file or run folder")
    add_arch(p)
    p.add_argument("--seconds", type=float, metavar="S", help="leave after this many seconds (default: at Ctrl-C)")
    p.add_argument("--status", metavar="JSON", help="write the viewer's state as JSON to this file (for scripts)")
    p.add_argument("--video-frames", type=int, default=VIDEO_FRAMES, metavar="N",
                   help=f"frames of a video (default: {VIDEO_FRAMES})")
    add_viewer_flags(p)
    p.set_defaults(run=cmd_view)


def cmd_view(args) -> int:
    from ..viewer.launch import view_checkpoint
    from ..viewer.server import ViewerServer

    check_seconds(args.seconds)
    check_video_frames(args.video_frames)
    check_viewer_flags(args)
    check_file_to_write("--status", args.status)  # (its first frame writes it)
    check_before_serving(args.ckpt, args.arch)
    server = ViewerServer(args.viewer_host, args.viewer_port)
    try:
        return view_checkpoint(server, args.ckpt, args.arch, viewer_options(args))
    finally:
        server.stop()
