"""The browser viewer on the command line: ``train --viewer web``, ``gui --web`` and ``view
--ckpt RUN``, their flags, and :func:`train_with_viewer` for the Python API. The server opens
before any data loads, so a missing viser or a bad address refuses the command before
anything on disk changes."""

from ..backend import ARCH_CHOICES
from ..viewing import VIDEO_FRAMES
from .server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_RESOLUTION,
    ViewerServer,
    ViewerUnavailable,
    check_address,
    require_viser,
)


def add_viewer_flags(parser, *, choice: bool = False) -> None:
    """``--viewer-host``, ``--viewer-port``, ``--viewer-resolution``; with ``choice`` also
    ``--viewer none|web`` and ``--viewer-quit-at-end`` (train)."""
    group = parser.add_argument_group("browser viewer options")
    if choice:
        group.add_argument("--viewer", choices=("none", "web"), default="none",
                           help="web: watch and steer training in a browser (needs taichi-nerf[viewer]; default: none)")
        group.add_argument("--viewer-quit-at-end", action="store_true",
                           help="leave when training ends (default: the viewer stays open on the field until Ctrl-C)")
    group.add_argument("--viewer-host", default=DEFAULT_HOST, metavar="ADDR",
                       help="address the viewer listens on (default: 127.0.0.1, this machine only: reach it with "
                            "ssh -L; 0.0.0.0 lets anyone who reaches the port watch and steer the run)")
    group.add_argument("--viewer-port", type=int, default=DEFAULT_PORT, metavar="PORT",
                       help=f"port (default: {DEFAULT_PORT}; the next free one when taken, and it says so; 0: any)")
    group.add_argument("--viewer-resolution", type=int, default=DEFAULT_RESOLUTION, metavar="PX",
                       help=f"longest side of the rendered picture (default: {DEFAULT_RESOLUTION}; the panel's "
                            "resolution cap changes it)")


def view_parser(sub) -> None:
    """``taichi-nerf view --ckpt RUN``: a trained field in the browser."""
    p = sub.add_parser("view", help="look around a trained field in a browser (for machines without a display)",
                       description="Serve a trained checkpoint to a browser: orbit, pan and zoom, render modes, "
                                   "training cameras, keyframes and path videos.")
    p.add_argument("--ckpt", required=True, metavar="RUN", help="checkpoint file or run folder")
    p.add_argument("--arch", choices=ARCH_CHOICES, default="auto",
                   help="compute backend (default: auto = CUDA if usable, else CPU)")
    p.add_argument("--seconds", type=float, metavar="S", help="leave after this many seconds (default: at Ctrl-C)")
    p.add_argument("--status", metavar="JSON", help="write the viewer's state as JSON to this file (for scripts)")
    p.add_argument("--video-frames", type=int, default=VIDEO_FRAMES, metavar="N",
                   help=f"frames of a video (default: {VIDEO_FRAMES})")
    add_viewer_flags(p)
    p.set_defaults(run=cmd_view)


def _check(args) -> None:
    seconds = getattr(args, "seconds", None)
    if seconds is not None and not seconds > 0:
        raise ViewerUnavailable(f"--seconds must be positive, got {seconds:g}")
    if args.viewer_resolution < 16:
        raise ViewerUnavailable(f"--viewer-resolution must be at least 16, got {args.viewer_resolution}")
    check_address(args.viewer_host, args.viewer_port)


def _options(args, **changes):
    from .session import ViewerOptions

    # train's --video-frames is its own video's (None: the default, 0: none): the panel's videos then take 36
    frames = getattr(args, "video_frames", None) or VIDEO_FRAMES
    return ViewerOptions(resolution_cap=args.viewer_resolution, video_frames=frames,
                         steps_per_frame=getattr(args, "steps_per_frame", None),
                         max_seconds=getattr(args, "seconds", None), status_path=getattr(args, "status", None),
                         **changes)


def open_checkpoint(path, arch: str):
    """(renderer, cfg, state, training split or None, run folder) of a checkpoint."""
    from ..runs import checkpoint
    from ..runs.datasets import training_views

    renderer, cfg, state = checkpoint.load(path, arch)
    # the training views are optional here: they only draw the training cameras
    split = training_views(cfg, checkpoint.find_checkpoint(path), "view", "no training cameras shown")
    return renderer, cfg, state, split, checkpoint.find_checkpoint(path).parent


def view_checkpoint(server: ViewerServer, args) -> int:
    from .session import WebViewer

    renderer, cfg, state, split, run = open_checkpoint(args.ckpt, getattr(args, "arch", None) or "auto")
    app = WebViewer(server, renderer, cfg, _options(args), train_split=split, out_dir=run,
                    step=int(state.get("step", 0)), val_psnr=state.get("val_psnr"))
    print(f"viewing {run} (step {app.step_at_open}) in the browser; Ctrl-C leaves")
    return app.run()


def cmd_view(args) -> int:
    _check(args)
    if args.video_frames < 1:  # (gui checks its own; train's 0 means no video at its end)
        raise ViewerUnavailable(f"--video-frames must be at least 1 (the frames of the videos it records), "
                                f"got {args.video_frames}")
    from ..runs.checkpoint import checkpoint_file

    checkpoint_file(args.ckpt)  # a wrong --ckpt is said before the server announces an address that then goes away
    server = ViewerServer(args.viewer_host, args.viewer_port)
    try:
        return view_checkpoint(server, args)
    finally:
        server.stop()


def launch_web(args, open_training_run) -> int:
    """``gui --web``: what the window shows, in a browser. ``open_training_run(args)`` -> a
    :class:`taichi_nerf.runs.run_folder.Run` (checked, locked, its folder claimed: cli/gui.py), called
    after the server has opened."""
    from ..training.diagnostics import continue_command, start_lines
    from ..training.trainer import Trainer
    from .session import WebViewer

    _check(args)
    window_only = {"--headless": args.headless, "--frames": args.frames, "--turn-every": args.turn_every,
                   "--screenshot": args.screenshot, "--render-scale": args.render_scale}
    for flag, value in window_only.items():
        if value:
            raise ViewerUnavailable(f"{flag} is for the window, not --web (the browser viewer: --viewer-resolution, "
                                    "--seconds, --status)")
    server = ViewerServer(args.viewer_host, args.viewer_port)
    try:
        if args.ckpt and not args.train:
            return view_checkpoint(server, args)
        with open_training_run(args) as run:
            trainer = Trainer(run.cfg, dataset=run.dataset, resume=run.resume)
            trainer.begin()
            print("\n".join(start_lines(trainer, run.resume, run_folder=run.out)))
            app = WebViewer(server, trainer.renderer, trainer.cfg, _options(args), trainer=trainer,
                            train_split=trainer.train, out_dir=trainer.out_dir, val_psnr=trainer.last_val_psnr)
            code = app.run()
        again = continue_command(trainer, f"taichi-nerf gui --web --ckpt {trainer.out_dir} --train")
        print(f"stopped at step {trainer.step_count}; continue with: {again}")
        return code
    finally:
        server.stop()


class TimeLimit:
    """A training callback for ``train --viewer web``: the time limit's clock, as ``Trainer.run``
    keeps it (the learning rate decays over its last part, the bar counts its seconds); the
    viewer's loop ends when it is spent."""

    def __init__(self, trainer, app, started: float):
        self.app, self.started = app, started
        self.spent = trainer.clock_limit(started)

    def on_step(self, trainer, info: dict) -> None:
        if trainer.clock_limit(self.started):
            self.spent = self.app.finished = True


class WebTraining:
    """``train --viewer web``: the server opens first (:func:`open_viewer`), then
    :meth:`train` replaces ``Trainer.run`` and :meth:`linger` keeps the trained field on
    view until Ctrl-C."""

    def __init__(self, server: ViewerServer, options, quit_at_end: bool = False):
        self.server, self.options, self.quit_at_end = server, options, quit_at_end
        self.app = None  # the WebViewer, once training starts

    def train(self, trainer):
        """What ``Trainer.run`` does, with the browser watching: the steps through the viewer's
        loop (with the same progress bar and time limit), then unless stopped the final
        validation, preview and checkpoint (``Trainer.finish``)."""
        from ..training.diagnostics import ProgressBar
        from ..training.plots import write_curves
        from ..training.trainer import TrainResult
        from .session import ViewerOptions, WebViewer

        cfg = trainer.cfg
        trainer.begin()
        options = ViewerOptions(**{**vars(self.options), "stop_at_steps": True})
        self.app = WebViewer(self.server, trainer.renderer, cfg, options, trainer=trainer, train_split=trainer.train,
                             out_dir=trainer.out_dir, val_psnr=trainer.last_val_psnr)
        start = trainer.start_clock()
        clock, bar = TimeLimit(trainer, self.app, start), ProgressBar(trainer)
        trainer.callbacks += [clock, bar]
        try:
            trainer.score_start()
            code = self.app.run() if trainer.step_count < cfg.steps and not clock.spent else 0
        finally:
            trainer.callbacks.remove(clock)
            trainer.callbacks.remove(bar)
            bar.close()
        if code == 0:  # the steps are done, or the time limit: the final stage, as train's
            return trainer.finish(start, trainer.clock() - start, stopped=False)
        write_curves(trainer.out_dir)
        path = trainer.out_dir / "checkpoint.pt"
        return TrainResult(trainer.out_dir, path, trainer.step_count, trainer.last_val_psnr, True,
                           trainer.clock() - start)

    def linger(self, code: int) -> int:
        """Keep serving the trained field until Ctrl-C (unless --viewer-quit-at-end); then close."""
        from ..training.diagnostics import continue_command

        try:
            if code == 0 and not self.quit_at_end and self.app is not None:
                app = self.app
                app.finished, app.options.stop_at_steps = False, False
                app.options.max_seconds = self.options.max_seconds
                app.schedule.paused = True  # and stays so: more steps would leave the final validation behind
                app.ended_hint = continue_command(app.trainer, f"taichi-nerf train --resume {app.trainer.out_dir}")
                self.app.message = "training finished: the viewer stays open on the field until Ctrl-C"
                print(f"taichi-nerf: {self.app.message}")
                self.app.run()
        finally:
            self.server.stop()
        return code


def open_viewer(args) -> WebTraining | None:
    """For ``train``: None unless ``--viewer web``; else the server, open before the run
    folder is touched (``--dry-run`` only checks that viser is there)."""
    if getattr(args, "viewer", "none") != "web":
        return None
    _check(args)
    if getattr(args, "dry_run", False):
        require_viser()
        return None
    return WebTraining(ViewerServer(args.viewer_host, args.viewer_port), _options(args),
                       quit_at_end=args.viewer_quit_at_end)


def train_with_viewer(cfg, make_trainer=None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                      options=None, linger: bool = False):
    """Python API: train ``cfg`` (its run folder already claimed, or resumed) with the browser
    viewer; ``make_trainer(cfg)`` builds the Trainer (default: ``Trainer(cfg)``). Returns the
    TrainResult; ``linger``: keep serving the field after training until Ctrl-C."""
    from ..training.trainer import Trainer
    from .session import ViewerOptions

    session = WebTraining(ViewerServer(host, port), options or ViewerOptions(), quit_at_end=not linger)
    try:
        trainer = (make_trainer or Trainer)(cfg)
        result = session.train(trainer)
    except BaseException:
        session.server.stop()
        raise
    session.linger(0 if not result.interrupted else 130)
    return result
