"""``taichi-nerf gui`` arguments -> a configured :class:`GuiApp`, run to the end; and the
check that a window can open here at all."""
import ctypes.util
import os
import sys
from pathlib import Path

from ..cli import GUI_DEFAULT_OUT, run_config


class GuiUnavailable(RuntimeError):
    """The window cannot open here (no display, no Vulkan); the message says what to do."""


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


def parse_window(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--window must look like 1120x800, got {text!r}") from None
    if w < 160 or h < 120:
        raise ValueError(f"--window {text} is too small (at least 160x120)")
    return w, h


def training_run(args):
    """(TrainConfig, resume) of the run ``gui`` trains: a new run in a claimed folder, or with
    ``--ckpt RUN --train`` that run continued; every check before anything on disk changes."""
    from .. import checkpoint
    from ..checkpoint import find_checkpoint
    from ..config import TrainConfig

    ckpt = find_checkpoint(args.ckpt) if args.ckpt else None
    if ckpt is not None and ckpt.name != "checkpoint.pt":
        raise ValueError(f"--train continues a run folder's checkpoint.pt; got {ckpt}")
    resume = ckpt is not None
    cfg = run_config(args, resume_from=ckpt, default=TrainConfig(out=GUI_DEFAULT_OUT)).validate().with_absolute_paths()
    if resume and args.data is None:
        checkpoint.require_stored_data(cfg, ckpt)
    if not resume:  # a new run never mixes with one already in its folder (train's rule)
        checkpoint.claim_run_folder(cfg.out, overwrite=args.overwrite,
                                    continue_hint=f"--ckpt {cfg.out} --train to continue it")
    return cfg, resume


def launch(args) -> int:
    from ..checkpoint import find_checkpoint
    from .app import GuiApp, GuiOptions  # app.py imports check_environment from here

    if args.headless and args.frames is None and args.seconds is None:
        raise ValueError("--headless has no window to close: give --frames N or --seconds S "
                         "(and --screenshot FILE to keep the last frame)")
    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds:g}")
    if args.turn_every is not None and not args.turn_every > 0:
        raise ValueError(f"--turn-every must be positive, got {args.turn_every:g}")
    if args.steps_per_frame is not None and args.steps_per_frame < 1:
        raise ValueError(f"--steps-per-frame must be at least 1, got {args.steps_per_frame}")
    if args.train and not args.ckpt:
        raise ValueError("--train continues a checkpoint: give --ckpt RUN_FOLDER too (new runs train by default)")
    if getattr(args, "web", False):  # the same session in a browser (taichi_nerf/viewer)
        from ..viewer.launch import launch_web

        return launch_web(args, training_run)
    options = GuiOptions(window=parse_window(args.window), headless=args.headless, render_scale=args.render_scale,
                         steps_per_frame=args.steps_per_frame, video_frames=args.video_frames, status_path=args.status,
                         max_frames=args.frames, max_seconds=args.seconds, exit_screenshot=args.screenshot,
                         turn_every_s=args.turn_every)
    check_environment(args.headless)  # before minutes of data loading, not after
    if args.ckpt and not args.train:
        app = GuiApp.for_checkpoint(args.ckpt, options, args.arch or "auto")
        print(f"viewing {find_checkpoint(args.ckpt)} (step {app.step_at_open}); add --train to keep training it")
    else:
        cfg, resume = training_run(args)
        app = GuiApp.for_training(cfg, options, resume=resume)
        print(f"data: {app.trainer.dataset.summary()}")
        print(f"backend: {app.backend.arch}; {cfg.batch_rays} rays x {cfg.samples_per_ray} samples per step; "
              f"run folder {Path(cfg.out)}" + (f"; resuming at step {app.trainer.step_count}" if resume else ""))
    code = app.run()
    if app.trainer is not None:
        print(f"stopped at step {app.trainer.step_count}; continue with: taichi-nerf gui --ckpt {app.out_dir} --train")
    return code
