"""The interactive training window: trains the field and shows it from the user's camera,
frame by frame, in a Taichi GGUI window (or headless, for scripts and tests).

One frame = poll input -> move camera / run actions -> a few training steps -> refine the
view within a time budget -> compose the window image -> draw the panel -> present.
Everything that decides *what* happens lives in plain-Python objects (camera, controls,
schedule); this module wires them to the trainer, the renderer and the window.
"""
import copy
import ctypes.util
import dataclasses
import json
import math
import os
import signal
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint
from ..backgrounds import background_colour, over_background
from ..metrics import colorize
from ..scene import orbit_cameras
from ..training import Trainer, TrainingDiverged
from .camera import OrbitCamera
from .controls import FLY_KEYS, HELP_LINES, Controls, FrameInput, Rect
from .display import Display, canvas_to_rows
from .schedule import Band, ProgressiveResolution, RateMeter, TrainingSchedule

MODES = ("rgb", "depth", "opacity", "compare")
MODE_LABELS = {"rgb": "RGB", "depth": "Depth", "opacity": "Opacity", "compare": "Compare with truth"}
MOUSE_BUTTONS = ("LMB", "RMB", "MMB")
HELD_KEYS = tuple(FLY_KEYS) + ("Shift", "Control")
CURVE_COLOURS = {"psnr": (0.35, 0.9, 0.45), "loss": (1.0, 0.6, 0.2)}
GPU_FULL_SCALE = 1.0
CPU_RENDER_BUDGET_S = 0.15  # per frame, for refining the view on a CPU
PSNR_SMOOTHING = 0.9
MAX_SETTLE_S = 15.0  # after a camera move, training waits this long at most for the view to refine
MOVING_FRAME_S = 0.1  # the coarse preview that follows the mouse should render in about this long
IDLE_FPS = 15  # nothing to do (paused, view refined, no input): redraw no faster than this


class GuiUnavailable(RuntimeError):
    """The window cannot open here (no display, no Vulkan); the message says what to do."""


@dataclass
class GuiOptions:
    window: tuple = (1120, 800)  # whole window; the panel takes ``panel_width`` on the right
    headless: bool = False  # offscreen GGUI (show_window=False): frames are read back, never shown
    render_scale: float | None = None  # render size / view size; None: 1 on a GPU, training-image size on a CPU
    render_budget_s: float | None = None  # refinement time per frame; None: unlimited on a GPU, 0.15 s on a CPU
    preview_divisors: tuple | None = None  # fixed refinement levels, e.g. (4, 2, 1); None: adapt on a CPU
    steps_per_frame: int = 1
    panel_width: int = 330
    video_frames: int = 36
    video_width: int | None = None  # None: the training image width (at most 200)
    status_path: str | None = None  # write the GUI state as JSON here every frame (scripts, tests)
    max_frames: int | None = None  # leave the loop after this many frames
    exit_screenshot: str | None = None  # save the last frame here when leaving


class SteerableTrainer(Trainer):
    """A Trainer whose learning-rate schedule the GUI can scale while it runs."""

    lr_scale = 1.0

    def lr_at(self, step: int) -> float:
        return super().lr_at(step) * self.lr_scale


class OrbitVideoJob:
    """Renders the orbit video a band of rows at a time, so the window stays responsive;
    writes the same files as :func:`taichi_nerf.video.write_orbit` (mp4/gif, depth video)."""

    def __init__(self, renderer, out: Path, frames: int, width: int, background: torch.Tensor, fps: int = 24):
        self.renderer, self.out, self.fps, self.background = renderer, Path(out), fps, background
        self.poses, self.intrinsics, self.width, self.height = orbit_cameras(renderer.scene, frames, width)
        self.frames = frames
        self.rgb = torch.zeros(self.height, self.width, 3)
        self.depth = torch.zeros(self.height, self.width)
        self.opacity = torch.zeros(self.height, self.width)
        self.frame, self.row = 0, 0
        self.rgb_frames: list[np.ndarray] = []
        self.depth_frames: list[np.ndarray] = []

    @property
    def done(self) -> bool:
        return self.frame >= self.frames

    def advance(self, rows: int | None) -> None:
        rows = self.height - self.row if rows is None else max(1, min(rows, self.height - self.row))
        k = self.frame
        out = _render_rows(self.renderer, self.poses[k:k + 1], self.intrinsics[k:k + 1], self.width, self.row,
                           self.row + rows, self.background, None)
        self.rgb[self.row:self.row + rows] = out["rgb"].cpu()
        self.depth[self.row:self.row + rows] = out["depth"].cpu()
        self.opacity[self.row:self.row + rows] = out["opacity"].cpu()
        self.row += rows
        if self.row >= self.height:
            self.rgb_frames.append((self.rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
            scene = self.renderer.scene
            self.depth_frames.append(colorize(self.depth.numpy(), self.opacity.numpy() > 0.05, lo=scene.near, hi=scene.far))
            self.frame, self.row = self.frame + 1, 0

    def write(self) -> list[Path]:
        from ..video import write_video

        rgb, depth = np.stack(self.rgb_frames), np.stack(self.depth_frames)
        written = [write_video(self.out, rgb, self.fps),
                   write_video(self.out.with_name(self.out.stem + "_depth" + self.out.suffix), depth, self.fps)]
        if self.out.suffix.lower() != ".gif":
            written.append(write_video(self.out.with_suffix(".gif"), rgb, self.fps))
        return written


def _render_rows(renderer, pose: torch.Tensor, intrinsics: torch.Tensor, width: int, row0: int, row1: int,
                 background: torch.Tensor, samples_per_ray: int | None) -> dict:
    """Rows [row0, row1) of a render: the same rays as the whole image, obtained by moving
    the principal point up by ``row0`` (so only the public ``render_image`` is needed)."""
    intr = intrinsics.clone().float()
    intr[:, 3] -= row0
    return renderer.render_image(pose.float(), intr, 0, width, row1 - row0, background, samples_per_ray=samples_per_ray)


def check_environment(headless: bool) -> None:
    """Fail early with a clear message where GGUI would crash the process instead."""
    import taichi as ti

    try:
        ti.ui.check_ggui_availability()
    except Exception as exc:
        raise GuiUnavailable(f"this Taichi build has no GGUI ({exc})") from None
    if sys.platform.startswith("linux"):
        if not headless and not os.environ.get("DISPLAY"):
            raise GuiUnavailable("no X display (DISPLAY is not set): run it under a virtual display, "
                                 "`xvfb-run -a -s '-screen 0 1280x800x24' taichi-nerf gui ...`, or use --headless")
        if ctypes.util.find_library("vulkan") is None:
            raise GuiUnavailable("Taichi's window needs Vulkan: install the loader and a driver "
                                 "(Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers)")
        icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]
        has_driver = any(Path(d).is_dir() and any(Path(d).glob("*.json")) for d in icd_dirs)
        if not os.environ.get("VK_ICD_FILENAMES") and not has_driver:
            raise GuiUnavailable("no Vulkan driver found: install one (Debian/Ubuntu without a GPU: "
                                 "apt-get install mesa-vulkan-drivers, which provides lavapipe)")


class GuiApp:
    """The window, the frame loop and the actions. Build it with :meth:`for_training` or
    :meth:`for_checkpoint`; drive it with :meth:`run` (interactive) or :meth:`frame`
    (headless scripts and tests)."""

    def __init__(self, renderer, cfg, options: GuiOptions, trainer: Trainer | None = None, train_split=None,
                 out_dir: Path | None = None, step: int = 0, val_psnr: float | None = None):
        from .. import backend

        self.options, self.cfg, self.trainer, self.renderer = options, cfg, trainer, renderer
        self.backend = backend.current()
        self.scene = renderer.scene
        self.train_split = train_split
        self.out_dir = Path(out_dir or cfg.out)
        self.background = background_colour(cfg.background)
        self.camera = OrbitCamera.from_scene(self.scene)
        on_gpu = self.backend.is_cuda
        self.schedule = TrainingSchedule(steps_per_frame=options.steps_per_frame, can_train=trainer is not None,
                                         yield_while_moving=not on_gpu, stop_at=cfg.steps if trainer is not None else None)
        self.message = "training" if trainer is not None else "viewing a checkpoint (no training)"
        if trainer is not None and self.schedule.reached(trainer.step_count):  # a finished run opens paused
            self.message = f"the run has its {cfg.steps} planned steps: space trains on"
        self.render_budget_s = options.render_budget_s
        if self.render_budget_s is None and not on_gpu:
            self.render_budget_s = CPU_RENDER_BUDGET_S
        self.render_samples = cfg.eval_samples
        self.max_render_samples = max(self.render_samples, self.backend.max_samples_per_ray)
        self.mode = "rgb"
        self.show_panel = not options.headless
        self.controls = Controls()
        self.width, self.height = int(options.window[0]), int(options.window[1])
        train_width = train_split.width if train_split is not None else (self.scene.ndc_width or 100)
        single = self._image_rects("rgb")[0]
        # On a CPU the full-resolution view defaults to the training image size: sharp enough
        # to judge the field, cheap enough to refine in a few seconds.
        self.render_scale = options.render_scale or (GPU_FULL_SCALE if on_gpu else min(1.0, train_width / max(single[2], 1)))
        full_w, full_h = self._render_size()
        divisors = options.preview_divisors or ((1,) if self.render_budget_s is None else (4, 2, 1))
        self.adaptive_preview = options.preview_divisors is None and self.render_budget_s is not None
        self.progressive = ProgressiveResolution(full_w, full_h, tuple(divisors))
        self.levels: list[dict | None] = [None] * len(self.progressive.divisors)
        self.seconds_per_pixel = RateMeter(0.5)
        self.fps, self.frame_ms, self.render_ms = RateMeter(), RateMeter(), RateMeter()
        self.history = {"step": [], "loss": [], "psnr": []}
        self.smoothed_psnr: float | None = None
        self.val_psnr = val_psnr
        self.step_at_open = trainer.step_count if trainer is not None else step
        self.saved_step = self.step_at_open
        self.counts = {"checkpoints": 0, "screenshots": 0, "videos": 0}
        self.last_saved: dict[str, str] = {}
        self.video_job: OrbitVideoJob | None = None
        self.queued: list[str] = []
        self.quit_requested = False
        self.idle = False  # the last frame had nothing to do
        self._pending_window_shot: Path | None = None
        self.frame_index = 0
        self._seen_camera = self.camera.version  # the opening view is no "move": training starts at once
        self._settling: float | None = None  # when the last camera move happened, until the view has refined
        self._last_frame_time: float | None = None  # for input dt
        self._last_frame_start: float | None = None  # for fps: the whole loop period, presenting included
        self._gt_cache: dict[int, torch.Tensor] = {}
        self.window = self.canvas = self.display = None
        self._relayout()
        if trainer is not None:
            self._seed_history()

    # --- construction --------------------------------------------------------------------
    @classmethod
    def for_training(cls, cfg, options: GuiOptions, resume: bool = False, dataset=None) -> "GuiApp":
        trainer = SteerableTrainer(cfg, dataset=dataset, resume=resume)
        trainer.out_dir.mkdir(parents=True, exist_ok=True)
        (trainer.out_dir / "config.json").write_text(json.dumps(trainer.cfg.to_dict(), indent=2))
        return cls(trainer.renderer, trainer.cfg, options, trainer=trainer, train_split=trainer.train,
                   out_dir=trainer.out_dir, val_psnr=trainer.last_val_psnr)

    @classmethod
    def for_checkpoint(cls, path, options: GuiOptions, arch: str = "auto") -> "GuiApp":
        from ..data.dataset import DataError
        from ..data.loaders import load_dataset

        renderer, cfg, state = checkpoint.load(path, arch)
        try:  # the training views are optional here: they only enable snapping and compare
            dataset = load_dataset(cfg.data, **dict(cfg.dataset_options(), progress=False))
            train_split = dataset.split("train")
        except (DataError, OSError) as exc:
            print(f"taichi-nerf gui: training views unavailable ({exc}); snapping and compare are off", file=sys.stderr)
            train_split = None
        return cls(renderer, cfg, options, train_split=train_split, out_dir=checkpoint.find_checkpoint(path).parent,
                   step=int(state.get("step", 0)), val_psnr=state.get("val_psnr"))

    def _seed_history(self) -> None:
        """A resumed run starts its curves from the metrics it already logged."""
        path = self.out_dir / "metrics.jsonl"
        if self.trainer.step_count == 0 or not path.is_file():
            return
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "train_psnr" in row and "loss" in row and row["step"] <= self.trainer.step_count:
                self._record(row["step"], row["loss"], row["train_psnr"])

    # --- window --------------------------------------------------------------------------
    def open(self) -> "GuiApp":
        import taichi as ti

        check_environment(self.options.headless)
        self.display = Display(self.width, self.height)
        # fps_limit: an idle window (paused, view refined) must not spin a core at hundreds of fps
        self.window = ti.ui.Window("taichi-nerf", (self.width, self.height), vsync=False, fps_limit=60,
                                   show_window=not self.options.headless, pos=(0, 0))
        self.canvas = self.window.get_canvas()
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
        """The interactive loop. Returns 0, or 130 after Ctrl-C / SIGTERM (work saved either way)."""
        if self.window is None:
            self.open()
        previous = None
        if hasattr(signal, "SIGTERM"):
            def on_term(signum, frame):
                raise KeyboardInterrupt
            try:
                previous = signal.signal(signal.SIGTERM, on_term)
            except ValueError:  # not the main thread
                previous = None
        interrupted = False
        try:
            while not self.quit_requested and (self.options.headless or self.window.running):
                start = time.perf_counter()
                self.frame(FrameInput() if self.options.headless else self._poll())
                if not self.options.headless:
                    self.window.show()
                if self.idle:  # leave the CPU to others while nothing changes
                    time.sleep(max(0.0, 1.0 / IDLE_FPS - (time.perf_counter() - start)))
                if self.options.max_frames is not None and self.frame_index >= self.options.max_frames:
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.close()
        return 130 if interrupted else 0

    def close(self) -> None:
        """Save what training did since the last save, then let the window go."""
        if self.options.exit_screenshot and self.display is not None:
            self._write_png(Path(self.options.exit_screenshot), self.display.to_numpy())
        if self.trainer is not None and self.trainer.step_count != self.saved_step:
            try:
                path = self.save_checkpoint()
                print(f"taichi-nerf gui: saved step {self.trainer.step_count} to {path}")
            except TrainingDiverged as exc:
                print(f"taichi-nerf gui: not saved: {exc}", file=sys.stderr)
        self._write_status(running=False)
        if self.window is not None:
            self.window.destroy()
            self.window = None

    # --- one frame -----------------------------------------------------------------------
    def frame(self, inp: FrameInput) -> None:
        t0 = time.perf_counter()
        if self._last_frame_start is not None:
            self.fps.add(1.0 / max(t0 - self._last_frame_start, 1e-6))
        self._last_frame_start = t0
        actions = self.queued + self.controls.update(inp, self.camera)
        self.queued = []
        for action in actions:
            self.perform(action)
        if self.camera.version != self._seen_camera:
            self._seen_camera = self.camera.version
            self._restart_view()
            self._settling = t0
        if self._settling is not None:
            if self.progressive.shown == self.progressive.top or t0 - self._settling > MAX_SETTLE_S:
                self._settling = None
        # The camera counts as moving until the view has refined after a move (or for
        # MAX_SETTLE_S): with yield_while_moving the CPU goes to the preview, then to training.
        moving = self.controls.moved or self.controls.dragging or self._settling is not None
        steps = 0 if self.video_job is not None else self.schedule.steps_for_frame(moving)
        for _ in range(steps):
            if not self._train_step():
                break
        if steps:
            self.progressive.refresh()
        t_render = time.perf_counter()
        if self.video_job is not None:
            self._advance_video()
            rendered = True
        else:
            rendered = self._refine_view(coarse_only=self.controls.moved or self.controls.dragging)
        if rendered:
            self.render_ms.add(1000.0 * (time.perf_counter() - t_render))
        self.idle = not (rendered or steps or actions or inp.pressed or inp.buttons or inp.held)
        self._compose()
        self.canvas.set_image(self.display.image)
        if self.show_panel and not self.options.headless:
            self._panel()
        if self._pending_window_shot is not None:
            self.window.save_image(str(self._pending_window_shot))
            self._pending_window_shot = None
        self.frame_index += 1
        self.frame_ms.add(1000.0 * (time.perf_counter() - t0))
        self._write_status(running=True)

    def read_window(self) -> np.ndarray:
        """(H, W, 3) uint8 of what the window shows (headless: GGUI's offscreen image)."""
        self.canvas.set_image(self.display.image)  # each read ends a GGUI frame: draw again first
        return canvas_to_rows(self.window.get_image_buffer_as_numpy())

    # --- actions -------------------------------------------------------------------------
    def perform(self, action: str) -> None:
        if action == "toggle_pause":
            if self.trainer is None:
                self.message = "viewing a checkpoint: start with --train to train"
            else:
                self.message = "paused" if self.schedule.toggle_pause() else "training"
        elif action == "quit":
            self.quit_requested = True
        elif action in ("next_camera", "prev_camera"):
            self.snap(+1 if action == "next_camera" else -1)
        elif action == "reset_view":
            self.camera.reset()
        elif action == "cycle_mode":
            self.set_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)])
        elif action.startswith("mode_"):
            self.set_mode(action[5:])
        elif action == "save_checkpoint":
            self._try(self.save_checkpoint, "checkpoint")
        elif action == "screenshot":
            self._try(self.save_screenshot, "screenshot")
        elif action == "record_video":
            self.start_video()
        elif action == "toggle_panel":
            self.show_panel = not self.show_panel
            self._relayout()

    def _try(self, fn, what: str) -> None:
        try:
            path = fn()
            if path is not None:
                self.message = f"saved {what}: {path}"
        except (OSError, TrainingDiverged) as exc:
            self.message = f"{what} failed: {exc}"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown render mode {mode!r}")
        if mode == "compare" and self.train_split is None:
            self.message = "compare needs the training views, which are not available"
            return
        self.mode = mode
        self._relayout()

    def snap(self, direction: int) -> None:
        if self.train_split is None:
            self.message = "no training views to snap to"
            return
        count = self.train_split.count
        if self.camera.snapped_index is None:  # the first press lands on the closest view
            index = self.camera.nearest(self.train_split.poses.cpu())
        else:
            index = (self.camera.snapped_index + direction) % count
        self.camera.snap_to(self.train_split.poses[index].cpu(), self.train_split.intrinsics[index].cpu(),
                            self.train_split.width, self.train_split.height, index)
        self.message = f"training view {index + 1} of {count}"

    def save_checkpoint(self) -> Path | None:
        if self.trainer is None:
            self.message = "viewing a checkpoint: nothing new to save"
            return None
        path = self.trainer.save_checkpoint()
        self.saved_step = self.trainer.step_count
        self.counts["checkpoints"] += 1
        self.last_saved["checkpoint"] = str(path)
        return path

    def save_screenshot(self) -> Path:
        step = self.trainer.step_count if self.trainer is not None else self.step_at_open
        path = self.out_dir / "screenshots" / f"gui_step{step:06d}_{self.counts['screenshots']:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.options.headless or self.window is None:
            self._write_png(path, self.display.to_numpy())
        else:
            # GGUI saves the frame being drawn: done at the end of this frame, panel included
            self._pending_window_shot = path
        self.counts["screenshots"] += 1
        self.last_saved["screenshot"] = str(path)
        return path

    def start_video(self) -> None:
        if self.video_job is not None:
            self.message = "already recording a video"
            return
        width = self.options.video_width or min(200, max(32, self.train_split.width if self.train_split is not None
                                                          else (self.scene.ndc_width or 100)))
        step = self.trainer.step_count if self.trainer is not None else self.step_at_open
        out = self.out_dir / "videos" / f"orbit_step{step:06d}.mp4"
        self.video_job = OrbitVideoJob(self.renderer, out, self.options.video_frames, width, self.background)
        self.message = f"recording {self.options.video_frames} frames (training waits)"

    def _advance_video(self) -> None:
        job = self.video_job
        rows = None if self.render_budget_s is None else self._rows_within(self.render_budget_s, job.width)
        job.advance(rows)
        if job.done:
            self.video_job = None
            try:
                paths = job.write()
                self.counts["videos"] += 1
                self.last_saved["video"] = str(paths[0])
                self.message = "saved video: " + ", ".join(p.name for p in paths)
            except Exception as exc:  # a missing codec must not take the session down
                self.message = f"video failed: {type(exc).__name__}: {exc}"
            self.progressive.restart()
        else:
            self.message = f"recording video: frame {job.frame + 1} of {job.frames}"

    # --- training ------------------------------------------------------------------------
    def _train_step(self) -> bool:
        trainer, cfg = self.trainer, self.cfg
        try:
            info = trainer.step()
        except TrainingDiverged as exc:
            self.schedule.paused = True
            self.message = f"training diverged: {exc}"
            return False
        s = trainer.step_count
        psnr = info["train_psnr"]
        if psnr is not None and math.isfinite(info["loss"]):
            self._record(s, info["loss"], psnr)
        if s % cfg.log_every == 0:
            trainer.log({"step": s, "loss": info["loss"], "train_psnr": psnr, "lr": info["lr"],
                         "rays_per_s": round(info["rays_per_s"], 1), "gui": True})
        if cfg.checkpoint_every and s % cfg.checkpoint_every == 0:
            self._try(self.save_checkpoint, "checkpoint")
        if self.schedule.reached(s):
            self._try(self.save_checkpoint, "checkpoint")
            self.message = f"reached the planned {cfg.steps} steps and saved; space trains on"
            return False
        return True

    def _record(self, step: int, loss: float, psnr: float) -> None:
        previous = psnr if self.smoothed_psnr is None else self.smoothed_psnr
        self.smoothed_psnr = PSNR_SMOOTHING * previous + (1 - PSNR_SMOOTHING) * psnr
        self.history["step"].append(step)
        self.history["loss"].append(math.log10(max(loss, 1e-12)))  # curves show log-loss
        self.history["psnr"].append(self.smoothed_psnr)

    # --- view rendering ------------------------------------------------------------------
    def _render_size(self) -> tuple[int, int]:
        single = self._image_rects("rgb")[0]
        w = max(8, round(single[2] * self.render_scale))
        return w, max(8, round(w / self.scene.aspect))

    def _view_renderer(self):
        """The renderer with near/far moved by how much closer or further than the training
        cameras we are, so zooming does not clip the scene (forward-facing scenes excepted:
        their near/far live in NDC)."""
        scene = self.scene
        if scene.ndc or scene.forward_facing:
            return self.renderer
        shift = float(np.linalg.norm(self.camera.eye - np.asarray(scene.center))) - scene.orbit_radius
        if abs(shift) < 1e-6:
            return self.renderer
        view = copy.copy(self.renderer)
        view.scene = dataclasses.replace(scene, near=max(1e-2, scene.near + shift), far=max(2e-2, scene.far + shift))
        return view

    def _restart_view(self) -> None:
        """From the coarsest level again; on a CPU its size follows the measured render speed."""
        if self.adaptive_preview and self.seconds_per_pixel.value:
            if self.progressive.retarget(self.seconds_per_pixel.value, MOVING_FRAME_S):
                self.levels = [None] * len(self.progressive.divisors)
                return
        self.progressive.restart()

    def _rows_within(self, budget_s: float, width: int) -> int:
        per_pixel = self.seconds_per_pixel.value or 1e-4
        return max(1, int(max(budget_s, 0.0) / (per_pixel * width)))

    def _refine_view(self, coarse_only: bool = False) -> bool:
        """At least one band per frame (so refinement always progresses), more while the
        frame's budget lasts; only the coarse level while the camera moves (the next frame
        starts over anyway). False when the view was already complete."""
        start = time.perf_counter()
        renderer = self._view_renderer()
        rendered = False
        while True:
            spent = time.perf_counter() - start
            if rendered and (coarse_only or (self.render_budget_s is not None and spent >= self.render_budget_s)):
                return True
            width = self.progressive.size(self.progressive.level)[0]
            rows = 1 << 30 if self.render_budget_s is None else self._rows_within(self.render_budget_s - spent, width)
            band = self.progressive.next_band(rows)
            if band is None:
                return rendered
            self._render_band(renderer, band)
            self.progressive.finish(band)
            rendered = True

    def _render_band(self, renderer, band: Band) -> None:
        w, h = self.progressive.size(band.level)
        buf = self.levels[band.level]
        if buf is None or buf["rgb"].shape[:2] != (h, w):
            buf = self.levels[band.level] = {"rgb": torch.ones(h, w, 3), "depth": torch.zeros(h, w),
                                             "opacity": torch.zeros(h, w)}
        pose = torch.from_numpy(self.camera.pose())[None]
        intr = torch.from_numpy(self.camera.intrinsics(w, h))[None]
        t0 = time.perf_counter()
        out = _render_rows(renderer, pose, intr, w, band.row0, band.row1, self.background, self.render_samples)
        for key in ("rgb", "depth", "opacity"):
            buf[key][band.row0:band.row1] = out[key].cpu()
        buf["near"], buf["far"] = renderer.scene.near, renderer.scene.far
        self.seconds_per_pixel.add((time.perf_counter() - t0) / max(1, w * (band.row1 - band.row0)))

    def _uses_grid(self) -> bool:
        grid = getattr(self.renderer, "grid", None)
        return grid is not None and getattr(grid, "updates", 0) > 0

    # --- composing the window image ------------------------------------------------------
    def _view_rect(self) -> tuple[int, int, int, int]:
        panel = self.options.panel_width if self.show_panel and self.width > self.options.panel_width + 160 else 0
        return 0, 0, self.width - panel, self.height

    def _image_rects(self, mode: str) -> list[tuple[int, int, int, int]]:
        """Where the render (and in compare mode the ground truth beside it) goes, letterboxed."""
        vx, vy, vw, vh = self._view_rect()
        margin, gap = 8, 8
        panes = 2 if mode == "compare" else 1
        aspect = self.scene.aspect
        w = min((vw - 2 * margin - gap * (panes - 1)) / panes, (vh - 2 * margin) * aspect)
        w, h = max(1, int(w)), max(1, int(w / aspect))
        total = panes * w + gap * (panes - 1)
        x0, y0 = vx + (vw - total) // 2, vy + (vh - h) // 2
        return [(x0 + k * (w + gap), y0, w, h) for k in range(panes)]

    def _relayout(self) -> None:
        vx, vy, vw, vh = self._view_rect()
        self.controls.view = Rect(vx / self.width, vy / self.height, (vx + vw) / self.width, (vy + vh) / self.height)
        size = self._render_size()
        if size != (self.progressive.full_width, self.progressive.full_height):
            self.progressive.resize(*size)

    def _source(self, buf: dict) -> torch.Tensor:
        if self.mode == "depth":
            rgb = colorize(buf["depth"].numpy(), buf["opacity"].numpy() > 0.05, lo=buf.get("near"), hi=buf.get("far"))
            return torch.from_numpy(rgb).float() / 255.0
        if self.mode == "opacity":
            return buf["opacity"][..., None].expand(-1, -1, 3)
        return buf["rgb"]

    def _ground_truth(self) -> tuple[int, torch.Tensor]:
        index = self.camera.snapped_index
        if index is None:
            index = self.camera.nearest(self.train_split.poses.cpu())
        if index not in self._gt_cache:
            self._gt_cache = {index: over_background(self.train_split.rgba[index].cpu(), self.background)}
        return index, self._gt_cache[index]

    def _compose(self) -> None:
        self.display.clear()
        rects = self._image_rects(self.mode)
        job = self.video_job
        if job is not None:  # show the video frame being rendered, finished rows over the last frame
            self.display.blit(job.rgb, rects[0])
        else:
            shown, level = self.progressive.shown, self.progressive.level
            if shown >= 0 and self.levels[shown] is not None:
                self.display.blit(self._source(self.levels[shown]), rects[0])
            partial = self.progressive.working and level != shown and self.progressive.rows_done > 0
            if partial and self.levels[level] is not None:  # the finer level's finished rows, over it
                self.display.blit(self._source(self.levels[level]), rects[0], rows_valid=self.progressive.rows_done)
        if self.mode == "compare" and len(rects) > 1:
            self.display.blit(self._ground_truth()[1], rects[1])
        if len(self.history["step"]) >= 2:
            self.display.plot(self.plot_rect(), [(self.history["psnr"], CURVE_COLOURS["psnr"]),
                                                 (self.history["loss"], CURVE_COLOURS["loss"])])

    def plot_rect(self) -> tuple[int, int, int, int]:
        """The loss/PSNR inset, bottom-left of the view (screen pixels, y up)."""
        vx, vy, vw, vh = self._view_rect()
        return vx + 10, vy + 10, min(260, vw // 3), min(90, vh // 5)

    # --- panel ---------------------------------------------------------------------------
    def _panel(self) -> None:
        gui = self.window.get_gui()
        pw = self.options.panel_width / self.width
        with gui.sub_window("taichi-nerf", 1.0 - pw, 0.0, pw, 1.0):
            # Buttons first: a fixed order the window test finds them in.
            paused = self.schedule.paused or not self.schedule.can_train
            pause_label = "Resume training (space)##pause" if paused else "Pause training (space)##pause"
            buttons = [(pause_label, "toggle_pause"),
                       ("Save checkpoint (C)", "save_checkpoint"), ("Save screenshot (I)", "screenshot"),
                       ("Record orbit video (V)", "record_video")]
            buttons += [(f"{MODE_LABELS[m]}{' <' if self.mode == m else ''}##{m}", f"mode_{m}") for m in MODES]
            buttons += [("Previous training view (P)", "prev_camera"), ("Next training view (N)", "next_camera"),
                        ("Reset view (R)", "reset_view")]
            for label, action in buttons:
                if gui.button(label):
                    self.queued.append(action)
            for line, colour in self._stats_lines():
                gui.text(line, color=colour)
            if self.trainer is not None:
                self.schedule.steps_per_frame = gui.slider_int("steps/frame", self.schedule.steps_per_frame, 1, 32)
                self.trainer.lr_scale = gui.slider_float("lr scale", self.trainer.lr_scale, 0.05, 3.0)
                train_while_moving = gui.checkbox("train while moving", not self.schedule.yield_while_moving)
                self.schedule.yield_while_moving = not train_while_moving
            scale = gui.slider_float("render scale", self.render_scale, 0.05, 1.0)
            samples = self.render_samples
            if not self._uses_grid():  # with an occupancy grid the marcher decides the samples
                samples = gui.slider_int("samples/ray", self.render_samples, 8, self.max_render_samples)
            distance = gui.slider_float("distance", self.camera.radius, self.camera.min_radius, self.camera.max_radius)
            if abs(scale - self.render_scale) > 1e-4:
                self.render_scale = scale
                self._relayout()
            if samples != self.render_samples:
                self.render_samples = samples
                self.progressive.restart()
            if abs(distance - self.camera.radius) > 1e-4 * self.camera.radius:  # sliders round to float32
                self.camera.set_radius(distance)
            for line in textwrap.wrap(self.message, 44, break_on_hyphens=False)[:3]:
                gui.text(line, color=(0.95, 0.85, 0.4))
            for line in HELP_LINES:
                gui.text(line, color=(0.6, 0.6, 0.6))

    def _stats_lines(self) -> list[tuple[str, tuple]]:
        white, green, orange = (0.92, 0.92, 0.92), CURVE_COLOURS["psnr"], CURVE_COLOURS["loss"]
        lines = []
        if self.trainer is not None:
            t = self.trainer
            waiting = self.schedule.yield_while_moving and (self.controls.dragging or self._settling is not None)
            state = "paused" if self.schedule.paused else ("waits for the view" if waiting else "training")
            lines.append((f"step {t.step_count} / {self.cfg.steps} ({state})", white))
            loss = t.last_loss
            lines.append((f"loss {loss:.5f}" if math.isfinite(loss) else "loss -", orange))
            psnr = f"{self.smoothed_psnr:.2f} dB" if self.smoothed_psnr is not None else "-"
            val = f" (val {self.val_psnr:.2f})" if self.val_psnr else ""
            lines.append((f"train PSNR {psnr}{val}", green))
            lines.append((f"rays/s {t.rays_per_s:,.0f}   lr {t.lr_at(t.step_count):.2e}", white))
        else:
            val = f", val PSNR {self.val_psnr:.2f} dB" if self.val_psnr else ""
            lines.append((f"checkpoint at step {self.step_at_open}{val}", white))
        full = f"{self.progressive.full_width}x{self.progressive.full_height}"
        shown = self.progressive.shown
        now = f"{self.progressive.size(shown)[0]}x{self.progressive.size(shown)[1]}" if shown >= 0 else "-"
        trained = getattr(self.trainer, "last_samples_per_ray", None)
        if self._uses_grid():
            spr = "occupancy grid" + (f", train {trained:.1f}" if trained else "")
        else:
            spr = f"{self.render_samples}" + (f", train {trained:.1f}" if trained else "")
        lines.append((f"samples/ray {spr}", white))
        lines.append((f"view {now} of {full}{'' if self.progressive.complete else ' (refining)'}", white))
        lines.append((f"render {self.render_ms.value or 0:.0f} ms   fps {self.fps.value or 0:.1f}", white))
        truth = f", truth: view {self._ground_truth()[0] + 1}" if self.mode == "compare" else ""
        lines.append((f"mode {self.mode}{truth}", white))
        return lines

    # --- files ---------------------------------------------------------------------------
    @staticmethod
    def _write_png(path: Path, rgb: np.ndarray) -> None:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(path)

    def status(self, running: bool = True) -> dict:
        return {
            "running": running, "frame": self.frame_index,
            "step": self.trainer.step_count if self.trainer is not None else self.step_at_open,
            "training": self.trainer is not None, "paused": self.schedule.paused, "mode": self.mode,
            "camera": self.camera.describe(), "steps_per_frame": self.schedule.steps_per_frame,
            "render": {"full": [self.progressive.full_width, self.progressive.full_height], "scale": self.render_scale,
                       "shown_level": self.progressive.shown, "level": self.progressive.level,
                       "top_level": self.progressive.top, "complete": self.progressive.complete},
            "fps": self.fps.value, "render_ms": self.render_ms.value, "frame_ms": self.frame_ms.value,
            "psnr": self.smoothed_psnr, "message": self.message, "counts": dict(self.counts),
            "saved": dict(self.last_saved), "recording": self.video_job is not None, "panel": self.show_panel,
            "dragging": self.controls.dragging, "layout": self.layout(),
        }

    def layout(self) -> dict:
        """Window regions as [x, y, w, h] in window pixels from the top-left (screen
        convention, for scripts that click or crop)."""
        def top_down(rect):
            x, y, w, h = rect
            return [int(x), int(self.height - y - h), int(w), int(h)]

        vx, vy, vw, vh = self._view_rect()
        return {"window": [self.width, self.height], "view": top_down(self._view_rect()),
                "images": [top_down(r) for r in self._image_rects(self.mode)],
                "panel": [vx + vw, 0, self.width - vw, self.height] if self.show_panel and vw < self.width else None,
                "plot": top_down(self.plot_rect())}

    def _write_status(self, running: bool) -> None:
        if not self.options.status_path:
            return
        path = Path(self.options.status_path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.status(running)))
        os.replace(tmp, path)  # readers never see half a file
