"""The browser viewer's sessions, for the command line (taichi_nerf/cli/: ``view --ckpt RUN``,
``gui --web``, ``train --viewer web``, which parse and check the flags): a checkpoint on view,
a run trained in the browser, and ``train``'s run with the browser watching. The server
(viewer/server.py) opens before any data loads, so a missing viser or a bad address refuses
the command before anything on disk changes."""

import contextlib
import shlex

from .server import ViewerServer


def open_checkpoint(path, arch: str):
    """(renderer, cfg, state, training split or None, run folder) of a checkpoint."""
    from ..runs import checkpoint
    from ..runs.datasets import training_views

    renderer, cfg, state = checkpoint.load(path, arch)
    # the training views are optional here: they only draw the training cameras
    split = training_views(cfg, checkpoint.find_checkpoint(path), "view", "no training cameras shown")
    return renderer, cfg, state, split, checkpoint.find_checkpoint(path).parent


def view_checkpoint(server: ViewerServer, path, arch: str, options) -> int:
    """A trained checkpoint in the browser, until Ctrl-C (or ``options.max_seconds``)."""
    from .session import WebViewer

    renderer, cfg, state, split, run = open_checkpoint(path, arch)
    app = WebViewer(server, renderer, cfg, options, train_split=split, out_dir=run,
                    step=int(state.get("step", 0)), val_psnr=state.get("val_psnr"))
    print(f"viewing {run} (step {app.step_at_open}) in the browser; Ctrl-C leaves")
    return app.run()


def train_in_browser(server: ViewerServer, run, options) -> int:
    """``gui --web``: the window's session in the browser, for ``run`` (a checked, locked
    :class:`taichi_nerf.runs.run_folder.Run`): it trains until Ctrl-C, pausing once at its
    planned steps, as the window does."""
    from ..training.diagnostics import continue_command, start_lines
    from ..training.trainer import Trainer
    from .session import WebViewer

    with run:
        trainer = Trainer(run.cfg, dataset=run.dataset, resume=run.resume)
        trainer.begin()
        print("\n".join(start_lines(trainer, run.resume, run_folder=run.out, trains_on="resume")))
        server.remind()
        app = WebViewer(server, trainer.renderer, trainer.cfg, options, trainer=trainer, train_split=trainer.train,
                        out_dir=trainer.out_dir, val_psnr=trainer.last_val_psnr)
        code = app.run()
    again = continue_command(trainer, f"taichi-nerf gui --web --ckpt {shlex.quote(str(trainer.out_dir))} --train")
    print(f"stopped at step {trainer.step_count}; continue with: {again}")
    return code


class WebTraining:
    """``train --viewer web``: the server opens first, then :meth:`train` runs ``Trainer.run``
    with the viewer's loop making the steps, and :meth:`linger` keeps the trained field on view
    until Ctrl-C."""

    def __init__(self, server: ViewerServer, options, quit_at_end: bool = False):
        self.server, self.options, self.quit_at_end = server, options, quit_at_end
        self.app = None  # the WebViewer, once training starts

    def train(self, trainer):
        """``Trainer.run`` with the browser watching: the same progress bar, time limit, Ctrl-C and
        end (the final validation, preview and checkpoint; after Ctrl-C or a crash of the viewer,
        the save alone), the steps made by the viewer's loop (:meth:`drive`)."""
        return trainer.run(drive=lambda more: self.drive(trainer, more))

    def drive(self, trainer, more) -> bool:
        """Trainer.run's steps through the viewer's loop while ``more()``; True if it was stopped."""
        from .session import WebViewer

        self.app = WebViewer(self.server, trainer.renderer, trainer.cfg, self.options, trainer=trainer,
                             train_split=trainer.train, out_dir=trainer.out_dir, val_psnr=trainer.last_val_psnr,
                             keep_going=more)
        stopped = more() and self.app.run() != 0
        if not stopped:  # the run's end comes next, on this thread: the page says so, not "(training)"
            video = " and the video" if getattr(trainer, "end_video_frames", 0) else ""
            then = "then this viewer closes" if self.quit_at_end else "the view comes back after them"
            self.app.say_ended(f"the final validation{video} run now; {then}")
        return stopped

    def linger(self, code: int) -> int:
        """Keep serving the trained field until Ctrl-C (unless --viewer-quit-at-end); then close."""
        from ..training.diagnostics import continue_command

        try:
            if code == 0 and not self.quit_at_end and self.app is not None:
                app = self.app
                app.finished, app.keep_going, app.ended = False, None, False  # on view, paused
                app.schedule.paused = True  # and stays so: more steps would leave the final validation behind
                folder = shlex.quote(str(app.trainer.out_dir))
                app.ended_hint = continue_command(app.trainer, f"taichi-nerf train --resume {folder}",
                                                timed=True)
                self.app.message = "training finished: the viewer stays open on the field until Ctrl-C"
                print(f"taichi-nerf: {self.app.message}")
                self.app.run()
        finally:
            self.close()
        return code

    def close(self) -> None:
        """Stop the server; the pages still open are told first (--viewer-quit-at-end, a failed end
        video: they kept saying "training" once it had gone)."""
        if self.app is not None and not self.app.closed:
            with contextlib.suppress(Exception):  # a last word: never in place of the error on its way out
                self.app.say_closed()
        self.server.stop()
