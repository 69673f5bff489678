"""The browser viewer's loop, on the thread that owns Taichi: take what the browser asked for
(viewer/inbox.py), train (``Trainer.advance``, as the frame budget allows), refine the view
from the browser's camera (viewing/view.py, as the GGUI window does), and send the picture
as a JPEG: coarse and at lower quality while the camera moves, refined to full resolution
and at higher quality once it stops. Training and rendering take turns, never overlap.

Nobody watching (no browser, or the last one closed): training runs on at full speed. A
crash in the viewer saves the run as Ctrl-C does, then says what happened.
"""
import contextlib
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..interrupts import StopRequest
from ..rendering.backgrounds import scene_background
from ..runs.run_folder import VIEWER_LOG, lock_holder
from ..training.trainer import Trainer, TrainingDiverged
from ..viewing import VIDEO_FRAMES, actions, timeshare
from ..viewing.curves import TrainingCurves
from ..viewing.keyframes import Keyframes
from ..viewing.perflog import ViewerLog
from ..viewing.schedule import FrameBudget, PausableClock, RateMeter, TrainingSchedule
from ..viewing.session import TrainingSession
from ..viewing.view import ProgressiveView
from .camera import BrowserCamera, render_size, vertical_fov
from .panel import Panel
from .server import DEFAULT_RESOLUTION

MOVE_HOLD_S = 0.2  # a camera message this recent means the camera is still moving
SEND_EVERY_S = 0.1  # a picture still refining goes out this often (a finished level at once)
MOVING_QUALITY, STILL_QUALITY = 60, 90  # JPEG quality while moving / once still
BROWSER_MIN_PIXELS = 32  # the moving preview's floor across its short side
STATS_EVERY_S = 0.5
IDLE_S = 0.03  # nothing to do: wait this long before looking again
BROWSER_LEFT = "the browser left; training goes on"


@dataclass
class ViewerOptions:
    resolution_cap: int = DEFAULT_RESOLUTION  # the longer side of the render, at most
    steps_per_frame: int | None = None  # fixed training steps per frame; None: the frame budget decides
    frame_budget_s: float = 0.08
    video_frames: int = VIDEO_FRAMES
    video_width: int | None = None
    max_seconds: float | None = None  # leave after this long (scripts, tests)
    status_path: str | None = None  # the state as JSON, rewritten a few times a second (scripts, tests)


class WebViewer(TrainingSession):
    """The browser's view of a field, training it or not. It holds what the shared actions
    (viewing/actions.py) use: ``trainer``, ``schedule``, ``message``, ``camera``, ``keyframes``,
    ``view``, ``video_job``, ``out_dir``, ``options``... ``keep_going``: ``Trainer.run`` drives
    the steps (train --viewer web, viewer/launch.py), and the loop ends when it says no."""

    resume_hint = "resume"

    def __init__(self, server, renderer, cfg, options: ViewerOptions, trainer: Trainer | None = None,
                 train_split=None, out_dir=None, step: int = 0, val_psnr: float | None = None, keep_going=None):
        from .. import backend

        self.server, self.inbox = server, server.inbox
        self.renderer, self.cfg, self.options, self.trainer = renderer, cfg, options, trainer
        self.keep_going = keep_going
        self.scene, self.train_split = renderer.scene, train_split
        self.out_dir = Path(out_dir or cfg.out)
        self.background = scene_background(self.scene, cfg)
        on_gpu = backend.current().is_cuda
        self.schedule = TrainingSchedule(steps_per_frame=options.steps_per_frame, can_train=trainer is not None,
                                         yield_while_moving=not on_gpu,
                                         stop_at=None if trainer is None or keep_going is not None
                                         else cfg.step_limit(timed=False))
        self.message = "training" if trainer is not None else "viewing a checkpoint (no training)"
        if trainer is not None and self.schedule.reached(trainer.step_count):
            self.message = f"the run has its {cfg.step_limit(timed=False)} planned steps: resume trains on"
        self.mode = "rgb"
        self.resolution_cap = int(options.resolution_cap)
        self.view = ProgressiveView(renderer, self.background,
                                    render_size(self.scene.aspect * 100, 100, self.resolution_cap), cfg.eval_samples,
                                    renderer.max_samples_per_ray, whole=on_gpu)
        # the browser scales the picture to its window: a moving preview under 32 pixels across its
        # short side is a blur of blocks (nerfstudio's complaint), so coarser levels are not used
        self.view.min_coarse_pixels = BROWSER_MIN_PIXELS
        self.budget = FrameBudget(frame_s=options.frame_budget_s)
        self.fps = RateMeter()
        self.keyframes = Keyframes(self.scene)
        self.curves = TrainingCurves(val_psnr)
        self.step_at_open = trainer.step_count if trainer is not None else step
        self.saved_step, self.saved_at = self.step_at_open, time.perf_counter()
        self.counts = {"checkpoints": 0, "videos": 0, "frames": 0}
        self.last_saved: dict[str, str] = {}
        self.last_info: dict = {}
        self.video_job = None
        self.camera: BrowserCamera | None = None
        self.canvas = (1, 1)  # the browser's canvas, pixels
        self.client: int | None = None  # the browser whose camera the view follows
        self.moved_at = self.settling = self.awaiting = None  # last move; until refined; a move not yet shown
        self.latencies: list[float] = []  # seconds from a camera message to the first picture of it
        self.finished = self.crashed = self.closed = self.ended = False
        self.frame_count = 0  # loops run (a script waits for some to pass)
        self._sent_at = 0.0
        self._stats_at = 0.0
        self._pending = False  # rendered since the last picture sent
        self._sent_quality: int | None = None  # the JPEG quality of the last picture sent
        self._last_render_s = 0.0
        self._last_loop: float | None = None
        self._last_work_s = 0.0
        server.set_opening_view(self.scene, self.scene.fov_y)
        self.panel = Panel(server.server, self.inbox, training=trainer is not None,
                           resolution_cap=self.resolution_cap, train_share=self.budget.train_share)
        self.panel.add_training_cameras(train_split, self.inbox, scale=0.06 * self.scene.orbit_radius)
        self.log = ViewerLog(self.log_path())
        if trainer is not None and keep_going is not None:  # Trainer.run's time limit: a pause does not count
            self.clock = trainer.clock = PausableClock(trainer.clock)
        if trainer is not None:
            self.curves.seed(self.out_dir / "metrics.jsonl", trainer.step_count)
            trainer.callbacks += [self.curves, self]

    def log_path(self) -> Path:
        """viewer.jsonl in the run folder, unless another process trains there (a checkpoint on view
        beside ``train --viewer web``): that log is the trainer's, so this one goes to the temp folder."""
        holder = lock_holder(self.out_dir) if self.trainer is None else None
        if holder is None:
            return self.out_dir / VIEWER_LOG
        path = Path(tempfile.gettempdir()) / f"taichi-nerf-viewer-{os.getpid()}.jsonl"
        print(f"note: {self.out_dir} is training in process {holder}: this viewer logs to {path}, not its {VIEWER_LOG}")
        return path

    @property
    def step(self) -> int:
        return self.trainer.step_count if self.trainer is not None else self.step_at_open

    # --- trainer hooks ---------------------------------------------------------------------
    def on_step(self, trainer, info: dict) -> None:
        self.last_info = info

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        """Until Ctrl-C / SIGTERM, ``max_seconds``, or ``keep_going`` says no. Returns 0, or 130 after
        Ctrl-C or a crash of the viewer (the run is saved either way: here, or by Trainer.run's end
        when it drives the steps, which also stops at a divergence, as ``train`` does)."""
        opened, interrupted = time.perf_counter(), False
        with StopRequest() as stop:
            try:
                while not stop.requested and not self.finished:
                    self.frame()
                    limit = self.options.max_seconds
                    if limit is not None and time.perf_counter() - opened >= limit:
                        break
            except KeyboardInterrupt:
                interrupted = True
            except TrainingDiverged:  # only when Trainer.run drives the steps: its caller says so
                raise
            except Exception:  # noqa: BLE001 (the viewer failed: keep the run, as Ctrl-C does)
                traceback.print_exc()
                saving = "; saving the run" if self.trainer is not None else ""  # (view trains nothing, saves nothing)
                print(f"taichi-nerf: the viewer failed at step {self.step}{saving}", file=sys.stderr)
                self.crashed = True
            finally:
                interrupted = interrupted or stop.requested or self.crashed
                self.close()
                if not self.finished:  # for good (not Trainer.run's end, whose linger() runs this loop again)
                    with contextlib.suppress(Exception):  # a last word: never in place of the error or exit above
                        self.say_closed()
        return 130 if interrupted else 0

    def say_closed(self) -> None:
        """The panel's last word: the browser keeps showing it once the server has gone, and it
        said "(training)" and "training" there."""
        self.closed = True
        self.message = f"this viewer has closed (at step {self.step}): the page no longer updates"
        self.panel.show(self.stats_text(), self.message, self.schedule.paused if self.trainer else None)

    def say_ended(self, what: str) -> None:
        """Trainer.run's steps are over (train --viewer web) and its end (the final validation, the
        video) takes this thread: the page, which keeps what it last got, said "(training)" with a
        step from before the end, and seemed to hang meanwhile."""
        self.ended = True
        self.message = f"training ended at step {self.step}; {what}"
        self.panel.show(self.stats_text(), self.message, self.schedule.paused)
        self.server.server.flush()

    def close(self) -> None:
        """Save what training did since the last save (the viewer stays open for linger())."""
        self.save_unsaved()
        self.write_status(running=False)
        self.log.flush_line(time.perf_counter())

    def frame(self) -> None:
        now = time.perf_counter()
        self.frame_count += 1
        if self._last_loop is not None and self.client is not None:
            self.budget.frame_done(max(now - self._last_loop, 1e-6), self._last_work_s)
        self._last_loop = now
        mail = self.inbox.take()
        for name, value in mail.actions:
            self.perform(name, value)
        if self.client is not None and self.client not in mail.clients:
            self.client, self.camera = None, None  # that browser closed: training goes on (unless paused)
            if self.trainer is not None and mail.camera is None and not self.schedule.paused:
                self.message = BROWSER_LEFT
        if mail.camera is not None:
            self.follow(mail.camera, now)
        if self.camera is None and self.video_job is not None:  # the browser left mid-video: finish it
            t_render = time.perf_counter()
            actions.advance_video(self, None)
            self._after_frame(now, time.perf_counter() - t_render, 0.0, 0, True, bool(mail.actions))
            return
        if self.camera is None:  # nobody watching: train at full speed
            # a picture the last browser did not get has nobody to go to (the next one's view starts afresh);
            # left pending, it kept _after_frame from ever sleeping: a core at 100% while paused
            self._pending = False
            steps = int(self.schedule.may_train(False))
            if steps:
                self.train_step()
            self._after_frame(now, 0.0, time.perf_counter() - now, steps, rendered=False, acted=bool(mail.actions))
            return
        moving = mail.moved is not None and now - mail.moved < MOVE_HOLD_S
        if self.settling is not None and (self.view.progressive.complete or now - self.settling > timeshare.SETTLE_S):
            self.settling = None
        if self.video_job is not None:
            self.budget.forfeit()
            train_s, steps = 0.0, 0
        else:
            train_s, steps = timeshare.train_frame(self.schedule, self.budget, self.view, self.train_step,
                                                   moving or self.settling is not None, self._last_render_s)
        t_render = time.perf_counter()
        budget = timeshare.render_budget(self.view, self.budget, train_s)
        timeshare.limit_view(self.view, self.budget, self.video_job is None and self.schedule.may_train(False))
        if self.video_job is not None:
            actions.advance_video(self, budget)
            rendered = True
        else:
            rendered = self.view.refine(self.camera, budget, coarse_only=moving)
        render_s = time.perf_counter() - t_render
        self._last_render_s = render_s
        self._last_work_s = train_s + render_s
        self._pending = self._pending or bool(rendered and self.video_job is None)
        self._send(moving)
        self._after_frame(now, render_s if rendered else 0.0, train_s, steps, rendered, bool(mail.actions))

    def follow(self, message, now: float) -> None:
        """A browser moved its camera (or arrived): the view follows it from the coarsest level."""
        if self.message == BROWSER_LEFT:  # a browser is back: that was no longer true
            self.message = "training"
        self.client = message.client
        self.camera = BrowserCamera.from_viser(message.wxyz, message.position, message.fov, message.width,
                                               message.height)
        self.canvas = (message.width, message.height)
        self.view.resize(*render_size(*self.canvas, self.resolution_cap))
        self.view.restart(self.budget.work_s())
        self.moved_at = self.settling = now
        self.awaiting = message.received

    def _after_frame(self, start: float, render_s: float, train_s: float, steps: int, rendered: bool,
                     acted: bool) -> None:
        now = time.perf_counter()
        if now - self._stats_at >= STATS_EVERY_S:
            self._stats_at = now
            self.panel.show(self.stats_text(), self.message, self.schedule.paused if self.trainer else None)
            self.panel.show_curves(self.curves)
            self.write_status(running=True)
        p = self.view.progressive
        width, height = p.size(p.shown) if p.shown >= 0 else (0, 0)
        self.log.frame(now, self.step, steps, train_s, render_s, {
            "width": width, "height": height, "full_width": p.full_width, "full_height": p.full_height,
            "complete": p.complete, "paused": self.schedule.paused, "watched": self.camera is not None})
        if not (rendered or steps or acted or self.video_job is not None or self._pending):
            time.sleep(IDLE_S)  # leave the CPU to others while nothing changes

    # --- the picture -----------------------------------------------------------------------
    def picture(self) -> np.ndarray | None:
        """(H, W, 3) uint8: the finest finished level, the finished rows of the finer level
        being rendered over it (upsampled to its size)."""
        layers = self.view.layers(self.mode)
        if not layers:
            return None
        image = layers[0][0]
        if len(layers) > 1:
            finer, rows = layers[1]
            below = F.interpolate(image.permute(2, 0, 1)[None], size=finer.shape[:2], mode="nearest")[0]
            image = torch.cat([finer[:rows], below.permute(1, 2, 0)[rows:]], 0)
        return (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()

    def _send(self, moving: bool) -> None:
        """The picture goes out at once after a move (the first coarse frame) and when a level
        is finished, else at most every SEND_EVERY_S while refining."""
        p = self.view.progressive
        if not moving and p.complete and self._sent_quality == MOVING_QUALITY:
            self._pending = True  # the view finished while the camera still moved: send it again, sharper
        if not self._pending or self.client is None:
            return
        now = time.perf_counter()
        if not (self.awaiting is not None or p.complete or now - self._sent_at >= SEND_EVERY_S):
            return
        picture = self.picture()
        if picture is None:
            return
        quality = MOVING_QUALITY if moving or not p.complete else STILL_QUALITY
        if not self.server.send(self.client, picture, quality):
            return
        self._pending, self._sent_at, self._sent_quality = False, now, quality
        self.counts["frames"] += 1
        self.log.sent()
        if self.awaiting is not None:
            self.latencies.append(now - self.awaiting)
            self.log.latency(now - self.awaiting)
            self.awaiting = None

    # --- what the controls do --------------------------------------------------------------
    def perform(self, name: str, value=None) -> None:
        if name == "toggle_pause":
            actions.toggle_pause(self)
            if self.keep_going is not None:
                self.clock.hold(self.schedule.paused)
        elif name == "save_checkpoint":
            actions.attempt(self, actions.save_checkpoint, "checkpoint")
        elif name == "train_share":
            self.budget.train_share = min(0.9, max(0.1, float(value)))
        elif name == "mode":
            self.mode = value
            self.view.dirty, self._pending = None, True
        elif name == "resolution_cap":
            self.resolution_cap = max(16, int(value))
            if self.camera is not None:
                self.view.resize(*render_size(*self.canvas, self.resolution_cap))
                self.view.restart(self.budget.work_s())
        elif name == "show_cameras":
            self.panel.show_training_cameras(bool(value))
        elif name == "look_through":
            self.look_through(int(value))
        elif name == "add_keyframe":
            if self.camera is None:
                self.message = "no view to add yet: open the viewer in a browser"
                return
            actions.add_keyframe(self)
        elif name == "remove_keyframe":
            actions.remove_keyframe(self)
        elif name == "record_video":
            actions.start_video(self)

    def look_through(self, index: int) -> None:
        """A training camera was clicked: the browser's camera moves there (its reply moves the view)."""
        split = self.train_split
        if split is None or self.client is None or not 0 <= index < split.count:
            return
        pose = split.poses[index].cpu().double().numpy()
        fov_y = vertical_fov(split.intrinsics[index].cpu().double().numpy(), split.height)
        self.server.look_through(self.client, pose, fov_y, self.scene.center)
        self.message = f"training view {index + 1} of {split.count}"

    # --- what the panel and scripts read ---------------------------------------------------
    def stats_text(self) -> str:
        lines = []
        if self.trainer is not None:
            info, total = self.last_info, self.trainer.step_limit()  # train's, where Trainer.run drives or drove it
            loss = info.get("loss")
            state = "stopped" if self.closed else "ended" if self.ended else "paused" if self.schedule.paused \
                else "training"
            of = f" of {total}" if total != float("inf") else f", until the {self.cfg.time_limit_s:g} s time limit"
            lines.append(f"step {self.step}{of} ({state})" + (f", loss {loss:.5f}" if loss else ""))
            psnr, val = self.curves.smoothed_psnr, self.curves.val_psnr
            lines.append("PSNR " + (f"{psnr:.2f} dB" if psnr is not None else "-") + " train, "
                         + (f"{val:.2f} dB" if val is not None else "-") + " validation")
            if info:
                lines.append(f"{info['rays_per_s']:,.0f} rays/s, {info['samples_per_ray']:.1f} samples/ray")
        else:
            lines.append(f"step {self.step} (viewing a checkpoint)")
        p = self.view.progressive
        if p.shown >= 0:
            width, height = p.size(p.shown)
            done = "full" if p.complete and p.shown == p.top else ("refining" if p.working else "capped")
            fps = self.log.recent_fps()
            lines.append(f"view {width}x{height} of {p.full_width}x{p.full_height} ({done}), {fps:.1f} frames/s")
        return "  \n".join(lines)

    def status(self, running: bool = True) -> dict:
        p = self.view.progressive
        return {"running": running, "frame": self.frame_count, "step": self.step, "training": self.trainer is not None,
                "paused": self.schedule.paused, "mode": self.mode, "watched": self.camera is not None,
                "frames_sent": self.counts["frames"], "latencies_s": [round(x, 4) for x in self.latencies[-50:]],
                "render": {"full": [p.full_width, p.full_height], "shown_level": p.shown, "complete": p.complete},
                "keyframes": len(self.keyframes), "counts": dict(self.counts), "saved": dict(self.last_saved),
                "message": self.message, "crashed": self.crashed}
