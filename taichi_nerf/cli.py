"""``taichi-nerf`` command line: a thin layer over :mod:`taichi_nerf.api`.

Errors the user can fix (bad data, bad config, missing checkpoint) print one line and exit
with status 2; they never surface as a traceback from inside a kernel.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .backend import ARCH_CHOICES
from .config import _without_none  # X | None -> X: None is a flag's "not given"

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UserError(Exception):
    pass


def _add_arch(p):
    p.add_argument("--arch", choices=ARCH_CHOICES, default="auto", help="compute backend (default: auto = CUDA if usable, else CPU)")


def add_config_flags(parser, names=None, *, shown_defaults=None) -> None:
    """One ``--kebab-case`` flag per TrainConfig field in ``names`` (default: every field), in
    the ``--help`` group the field declares, built from its type hint and metadata (config.py):
    ``Literal`` -> choices, ``bool`` -> ``--x/--no-x``, ``list[float]`` -> ``nargs`` values.
    Every flag defaults to None, so only the flags typed override a config (read them back
    with :func:`config_overrides`). ``shown_defaults``: a command's own default for ``--help``."""
    import dataclasses
    import typing

    from .config import TrainConfig, field_types

    hints, shown_defaults, groups = field_types(), shown_defaults or {}, {}
    for f in dataclasses.fields(TrainConfig):
        if names is not None and f.name not in names:
            continue
        meta = f.metadata
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(f"{meta['group']} options")
        kind = _without_none(hints[f.name])
        options = dict(dest=f.name, default=None, help=_with_default(meta["help"], shown_defaults.get(f.name, f.default)))
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
        elif typing.get_origin(kind) is list:
            options.update(type=typing.get_args(kind)[0], nargs=meta["nargs"] or "+", metavar=meta["metavar"])
        else:
            options.update(type=kind, metavar=meta["metavar"] or _METAVARS[kind])
        groups[meta["group"]].add_argument("--" + f.name.replace("_", "-"), *meta["aliases"], **options)


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _with_default(text: str, default) -> str:
    """Help text + its default, inside a closing parenthesis when there is one; escaped for argparse."""
    if default is not None:
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        text = text[:-1] + f"; default: {shown})" if text.endswith(")") else text + f" (default: {shown})"
    return text.replace("%", "%%")


class _HelpFormatter(argparse.HelpFormatter):
    """Wider flag column, and ``--samples-per-ray, --samples N`` instead of repeating the metavar."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)

    def _format_action_invocation(self, action):
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        return ", ".join(action.option_strings) + " " + self._format_args(action, self._get_default_metavar_for_optional(action))


def config_overrides(args) -> dict:
    """The TrainConfig fields whose flag was given on the command line."""
    import dataclasses

    from .config import TrainConfig

    given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    return {name: value for name, value in given.items() if value is not None}


def run_config(args, resume_from=None, default=None):
    """The run's TrainConfig: the resumed run's config (``resume_from``: its folder or checkpoint),
    else the --config file, else ``default`` (TrainConfig()); then --preset, if given, over it;
    then every other flag given on top (TrainConfig.replace applies a preset first)."""
    from .checkpoint import resume_config
    from .config import TrainConfig

    given = config_overrides(args)
    if resume_from is not None:
        cfg = resume_config(resume_from)
        given.pop("out", None)  # a resumed run stays in its folder
        given.setdefault("arch", "auto")  # it may be on another machine: pick the backend afresh unless --arch says
    elif getattr(args, "config", None):
        cfg = TrainConfig.from_file(args.config)
    else:
        cfg = default or TrainConfig()
    return cfg.replace(**given)


def _train_parser(sub):
    p = sub.add_parser("train", help="train a field (on the built-in scene when --data is not given)",
                       formatter_class=_HelpFormatter, usage="%(prog)s [--config FILE | --resume OUTDIR] [options]",
                       description="Train a field. Every TrainConfig field is a flag; a flag given overrides "
                                   "the --config file or the resumed run's config.")
    p.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--resume", metavar="OUTDIR", help="continue the run in OUTDIR from its last checkpoint (with its config)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoint, metrics, config, previews, video); "
                        "without it a folder holding a run is refused")
    p.add_argument("--dry-run", action="store_true",
                   help="check the configuration, the run folder and the memory it needs, then exit without training")
    p.add_argument("--video-frames", type=int, default=60, metavar="N",
                   help="frames of the video written at the end (the one that suits the capture; default: 60; 0: none)")
    add_config_flags(p)
    p.set_defaults(run=cmd_train)


def cmd_train(args) -> int:
    from . import checkpoint, resources
    from .backend import resolve_arch
    from .training import Trainer
    from .default_video import write_default_video

    resume = args.resume is not None
    if resume and (args.out is not None or args.config is not None):
        raise UserError("--resume continues a run in its own folder with its own config; drop --out/--config")
    if resume and args.overwrite:
        raise UserError("--resume continues the run in its folder, --overwrite replaces it: give one")
    if args.video_frames < 0:
        raise UserError(f"--video-frames must not be negative, got {args.video_frames}")
    cfg = run_config(args, resume_from=args.resume).validate().with_absolute_paths()
    if resume and args.data is None:
        checkpoint.require_stored_data(cfg, checkpoint.find_checkpoint(args.resume))
    # Every check that can refuse comes before anything in the run folder changes.
    resources.check_training(cfg, "cuda" if resolve_arch(cfg.arch) == "cuda" else "cpu")
    if args.dry_run:
        if not resume and not args.overwrite:
            checkpoint.claim_run_folder(cfg.out)  # refuses a folder holding a run; changes nothing
        print(f"configuration, run folder and memory are fine; the run would go to {cfg.out}")
        return 0
    if not resume:
        checkpoint.claim_run_folder(cfg.out, overwrite=args.overwrite)
    print(f"run folder: {cfg.out}" + (" (resuming)" if resume else ""))
    if cfg.preset is not None:
        from .presets import PRESETS

        print(PRESETS[cfg.preset].describe(cfg))
    trainer = Trainer(cfg, resume=resume)
    print(f"data: {trainer.dataset.summary()}")
    for w in trainer.dataset.warnings:
        print(f"warning: {w}")
    for n in trainer.dataset.notes:
        print(f"note: {n}")
    chosen = trainer.background_choice
    print(f"background: {chosen.description}" + ("" if cfg.background != "auto" else "; --background overrides it"))
    if chosen.warning:
        print(f"warning: {chosen.warning}")
    rays = (f"{cfg.batch_rays} rays" if cfg.batch_rays else f"every pixel of {cfg.batch_images} images") + (
        f" from {cfg.batch_images} images" if cfg.batch_images and cfg.batch_rays else "")
    print(f"backend: {trainer.backend.arch}; training {cfg.steps} steps of {rays} x {cfg.samples_per_ray} samples"
          + (f", resuming at step {trainer.step_count}" if resume else ""))
    result = trainer.run()
    out = result.out_dir
    if result.interrupted:
        print(f"interrupted at step {result.step}; checkpoint saved to {result.checkpoint}")
        print(f"continue with: taichi-nerf train --resume {out}")
        return EXIT_INTERRUPTED
    print(f"trained {result.step} steps in {result.seconds:.1f} s; validation PSNR {result.val_psnr:.2f} dB")
    print(f"checkpoint: {result.checkpoint}")
    print(f"metrics:    {out / 'metrics.jsonl'} (curves: {out / 'curves.png'})")
    print(f"previews:   {out / 'previews'}")
    if args.video_frames > 0:
        from .backgrounds import scene_background

        videos = write_default_video(trainer.renderer, out / "orbit.mp4", args.video_frames,
                                     min(400, max(trainer.train.width, 100)), progress=cfg.progress,
                                     background=scene_background(trainer.renderer.scene, cfg), say=print)
        print("video:      " + ", ".join(str(v) for v in videos))
    return 0


def _eval_parser(sub):
    p = sub.add_parser("eval", help="PSNR and SSIM of a trained field on a split, as JSON")
    p.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    p.add_argument("--split", default="test")
    p.add_argument("--data", help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--out", help="also write the JSON to this file")
    p.add_argument("--no-progress", action="store_true")
    _add_arch(p)
    p.set_defaults(run=cmd_eval)


def cmd_eval(args) -> int:
    from .api import evaluate

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    result = evaluate(args.ckpt, args.split, data=args.data, arch=args.arch, limit=args.limit, progress=not args.no_progress)
    text = json.dumps(strict_json(result), indent=2, allow_nan=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


def strict_json(value):
    """``value`` with every NaN or infinity as None: JSON has no such numbers (a perfect
    PSNR is infinite), and ``json.dumps`` would write ones strict readers reject."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def _data_parser(sub):
    from .config import DATASET_FIELDS

    p = sub.add_parser("data", help="make or inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synthetic", help="render the built-in scene in the Blender layout")
    s.add_argument("--out", required=True)
    s.add_argument("--views", type=int, default=100)
    s.add_argument("--size", type=int, default=100)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(run=cmd_data_synthetic)

    i = dsub.add_parser("info", help="load a dataset and print its format, splits, cameras and chosen bounds",
                        formatter_class=_HelpFormatter)
    i.add_argument("path", help="dataset folder or file")
    i.add_argument("--val-every", type=int, metavar="N", help="hold out every k-th frame as val when the data has no split")
    add_config_flags(i, set(DATASET_FIELDS) - {"data"})  # the dataset flags of train, less --data (the PATH)
    i.set_defaults(run=cmd_data_info)

    m = dsub.add_parser("from-mesh", help="render a (textured) OBJ mesh from many cameras into the Blender layout")
    m.add_argument("model", help="the .obj file (its .mtl and textures are found beside it)")
    m.add_argument("--out", required=True)
    m.add_argument("--views", type=int, default=40, help="training views (default 40)")
    m.add_argument("--val-views", type=int, default=8)
    m.add_argument("--test-views", type=int, default=8)
    m.add_argument("--size", type=int, default=128, help="image width and height in pixels (default 128)")
    m.add_argument("--supersample", type=int, default=3, help="odd subsamples per pixel side for soft edges (default 3)")
    m.add_argument("--up", default="y", help="the mesh's up axis: y (OBJ's usual), z, x, -y or -z (default y)")
    m.add_argument("--full-sphere", action="store_true", help="cameras all around, not just the upper half")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(run=cmd_data_from_mesh)

    from .cli_data import from_photos_parser

    from_photos_parser(dsub)


def _load_with_options(args):
    from .config import TrainConfig
    from .data.loaders import load_dataset

    cfg = TrainConfig().replace(**config_overrides(args))
    return load_dataset(args.path, format=cfg.data_format, downscale=cfg.downscale, every=cfg.every, limit=cfg.limit,
                        val_every=args.val_every, ndc=cfg.ndc, near=cfg.near, far=cfg.far, aabb=cfg.aabb,
                        unbounded=cfg.unbounded)


def cmd_data_info(args) -> int:
    from .data.dataset import INTRINSICS

    ds = _load_with_options(args)

    def vec(t):
        return "(" + ", ".join(f"{float(v) if abs(float(v)) > 1e-9 else 0.0:.4g}" for v in t) + ")"

    print(f"format:   {ds.format}")
    print(f"source:   {ds.source}")
    for name, split in ds.splits.items():
        intr = split.intrinsics
        same = bool((intr == intr[0]).all())
        described = ", ".join(f"{k} {float(v):.4g}" for k, v in zip(INTRINSICS, intr[0]) if k[0] in "fc" or float(v) != 0.0)
        print(f"{name + ':':9} {split.count} images, {split.width}x{split.height}; "
              f"{'intrinsics' if same else 'first camera'}: {described}")
    print(f"near/far: {ds.near:.4g} / {ds.far:.4g}" + ("  (NDC)" if ds.ndc else "")
          + ("  (unbounded: space beyond the box is contracted)" if ds.unbounded else ""))
    print(f"box:      min {vec(ds.aabb[:3])}, max {vec(ds.aabb[3:])}")
    print(f"centre:   {vec(ds.center)}; up {vec(ds.up)}")
    if ds.forward_facing:
        print(f"video:    spiral in front of the cameras, looking {ds.focus_distance:.4g} ahead (forward-facing)")
    else:
        from .video_route import choose_video

        print(f"orbit:    radius {ds.orbit_radius:.4g}, elevation {ds.orbit_elevation_deg:.3g} deg")
        video = choose_video(ds.split("train").poses, ds.center, ds.up, False)
        print(f"video:    {video['video_path']} ({video['video_reason']})")
    if ds.background is not None:
        from .backgrounds import resolve_background

        chosen = resolve_background("auto", ds.background)
        print(f"background: {chosen.description}; --background overrides it")
    for note in ds.notes:
        print(f"note:     {note}")
    for warning in ds.warnings:
        print(f"warning:  {warning}")
    return 0


def cmd_data_from_mesh(args) -> int:
    from .data.mesh import write_mesh_dataset

    if args.views < 1 or args.size < 8 or args.val_views < 0 or args.test_views < 0:
        raise UserError("--views must be at least 1, --size at least 8, --val-views/--test-views not negative")
    if args.supersample < 1 or args.supersample % 2 == 0:
        raise UserError("--supersample must be an odd positive number (1, 3, 5)")
    out, warnings = write_mesh_dataset(args.model, args.out, views=args.views, size=args.size, val_views=args.val_views,
                                       test_views=args.test_views, supersample=args.supersample, up=args.up,
                                       full_sphere=args.full_sphere, progress=not args.no_progress)
    for w in warnings:
        print(f"warning: {w}")
    print(f"wrote {args.model} as a dataset ({args.views} training views, {args.size}x{args.size}, "
          f"with alpha and depth) to {out}")
    print(f"train on it with: taichi-nerf train --data {out}")
    return 0


def cmd_data_synthetic(args) -> int:
    from .api import make_synthetic

    if args.views < 1 or args.size < 8:
        raise UserError("--views must be at least 1 and --size at least 8")
    path = make_synthetic(args.out, views=args.views, size=args.size, progress=not args.no_progress)
    print(f"wrote the built-in scene ({args.views} training views, {args.size}x{args.size}) to {path}")
    return 0


# TrainConfig fields `gui` takes as flags (a --config file may set any other).
GUI_FIELDS = ("preset", "steps", "batch_rays", "lr", "seed", "width", "depth", "samples_per_ray", "background", "out", "arch",
              "progress", "scene_views", "scene_size")
GUI_DEFAULT_OUT = "runs/gui"  # not train's runs/latest: a GUI session must not overwrite a batch run


def _gui_parser(sub):
    from .config import DATASET_FIELDS

    p = sub.add_parser("gui", help="train in an interactive window (Taichi GGUI) and look around the field as it learns",
                       formatter_class=_HelpFormatter, usage="%(prog)s [--data PATH | --ckpt RUN [--train]] [options]",
                       description="Train in an interactive window, or look around a trained checkpoint. "
                                   "A flag given overrides the --config file or the continued run's config.")
    p.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--ckpt", metavar="RUN", help="open a trained checkpoint (file or run folder) to look around")
    p.add_argument("--train", action="store_true", help="with --ckpt: keep training it (in its run folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out; without it a folder holding a run is refused")
    w = p.add_argument_group("window options")
    w.add_argument("--window", default="1120x800", metavar="WxH", help="window size (default: 1120x800; the panel takes 330 px)")
    w.add_argument("--render-scale", type=float, metavar="X",
                   help="render size / view size (default: 1, the canvas's full resolution)")
    w.add_argument("--steps-per-frame", type=int, metavar="N",
                   help="training steps between two frames (default: as many as half of a ~90 ms frame allows)")
    w.add_argument("--video-frames", type=int, default=36, metavar="N",
                   help="frames of the video the V key records: the orbit, or the path through the K keyframes (default: 36)")
    w.add_argument("--headless", action="store_true",
                   help="no window: render offscreen (needs --frames or --seconds; see --screenshot)")
    w.add_argument("--frames", type=int, metavar="N", help="leave after this many frames")
    w.add_argument("--seconds", type=float, metavar="S", help="leave after this many seconds (scripts: gui.jsonl fps figures)")
    w.add_argument("--turn-every", type=float, metavar="S",
                   help="turn the camera 30 degrees around the scene every S seconds (benchmarks: how fast a still "
                        "view sharpens, in gui.jsonl's refined_after_s)")
    w.add_argument("--screenshot", metavar="PNG", help="save the last frame to this PNG when leaving")
    w.add_argument("--status", metavar="JSON", help="write the GUI state as JSON to this file every frame (for scripts)")
    add_config_flags(p, DATASET_FIELDS + GUI_FIELDS, shown_defaults={"out": GUI_DEFAULT_OUT})
    p.set_defaults(run=cmd_gui)


def cmd_gui(args) -> int:
    from .gui import GuiUnavailable, launch

    try:
        return launch(args)
    except GuiUnavailable as exc:
        raise UserError(str(exc)) from None


# Each entry adds one subcommand; feature modules register theirs here.
def _render_parser(sub):
    from .cli_outputs import render_parser

    render_parser(sub)


def _export_parser(sub):
    from .cli_outputs import export_parser

    export_parser(sub)


PARSERS = [_train_parser, _render_parser, _eval_parser, _export_parser, _data_parser, _gui_parser]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="taichi-nerf", description="Train and render neural radiance fields with Taichi kernels.")
    parser.add_argument("--version", action="version", version=f"taichi-nerf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .data.dataset import DataError
    from .training import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (UserError, DataError, CheckpointError, ValueError) as exc:
        print(f"taichi-nerf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # unwritable output folder, full disk, ...
        print(f"taichi-nerf: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as exc:
        print(f"taichi-nerf: training stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("taichi-nerf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
