"""``taichi-nerf gui``: train in the interactive window, or look around a trained checkpoint."""
from __future__ import annotations

import shlex

from .common import (
    HelpFormatter,
    UserError,
    add_config_flags,
    add_viewer_flags,
    at_least,
    check_before_serving,
    check_file_to_write,
    check_seconds,
    check_video_frames,
    check_viewer_flags,
    config_overrides,
    refuse_builtin_scene_flags,
    refuse_unused_viewer_flags,
    run_config,
    say_resume_note,
    viewer_options,
)

# TrainConfig fields `gui` takes as flags (a --config file may set any other).
GUI_FIELDS = ("preset", "steps", "batch_rays", "lr", "seed", "width", "depth", "samples_per_ray", "background", "out",
              "arch", "progress", "scene_views", "scene_size", "mixed_precision")
MAX_RENDER_SCALE = 2.0  # 2x supersampling; beyond it a frame takes minutes and the window stops answering
DEFAULT_WINDOW = "1120x800"  # --window: its panel takes 330 px
GUI_DEFAULT_OUT = "runs/gui"  # not train's runs/latest: a GUI session must not overwrite a batch run


def add_parser(sub) -> None:
    from ..config import DATASET_FIELDS
    from ..viewing import VIDEO_FRAMES

    p = sub.add_parser("gui",
                       help="train in an interactive window (Taichi GGUI) and look around the field as it learns",
                       formatter_class=HelpFormatter, usage="%(prog)s [--data PATH | --ckpt RUN [--train]] [options]",
                       description="Train in an interactive window, or look around a trained checkpoint. "
                                   "A flag given overrides the --config file or the continued run's config.")
    p.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--ckpt", metavar="RUN", help="open a trained checkpoint (file or run folder) to look around")
    p.add_argument("--train", action="store_true", help="with --ckpt: keep training it (in its run folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out; without it a folder holding a run is refused")
    w = p.add_argument_group("window options")
    w.add_argument("--window", default=DEFAULT_WINDOW, metavar="WxH",
                   help=f"window size (default: {DEFAULT_WINDOW}; the panel takes 330 px, and a window under "
                        "490 px wide opens on the view alone: H shows the panel over it)")
    w.add_argument("--render-scale", type=float, metavar="X",
                   help="render size / view size (default: 1, the canvas's full resolution)")
    w.add_argument("--steps-per-frame", type=int, metavar="N",
                   help="training steps between two frames (default: as many as half of a ~80 ms frame allows)")
    w.add_argument("--video-frames", type=int, default=VIDEO_FRAMES, metavar="N",
                   help="frames of the video the V key records: the orbit, or the path through the K keyframes "
                        f"(default: {VIDEO_FRAMES})")
    w.add_argument("--headless", action="store_true",
                   help="no window: render offscreen (needs --frames or --seconds; see --screenshot)")
    w.add_argument("--frames", type=int, metavar="N", help="leave after this many frames")
    w.add_argument("--seconds", type=float, metavar="S",
                   help="leave after this many seconds (scripts: gui.jsonl fps figures)")
    w.add_argument("--turn-every", type=float, metavar="S",
                   help="turn the camera 30 degrees around the scene every S seconds (benchmarks: how fast a still "
                        "view sharpens, in gui.jsonl's refined_after_s)")
    w.add_argument("--screenshot", metavar="PNG", help="save the last frame to this PNG when leaving")
    w.add_argument("--status", metavar="JSON",
                   help="write the GUI state as JSON to this file every frame (for scripts)")
    w.add_argument("--web", action="store_true", help="in a browser instead of a window (machines without a display)")
    add_viewer_flags(p)
    add_config_flags(p, DATASET_FIELDS + GUI_FIELDS, shown_defaults={"out": GUI_DEFAULT_OUT})
    p.set_defaults(run=cmd_gui)


def training_config(args):
    """(the config ``gui`` trains with, the checkpoint it continues or None): every refusal of
    the flags' values, before a window or a browser viewer opens."""
    from ..config import TrainConfig
    from ..runs.checkpoint import find_checkpoint

    ckpt = find_checkpoint(args.ckpt) if args.ckpt else None  # not RUN/checkpoint.pt: resume_config refuses it
    cfg = run_config(args, resume_from=ckpt, default=TrainConfig(out=GUI_DEFAULT_OUT))
    refuse_builtin_scene_flags(args, cfg)
    return cfg.validate(), ckpt


def open_training_run(args, planned=None):
    """The run ``gui`` trains (window or browser), through :func:`taichi_nerf.runs.run_folder.open_run`: a
    new run in a folder holding none (train's rule), or with ``--ckpt RUN --train`` that run
    continued; never beside another process training there. ``planned``: :func:`training_config`'s."""
    from ..runs.run_folder import open_run

    cfg, ckpt = planned or training_config(args)
    run = open_run(cfg, resume=ckpt is not None, overwrite=args.overwrite, data_given=args.data is not None,
                   continue_hint=f"--ckpt {shlex.quote(str(cfg.out))} --train (in place of --out) to continue it")
    say_resume_note(args)
    return run


def refuse_dropped_flags(args) -> None:
    """Flags that a ``--ckpt`` session would drop without a word are refused, as train refuses them."""
    if not args.ckpt:
        return
    files = [flag for flag, given in (("--config", args.config), ("--overwrite", args.overwrite)) if given]
    if args.train:
        dropped = (["--out"] if args.out is not None else []) + files
        if dropped:
            raise UserError(f"--ckpt RUN --train continues the run in its own folder with its own config: drop "
                            f"{' and '.join(dropped)}")
        return
    ignored = ("arch", "data", "progress")  # the viewer's own; --data is refused above
    flags = [f"--{name.replace('_', '-')}" for name in config_overrides(args) if name not in ignored]
    if flags + files:
        raise UserError(f"--ckpt without --train looks at the field as it was trained, so {', '.join(flags + files)} "
                        "would change nothing: drop them, or add --train to keep training with them")


def cmd_gui(args) -> int:
    """``taichi-nerf gui`` arguments -> a configured GuiApp (with ``--web``, the browser
    viewer), run to the end."""
    from ..gui.app import GuiApp, GuiOptions
    from ..gui.launch import check_environment, parse_window
    from ..runs.checkpoint import find_checkpoint
    from ..training.diagnostics import continue_command, start_lines

    if args.train and not args.ckpt:
        raise UserError("--train continues a checkpoint: give --ckpt RUN_FOLDER too (new runs train by default)")
    if args.ckpt and not args.train and args.data is not None:
        raise UserError("--ckpt looks at a trained field and --data trains a new one: give one of them "
                        "(or --ckpt RUN --train --data PATH to continue that run on this data)")
    refuse_dropped_flags(args)
    if not args.web:
        refuse_unused_viewer_flags(args, "--web")
    check_flags(args)  # every flag, before the window or the browser branch
    if args.web:  # the same session in a browser (taichi_nerf/viewer)
        return gui_web(args)
    if args.headless and args.frames is None and args.seconds is None:
        raise UserError("--headless has no window to close: give --frames N or --seconds S "
                        "(and --screenshot FILE to keep the last frame)")
    options = GuiOptions(window=parse_window(args.window), headless=args.headless, render_scale=args.render_scale,
                         steps_per_frame=args.steps_per_frame, video_frames=args.video_frames, status_path=args.status,
                         max_frames=args.frames, max_seconds=args.seconds, exit_screenshot=args.screenshot,
                         turn_every_s=args.turn_every)
    check_environment(args.headless)  # before minutes of data loading, not after (GuiUnavailable: a user error)
    if args.ckpt and not args.train:
        app = GuiApp.for_checkpoint(args.ckpt, options, args.arch or "auto")
        print(f"viewing {find_checkpoint(args.ckpt)} (step {app.step_at_open}); add --train to keep training it")
        _open_window(app)
        return app.run()
    with open_training_run(args) as run:
        app = GuiApp.for_training(run.cfg, options, resume=run.resume, dataset=run.dataset)
        print("\n".join(start_lines(app.trainer, run.resume, run_folder=run.out, trains_on="space")))
        _open_window(app, None if run.resume else run.out)
        code = app.run()
    step = app.trainer.step_count
    if not (app.out_dir / "checkpoint.pt").is_file():  # diverged before its first save: --ckpt would find nothing
        print(f"stopped at step {step} with no checkpoint saved, so nothing to continue: the same command with "
              "--overwrite starts the run again")
        return code
    again = continue_command(app.trainer, f"taichi-nerf gui --ckpt {shlex.quote(str(app.out_dir))} --train")
    print(f"stopped at step {step}; continue with: {again}")
    return code


def check_flags(args) -> None:
    """The values of gui's own flags, the window's and the browser's alike."""
    from ..gui.launch import parse_window

    parse_window(args.window)  # (a ValueError: one line)
    check_video_frames(args.video_frames)
    check_seconds(args.seconds)
    at_least(args, {"--frames": 1, "--steps-per-frame": 1})
    if args.render_scale is not None and not 0 < args.render_scale <= MAX_RENDER_SCALE:
        raise UserError(f"--render-scale must be above 0 and at most {MAX_RENDER_SCALE:g} (the render's size over "
                        f"the view's), got {args.render_scale:g}")
    if args.turn_every is not None and not args.turn_every > 0:
        raise UserError(f"--turn-every must be positive, got {args.turn_every:g}")
    check_file_to_write("--screenshot", args.screenshot)
    check_file_to_write("--status", args.status)
    if args.screenshot and not args.screenshot.lower().endswith(".png"):  # shot.jpg held PNG bytes
        raise UserError(f"--screenshot {args.screenshot}: the screenshot is written as a PNG; give a name ending in "
                        ".png")


def gui_web(args) -> int:
    """``gui --web``: what the window shows, in a browser (taichi_nerf/viewer/launch.py). The server
    opens before the run is opened (checked, locked, its folder claimed)."""
    from ..viewer.launch import train_in_browser, view_checkpoint
    from ..viewer.server import ViewerServer

    window_only = {"--window": args.window if args.window != DEFAULT_WINDOW else None, "--headless": args.headless,
                   "--frames": args.frames, "--turn-every": args.turn_every, "--screenshot": args.screenshot,
                   "--render-scale": args.render_scale}
    for flag, value in window_only.items():
        if value not in (None, False):
            raise UserError(f"{flag} is for the window, not --web (the browser viewer: --viewer-resolution, "
                            "--seconds, --status)")
    check_viewer_flags(args)
    planned = None if args.ckpt and not args.train else training_config(args)  # refused before the server opens
    if planned is None:
        check_before_serving(args.ckpt, args.arch or "auto")
    else:
        check_before_serving(None, planned[0].arch)
    server = ViewerServer(args.viewer_host, args.viewer_port)
    try:
        if planned is None:
            return view_checkpoint(server, args.ckpt, args.arch or "auto", viewer_options(args))
        return train_in_browser(server, open_training_run(args, planned), viewer_options(args))
    finally:
        server.stop()


def _open_window(app, fresh_run=None) -> None:
    """Open ``app``'s window, or say why it cannot in one line. ``fresh_run``: the folder of a
    new run, which has trained nothing yet: its files go, so that trying again needs no --overwrite."""
    from ..gui.launch import GuiUnavailable
    from ..runs.run_folder import claim_run_folder

    try:
        app.open()
    except GuiUnavailable:  # (a user error: cli/__init__.py)
        if fresh_run is not None:
            claim_run_folder(fresh_run, overwrite=True)
        raise
