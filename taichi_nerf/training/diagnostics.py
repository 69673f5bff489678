"""Training diagnostics: what a run says about itself. At the start, what it will do
(:func:`start_lines`, the same for ``train``, the window and the browser viewer); while it
runs, a progress bar, and a run that is stuck noticed and explained in one line.

Two symptoms cover the failures users hit with their own data:

* validation PSNR stays at the level of predicting one flat colour (the mean colour of the
  images): the field has learnt nothing about the scene; usually the background choice
  hides the object, or the bounds miss the content;
* the occupancy grid stays almost fully occupied: the field fills the box with fog, usually
  because a background that is part of the images is being composited away (or the other
  way round), so every cell looks occupied and rays get no shortcuts.

Each check returns a message (or None); the trainer prints each message once and keeps
training: a warning, not a verdict.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch

from ..kind_defaults import cut_out_object
from ..outputs.metrics import has_transparency, mse_to_psnr
from ..wording import flag_or_keyword

BOUNDS = flag_or_keyword("--near/--far/--aabb", "near=/far=/aabb=")  # where a stuck run's bounds are set

# Within this many dB of the flat-colour PSNR counts as "learnt nothing".
STUCK_MARGIN_DB = 1.5
# Only judge after this many steps: the first validations are always near flat colour.
STUCK_AFTER_STEPS = 500
FULL_GRID_OCCUPANCY = 0.9
FULL_GRID_AFTER_UPDATES = 20


def flat_colour_psnr(targets: list[torch.Tensor]) -> float:
    """PSNR of the best single colour for these (H, W, 3) images: their mean colour."""
    pixels = torch.cat([t.reshape(-1, 3).double() for t in targets])
    mse = float(((pixels - pixels.mean(0)) ** 2).mean())
    return mse_to_psnr(max(mse, 1e-12))


@dataclass
class StuckWatch:
    """A training callback (see ``callbacks.TrainingCallback``): after each validation it
    checks both symptoms and reports each at most once, through ``say`` (default: a line on
    stderr that leaves the progress bar intact). ``messages`` keeps what was said, for the GUI."""
    flat_psnr: float | None = None
    say: object = None
    said: set = field(default_factory=set)
    messages: list = field(default_factory=list)

    def check(self, step: int, val_psnr: float | None, occupancy: float | None, grid_updates: int,
              background: str, warmup: int = 0, masked: bool = False) -> list[str]:
        """``warmup``: the run's learning-rate warm-up, which the judgement waits out too.
        ``masked``: the images' transparency comes from masks, so any background matches them."""
        messages = []
        if (val_psnr is not None and self.flat_psnr is not None and step >= STUCK_AFTER_STEPS + warmup
                and val_psnr < self.flat_psnr + STUCK_MARGIN_DB and "flat" not in self.said):
            self.said.add("flat")
            others = [name for name in ("black", "white", "random") if not background.startswith(name)]
            cause = ("the masks make any background match the images, so look at the bounds: "
                     f"`taichi-nerf data info` ({BOUNDS}), and at the masks themselves" if masked else
                     f"the background ({background}) does not match the images; try "
                     f"{flag_or_keyword('--background ' + ' or '.join(others), 'background=')}, and check "
                     f"`taichi-nerf data info` for bounds that miss the content ({BOUNDS})")
            messages.append(
                f"validation PSNR {val_psnr:.1f} dB is still at the flat-colour level ({self.flat_psnr:.1f} dB) after "
                f"{step} steps: the field is not learning the scene. Likely cause: {cause}")
        if (occupancy is not None and grid_updates >= FULL_GRID_AFTER_UPDATES and occupancy > FULL_GRID_OCCUPANCY
                and "grid" not in self.said):
            self.said.add("grid")
            messages.append(
                f"the occupancy grid is {100 * occupancy:.0f}% occupied after {grid_updates} updates: the field "
                f"fills the box with fog instead of surfaces. Likely cause: the images' background is part of "
                f"the scene but is composited away, or the reverse; try "
                f"{flag_or_keyword('--background random', 'background=')} (or black/white to match the images), or "
                f"{flag_or_keyword('--unbounded', 'unbounded=True')} for captures whose background fills the frame")
        return messages

    def on_validate(self, trainer, psnr: float) -> None:
        if self.flat_psnr is None:
            self.flat_psnr = flat_colour_psnr([trainer.target_rgb(trainer.val, i) for i in range(trainer.val.count)])
        grid = trainer.renderer.grid
        scene = trainer.scene
        # Scenes whose content fills the frame (NDC, unbounded, random background) pass through
        # a foggy phase on their way to surfaces: a full grid says nothing there.
        fills_frame = scene.ndc or scene.unbounded or trainer.background_choice.random
        occupancy = grid.occupancy if grid is not None and grid.updates > 0 and not fills_frame else None
        for message in self.check(trainer.step_count, psnr, occupancy, grid.updates if grid is not None else 0,
                                  trainer.background_choice.description.split(" (")[0], trainer.cfg.lr_warmup,
                                  masked=trainer.dataset.mask_mode == "transparent"):
            self.messages.append(message)
            (self.say or _warn)(f"warning: {message}")


def _warn(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


class ProgressBar:
    """The tqdm bar of ``Trainer.run``: its steps, or under a time limit the seconds of it used
    (the limit, not ``steps``, ends such a run: a bar of steps would stop part way, its time left
    wrong), the step then among the numbers ``on_log`` shows."""

    def __init__(self, trainer):
        from tqdm.auto import tqdm

        cfg = trainer.cfg
        self.trainer = trainer  # its time_used: the run's own clock of the limit, agreed by every rank
        self.limit = float(cfg.time_limit_s or 0.0)
        self.numbers: dict[str, str | int] = {}
        if trainer.last_val_psnr is not None:  # a resumed run's last validation, until the next one
            self.numbers["val"] = f"{trainer.last_val_psnr:.2f}@{trainer.step_count}"
        if self.limit:
            self.bar = tqdm(total=self.limit, disable=not cfg.progress, unit="s", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of the time limit "
                                       "[{elapsed}<{remaining}{postfix}]")
        else:
            self.bar = tqdm(total=cfg.step_limit(), initial=trainer.step_count, disable=not cfg.progress, unit="step",
                            dynamic_ncols=True)

    def on_step(self, trainer, info: dict) -> None:
        if not self.limit:
            self.bar.update(1)
            return
        self.numbers["step"] = trainer.step_count
        self.bar.set_postfix(self.numbers, refresh=False)
        self.bar.update(trainer.time_used * self.limit - self.bar.n)

    def on_log(self, trainer, record: dict) -> None:
        if "loss" in record:  # a training row
            self.numbers.update(loss=f"{record['loss']:.4f}", psnr=f"{record.get('train_psnr') or 0:.2f}",
                                rays_s=f"{record['rays_per_s']:.0f}", spr=f"{record['samples_per_ray']:.1f}")
            self.bar.set_postfix(self.numbers)
        elif record.get("val_psnr") is not None:  # a validation: its step beside it, as it may be long ago
            self.numbers["val"] = f"{record['val_psnr']:.2f}@{record['step']}"
            self.bar.set_postfix(self.numbers)

    def close(self) -> None:
        if self.limit:  # where the run's clock stopped: full when the limit ended it
            self.bar.update(self.trainer.time_used * self.limit - self.bar.n)
        self.bar.close()


def batch_words(cfg) -> str:
    """One rank's batch a step: "512 rays", or "every pixel of 5 images" (``batch_rays`` 0)."""
    return f"{cfg.batch_rays} rays" if cfg.batch_rays else f"every pixel of {cfg.batch_images} images"


# The options a scene kind decides where left out (kind_defaults.py), in the order a dry run says them.
KIND_CHOSEN = ("sampler", "samples_per_ray", "fine_samples", "render_samples_per_ray", "march_steps",
               "render_march_steps", "skip_hidden", "lr", "lr_warmup", "density_noise", "pixel_sampling",
               "appearance_dim", "refine_poses", "mixed_precision")


def samples_words(cfg) -> str:
    """A step's samples per ray, for ``cfg`` resolved by scene kind: "32 samples", or the proposal
    sampler's "24 samples placed by a proposal network (64 bins; 48 when rendering)"."""
    if cfg.sampler == "proposal":
        return (f"{cfg.fine_samples} samples placed by a proposal network ({cfg.samples_per_ray} bins; "
                f"{cfg.render_samples_per_ray or cfg.fine_samples} when rendering)")  # ProposalSampler.render_count
    return f"{cfg.samples_per_ray} samples" + (
        f" + {cfg.fine_samples} placed by their weights" if cfg.sampler == "hierarchical" else "")


def dry_run_lines(cfg, dataset, resumed_at: int | None = None, resumed_clock_s: float = 0.0,
                  ranks: int = 1) -> list[str]:
    """What ``train --dry-run`` says a real start would do, without a Trainer: the data (``dataset``;
    None: the built-in scene, not rendered by a dry run), its scene kind and the values that kind
    chose for the options left out, the background, and the steps of rays x samples (``resumed_at``:
    the step a resumed run's checkpoint holds, after ``resumed_clock_s`` s of training; ``ranks``: how many
    train it, each on its own batch)."""
    from types import SimpleNamespace

    from ..backend import resolve_arch, use_bf16
    from ..kind_defaults import KIND_TABLES, KIND_WORDS, kind_default, scene_kind
    from ..rendering.backgrounds import resolve_background
    from ..rendering.scene import Scene
    from ..wording import setting_words

    if dataset is None:  # the built-in scene, not rendered yet: an object in a box (--unbounded aside)
        scene = SimpleNamespace(ndc=False, unbounded=bool(cfg.unbounded))
        lines = [f"data: the built-in scene, {cfg.scene_views} training views of {cfg.scene_size}x{cfg.scene_size} "
                 "px (rendered and cached on the first real start)"]
    else:
        scene = Scene.from_dataset(dataset)
        lines = [f"data: {dataset.summary()}"]
        lines += [f"warning: {w}" for w in dataset.warnings] + [f"note: {n}" for n in dataset.notes]
    resolved = cfg.with_kind_defaults_for(scene)
    kind_values = dict(appearance_dim=cfg.appearance_dim_for(scene), refine_poses=cfg.refine_poses_for(scene),
                       skip_hidden=resolved.skip_hidden if resolved.skip_hidden is not None
                       else cfg.skip_hidden_for(scene), mixed_precision=cfg.mixed_precision_for(scene))
    chosen = []
    for name in KIND_CHOSEN:
        value = kind_values.get(name, getattr(resolved, name))
        if "march" in name and resolved.sampler != "grid":  # only the grid marches
            continue
        if value is not None and value != getattr(cfg, name):  # left out (None), or a sampler's own count
            chosen.append(f"{name} {setting_words(value)}")
    cut = ", cut out by its masks" if cut_out_object(scene) else ""
    lines.append(f"scene kind: {KIND_WORDS[scene_kind(scene)]}{cut}" + (
        f"; chosen for it (kind_defaults.py; a flag overrides each): {', '.join(chosen)}" if chosen else ""))
    unlike = [f"{name} {setting_words(getattr(cfg, name))} (this kind's: {setting_words(default)})"
              for name, table in KIND_TABLES.items() if getattr(cfg, name) is not None
              and (default := kind_default(name, table, scene)) is not None and getattr(cfg, name) != default
              and not ("march" in name and resolved.sampler != "grid")]
    if unlike:  # a --config copied from a run on another kind of scene carries that scene's choices
        lines.append(f"note: given (preset, --config or flag), not this scene kind's default: {', '.join(unlike)}")
    if dataset is not None:
        lines.append(f"background: {resolve_background(cfg.background, dataset.background).description}")
    samples = samples_words(resolved)
    arch = resolve_arch(cfg.arch)
    precision = "bf16" if use_bf16(cfg.mixed_precision_for(scene), arch) else "float32"
    if resumed_at is not None and cfg.nothing_left(resumed_at, resumed_clock_s):  # what the real resume says
        done = SimpleNamespace(cfg=cfg, step_count=resumed_at, clock_carried_s=resumed_clock_s)
        lines.append(nothing_to_train_note(done, "--steps N", "--time-limit SECONDS"))
        return lines
    per_rank = f" on each of {ranks} ranks" if ranks > 1 else ""  # as the real start line says it
    plan = plan_words(cfg, f"{batch_words(cfg)}{per_rank} x {samples}", resumed_at)
    lines.append(f"would train on {arch} ({precision} MLP) {plan}")
    return lines


def start_lines(trainer, resume: bool, run_folder=None, trains_on: str | None = None) -> list[str]:
    """What a run will do, one line each: its data (and the loader's warnings and notes), the
    background, appearance codes, pose refinement, an ignored ``--mixed-precision`` and the
    backend. Every front end prints these, so a choice made for the user is said everywhere.
    ``trains_on``: what trains on in a front end that opens a run past its steps paused (the
    window's "space"), instead of validating it again as ``train`` does; such a front end keeps
    to no time limit."""
    cfg = trainer.cfg
    lines = [f"data: {trainer.dataset.summary()}"]
    lines += [f"warning: {w}" for w in trainer.dataset.warnings] + [f"note: {n}" for n in trainer.dataset.notes]
    chosen = trainer.background_choice
    if trainer.val_name == "train":
        lines.append("note: no val or test views: validation scores training views, which are not held out")
    lines.append(f"background: {chosen.description}" + ("" if cfg.background != "auto" else
                                                        "; --background overrides it"))
    if chosen.warning:
        lines.append(f"warning: {chosen.warning}")
    if cfg.silhouette_weight > 0 and not has_transparency(trainer.train.rgba):
        lines.append(f"warning: --silhouette-weight {cfg.silhouette_weight:g} pulls each ray's opacity to its "
                     "pixel's alpha, and every training pixel is opaque (no alpha, no masks): the field learns the "
                     "background as a solid wall; --silhouette-weight 0 for photos without silhouettes")
    codes = trainer.field.appearance_dim
    if codes:
        lines.append(f"appearance: a code of {codes} numbers per training photo (exposure, white balance); new "
                     f"views use their mean" + (" (default for this scene kind; --appearance-dim 0 turns it off)"
                                                if cfg.appearance_dim is None else ""))
    if trainer.ray_batches.error_map is not None:
        lines.append("rays: half of each step's where the field's recent error is largest (the error map" + (
            "; the default for an object its masks cut out: --pixel-sampling uniform turns it off)"
            if cut_out_object(trainer.scene) else ")"))
    elif cfg.pixel_sampling == "error":  # RayBatches draws no map for these: say so, not "error" and uniform rays
        why = "whole images a step (--batch-images)" if cfg.batch_images > 0 else "only the pixels the masks keep"
        lines.append(f"note: --pixel-sampling error is not used with {why}: the rays are drawn uniformly")
    if trainer.pose_refinement is not None:
        whose = "an object its masks cut out" if cut_out_object(trainer.scene) else "this scene kind"
        lines.append(f"poses: each training camera's pose is refined (--pose-lr {cfg.pose_lr:g}); validation and new "
                     f"views carry the corrections of the training cameras near them" + (
                         f" (the default for {whose}: --no-refine-poses turns it off)" if cfg.refine_poses is None
                         else ""))
    if cfg.mixed_precision is None and trainer.renderer.bf16:
        lines.append("precision: the MLP runs in bf16 (this CPU has bf16 instructions); --no-mixed-precision for "
                     "float32")
    if cfg.image_order == "epochs" and not cfg.batch_images:  # (a flag that did nothing, said nothing)
        lines.append("warning: --image-order epochs ignored: it orders --batch-images batches, and without them each "
                     "step's rays come from every training image")
    if cfg.mixed_precision and not trainer.renderer.bf16:
        lines.append("warning: --mixed-precision ignored: this machine has no fast bf16 path (a CUDA GPU with "
                     "bf16, or a CPU with AVX-512), where bf16 would be emulated and far slower; the MLP runs in "
                     "float32")
    per_rank = f" on each of {trainer.ranks.size} ranks" if trainer.ranks.size > 1 else ""
    rays = batch_words(cfg) + (f" from {cfg.batch_images} images" if cfg.batch_images and cfg.batch_rays else "") \
        + per_rank
    samples = samples_words(cfg)
    live = trains_on is not None  # the window or the browser: no time limit, it trains until paused or closed
    lines.append(f"backend: {trainer.backend.arch}; training {plan_words(cfg, f'{rays} x {samples}', live=live)}"
                 + (f"; run folder {run_folder}" if run_folder is not None else "")
                 + (f"; resuming at step {trainer.step_count}" if resume else ""))
    if cfg.batch_images and cfg.image_order == "epochs" and trainer.ranks.size == 1:  # Keras counts epochs
        count, per = trainer.ray_batches.count, trainer.ray_batches.count // cfg.batch_images
        total = cfg.step_limit(not live)
        lines.append(f"note: an epoch is {per} steps ({count} training images in batches of {cfg.batch_images}, the "
                     "last part-batch dropped)" + (f": {total} steps {'are' if total != 1 else 'is'} "
                                                   f"{total / per:.3g} epoch{'s' if total != per else ''}"
                                                   if math.isfinite(total) else ""))
    if live and cfg.time_limit_s:
        lines.append(f"note: the run's {cfg.time_limit_s:g} s time limit does not apply here: it trains until paused "
                     "or closed (train --resume keeps to the limit)")
    if resume and live:  # past the steps the window trains to, whatever is left of train's time limit
        planned = cfg.step_limit(timed=False)
        if planned <= trainer.step_count:  # (a spent time limit changes nothing here)
            lines.append(f"note: the run already made its {planned} steps: it opens paused there; {trains_on} trains "
                         "on (or give a new total: --steps N)")
    elif resume and trainer.nothing_to_train():
        lines.append(nothing_to_train_note(trainer, "--steps N", "--time-limit SECONDS"))
    elif resume and cfg.time_limit_s and not live:
        lines.append(f"note: {trainer.clock_carried_s:.0f} s of the {cfg.time_limit_s:g} s time limit were used "
                     "before: it trains the rest (the limit is the run's total)")
    before, now = trainer.resumed_world_size, trainer.ranks.size
    if resume and before and before != now and not trainer.nothing_to_train():  # the checkpoint's ranks, not these
        def ranks(n: int) -> str:
            return "1 process" if n == 1 else f"{n} ranks"
        lines.append(f"note: the run trained on {ranks(before)} and goes on with {ranks(now)}: a step now takes "
                     f"{now} x {batch_words(cfg)} where it took {before} x (see docs/DISTRIBUTED.md)")
    return lines


def plan_words(cfg, step: str, resumed_at: int | None = None, live: bool = False) -> str:
    """The steps of ``step`` (a batch's words) a run makes and what ends it: "20000 steps (or until the 240 s time
    limit) of STEP", or without --steps under a limit "steps of STEP until the 240 s time limit"; ``resumed_at``: the
    checkpoint's step; ``live``: the window or the browser, which keep no time limit."""
    total = cfg.step_limit(not live)
    until = f"until the {cfg.time_limit_s:g} s time limit" if cfg.time_limit_s and not live else ""
    if not math.isfinite(total):
        return f"steps of {step} {until}" + ("" if resumed_at is None else f" (from the checkpoint's {resumed_at})")
    steps = f"{total} step{'s' * (total != 1)}" if resumed_at is None else \
        f"to step {total} (from the checkpoint's {resumed_at}: {max(total - resumed_at, 0)} more)"
    return steps + (f" (or {until})" if until else "") + f" of {step}"


def continue_command(trainer, command: str, timed: bool = False) -> str:
    """The command that trains the run on: ``command``, with a new total of steps once the run
    made its own (the same command again would only validate). The total is counted from the
    steps made, which the window trains past its planned ones: a resume refuses one below them.
    ``timed``: ``command`` is train's, which keeps the run's time limit: once that is spent, a new
    total of time (without --steps, 20000 steps of a run the time ended were no reason for more)."""
    cfg, made = trainer.cfg, trainer.step_count
    limit = cfg.time_limit_s if timed else 0.0
    if limit and trainer.time_used >= 1.0:
        return (f"{command} --time-limit {trainer.clock_s + limit:.0f} (a new total: the run trained "
                f"{trainer.clock_s:.0f} s)")
    steps = cfg.step_limit(timed)
    if made >= steps:
        return f"{command} --steps {made + steps} (a new total: the run made {made} steps)"
    return command


def nothing_to_train_note(trainer, steps: str, time: str, call: str = "{}") -> str:
    """What a resume of a run that already made its steps (or used its time limit) does, and how to
    train on: ``steps`` and ``time``, the new totals as the CLI's flags or the API's keywords (in
    ``call``), only those that would train: more steps train nothing once the time is spent, and a
    time limit adds no steps to a --steps given (it does to the default count: none under a limit)."""
    cfg = trainer.cfg
    made = cfg.step_limit() <= trainer.step_count
    spent = bool(cfg.time_limit_s and trainer.clock_carried_s >= cfg.time_limit_s)
    done = (f"made its {cfg.step_limit()} steps" if made else
            f"used its {cfg.time_limit_s:g} s time limit ({trainer.clock_carried_s:.0f} s trained)")
    how = (f"{call.format(steps)} and {time}" if made and spent else call.format(time) if spent else
           f"{call.format(steps)} or {time}" if cfg.steps is None else call.format(steps))
    return f"note: the run already {done}: nothing to train, it validates again; to train on, give the new total: {how}"


def kept_checkpoint(out_dir) -> str:
    """What a run folder still holds after a divergence: only a checkpoint that exists."""
    from pathlib import Path

    path = Path(out_dir) / "checkpoint.pt"
    if path.is_file():
        return f"The last good checkpoint, {path}, is untouched."
    return "No checkpoint was written before it diverged."
