"""``taichi-nerf train``: a new run, or a resumed one, through :func:`taichi_nerf.runs.run_folder.open_run`."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..files import RunFolderLost, saying_more
from ..rendering.video_route import DEFAULT_FRAMES
from ..wording import counted
from .common import (
    EXIT_INTERRUPTED,
    HelpFormatter,
    UserError,
    add_config_flags,
    add_viewer_flags,
    at_least,
    check_before_serving,
    check_viewer_flags,
    config_file_values,
    refuse_builtin_scene_flags,
    refuse_unused_viewer_flags,
    run_config,
    say_resume_note,
    viewer_options,
)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a field (on the built-in scene when --data is not given)",
                       formatter_class=HelpFormatter, usage="%(prog)s [--config FILE | --resume OUTDIR] [options]",
                       description="Train a field. Every TrainConfig field is a flag; a flag given overrides "
                                   "the --config file or the resumed run's config.")
    p.add_argument("--config", metavar="FILE", help="JSON object of TrainConfig fields, e.g. {\"steps\": 5000, "
                                                     "\"lr\": 0.01} (a run's config.json works); --preset goes over "
                                                     "it, and every other flag over both")
    p.add_argument("--resume", metavar="OUTDIR",
                   help="continue the run in OUTDIR from its last checkpoint (with its config)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoint, metrics, config, previews, video); "
                        "without it a folder holding a run is refused")
    p.add_argument("--dry-run", action="store_true",
                   help="run every check a real start runs (configuration, extras, memory, dataset, run folder, "
                        "another process training there), say what the run would do (data, scene kind and the defaults "
                        "it picks, steps, rays and samples), then exit without changing anything")
    p.add_argument("--video-frames", type=int, metavar="N",
                   help=f"frames of the video written at the end (the one that suits the capture; default: "
                        f"{DEFAULT_FRAMES}; 0: none; a resume keeps the run's choice)")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="train data-parallel in N local processes, one per GPU (or CPU share), started through "
                        "torchrun; each takes --batch-rays rays a step (default: 1)")
    add_config_flags(p)
    add_viewer_flags(p, choice=True)
    p.set_defaults(run=cmd_train)


def cmd_train(args) -> int:
    from ..backend import resolve_arch
    from ..runs import distributed, launcher, rank_env
    from ..runs.run_folder import open_run
    from ..training.diagnostics import batch_words
    from ..training.trainer import Trainer

    at_least(args, {"--devices": 1, "--video-frames": 0})
    rank_env.pin_local_device()  # distributed: this rank's GPU, before anything starts CUDA
    resume = args.resume is not None
    if resume and (args.out is not None or args.config is not None):
        raise UserError("--resume continues a run in its own folder with its own config; drop --out/--config")
    if resume and args.overwrite:
        raise UserError("--resume continues the run in its folder, --overwrite replaces it: give one")
    if args.viewer != "web":
        refuse_unused_viewer_flags(args, "--viewer web")
    if args.viewer == "web":
        rank_env.refuse_several("the web viewer")  # it runs in one process: rank 0 cannot steer the others
        if args.devices > 1:
            raise UserError("the web viewer watches one process: drop --devices or --viewer web")
    cfg = run_config(args, resume_from=args.resume)
    refuse_builtin_scene_flags(args, cfg)
    launching = args.devices > 1 and rank_env.world_size() == 1  # checks here, then torchrun starts the ranks
    if launching:
        launcher.check_local_devices(args.devices, cuda=resolve_arch(cfg.arch) == "cuda")
    elif args.devices > 1 and args.devices != rank_env.world_size() and rank_env.environment()[0] == 0:
        print(f"warning: --devices {args.devices} is not used: torchrun started this run's "
              f"{rank_env.world_size()} ranks (its --nproc-per-node decides)", file=sys.stderr)
    instead = "--out"
    if args.config and args.out is None and "out" in config_file_values(args.config):  # a run's config.json reused
        instead = '--config, whose "out" names this folder'
    if args.viewer == "web":
        check_before_serving(None, cfg.arch)  # not after the server announced its address
    viewer = open_viewer(args)  # --viewer web: the server opens (or is refused) before the run folder changes
    # open_run: every check that can refuse comes before anything in the run folder changes.
    try:
        run = open_run(cfg, resume=resume, overwrite=args.overwrite, dry_run=args.dry_run or launching,
                       data_given=args.data is not None,
                       continue_hint=f"--resume {shlex.quote(str(cfg.out))} (in place of {instead}) to continue it")
    except BaseException:
        if viewer:
            viewer.close()
        raise
    say_resume_note(args)
    if args.dry_run:
        if rank_env.environment()[0] == 0:  # under torchrun every rank checks; rank 0 says so
            from ..presets import PRESETS
            from ..training.diagnostics import dry_run_lines

            if run.cfg.preset is not None:  # which values the preset and the flags decide, before a real run
                print(PRESETS[run.cfg.preset].describe(run.cfg))
            ranks = args.devices if launching else rank_env.world_size()
            print("\n".join(dry_run_lines(run.cfg, run.dataset, run.resumed_step, run.resumed_clock_s, ranks)))
            warning = PRESETS[run.cfg.preset].cpu_warning_for(run.cfg) if run.cfg.preset is not None else ""
            if warning and resolve_arch(run.cfg.arch) != "cuda":  # before the minutes it warns of, as a real start
                print(f"warning: {warning}")
            print(f"configuration, dataset, run folder and memory are fine; the run would go to {run.out}")
        return 0
    if launching:
        return launcher.launch_local(args.devices, args.argv)
    ranks = distributed.current()
    with run:
        cfg = run.cfg
        together = f"; {ranks.size} ranks ({ranks.backend}), {ranks.size} x {batch_words(cfg)} a step"
        print(f"run folder: {cfg.out}" + (" (resuming)" if resume else "") + (together if ranks.size > 1 else ""))
        from ..presets import PRESETS

        if cfg.preset is not None:
            print(PRESETS[cfg.preset].describe(cfg))
        trainer = Trainer(cfg, dataset=run.dataset, resume=resume)
        trainer.end_video_frames = video_frames = chosen_video_frames(args.video_frames, trainer, resume)
        report_start(trainer, resume)
        warning = PRESETS[cfg.preset].cpu_warning_for(cfg) if cfg.preset is not None else ""
        if warning and trainer.backend.arch != "cuda":
            print(f"warning: {warning}")
        if viewer:
            viewer.server.remind()
        saved = SavedStep(trainer)
        trainer.callbacks.append(saved)
        try:
            result = viewer.train(trainer) if viewer else trainer.run()
        except OSError as exc:  # a full disk or a folder gone read-only mid-run, or at the run's end
            if viewer:
                viewer.close()
            raise with_resume_hint(exc, cfg.out, trainer, saved.step, video_frames) from exc
        except BaseException:
            if viewer:
                viewer.close()
            raise
    if not ranks.writes:  # distributed: rank 0 reports and writes the video
        ranks.close()
        return EXIT_INTERRUPTED if result.interrupted else 0
    try:
        code = report_end(trainer, result, video_frames)
    except BaseException:  # (a full disk at the end video): the browser is told the viewer closed, as on every way out
        if viewer:
            viewer.close()
        raise
    return viewer.linger(code) if viewer else code


class SavedStep:
    """The step of the run's checkpoint on disk (a training callback): what a failed write loses."""

    def __init__(self, trainer):
        self.step = trainer.resumed_from  # a new run has none on disk until its first save

    def on_checkpoint(self, trainer, path) -> None:
        self.step = trainer.step_count


def with_resume_hint(exc: OSError, out: Path, trainer, saved_step: int, video_frames: int) -> OSError:
    """``exc`` saying what a failed write leaves and what to do: checkpoints are written atomically, so the one on
    disk (at ``saved_step``) is whole. The steps trained since are lost and a resume continues from it; where it
    holds every step (the run's end failed: its second save, preview or curves), a resume only ends the run."""
    run = shlex.quote(str(out))
    if isinstance(exc, RunFolderLost):  # another run's folder now: nothing there is this run's
        return exc
    if not (Path(out) / "checkpoint.pt").is_file():
        trained = trainer.step_count - trainer.resumed_from
        return saying_more(exc, f"no checkpoint was written: the {counted(trained, 'step')} trained are lost",
                           exc.filename2 or exc.filename) if trained else exc
    if saved_step < trainer.step_count:
        more = (f"the run's last whole checkpoint is at step {saved_step}, and the "
                f"{counted(trainer.step_count - saved_step, 'step')} trained since are lost: once this is fixed, "
                f"taichi-nerf train --resume {run} continues from it")
    elif trainer.cfg.nothing_left(trainer.step_count, trainer.clock_s):
        video = " and the video" if video_frames > 0 else ""
        more = (f"every step is trained and in the checkpoint (step {saved_step}); only the run's end is missing "
                f"(the final validation's save, curves.png{video}): once this is fixed, "
                f"taichi-nerf train --resume {run} validates it again"
                f"{video and ' and renders the video'}, with no more training")
    else:
        more = (f"every step trained is in the checkpoint (step {saved_step}): once this is fixed, "
                f"taichi-nerf train --resume {run} continues from it")
    return saying_more(exc, more, exc.filename2 or exc.filename)


def open_viewer(args):
    """None unless ``--viewer web``; else the browser viewer's session (viewer/launch.py), its
    server open before the run folder is touched (``--dry-run`` only checks that viser is there)."""
    if args.viewer != "web":
        return None
    from ..viewer.launch import WebTraining
    from ..viewer.server import ViewerServer, require_viser

    check_viewer_flags(args)
    if args.dry_run:
        require_viser()
        return None
    return WebTraining(ViewerServer(args.viewer_host, args.viewer_port), viewer_options(args),
                       quit_at_end=args.viewer_quit_at_end)


def chosen_video_frames(asked: int | None, trainer, resume: bool) -> int:
    """The frames of the video at the end: ``--video-frames``, else the resumed run's own choice
    (its checkpoint keeps it, however the run stopped), else the default."""
    if asked is not None:
        return asked
    saved = trainer.end_video_frames  # None on a new run: only a resume restores it
    if saved is None and resume and ended_without_video(trainer.out_dir):  # a checkpoint from before it kept one
        saved = 0
    if saved == 0:
        print("note: no video at the end, as the run was started (--video-frames N renders one)")
    return DEFAULT_FRAMES if saved is None else saved


def ended_without_video(out: Path) -> bool:
    """Whether the run in ``out`` reached its end (a final validation row) and wrote no video:
    it was started with --video-frames 0. Only for checkpoints that do not keep the choice
    (``end_video_frames``, saved since 2026-12-06)."""
    from ..runs.run_folder import RUN_VIDEOS, read_metrics

    metrics = Path(out) / "metrics.jsonl"
    ended = metrics.is_file() and any(row.get("final") for row, _ in read_metrics(metrics)[0])
    return ended and not any((Path(out) / name).is_file() for name in RUN_VIDEOS)


def report_start(trainer, resume: bool) -> None:
    """What the run will do (train, and the web viewer's train): :func:`diagnostics.start_lines`."""
    from ..training.diagnostics import start_lines

    print("\n".join(start_lines(trainer, resume)))


# A time-limited run that made its --steps with under this share of its time used says so.
TIME_LEFT_UNUSED = 0.9


def time_decides(trainer) -> str:
    """How a run its steps ended before its time limit lets the time end it: a new run, without --steps; a resumed
    run (config.json keeps its steps: 20000 in a run from before they became optional) or a preset's steps only
    take a larger --steps (a flag cannot unset them)."""
    from ..presets import PRESETS

    cfg = trainer.cfg
    by_preset = cfg.preset is not None and PRESETS[cfg.preset].values.get("steps") == cfg.steps
    if trainer.resumed_from or by_preset:
        return "a larger --steps lets the time decide"
    return "without --steps the time decides"


def report_end(trainer, result, video_frames: int) -> int:
    """The run's outcome and files, and its default video (outputs/default_video.py); the exit status."""
    out, cfg = result.out_dir, trainer.cfg
    if result.interrupted:
        print(f"interrupted at step {result.step}; checkpoint saved to {result.checkpoint}")
        print(f"continue with: taichi-nerf train --resume {shlex.quote(str(out))}")  # it keeps the run's --video-frames
        return EXIT_INTERRUPTED
    alone = "" if result.val_object_psnr is None else f" ({result.val_object_psnr:.2f} dB on the object's pixels alone)"
    limited = f" (stopped by the {cfg.time_limit_s:g} s time limit, then validated)" \
        if cfg.time_limit_s and trainer.time_used >= 1.0 else ""
    steps = counted(result.step - trainer.resumed_from, "step") + (
        f" (step {trainer.resumed_from} to {result.step})" if trainer.resumed_from else "")
    scored = "validation PSNR" if trainer.val_name != "train" else "PSNR on the training views (none held out)"
    took = f"{result.seconds:.1f} s" if result.training_seconds is None else \
        f"{result.training_seconds:.1f} s ({result.seconds:.1f} s with the final validation)"
    print(f"trained {steps} in {took}{limited}; {scored} {result.val_psnr:.2f} dB{alone}")
    if trainer.pose_refinement is not None and trainer.val_name != "train":
        # ethiopianHead refined: 27.9 dB so, 23.6 as given, 27.6 aligned (BENCHMARKS.md, "Pose corrections carried")
        run = shlex.quote(str(out))
        print(f"note: --refine-poses corrected the training cameras; each val camera was scored with the corrections "
              f"of the training cameras near it carried to it (a capture's pose errors are shared by neighbouring "
              f"photos). As written: taichi-nerf eval --ckpt {run} --as-given; each aligned to its own photo: "
              f"taichi-nerf eval --ckpt {run} --align-cameras 100")
    if cfg.time_limit_s and trainer.time_used < TIME_LEFT_UNUSED and result.step >= cfg.step_limit():
        # a fast host: the --steps given, not the time, ended the run (ethiopianHead: 20000 steps in 169 of 240 s)
        print(f"note: the run's {cfg.steps} steps ended it at {100 * trainer.time_used:.0f}% of its "
              f"{cfg.time_limit_s:g} s time limit; {time_decides(trainer)} (the learning rate then decays by the time)")
    print(f"checkpoint: {result.checkpoint}")
    print(f"metrics:    {out / 'metrics.jsonl'} (curves: {out / 'curves.png'})")
    print(f"previews:   {out / 'previews'}")
    if cfg.logger == "tensorboard":
        print(f"tensorboard: tensorboard --logdir {out / 'tensorboard'}")
    if result.step == trainer.resumed_from and cfg.time_limit_s and not trainer.nothing_to_train():
        print(f"warning: no training step fitted in the {cfg.time_limit_s:g} s time limit (starting up and the "
              f"first validation took it all), so there is no video of the untrained field; give it more time: "
              f"taichi-nerf train --resume {shlex.quote(str(out))} --time-limit SECONDS", file=sys.stderr)
        return 0
    if video_frames > 0:
        from ..interrupts import terminations_interrupt
        from ..outputs.default_video import default_video_name, write_default_video
        from ..rendering.backgrounds import scene_background
        from ..rendering.video_route import trained_video_width

        scene = trainer.renderer.scene
        try:
            with terminations_interrupt():  # a scheduler's SIGTERM here is said as a Ctrl-C is
                videos = write_default_video(trainer.renderer, out / default_video_name(scene), video_frames,
                                             trained_video_width(scene), progress=cfg.progress,
                                             background=scene_background(scene, cfg), say=print)
        except (KeyboardInterrupt, OSError) as exc:
            frames = "" if video_frames == DEFAULT_FRAMES else f" --frames {video_frames}"  # the run's own count
            missing = (f"the trained run is saved ({result.checkpoint}), only the video is missing: taichi-nerf render "
                       f"--ckpt {shlex.quote(str(out))} --out {shlex.quote(str(out / default_video_name(scene)))}"
                       f"{frames}")
            if isinstance(exc, OSError):  # a full disk: one line, said by cli.main
                raise saying_more(exc, missing) from exc
            if getattr(exc, "after_whole_set", False):  # held until the video's files were all in place
                print(f"interrupted as the video was written: it is whole ({out / default_video_name(scene)}), "
                      f"and the trained run is saved ({result.checkpoint})")
                return EXIT_INTERRUPTED
            print(f"interrupted while rendering the video; {missing}")
            return EXIT_INTERRUPTED
        print("video:      " + ", ".join(str(v) for v in videos))
    return 0
