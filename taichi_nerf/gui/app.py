"""The interactive training window: trains the field and shows it from the user's camera,
frame by frame, in a Taichi GGUI window (or headless, for scripts and tests).

One frame = poll input -> move camera / run actions -> training steps of the trainer's
schedule -> refine the view -> compose what changed of the window image -> draw the panel ->
present. Training and rendering share each frame's time (``schedule.FrameBudget``), so the
window keeps ~10 fps at any model size. The parts live beside this module: ``view``
(progressive rendering), ``panel`` (layout, statistics, curves), ``actions`` (what buttons
and keys do), ``keyframes`` (the camera path), ``viewing.perflog`` (gui.jsonl), and the plain-Python
logic (``camera``, ``controls``, ``schedule``); this module wires them together.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import write_png
from ..interrupts import StopRequest
from ..rendering.backgrounds import over_background, scene_background
from ..runs import checkpoint
from ..runs.run_folder import GUI_LOG
from ..training.trainer import Trainer
from ..viewing import VIDEO_FRAMES, timeshare
from ..viewing.actions import advance_video
from ..viewing.curves import TrainingCurves
from ..viewing.keyframes import Keyframes
from ..viewing.perflog import WindowLog
from ..viewing.schedule import FrameBudget, RateMeter, TrainingSchedule
from ..viewing.session import TrainingSession
from ..viewing.view import ProgressiveView
from . import actions
from .camera import OrbitCamera
from .controls import FLY_KEYS, Controls, FrameInput
from .display import Display, canvas_to_rows
from .launch import GuiUnavailable, check_environment, window_failure
from .panel import MIN_VIEW_WIDTH, Layout, draw_panel

MOUSE_BUTTONS = ("LMB", "RMB", "MMB")
HELD_KEYS = tuple(FLY_KEYS) + ("Shift", "Control")
IDLE_FPS = 15  # nothing to do (paused, view refined, no input): redraw no faster than this
TURN_DEG = 30.0  # --turn-every's step around the scene
RESIZE_SETTLE_S = 0.3  # a resized window's size must hold this long before the layout follows
MIN_WINDOW_SIDE = 64  # smaller (a minimised window reports 0 x 0): keep the layout as it is
IMGUI_INI = Path("imgui.ini")  # Dear ImGui saves its panel positions here, in the working folder


@dataclass
class GuiOptions:
    window: tuple = (1120, 800)  # whole window; the panel takes ``panel_width`` on the right
    headless: bool = False  # offscreen GGUI (show_window=False): frames are read back, never shown
    render_scale: float | None = None  # render size / view size; None: 1 (the canvas's full resolution)
    render_budget_s: float | None = None  # fixed refinement time per frame; None: the frame budget's (a GPU: unlimited)
    frame_budget_s: float = 0.08  # target frame period, shared by training and rendering (10 fps with margin)
    preview_divisors: tuple | None = None  # fixed refinement levels, e.g. (4, 2, 1); None: adapt on a CPU
    steps_per_frame: int | None = None  # fixed training steps per frame; None: by the frame budget
    panel_width: int = 330
    video_frames: int = VIDEO_FRAMES
    video_width: int | None = None  # None: the training image width (at most 200)
    status_path: str | None = None  # write the GUI state as JSON here every frame (scripts, tests)
    max_frames: int | None = None  # leave the loop after this many frames
    max_seconds: float | None = None  # ...or after this many seconds
    exit_screenshot: str | None = None  # save the last frame here when leaving
    turn_every_s: float | None = None  # orbit the camera by TURN_DEG this often (benchmarks of refinement)


class GuiApp(TrainingSession):
    """The window and the frame loop. Build it with :meth:`for_training` or
    :meth:`for_checkpoint`; drive it with :meth:`run` (interactive) or :meth:`frame`
    (headless scripts and tests). With a trainer it is one of the trainer's callbacks
    (``on_checkpoint``, viewing/session.py), beside ``curves``."""

    prefix = "taichi-nerf gui"

    def __init__(self, renderer, cfg, options: GuiOptions, trainer: Trainer | None = None, train_split=None,
                 out_dir: Path | None = None, step: int = 0, val_psnr: float | None = None):
        from .. import backend

        self.options, self.cfg, self.trainer, self.renderer = options, cfg, trainer, renderer
        self.backend = backend.current()
        self.scene = renderer.scene
        self.train_split = train_split
        self.out_dir = Path(out_dir or cfg.out)
        self.background = scene_background(self.scene, cfg)
        self.camera = OrbitCamera.from_scene(self.scene)
        on_gpu = self.backend.is_cuda
        self.schedule = TrainingSchedule(steps_per_frame=options.steps_per_frame, can_train=trainer is not None,
                                         yield_while_moving=not on_gpu,
                                         stop_at=cfg.step_limit(timed=False) if trainer is not None else None)
        self.message = "training" if trainer is not None else "viewing a checkpoint (no training)"
        if trainer is not None and self.schedule.reached(trainer.step_count):  # a finished run opens paused
            self.message = f"the run has its {cfg.step_limit(timed=False)} planned steps: space trains on"
        self.mode = "rgb"
        self.controls = Controls()
        self.width, self.height = int(options.window[0]), int(options.window[1])
        self.layout = Layout(self.width, self.height, options.panel_width, self.scene.aspect,
                             False if options.headless else None)
        self.layout_generation = 0  # window resizes so far (the panel is placed afresh after each)
        # The view refines to the canvas's full resolution (a CPU: over frames, by the budget).
        self.render_scale = options.render_scale or 1.0
        self.view = ProgressiveView(renderer, self.background, self.render_size(), cfg.eval_samples,
                                    renderer.max_samples_per_ray, options.preview_divisors,
                                    whole=on_gpu and options.render_budget_s is None)
        self.budget = FrameBudget(frame_s=options.frame_budget_s)
        self.fps, self.frame_ms, self.render_ms = RateMeter(), RateMeter(), RateMeter()
        self.keyframes = Keyframes(self.scene)
        self.perf: WindowLog | None = None  # gui.jsonl, from open()
        self.curves = TrainingCurves(val_psnr)
        self.step_at_open = trainer.step_count if trainer is not None else step
        self.saved_step = self.step_at_open
        self.saved_at = time.perf_counter()
        self.counts = {"checkpoints": 0, "screenshots": 0, "videos": 0}
        self.last_saved: dict[str, str] = {}
        self.video_job = None  # a taichi_nerf.outputs.video.VideoRecorder while recording
        self.queued: list[str] = []  # actions from the panel's buttons, done next frame
        self.quit_requested = False
        self.idle = False  # the last frame had nothing to do
        self.pending_window_shot: Path | None = None
        self.frame_index = 0
        self._seen_camera = self.camera.version  # the opening view is no "move": training starts at once
        self.settling: float | None = None  # when the last camera move happened, until the view has refined
        self._turned_at: float | None = None
        self.clock = time.perf_counter  # what --turn-every counts (a test's own clock makes its turns exact)
        self._last_frame_time: float | None = None  # for input dt
        self._last_frame_start: float | None = None  # for fps: the whole loop period, presenting included
        self._last_work_s = self._last_render_s = 0.0  # training + rendering in the last frame (the rest is overhead)
        self._slept = False  # the last frame idled: its period says nothing about the overhead
        self._composed: tuple | None = None  # what the window image shows (redraw all when it changes)
        self._plotted = 0  # curve points drawn
        self._gt_cache: dict[int, torch.Tensor] = {}
        self.window = self.canvas = self.display = None
        self.relayout()
        if trainer is not None:
            self.curves.seed(self.out_dir / "metrics.jsonl", trainer.step_count)
            trainer.callbacks += [self.curves, self]

    @property
    def step(self) -> int:
        return self.trainer.step_count if self.trainer is not None else self.step_at_open

    # --- construction --------------------------------------------------------------------
    @classmethod
    def for_training(cls, cfg, options: GuiOptions, resume: bool = False, dataset=None) -> "GuiApp":
        trainer = Trainer(cfg, dataset=dataset, resume=resume)
        trainer.begin()
        return cls(trainer.renderer, trainer.cfg, options, trainer=trainer, train_split=trainer.train,
                   out_dir=trainer.out_dir, val_psnr=trainer.last_val_psnr)

    @classmethod
    def for_checkpoint(cls, path, options: GuiOptions, arch: str = "auto") -> "GuiApp":
        from ..runs.datasets import training_views

        renderer, cfg, state = checkpoint.load(path, arch)
        # the training views are optional here: they only enable snapping and compare
        train_split = training_views(cfg, checkpoint.find_checkpoint(path), "gui", "snapping and compare are off")
        return cls(renderer, cfg, options, train_split=train_split, out_dir=checkpoint.find_checkpoint(path).parent,
                   step=int(state.get("step", 0)), val_psnr=state.get("val_psnr"))

    # --- window --------------------------------------------------------------------------
    def open(self) -> "GuiApp":
        import taichi as ti

        check_environment(self.options.headless)
        self._imgui_ini_was_here = IMGUI_INI.exists()
        self.display = Display(self.width, self.height)
        self._asked_size: tuple[tuple[int, int], float] | None = None  # a resize seen, and since when
        # fps_limit: an idle window (paused, view refined) must not spin a core at hundreds of fps
        try:
            self.window = ti.ui.Window("taichi-nerf", (self.width, self.height), vsync=False, fps_limit=60,
                                       show_window=not self.options.headless, pos=(0, 0))
        except RuntimeError as exc:  # a Vulkan driver that is installed but does not start, a refused display
            raise GuiUnavailable(window_failure(exc)) from None
        self.canvas = self.window.get_canvas()
        if not self.options.headless and not self.layout.panel_fits():
            print(f"taichi-nerf gui: a {self.width} px wide window has no room for the panel beside the view "
                  f"({self.layout.panel_width + MIN_VIEW_WIDTH} px and wider have): H shows it over the view")
        self.perf = WindowLog(self.out_dir / GUI_LOG)
        self.opened_at = time.perf_counter()
        return self

    def _poll(self) -> FrameInput:
        import taichi as ti

        now = time.perf_counter()
        dt = 0.0 if self._last_frame_time is None else now - self._last_frame_time
        self._last_frame_time = now
        pressed = tuple(e.key for e in self.window.get_events(ti.ui.PRESS))
        self.window.get_events(ti.ui.RELEASE)  # drain: releases are read as "no longer held"
        return FrameInput(cursor=tuple(self.window.get_cursor_pos()),
                          buttons=frozenset(b for b in MOUSE_BUTTONS if self.window.is_pressed(b)),
                          pressed=pressed, held=frozenset(k for k in HELD_KEYS if self.window.is_pressed(k)), dt=dt)

    def run(self) -> int:
        """The interactive loop. Returns 0, or 130 after Ctrl-C / SIGTERM (work saved either way).
        A signal only raises a flag that the loop reads between frames: stopping in the middle
        of a GGUI call can leave its frame open, and closing the window then may never return.
        A second Ctrl-C stops at once."""
        if self.window is None:
            self.open()
        interrupted = False
        with StopRequest() as stop:
            try:
                while not (self.quit_requested or stop.requested) and (self.options.headless or self.window.running):
                    start = time.perf_counter()
                    self.frame(FrameInput() if self.options.headless else self._poll())
                    if not self.options.headless:
                        self.window.show()
                    self._slept = self.idle
                    if self.idle:  # leave the CPU to others while nothing changes
                        time.sleep(max(0.0, 1.0 / IDLE_FPS - (time.perf_counter() - start)))
                    if self.options.max_frames is not None and self.frame_index >= self.options.max_frames:
                        break
                    limit = self.options.max_seconds
                    if limit is not None and time.perf_counter() - self.opened_at >= limit:
                        break
            except KeyboardInterrupt:
                interrupted = True
            finally:
                interrupted = interrupted or stop.requested
                self.close()
        return 130 if interrupted else 0

    def close(self) -> None:
        """Save what training did since the last save, then let the window go. The exit screenshot
        comes after the save: a file it cannot write costs the picture, not the training."""
        try:
            self.save_unsaved()
            self.write_status(running=False)
            if self.perf is not None:
                self.perf.close()
            if self.options.exit_screenshot and self.display is not None:
                write_png(Path(self.options.exit_screenshot), self.display.to_numpy())
                print(f"taichi-nerf gui: screenshot {Path(self.options.exit_screenshot).resolve()}")
        finally:
            if self.window is not None:
                self.window.destroy()
                self.window = None
                if not self._imgui_ini_was_here:  # GGUI's panel layout file, written to the working folder
                    IMGUI_INI.unlink(missing_ok=True)

    # --- one frame -----------------------------------------------------------------------
    def frame(self, inp: FrameInput) -> None:
        t0 = time.perf_counter()
        if self._last_frame_start is not None:
            period = max(t0 - self._last_frame_start, 1e-6)
            self.fps.add(1.0 / period)
            if not self._slept:
                self.budget.frame_done(period, self._last_work_s)
        self._last_frame_start = t0
        self.follow_window_size(t0)
        done = self.queued + self.controls.update(inp, self.camera)
        self.queued = []
        for action in done:
            self.perform(action)
        if self.options.turn_every_s is not None:
            now = self.clock()
            if self._turned_at is not None and now - self._turned_at >= self.options.turn_every_s:
                self.camera.orbit(math.radians(TURN_DEG), 0.0)
                self._turned_at = now
            self._turned_at = now if self._turned_at is None else self._turned_at
        if self.camera.version != self._seen_camera or self.frame_index == 0:  # (the first: times from here)
            self.settling = t0 if self.camera.version != self._seen_camera else None
            self._seen_camera = self.camera.version
            self.view.restart(self.budget.work_s())
        if self.settling is not None:
            if self.view.progressive.complete or t0 - self.settling > timeshare.SETTLE_S:
                self.settling = None
        # The camera counts as moving until the view has refined after a move (or for
        # SETTLE_S): with yield_while_moving the CPU goes to the preview, then to training.
        moving = self.controls.moved or self.controls.dragging or self.settling is not None
        train_s, steps = self._train(moving)
        t_render = time.perf_counter()
        budget = self._render_budget(train_s)
        self._limit_view()
        if self.video_job is not None:
            advance_video(self, budget)
            rendered = True
        else:
            rendered = self.view.refine(self.camera, budget, coarse_only=self.controls.moved or self.controls.dragging)
        render_s = time.perf_counter() - t_render
        if rendered:
            self.render_ms.add(1000.0 * render_s)
        self._last_work_s, self._last_render_s = train_s + render_s, render_s
        self.idle = not (rendered or steps or done or inp.pressed or inp.buttons or inp.held)
        self._compose()
        self.canvas.set_image(self.display.image)
        if self.layout.show_panel and not self.options.headless:
            draw_panel(self)
        if self.pending_window_shot is not None:
            self.window.save_image(str(self.pending_window_shot))
            self.pending_window_shot = None
        self.frame_index += 1
        now = time.perf_counter()
        self.frame_ms.add(1000.0 * (now - t0))
        self.write_status(running=True)
        if self.perf is not None:
            p = self.view.progressive
            width, height = p.size(p.shown) if p.shown >= 0 else (0, 0)
            self.perf.frame(now, self.step, steps, train_s, render_s if rendered else 0.0, {
                "width": width, "height": height, "full_width": p.full_width, "full_height": p.full_height,
                "complete": p.complete, "moving": bool(moving), "paused": self.schedule.paused,
                "refined_after_s": dict(self.view.refined_after_s)})

    def _train(self, moving: bool) -> tuple[float, int]:
        """This frame's training (viewing/timeshare.py); none while a video records."""
        if self.video_job is not None:
            self.budget.forfeit()
            return 0.0, 0
        return timeshare.train_frame(self.schedule, self.budget, self.view, self.train_step, moving,
                                     self._last_render_s)

    def _limit_view(self) -> None:
        training = self.video_job is None and self.schedule.may_train(False)
        timeshare.limit_view(self.view, self.budget, training, self.options.render_budget_s)

    def _render_budget(self, train_s: float) -> float | None:
        return timeshare.render_budget(self.view, self.budget, train_s, self.options.render_budget_s)

    def perform(self, action: str) -> None:
        actions.perform(self, action)

    def read_window(self) -> np.ndarray:
        """(H, W, 3) uint8 of what the window shows (headless: GGUI's offscreen image)."""
        self.canvas.set_image(self.display.image)  # each read ends a GGUI frame: draw again first
        return canvas_to_rows(self.window.get_image_buffer_as_numpy())

    # --- composing the window image ------------------------------------------------------
    def render_size(self) -> tuple[int, int]:
        """The view's full resolution: its pane's (compare mode's is half the window's, rendered at the whole)."""
        pane = self.layout.image_rects(self.mode)[0]
        w = max(8, round(pane[2] * self.render_scale))
        return w, max(8, round(w / self.scene.aspect))

    def follow_window_size(self, now: float) -> None:
        """A window resized by the user: once its size has held for RESIZE_SETTLE_S (a drag passes
        through many), the layout, the canvas image and the view take it; GGUI would otherwise
        stretch the old picture over the new window and leave the panel where it was."""
        if self.window is None or self.options.headless:
            return
        size = tuple(int(v) for v in self.window.get_window_shape())
        if size == (self.width, self.height) or min(size) < MIN_WINDOW_SIDE:  # minimised: keep everything
            self._asked_size = None
            return
        if self._asked_size is None or self._asked_size[0] != size:
            self._asked_size = (size, now)
        elif now - self._asked_size[1] >= RESIZE_SETTLE_S:
            self.resize(*size)

    def resize(self, width: int, height: int) -> None:
        self._asked_size = None
        self.layout_generation += 1
        self.width, self.height = int(width), int(height)
        self.layout.resize(self.width, self.height, window=not self.options.headless)
        if self.display is not None:
            self.display.release()
            self.display = Display(self.width, self.height)
        self._composed = None
        self.relayout()

    def relayout(self) -> None:
        self.controls.view, self.controls.panel = self.layout.input_rects()
        self.view.resize(*self.render_size())

    def ground_truth(self) -> tuple[int, torch.Tensor]:
        """The training image the compare mode shows: the snapped view, else the nearest."""
        index = self.camera.snapped_index
        if index is None:
            index = self.camera.nearest(self.train_split.poses.cpu())
        if index not in self._gt_cache:
            self._gt_cache = {index: over_background(self.train_split.rgba[index].cpu(), self.background)}
        return index, self._gt_cache[index]

    def _compose(self) -> None:
        """Redraw what changed: everything after a move, a mode or layout change; otherwise
        only the rows rendered since the last frame and the curve inset (at full canvas
        resolution a whole redraw would cost a good part of the frame)."""
        rects = self.layout.image_rects(self.mode)
        truth = self.ground_truth()[0] if self.mode == "compare" else None
        key = (self.mode, tuple(rects), self.layout.show_panel, truth, self.video_job is not None)
        dirty = self.view.take_dirty()
        points = len(self.curves.steps)
        if self.video_job is not None or dirty is None or key != self._composed:
            self._composed = key
            self.display.clear()
            self._draw_images(rects)
        else:
            for band in dirty:
                self._draw_images(rects, clip=self._band_clip(band, rects[0]))
            if points == self._plotted and not dirty:
                return
            self.display.fill(self.layout.plot_rect())  # under the translucent inset: the picture again
            self._draw_images(rects, clip=self.layout.plot_rect())
        if points >= 2:
            self.display.plot(self.layout.plot_rect(), self.curves.series())
        self._plotted = points

    def _draw_images(self, rects, clip=None) -> None:
        if self.video_job is not None:  # the video frame being rendered, finished rows over the last frame
            self.display.blit(self.video_job.rgb, rects[0], clip=clip)
        else:
            for image, rows in self.view.layers(self.mode):
                self.display.blit(image, rects[0], rows_valid=rows, clip=clip)
        if self.mode == "compare" and len(rects) > 1:
            self.display.blit(self.ground_truth()[1], rects[1], clip=clip)

    def _band_clip(self, band, rect) -> tuple[int, int, int, int]:
        """The screen rows (x0, y0, w, h; y up) a band of a level's rows can change, with a
        margin for the bilinear filter's neighbours."""
        x0, y0, w, h = rect
        src_h = self.view.progressive.size(band.level)[1]
        top = max(0, math.floor((band.row0 - 1) * h / src_h) - 2)  # from the image's top
        bottom = min(h, math.ceil((band.row1 + 1) * h / src_h) + 2)
        return x0, y0 + h - bottom, w, bottom - top

    # --- status file ---------------------------------------------------------------------
    def status(self, running: bool = True) -> dict:
        p = self.view.progressive
        return {
            "running": running, "frame": self.frame_index, "step": self.step,
            "training": self.trainer is not None, "paused": self.schedule.paused, "mode": self.mode,
            "camera": self.camera.describe(), "steps_per_frame": self.schedule.steps_per_frame,
            "keyframes": len(self.keyframes), "work_ms": 1000.0 * self.budget.work_s(),
            "render": {"full": [p.full_width, p.full_height], "scale": self.render_scale, "shown_level": p.shown,
                       "level": p.level, "top_level": p.top, "target_level": p.target, "complete": p.complete,
                       "passes": p.passes},
            "fps": self.fps.value, "render_ms": self.render_ms.value, "frame_ms": self.frame_ms.value,
            "psnr": self.curves.smoothed_psnr, "val_psnr": self.curves.val_psnr, "message": self.message,
            "counts": dict(self.counts), "saved": dict(self.last_saved), "recording": self.video_job is not None,
            "panel": self.layout.show_panel, "dragging": self.controls.dragging,
            "layout": self.layout.describe(self.mode),
        }
