"""A whole run of a Trainer, start to end: its steps until the step count, the time limit or a
stop (Ctrl-C, SIGTERM, a rank's vote), then the end: save, the final validation, a preview, save
again, the curves. ``Trainer.run`` and ``Trainer.finish`` are these; the window and the browser
viewer drive the steps their own way and use the rest of the Trainer.
"""
from __future__ import annotations

from dataclasses import replace

from ..interrupts import StopRequest, interrupted_at_once
from .diagnostics import ProgressBar
from .plots import write_curves
from .result import TrainResult


def run(trainer, drive=None) -> TrainResult:
    """``trainer.advance()`` until ``steps`` (or the time limit, or Ctrl-C/SIGTERM), then :func:`finish`.
    ``drive(more)``, if given, makes the steps instead (the browser viewer's loop): it calls
    ``advance`` while ``more()``, and returns True if it was stopped (its own Ctrl-C)."""
    trainer.begin()
    start_wall = trainer.start_clock()
    stop = StopRequest()
    bar = ProgressBar(trainer)
    trainer.callbacks.append(bar)

    def more() -> bool:  # time left (a resume may have used it), steps left, and no rank voted to stop
        spent = trainer.clock_limit(start_wall)
        return not spent and trainer.step_count < trainer.step_limit() and not trainer.ranks.agree_to_stop(stop)

    with stop:
        try:
            trainer.score_start()
            # Signals only raise a flag; the loop stops between steps, so a checkpoint
            # never holds a half-applied optimiser step or grid update.
            if drive is not None:
                stop.requested = drive(more) or stop.requested
            while drive is None and more():
                trainer.advance()
        except KeyboardInterrupt:  # a second Ctrl-C, or one during a validation render
            stop.requested = True
        except Exception as error:  # a user's callback, a bug: the steps are saved before it is raised
            trainer.save_before_error(error)
            raise
        finally:
            trainer.callbacks.remove(bar)
            bar.close()
        result = trainer.finish(start_wall, trainer.clock() - start_wall, stop.requested)
    # a first Ctrl-C during the final validation only asked to stop: the run still ends interrupted
    return replace(result, interrupted=result.interrupted or stop.requested)


def finish(trainer, started: float, training_s: float, stopped: bool) -> TrainResult:
    """The end of a run, after its steps: save, then (unless ``stopped``) validate on up to 16 views, write a
    preview (unless the schedule's stands) and save again with the PSNR; the curves. ``started``: the clock when
    the run began; ``training_s``: the seconds its steps took. Ctrl-C during the validation keeps the first save."""
    trainer.clock_limit(started)  # the checkpoint carries the clock to the last step (a resume's limit)
    trainer.read_last_step()  # (on CUDA, a step between log lines has its numbers read only now)
    if trainer.unlogged is not None:  # a time limit or Ctrl-C ended it between log lines: its last step's numbers
        trainer.log_training_row()
    path = trainer.save_checkpoint()  # before the (slow) final validation: nothing after it can lose work
    if not stopped:
        try:
            with interrupted_at_once():  # a stop here costs no work: the checkpoint is saved
                val_psnr = trainer.validate(None if trainer.val.count <= 16 else 16, progress=trainer.cfg.progress)
            trainer.log({"step": trainer.step_count, "val_psnr": val_psnr,
                         "val_object_psnr": trainer.last_val_object_psnr, "final": True})
            if trainer.preview_step != trainer.step_count:  # else the schedule's, of the same weights, stands
                trainer.write_preview()
            path = trainer.save_checkpoint()  # now with the final validation PSNR
        except KeyboardInterrupt:
            stopped = True
    if trainer.ranks.writes:
        write_curves(trainer.out_dir)
    trainer.notify("on_end")  # the run's last words: a logger closes its files
    return trainer.ranks.share_result(TrainResult(trainer.out_dir, path, trainer.step_count, trainer.last_val_psnr,
                                                  stopped, trainer.clock() - started, trainer.last_val_object_psnr,
                                                  training_s))
