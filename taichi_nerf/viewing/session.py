"""What the two front ends' sessions share (the GGUI window, gui/app.py, and the browser
viewer, viewer/session.py): training one step at a time through the trainer's own schedule,
saving on their own at least once a minute, the bookkeeping of checkpoints whoever saved them,
saving what is unsaved on the way out, and the status file that scripts and tests read."""
import json
import sys
import time
from pathlib import Path

from ..files import saying_more, write_text_atomic
from ..training.trainer import TrainingDiverged
from . import actions

# A lost display aborts the window's process inside Vulkan (no Python handler runs), and a
# dropped SSH session may take the browser viewer's with it: training saves at least this
# often, so at most a minute of it is lost.
AUTOSAVE_S = 60.0


class TrainingSession:
    """Mixed into a front end's app, which holds ``trainer`` (None: viewing a checkpoint),
    ``cfg``, ``schedule``, ``options`` (``status_path``), ``message``, ``counts``,
    ``last_saved`` and ``saved_step``, and says ``status(running)``. It is one of the trainer's
    callbacks (:meth:`on_checkpoint`)."""

    autosave_s: float | None = AUTOSAVE_S  # None: no autosave
    resume_hint = "space"  # how this front end trains on: "space", "resume"
    prefix = "taichi-nerf"  # what it prints starts so
    # Set when Trainer.run drives the steps (train --viewer web): called after each step, False
    # ends the training (the planned steps, the time limit, a stop vote); no pause at the end then.
    keep_going = None
    finished = False  # keep_going said no: the front end's loop ends
    saved_at = 0.0  # the clock at the last save (the autosave's)

    def train_step(self) -> bool:
        """One :meth:`Trainer.advance` (step, log, validate, preview, checkpoint, as ``train``
        does); False ends this frame's training. A divergence pauses the session (driven by
        Trainer.run, it stops the run as in ``train``); a file that cannot be written is said,
        and training goes on."""
        trainer = self.trainer
        try:
            trainer.advance()
        except TrainingDiverged as exc:
            if self.keep_going is not None:
                raise
            self.schedule.paused = True
            self.message = f"training diverged: {exc}"
            return False
        except OSError as exc:  # a preview or checkpoint could not be written: say so, train on
            self.message = f"saving failed: {exc}"
        if self.keep_going is not None and not self.keep_going():
            self.finished = True
            return False
        if self.autosave_s is not None and self.keep_going is None and self.saved_step != trainer.step_count \
                and time.perf_counter() - self.saved_at > self.autosave_s:
            self.saved_at = time.perf_counter()  # a failed save is retried a minute later, not every step
            actions.attempt(self, actions.save_checkpoint, "checkpoint")
        if self.schedule.reached(trainer.step_count):
            if self.saved_step != trainer.step_count:
                actions.attempt(self, actions.save_checkpoint, "checkpoint")
            planned = self.cfg.step_limit(timed=False)
            self.message = f"reached the planned {planned} steps and saved; {self.resume_hint} trains on"
            return False
        return True

    def on_checkpoint(self, trainer, path: Path) -> None:
        """Trainer hook: whoever saved (a button, the schedule, the autosave, closing), the app knows."""
        self.saved_step, self.saved_at = trainer.step_count, time.perf_counter()
        self.counts["checkpoints"] += 1
        self.last_saved["checkpoint"] = str(path)
        self.message = f"saved checkpoint: {path}"

    def save_unsaved(self) -> None:
        """On the way out: say so if a video was being recorded (it is lost), and save what training
        did since the last save (not when Trainer.run drives the steps: its end saves)."""
        dropped = actions.dropped_video_note(self)
        if dropped is not None:
            print(f"{self.prefix}: {dropped}", file=sys.stderr)
        trainer = self.trainer
        if trainer is None or trainer.step_count == self.saved_step or self.keep_going is not None:
            return
        try:
            path = trainer.save_checkpoint()
            print(f"{self.prefix}: saved step {trainer.step_count} to {path}")
        except TrainingDiverged as exc:
            print(f"{self.prefix}: not saved: {exc}", file=sys.stderr)
        except OSError as exc:  # the folder gone or full: said in one line by the CLI, with what it cost
            saved = f"the last saved was step {self.saved_step}" if self.saved_step else "nothing was saved yet"
            raise saying_more(exc, f"step {trainer.step_count} was not saved ({saved})") from exc

    def write_status(self, running: bool) -> None:
        if not self.options.status_path:
            return
        write_text_atomic(self.options.status_path, json.dumps(self.status(running)))  # readers never see half a file
