"""Defaults that depend on the kind of scene: an object in a box, a forward-facing capture
(NDC) or scenery all around (unbounded). Each table was chosen from measurements
(docs/BENCHMARKS.md); ``TrainConfig``'s ``*_for(scene)`` methods read them where an option is
left to its default (None)."""
from __future__ import annotations

# Appearance code length and pose refinement by scene kind (docs/BENCHMARKS.md, "Appearance
# codes and pose refinement"): on only where they raised val PSNR on the measured sets. Codes:
# ngp-360-real +0.4 dB (two seeds), llff-real -0.4 dB (its val photos have their own exposure,
# which the mean code cannot know); objects on a background (box) are renders or one-exposure
# DSLR captures. Pose refinement, its val cameras drawn with the corrections carried to them
# (rendering/carried_corrections.py), on the capture-effects sets whose pose error drifts from photo to
# photo as SfM's does ("Pose error that drifts", 180 s, two seeds): ngp-360-real +0.6 and +0.8 dB,
# ngp-360-env (exact poses) -0.07 and -0.08; llff-real -0.06 and -0.12 (a refined step costs ~22% more), so
# forward-facing scenes keep the poses as given. That rests on one weak set: llff-real's 20 photos span
# a few drift widths, so most of its error is one that all photos share, which the field absorbs.
# (Objects cut out by masks: CUT_OUT_DEFAULTS.)
APPEARANCE_DEFAULTS = {"box": 0, "ndc": 0, "unbounded": 8}
REFINE_POSES_DEFAULTS = {"box": False, "ndc": False, "unbounded": True}
# Grid marching steps across the box by scene kind (docs/BENCHMARKS.md, "Samples per ray by
# scene kind"). Unbounded scenes march their whole contracted space, where the grid carves
# little of the scenery: 128 steps (36 samples per ray instead of 51) gave more steps and +0.2 to
# +0.6 dB on ngp-360-env and ngp-360-real; 96 gained less. Objects: a ray crosses the object's
# whole depth, front and back, so its samples scale with the steps; 96 gave 1.3-1.6x the steps
# and +0.8 dB on the built-in scene at 60 s, +2.3 dB on ethiopianHead at 240 s ("Marching steps
# for objects"). Forward-facing scenes: 128 was -0.1 dB on llff-backdrop and llff-real.
MARCH_STEPS_DEFAULTS = {"box": 96, "ndc": 192, "unbounded": 128}
# Rendering (validation, previews, videos) marches this many times as finely as training. It has
# no backward pass and stops rays once they are opaque, so finer steps cost it far less than they
# would cost a step; the field's surfaces come out closer to where they are. An object's box:
# +0.3 dB on the cow (36.3 dB) with 192 training steps, +0.9 dB with 96 ("Marching steps for objects").
RENDER_MARCH_FACTOR = {"box": 2, "ndc": 1, "unbounded": 1}
# What a run saved without its march_steps (before they were written out, 2026-12-04) marched.
MARCH_STEPS_BEFORE_WRITTEN = {"box": 192, "ndc": 192, "unbounded": 128}
# Training drops the samples behind where a ray turned opaque (docs/BENCHMARKS.md, "Hidden
# samples"). On trained fields, 19% of an unbounded scene's marched samples were visible: 1.5x the
# steps, +0.4 dB on ngp-360-env. Forward-facing scenes (48% visible) came out level, and objects
# in a box (37-98%, few samples per ray) lost steps to the extra density pass.
SKIP_HIDDEN_DEFAULTS = {"box": False, "ndc": False, "unbounded": True}
# Learning rate and its linear warm-up by scene kind (docs/BENCHMARKS.md, "Learning rate and
# warm-up"). Forward-facing and unbounded scenes: 1e-2 after 500 warm-up steps, +0.4-0.5 dB on
# llff-backdrop and ngp-360-env at 180 s, level on the capture-effects sets. Objects disagree
# (the built-in scene gained 0.3-0.7 dB at 1e-2, ethiopianHead lost 0.3-0.4 dB; a warm-up alone
# splits them the other way), so they keep 5e-3 without a warm-up.
LR_DEFAULTS = {"box": 5e-3, "ndc": 1e-2, "unbounded": 1e-2}
LR_WARMUP_DEFAULTS = {"box": 0, "ndc": 500, "unbounded": 500}
# Noise on the raw density while training (NeRF's raw_noise_std) where the content fills the frame: it
# keeps a forward-facing backdrop from settling into fog (+0.7 to +1 dB at equal steps on the 64 px
# LLFF set; off, it did not help ngp-360-env or llff-backdrop: "Samples per ray by scene kind"). Objects: 0.
DENSITY_NOISE_DEFAULTS = {"box": 0.0, "ndc": 1.0, "unbounded": 1.0}

# Where each step's rays come from (training/ray_batches.py; docs/BENCHMARKS.md, "Model size by scene kind;
# rays drawn by an error map"). Half of them by an error map was level or -0.1 to -0.2 dB on the sets
# that fill the frame; on objects it costs a third of the steps or more (rays go to the object): the
# clean renders level on the Zen 5 host, the built-in scene -0.1 to -0.7 dB at 60 s on the AVX2 EPYC.
PIXEL_SAMPLING_DEFAULTS = {"box": "uniform", "ndc": "uniform", "unbounded": "uniform"}
# An object that mask files cut out of its photos (Scene.cut_out: a turntable capture, --mask-mode
# transparent) takes these instead: the error map sends rays from the background it learns first to the
# object. ethiopianHead, two seeds on each of two CPUs: +0.26 and +0.25 dB, and a less blurred face
# (scripts/preview_blur.py; "A time limit without --steps, and three levers"); the synthetic turntable
# (scenes/turntable.py, 256x192), two seeds: +0.20 dB ("Why ethiopianHead's face stays soft").
# Pose refinement, its val cameras drawn with the corrections carried to them
# (rendering/carried_corrections.py): ethiopianHead +0.39 dB on two seeds against the same day's
# controls, its face 1.25 px blurred against 1.25-1.5; the synthetic turntable, whose poses are exact,
# -0.16 dB (a refined step costs ~20% more). Real captures' poses are never exact ("Pose corrections
# carried to new cameras").
CUT_OUT_DEFAULTS = {"pixel_sampling": "error", "refine_poses": True}

# bf16 autocast for the MLP where the CPU has bf16 instructions (backend.use_bf16; docs/BENCHMARKS.md,
# "bf16 on the CPU"): 6-40% more steps; +0.1 to +0.7 dB on objects and forward-facing sets, -0.06 and
# -0.09 dB on the two unbounded ones (their step is the MLP's least), which keep float32. With the
# proposal sampler (mostly MLP) bf16 gave 10-13% more steps and the same PSNR (+0.09, -0.05 dB): still float32.
# None: left to the CPU (bf16 where it has bf16 instructions); False: float32.
MIXED_PRECISION_DEFAULTS = {"box": None, "ndc": None, "unbounded": False}

# The sampler by scene kind (docs/BENCHMARKS.md, "A proposal network where the grid carves little").
# Unbounded scenery: a proposal network's 24 samples per ray, placed where its histogram sees
# surfaces, against the grid's marching: +0.6 dB on ngp-360-env at 180 s with 74% of the steps,
# level on ngp-360-real (+0.1 dB with aligned val cameras). Forward-facing scenes were level
# within a run's spread (llff-backdrop +0.15 dB, llff-real -0.08), and objects' grids carve
# their empty box to a few samples per ray: both keep the grid.
SAMPLER_DEFAULTS = {"box": "grid", "ndc": "grid", "unbounded": "proposal"}
# The proposal sampler's bins and the field's samples per ray, where samples_per_ray and
# fine_samples are left at their defaults (which are the stratified and hierarchical samplers'):
# 24 samples without the hidden-sample pass beat 32 with it on ngp-360-env (25.05 against 24.81
# dB), and 16 beat 32 on llff-backdrop (25.61 against 25.42).
PROPOSAL_COUNTS = {"box": (64, 32), "ndc": (64, 16), "unbounded": (64, 24)}
# Rendering (no backward pass) places this many times the training samples where
# render_samples_per_ray is left at 0: with 2x, pixels whose depth jumps off their neighbours' fell
# from 0.84% to 0.32% (ngp-360-env; 4x: 0.11%, the grid's level) at +0.02 dB and 1.8x the render time.
PROPOSAL_RENDER_FACTOR = 2


def sampling_defaults(cfg, scene, most_steps: int) -> dict:
    """The sampler and marching steps (rendering's at most ``most_steps``) ``cfg`` resolves to on
    ``scene`` and, for the proposal sampler, its counts (each where left at its default;
    rendering's from the training count) and no hidden-sample pass (few of its samples are
    hidden): the changes for ``TrainConfig.with_kind_defaults_for``."""
    sampler = chosen(cfg.sampler, SAMPLER_DEFAULTS, scene)
    steps = chosen(cfg.march_steps, MARCH_STEPS_DEFAULTS, scene)
    render = cfg.render_march_steps or min(RENDER_MARCH_FACTOR[scene_kind(scene)] * steps, max(steps, most_steps))
    changes = {"sampler": sampler, "march_steps": steps, "render_march_steps": render}
    if sampler == "proposal":
        fresh = type(cfg)()
        for name, count in zip(("samples_per_ray", "fine_samples"), PROPOSAL_COUNTS[scene_kind(scene)]):
            if getattr(cfg, name) == getattr(fresh, name):  # left at the other samplers' default
                changes[name] = count
        if cfg.render_samples_per_ray == 0:
            changes["render_samples_per_ray"] = PROPOSAL_RENDER_FACTOR * changes.get("fine_samples", cfg.fine_samples)
        if cfg.skip_hidden is None:
            changes["skip_hidden"] = False
    return changes


# The scene kinds in a message's words.
KIND_WORDS = {"box": "an object in a box", "ndc": "forward-facing (NDC)", "unbounded": "unbounded scenery"}


def scene_kind(scene) -> str:
    """"ndc" (forward-facing), "unbounded" (scenery all around) or "box" (an object)."""
    return "ndc" if scene.ndc else ("unbounded" if scene.unbounded else "box")


def chosen(value, table: dict, scene):
    """``value`` where the option was set (not None), else ``table``'s entry for ``scene``'s kind."""
    return table[scene_kind(scene)] if value is None else value


def cut_out_object(scene) -> bool:
    """An object that mask files cut out of its photos (``Scene.cut_out``), whose defaults CUT_OUT_DEFAULTS changes."""
    return scene_kind(scene) == "box" and getattr(scene, "cut_out", False)


def kind_default(name: str, table: dict, scene):
    """Option ``name``'s default on ``scene``: CUT_OUT_DEFAULTS' for an object cut out by mask files, else
    ``table``'s entry for its kind."""
    if name in CUT_OUT_DEFAULTS and cut_out_object(scene):
        return CUT_OUT_DEFAULTS[name]
    return table[scene_kind(scene)]


KIND_NAMES = {"box": "objects", "ndc": "forward-facing", "unbounded": "unbounded"}


def by_kind(table: dict) -> str:
    """A kind table in a flag's help, from the table itself so the help cannot go stale:
    "grid for objects and forward-facing scenes, proposal for unbounded scenes"."""
    def said(value) -> str:
        return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
            else str(value)

    values = list(dict.fromkeys(table.values()))
    if len(values) == 1:
        return f"{said(values[0])} for every scene kind"
    def kinds(value) -> str:  # "objects", "forward-facing and unbounded scenes"
        names = [KIND_NAMES[k] for k in table if table[k] == value]
        return " and ".join(names) + ("" if names[-1] == "objects" else " scenes")

    return ", ".join(f"{said(v)} for {kinds(v)}" for v in values)


# Each option left to its scene kind (None), and its table.
KIND_TABLES = {"sampler": SAMPLER_DEFAULTS, "march_steps": MARCH_STEPS_DEFAULTS, "skip_hidden": SKIP_HIDDEN_DEFAULTS,
               "lr": LR_DEFAULTS, "lr_warmup": LR_WARMUP_DEFAULTS, "density_noise": DENSITY_NOISE_DEFAULTS,
               "pixel_sampling": PIXEL_SAMPLING_DEFAULTS, "appearance_dim": APPEARANCE_DEFAULTS,
               "refine_poses": REFINE_POSES_DEFAULTS, "mixed_precision": MIXED_PRECISION_DEFAULTS}
