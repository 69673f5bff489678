"""The Python API; the CLI is a thin layer over these functions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import BUILTIN_SIZE, BUILTIN_VIEWS, TrainConfig, given_config
from .config_checks import number_at_least
from .files import json_safe, write_json
from .outputs.from_checkpoint import export_mesh, export_points, render_path, write_view
from .outputs.metrics import has_transparency, mean_object_psnr, ssim
from .rendering.backgrounds import scene_background
from .rendering.video_route import DEFAULT_FPS, DEFAULT_FRAMES
from .runs import checkpoint
from .runs.datasets import load_dataset, run_dataset
from .runs.rank_env import rank_zero_only
from .runs.run_folder import open_run, resume_config
from .scenes.builtin import builtin_scene
from .training.result import TrainResult
from .training.trainer import Trainer
from .training.validation import view_scores


def train(config: TrainConfig | None = None, resume: bool = False, overwrite: bool = False,
          **overrides) -> TrainResult:
    """Train a field; ``overrides`` are TrainConfig fields (``steps=500, data="path"``);
    ``preset="keras"`` or ``"pytorch3d"`` (taichi_nerf/presets.py) applies first, the others win over it.
    ``resume=True`` continues the run in ``out`` with its saved configuration, on the backend this
    call picks (``arch``, the config's, or "auto": the run may have trained elsewhere). A fresh run
    refuses an ``out`` folder that holds another run unless ``overwrite=True``, which first
    removes that run's files (``taichi-nerf train``'s rule)."""
    if config is not None:  # not a dict or a --config file's path, say
        given_config(config)
    if resume:  # continue with the configuration the run was started with
        out = overrides.pop("out", None) or (config.out if config else TrainConfig().out)
        # the backend: arch= or the config's, else picked afresh (as train --resume), not the saved one: the run
        # may have trained on another machine (a GPU server's "cuda" on a laptop)
        here = {"arch": config.arch if config is not None else "auto"}
        cfg = resume_config(out, api=True, **{**here, **overrides})
        unused = [] if config is None else ignored_on_resume(config, cfg, overrides)
        if unused:
            print(f"note: resume=True continues with the run's own configuration; not used from config: "
                  f"{', '.join(unused)} (give a change as a keyword: train(resume=True, out=..., steps=...))")
    else:
        cfg = (config or TrainConfig()).replace(**overrides)
    # open_run: every check that can refuse (config, memory, dataset, folder, lock) comes first
    with open_run(cfg, resume=resume, overwrite=overwrite, data_given="data" in overrides,
                  continue_hint="resume=True to continue it", flags=("overwrite=True", "out")) as run:
        trainer = Trainer(run.cfg, dataset=run.dataset, resume=resume)
        if resume and trainer.nothing_to_train():  # as train --resume says it
            from .training.diagnostics import nothing_to_train_note

            print(nothing_to_train_note(trainer, "steps=N", "time_limit_s=SECONDS", "train(resume=True, out=..., {})"))
        try:
            result = trainer.run()  # on every rank under torchrun: rank 0's result, once it is saved
            if result.interrupted:  # a notebook's Ctrl-C returns here, and a sweep's loop goes on: say it
                print(f"interrupted at step {result.step}; checkpoint saved to {result.checkpoint}; "
                      f"train(resume=True, out={str(result.out_dir)!r}) continues it")
            return result
        finally:
            trainer.ranks.run_ended()


def ignored_on_resume(config: TrainConfig, saved: TrainConfig, overrides: dict) -> list[str]:
    """The values ``config`` sets that a resume does not use: those it changes from the defaults
    (TrainConfig()) to something other than the run's own, as "name=value (the run's: value)"."""
    import dataclasses

    default = TrainConfig()
    return [f"{f.name}={getattr(config, f.name)!r} (the run's: {getattr(saved, f.name)!r})"
            for f in dataclasses.fields(config)
            if f.name not in ("out", "data", *overrides)
            and getattr(config, f.name) not in (getattr(default, f.name), getattr(saved, f.name))]


def render_orbit(ckpt, out=None, frames: int = DEFAULT_FRAMES, size: int | None = None, arch: str = "auto",
                 fps: float = DEFAULT_FPS, progress: bool = True) -> list[Path]:
    """The default video of a trained field: the orbit, the spiral or a path through the training
    cameras, whichever suits the capture (mp4 + depth mp4 + gif, or a gif): ``render_path``
    without a path. ``out`` None: named after that path (orbit.mp4, spiral.mp4 or path.mp4), as
    ``train`` and ``render`` name it, in the current folder. ``size`` None: as wide as the training
    images, 100 to 400 px, as ``train`` writes it (rendering/video_route.trained_video_width)."""
    rank_zero_only("render_orbit")  # (render_path's refusal named the function the script did not call)
    if out is None:
        from .outputs.default_video import checkpoint_video_name

        out = checkpoint_video_name(ckpt)
    return render_path(ckpt, out, frames=frames, size=size, fps=fps, arch=arch, progress=progress)


# Test-time alignment that turns the val cameras more than this on average is said aloud: real
# pose errors are smaller, and an undertrained field let ethiopianHead's cameras drift 3.2-3.7 deg
# (a trained one moved them ~0.5).
ALIGN_WARN_DEG = 2.0


def evaluate(ckpt, split: str | None = None, data=None, arch: str = "auto", limit: int | None = None,
             progress: bool = True, images_dir=None, depth: bool = False, compare: bool = False,
             overwrite: bool = False, appearance_image: int | None = None, align_steps: int = 0,
             as_given: bool = False) -> dict:
    """PSNR and SSIM per image of a split (None: test where the data has one, else val: LLFF
    captures hold out val alone) and their means (``appearance_image``: rendered with
    that training image's appearance code, not the mean; ``object_psnr`` too where the photos
    have transparency: the PSNR of the object's pixels alone). ``images_dir``: also write each
    view's prediction as PNG there (``depth``: its depth too, ``compare``: prediction | truth
    side by side) and the result as ``metrics.json`` (what ``render --split`` does); a folder
    holding an earlier render needs ``overwrite``, which removes only that render's files.
    ``align_steps`` > 0: also score each view from its camera aligned to its photo with the
    field frozen (pose_refinement.align_camera): ``aligned_psnr``/``aligned_ssim`` and each
    camera's move, beside the scores from the cameras as written (and ``warnings`` when the
    cameras turned more than ``ALIGN_WARN_DEG`` on average). A run with pose refinement draws each
    camera with the training cameras' corrections carried to it (rendering/carried_corrections.py;
    ``cameras`` in the result says so), and ``as_given`` draws them as written."""
    rank_zero_only("evaluate")
    from tqdm.auto import tqdm

    from .outputs import render_folder
    from .training.pose_refinement import align_camera

    limit = None if limit is None else number_at_least("limit", limit, 1)  # (the CLI checks its flags first)
    align_steps = number_at_least("align_steps", align_steps, 0)
    if images_dir is not None:
        render_folder.check_render_folder(images_dir, overwrite, flags=("overwrite=True", "images_dir"))
    renderer, cfg, _ = checkpoint.load(ckpt, arch, appearance_image)
    if images_dir is not None:
        render_folder.refuse_dataset_folder(images_dir, data or cfg.data)
    if as_given:
        renderer.carried = None
    dataset = run_dataset(cfg, data, source=checkpoint.find_checkpoint(ckpt), progress=progress)
    if split is None:
        split = "test" if "test" in dataset.splits else "val"
    part = dataset.split(split)
    bg = scene_background(renderer.scene, cfg)
    count = part.count if limit is None else min(limit, part.count)
    objects = has_transparency(part.rgba[:count])  # then the object's own pixels are scored alone too
    if images_dir is not None:  # every refusing check is behind us
        render_folder.clear_earlier_render(images_dir)
    images = []
    for i in tqdm(range(count), disable=not progress, desc=f"eval {split}", unit="img"):
        view = renderer.render_image(part.poses, part.intrinsics, i, part.width, part.height, bg)
        pred, target, scores = view_scores(view["rgb"], part.rgba[i], bg, objects)
        name = part.names[i] if part.names else str(i)
        images.append({"name": name, **scores, "ssim": ssim(pred, target)})
        if align_steps:
            pose, moved = align_camera(renderer, part, i, bg, align_steps)
            poses = part.poses.clone()
            poses[i] = pose
            view_aligned = renderer.render_image(poses, part.intrinsics, i, part.width, part.height, bg, carry=False)
            aligned, _, aligned_scores = view_scores(view_aligned["rgb"], part.rgba[i], bg, objects)
            images[-1].update({f"aligned_{name}": value for name, value in aligned_scores.items()},
                              aligned_ssim=ssim(aligned, target), alignment=moved)
        if images_dir is not None:
            images[-1]["files"] = write_view(images_dir, i, images[-1]["name"], view, target, renderer.scene,
                                                     depth, compare)
    result = {
        # the dataset scored, so scores of one field on several datasets (--data) are told apart
        "checkpoint": str(checkpoint.find_checkpoint(ckpt).resolve()), "data": str(Path(dataset.source).resolve()),
        "split": split, "count": count,
        "cameras": "as given" if renderer.carried is None else "with the training cameras' corrections carried",
        "psnr": np.mean([r["psnr"] for r in images]), "ssim": np.mean([r["ssim"] for r in images]),
        "images": images,
    }
    if objects:
        result["object_psnr"] = mean_object_psnr([r["object_psnr"] for r in images])
    if align_steps:
        result.update(align_steps=align_steps, aligned_psnr=np.mean([r["aligned_psnr"] for r in images]),
                      aligned_ssim=np.mean([r["aligned_ssim"] for r in images]))
        if objects:
            result["aligned_object_psnr"] = mean_object_psnr([r["aligned_object_psnr"] for r in images])
        turned = float(np.mean([r["alignment"]["rotation_deg_rms"] for r in images]))
        if turned > ALIGN_WARN_DEG:
            result["warnings"] = [
                f"the alignment turned the val cameras {turned:.1f} deg on average, where the poses of a real "
                f"capture (COLMAP's) are off by well under {ALIGN_WARN_DEG:g}: either these cameras are that far off, "
                "or the field is too blurry to pin a camera down and aligned_psnr flatters it (train longer, then "
                "compare)"]
    result = json_safe(result)  # None for NaN or infinity (a perfect match's PSNR): JSON has no such numbers
    if images_dir is not None:
        write_json(Path(images_dir) / "metrics.json", result)
    return result


def make_synthetic(out, views: int = BUILTIN_VIEWS, size: int = BUILTIN_SIZE, progress: bool = True) -> Path:
    """Render the built-in scene into ``out`` as a Blender-layout dataset (``taichi-nerf data synthetic``):
    ``views`` training views of ``size`` pixels a side, 8 val and 8 test views; returns ``out`` as a Path,
    ready for ``train(data=...)``. Only an earlier render of this tool's in ``out`` is replaced (its splits, views
    and depth maps), once the new one is rendered whole beside it: an interrupted render leaves ``out`` as it was."""
    from .files import check_writable
    from .scenes.synthetic import write_synthetic_dataset

    rank_zero_only("make_synthetic")
    check_writable(out)  # before rendering the views, not after
    return write_synthetic_dataset(out, views=views, size=size, progress=progress)


__all__ = ["TrainConfig", "train", "render_orbit", "render_path", "evaluate", "export_mesh", "export_points",
           "make_synthetic", "load_dataset", "builtin_scene"]
