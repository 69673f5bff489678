"""Training configuration: one dataclass, loadable from JSON, overridable from the CLI.

Each field declares its help text and ``--help`` group once, here (see :func:`option`);
``Literal`` type hints are the choices. ``taichi_nerf.cli`` turns every field into a
``--kebab-case`` flag from these declarations, so a new field is a new flag for free.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Literal

from .config_checks import MAX_SAMPLES, range_problems, type_problems, without_none
from .config_file import read_values, with_guesses
from .kind_defaults import (
    APPEARANCE_DEFAULTS,
    CUT_OUT_DEFAULTS,
    DENSITY_NOISE_DEFAULTS,
    LR_DEFAULTS,
    LR_WARMUP_DEFAULTS,
    MARCH_STEPS_DEFAULTS,
    MIXED_PRECISION_DEFAULTS,
    PIXEL_SAMPLING_DEFAULTS,
    PROPOSAL_COUNTS,
    PROPOSAL_RENDER_FACTOR,
    REFINE_POSES_DEFAULTS,
    SAMPLER_DEFAULTS,
    SKIP_HIDDEN_DEFAULTS,
    by_kind,
    chosen,
    kind_default,
    sampling_defaults,
)

BUILTIN_VIEWS, BUILTIN_SIZE = 100, 100  # the built-in scene's training views and image size (pixels a side)
DEFAULT_STEPS = 20000  # a run given neither --steps nor --time-limit (or one in the window, which has no limit)
DEFAULT_VAL_EVERY = 8  # data without a split of its own: every 8th photo held out as val (LLFF's llffhold)

# Choices of the choice fields: adding one is a one-line change here (the CLI and validate() follow).
Background = Literal["auto", "white", "black", "random"]
Sampler = Literal["grid", "stratified", "hierarchical", "proposal"]
Loss = Literal["mse", "huber", "pseudo-huber"]
Activation = Literal["relu", "softplus10"]
DensityActivation = Literal["softplus", "relu", "opacity-softplus10"]
Init = Literal["default", "torch", "glorot"]
LrSchedule = Literal["exponential", "step", "constant"]
ImageOrder = Literal["random", "epochs"]
Intervals = Literal["bins", "gaps"]
PresetName = Literal["keras", "pytorch3d"]  # = the keys of presets.PRESETS (a test keeps them equal)
Arch = Literal["auto", "cuda", "cpu"]  # = backend.ARCH_CHOICES (a test keeps them equal)
Logger = Literal["jsonl", "tensorboard"]
MaskMode = Literal["transparent", "ignore", "off"]  # = data.masks.MASK_MODES
PixelSampling = Literal["uniform", "error"]

# --help groups, in the order they are shown.
RECIPE, DATA, FIELD, SAMPLING, OPTIMISATION, BOOKKEEPING, BUILTIN = (
    "recipe", "data", "field", "sampling and rendering", "optimisation", "bookkeeping", "built-in scene")


def option(default, group: str, help: str, *, aliases: tuple[str, ...] = (), metavar=None, nargs=None):
    """A TrainConfig field with what its command-line flag needs: ``help`` (the default is
    appended by the CLI unless it is None: say what None means), its ``group`` in ``--help``,
    extra ``aliases`` (``--samples``), and ``metavar``/``nargs`` for list fields."""
    return field(default=default, metadata=dict(group=group, help=help, aliases=aliases, metavar=metavar, nargs=nargs))


@dataclass
class TrainConfig:
    """Everything that decides a run, a field per ``taichi-nerf train`` flag (its help is the
    flag's). Give fields as keywords, or read them with :meth:`from_file` (a run's config.json)
    or :meth:`from_dict`; :meth:`replace` applies a preset first, then every other change."""

    # --- recipe: a preset is applied first, every other value given wins over it (see replace())
    preset: PresetName | None = option(None, RECIPE,
                                       "start from a tutorial's recipe: keras (the Keras NeRF example) or "
                                   "pytorch3d (the PyTorch3D NeRF tutorial); see taichi_nerf/presets.py. Other "
                                   "options override its values (default: none)")
    # --- data: what to train on (the fields `data info` shares, DATASET_FIELDS)
    data: str | None = option(None, DATA,
                              "dataset folder or file (default: the built-in scene, generated once and cached)",
                              metavar="PATH")
    data_format: str | None = option(None, DATA, "dataset layout (default: detected; see docs/DATASETS.md)",
                                     aliases=("--format",), metavar="FORMAT")
    near: float | None = option(None, DATA, "near distance along each ray, in the scene's units (default: from the "
                                               "data; `taichi-nerf data info` shows it)")
    far: float | None = option(None, DATA, "far distance along each ray, in the scene's units (default: from the "
                                              "data; `taichi-nerf data info` shows it)")
    aabb: list[float] | None = option(None, DATA, "the scene box, in the scene's units (default: from the data; "
                                                        "`taichi-nerf data info` shows it)", nargs=6,
                                      metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"))
    every: int | None = option(None, DATA, "keep every N-th frame of each split (default: all)")
    limit: int | None = option(None, DATA, "keep at most N frames per split (default: all; 0: all, which lifts "
                                           "the limit of a run that is resumed)")
    val_every: int | None = option(None, DATA, "hold out every N-th photo as val where the data has no split of its "
                                   f"own (LLFF, COLMAP, a transforms.json without one; default: {DEFAULT_VAL_EVERY})")
    ndc: bool | None = option(None, DATA, "LLFF: sample in NDC (default: on for forward-facing captures)")
    downscale: int = option(1, DATA, "load images downscaled by this factor")
    unbounded: bool | None = option(None, DATA, "contract space beyond the scene box, for captures whose background "
                                    "is scenery (default: decided from the images' surround and the cameras)")
    mask_mode: MaskMode = option("transparent", DATA, "masks found beside the images (masks/, a frame's mask_path): "
                                 "transparent: masked-out pixels become transparent, so the object is learned alone "
                                 "on the background; ignore: they are left out of the loss (a moving distractor in a "
                                 "static scene); off: masks are not read")
    # --- field
    pos_frequencies: int = option(8, FIELD, "positional-encoding frequencies of the position")
    dir_frequencies: int = option(4, FIELD, "positional-encoding frequencies of the view direction")
    width: int = option(64, FIELD, "MLP width")
    depth: int = option(4, FIELD, "MLP depth (hidden layers)")
    density_noise: float | None = option(None, FIELD, "training only: std of Gaussian noise on the raw density "
                                         "(NeRF's raw_noise_std; default: 1 for forward-facing and unbounded scenes, "
                                         "whose content fills the frame, else 0)")
    density_bias: float = option(-4.0, FIELD,
                                 "initial density bias: softplus(-4) ~ 0.018, so rays start ~95% transparent")
    view_dependent: bool = option(True, FIELD,
                                  "colour depends on the view direction (off: on position only, as the Keras example)")
    frequency_base: float = option(1.0, FIELD,
                                   "lowest frequency of both harmonic encodings: f_k = base * 2^k (PyTorch3D's omega0)")
    include_input: bool = option(True, FIELD,
                                 "the encodings start with the raw vector (off: sin and cos only, as PyTorch3D's)")
    skip_layer: int | None = option(None, FIELD, "hidden layer (counted from 0) whose input gets the encoded position "
                                                 "again (default: depth // 2; 0: none)")
    activation: Activation = option("relu", FIELD,
                                    "hidden-layer activation (softplus10: softplus with beta 10, PyTorch3D's)")
    density_activation: DensityActivation = option(
        "softplus", FIELD, "raw output -> density (opacity-softplus10: softplus10(raw) is a sample's optical thickness "
                           "at the nominal spacing (far - near) / samples, PyTorch3D's opacity 1 - "
                           "exp(-softplus10(raw)))")
    feature_layer: bool = option(True, FIELD, "a linear feature layer between the trunk and the colour branch "
                                              "(off: the trunk's output feeds it directly, as both tutorials)")
    color_width: int | None = option(None, FIELD, "hidden width of the colour branch (default: max(width // 2, 16); "
                                                  "0: no hidden layer, colour is a linear read-out)")
    appearance_dim: int | None = option(None, FIELD, "length of each training image's learned appearance code "
                                        "(exposure, white balance), fed to the colour branch; new views use the "
                                        f"codes' mean (0: none; default: {by_kind(APPEARANCE_DEFAULTS)})")
    init: Init = option("default", FIELD, "weights at the start: default: torch's, with a near-zero density layer; "
                                          "torch: torch's everywhere; glorot: Glorot-uniform weights, zero biases "
                                          "(Keras)")
    # --- sampling and rendering
    sampler: Sampler | None = option(None, SAMPLING, "grid: occupancy grid + packed marching; stratified; "
                                     "hierarchical: coarse + importance samples; proposal: a small density network "
                                     f"places fine_samples (proposal.py; default: {by_kind(SAMPLER_DEFAULTS)})")
    samples_per_ray: int = option(32, SAMPLING, "samples per ray of stratified sampling, the hierarchical coarse "
                                  "pass, the grid's warm-up and the proposal network's bins (the proposal sampler: "
                                  f"{PROPOSAL_COUNTS['box'][0]} where left at the default)", aliases=("--samples",))
    intervals: Intervals = option("bins", SAMPLING, "stratified sampler: the length each sample stands for when "
                                                    "compositing; bins: its bin; gaps: the distance to the next "
                                                    "sample, and 1e10 for the last, so the far end is opaque (the "
                                                    "original NeRF's and the Keras example's)")
    render_samples_per_ray: int = option(0, SAMPLING, "samples per ray when rendering (0: same as training; "
                                         f"proposal: {PROPOSAL_RENDER_FACTOR} x fine_samples)")
    fine_samples: int = option(64, SAMPLING, "hierarchical: importance samples added per ray; proposal: the field's "
                               f"({PROPOSAL_COUNTS['box'][1]} for objects, {PROPOSAL_COUNTS['ndc'][1]} forward-facing, "
                               f"{PROPOSAL_COUNTS['unbounded'][1]} unbounded, where left at the default)")
    proposal_width: int = option(32, SAMPLING, "proposal: hidden width of its one-layer density network")
    grid_resolution: int = option(64, SAMPLING, "occupancy grid cells per side")
    grid_warmup: int = option(30, SAMPLING, "steps of plain stratified sampling before the first grid update")
    grid_update_every: int = option(16, SAMPLING, "steps between occupancy grid updates")
    march_steps: int | None = option(None, SAMPLING, "grid marching steps across the scene box's diagonal (unbounded "
                                                     "scenes: half across the box, half through the contracted shell; "
                                                     f"default: {by_kind(MARCH_STEPS_DEFAULTS)})")
    render_march_steps: int | None = option(None, SAMPLING, "grid marching steps across the box when rendering "
                                                            "(default: objects 2x --march-steps, others 1x)")
    skip_hidden: bool | None = option(None, SAMPLING, "training: densities first, without gradients, then the full "
                                                      "pass only for samples in front of where each ray turned "
                                                      f"opaque (default: {by_kind(SKIP_HIDDEN_DEFAULTS)}; "
                                                      "off with the proposal sampler)")
    clip_to_box: bool = option(True, SAMPLING, "stratified/hierarchical samples only where rays cross the scene box "
                                               "(off: across all of [near, far], as both tutorials)")
    background: Background = option("auto", SAMPLING, "background the images are composited onto (auto: transparency "
                                    "-> white, a uniform black/white/coloured surround -> that colour, a surround "
                                    "that is scenery -> random per ray; random: per ray, training only)")
    # --- optimisation
    steps: int | None = option(None, OPTIMISATION, f"optimisation steps (default: {DEFAULT_STEPS}; under a time limit, "
                                                   "as many as the time allows)")
    batch_rays: int = option(512, OPTIMISATION, "rays per step (0 with batch_images: every pixel of those images)")
    batch_images: int = option(0, OPTIMISATION, "draw each step's rays from this many random training images "
                                                "(0: from all of them)")
    pixel_sampling: PixelSampling | None = option(None, OPTIMISATION, "which pixels a step's rays come from: uniform, "
                                                  "or error: half of them where the field's recent error is "
                                                  "largest (ray_batches.py; default: "
                                                  f"{CUT_OUT_DEFAULTS['pixel_sampling']} for an object that mask files "
                                                  f"cut out, else {by_kind(PIXEL_SAMPLING_DEFAULTS)})")
    image_order: ImageOrder = option("random", OPTIMISATION, "with batch_images: random: distinct random images each "
                                                             "step (PyTorch3D's); epochs: every image once per pass, "
                                                             "in a new order each pass, the last part-batch dropped "
                                                             "(Keras's)")
    lr: float | None = option(None, OPTIMISATION, f"initial learning rate (default: {by_kind(LR_DEFAULTS)})")
    lr_final: float = option(5e-4, OPTIMISATION, "final learning rate (see lr_schedule)")
    lr_warmup: int | None = option(None, OPTIMISATION, "steps over which the rate rises linearly to the schedule's "
                                   f"at the start (0: none; default: {by_kind(LR_WARMUP_DEFAULTS)})")
    lr_schedule: LrSchedule = option("exponential", OPTIMISATION, "exponential: lr decays to lr_final over the steps; "
                                     "step: lr, then lr_final from lr_step_at of the steps on; constant: lr throughout")
    lr_step_at: float = option(0.75, OPTIMISATION,
                               "step schedule: the fraction of the steps where lr drops to lr_final")
    adam_beta2: float = option(0.99, OPTIMISATION, "Adam's second-moment decay (Instant-NGP's 0.99; the "
                                                   "tutorials' torch/Keras default is 0.999)")
    adam_eps: float = option(1e-10, OPTIMISATION, "Adam's epsilon (torch's default is 1e-8, Keras's 1e-7)")
    loss: Loss = option("mse", OPTIMISATION, "colour loss (pseudo-huber: the PyTorch3D tutorial's "
                                             "((1 + d^2 / s^2).sqrt() - 1) * s, s = huber_delta); the silhouette loss "
                                             "is pseudo-huber with it, huber otherwise")
    huber_delta: float = option(0.1, OPTIMISATION,
                                "huber and pseudo-huber losses: where they turn from quadratic to linear")
    silhouette_weight: float = option(0.0, OPTIMISATION, "weight of the opacity-vs-alpha loss (PyTorch3D tutorial)")
    distortion_weight: float = option(0.002, OPTIMISATION, "proposal sampler: weight of mip-NeRF 360's distortion "
                                      "loss, which gathers each ray's weight into thin surfaces (0: off)")
    seed: int = option(0, OPTIMISATION, "random seed")
    refine_poses: bool | None = option(None, OPTIMISATION, "learn a small rigid correction of each training "
                                       "camera's pose, for poses that are not exact; every other camera (val, "
                                       "videos, the viewers) gets the corrections of the training cameras near it "
                                       "(default: on for an object that mask files cut out, else "
                                       f"{by_kind(REFINE_POSES_DEFAULTS)})")
    pose_lr: float = option(1e-4, OPTIMISATION, "refine_poses: initial learning rate of the corrections (decays "
                                                "with the schedule, in proportion to lr)")
    mixed_precision: bool | None = option(None, OPTIMISATION, "MLP in bf16 autocast where bf16 is fast (CUDA, "
                                          "AVX-512; TF32 is always on CUDA). Default: bf16 on CPUs with AVX512-BF16 "
                                          "or AMX, but not for unbounded scenes; float32 elsewhere, CUDA included")
    # --- bookkeeping
    out: str = option("runs/latest", BOOKKEEPING, "output folder", metavar="DIR")
    eval_every: int = option(1000, BOOKKEEPING, "steps between validations (0: only at the end)")
    eval_views: int = option(4, BOOKKEEPING, "validation views rendered each time (up to 16 at the end)")
    preview_every: int = option(2000, BOOKKEEPING, "steps between preview images (0: only at the end)")
    checkpoint_every: int = option(2000, BOOKKEEPING, "steps between checkpoints (0: only at the end and on Ctrl-C)")
    log_every: int = option(100, BOOKKEEPING, "steps between metric log lines")
    arch: Arch = option("auto", BOOKKEEPING, "compute backend (auto: CUDA if usable, else CPU)")
    progress: bool = option(True, BOOKKEEPING, "show progress bars")
    logger: Logger = option("jsonl", BOOKKEEPING, "metrics.jsonl and curves.png only, or also tensorboard "
                                                  "(OUT/tensorboard/; needs taichi-nerf[tensorboard])")
    time_limit_s: float = option(0.0, BOOKKEEPING, "stop and save after this many seconds of wall time (0: none), "
                                 "the run's total: a resume trains what is left; without --steps it alone ends the "
                                 "run; lr decays over its last 40%; "
                                 "validations and previews keep to 5% of it",
                                 aliases=("--time-limit",))
    # --- built-in scene (when no --data is given)
    scene_views: int = option(BUILTIN_VIEWS, BUILTIN, "training views of the built-in scene")
    scene_size: int = option(BUILTIN_SIZE, BUILTIN, "image size of the built-in scene in pixels")

    def __post_init__(self):
        for name in ("data", "out"):  # a pathlib.Path from Python is as good as its text
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        # numpy's and torch's numbers and arrays as Python's (np.int64(500), np.array(aabb), a torch sweep's lr)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value).__module__ in ("numpy", "torch") and hasattr(value, "tolist"):
                setattr(self, f.name, value.tolist())

    def validate(self) -> "TrainConfig":
        """Every value of the right type, finite and in range, or one ValueError naming them all
        (config_checks.py)."""
        hints = field_types()
        problems = type_problems(self, hints)
        if not problems:  # comparisons would raise TypeError on a wrong type
            problems = range_problems(self, hints, choice_fields())
        if problems:
            raise ValueError("bad configuration: " + "; ".join(problems))
        return self

    def with_absolute_paths(self) -> "TrainConfig":
        """``data`` and ``out`` as absolute paths, so the saved config works from any folder."""
        return dataclasses.replace(self, data=None if self.data is None else _absolute(self.data),
                                   out=_absolute(self.out))

    def appearance_dim_for(self, scene) -> int:
        """The appearance code length a run on ``scene`` uses: the option, else by scene kind."""
        return chosen(self.appearance_dim, APPEARANCE_DEFAULTS, scene)

    def refine_poses_for(self, scene) -> bool:
        """Whether a run on ``scene`` refines its training poses: the option, else by scene kind (on for an
        object that mask files cut out)."""
        return kind_default("refine_poses", REFINE_POSES_DEFAULTS, scene) if self.refine_poses is None \
            else self.refine_poses

    def march_steps_for(self, scene) -> int:
        """Grid marching steps across the box a run on ``scene`` uses: the option, else by scene kind."""
        return chosen(self.march_steps, MARCH_STEPS_DEFAULTS, scene)

    def skip_hidden_for(self, scene) -> bool:
        """Whether training on ``scene`` drops hidden samples before the full pass: the option, else by scene kind."""
        return chosen(self.skip_hidden, SKIP_HIDDEN_DEFAULTS, scene)

    def mixed_precision_for(self, scene) -> bool | None:
        """bf16 for the MLP on ``scene``: the option, else by scene kind (None: as the CPU allows, backend.use_bf16)."""
        return chosen(self.mixed_precision, MIXED_PRECISION_DEFAULTS, scene)

    def with_kind_defaults_for(self, scene) -> "TrainConfig":
        """lr, lr_warmup, pixel_sampling, density noise, sampler and march steps resolved for ``scene``: saved,
        they resume alike."""
        return dataclasses.replace(self, lr=chosen(self.lr, LR_DEFAULTS, scene),
                                   density_noise=chosen(self.density_noise, DENSITY_NOISE_DEFAULTS, scene),
                                   lr_warmup=chosen(self.lr_warmup, LR_WARMUP_DEFAULTS, scene),
                                   pixel_sampling=self.pixel_sampling
                                   or kind_default("pixel_sampling", PIXEL_SAMPLING_DEFAULTS, scene),
                                   **sampling_defaults(self, scene, MAX_SAMPLES))

    def step_limit(self, timed: bool = True) -> float:
        """The step count that ends a run: ``steps``; without it DEFAULT_STEPS, or none (inf) under a time limit that
        applies (``timed``: not in the window or the browser, which train until paused). A fixed count under a limit
        ended a fast host's runs early (ethiopianHead: 20000 steps in 169 of 240 s, 0.4 dB short of its 240 s)."""
        if self.steps is not None:
            return self.steps
        return float("inf") if timed and self.time_limit_s else DEFAULT_STEPS

    def nothing_left(self, step: int, clock_s: float) -> bool:
        """Whether a run resumed at ``step`` after ``clock_s`` s of training has made its steps or used its limit."""
        return self.step_limit() <= step or bool(self.time_limit_s and clock_s >= self.time_limit_s)

    @property
    def eval_samples(self) -> int:
        return self.render_samples_per_ray or self.samples_per_ray

    @property
    def max_samples_per_ray(self) -> int:
        """Largest ray any sampler can emit, known before the renderer exists: Taichi's autodiff stack is
        sized from it at start-up (the Renderer's own ``max_samples_per_ray`` is exact, and checked against it)."""
        most = max(self.samples_per_ray, self.eval_samples)
        if self.sampler in ("grid", None):  # None: the grid or the proposal sampler, by scene kind
            most = max(most, (self.march_steps or max(MARCH_STEPS_DEFAULTS.values())) + 1)
        if self.sampler in ("hierarchical", "proposal"):
            most = most + self.fine_samples
        return most

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Fields from a dict (a --config file, a checkpoint's config): its ``preset`` first,
        then every other key given wins over it; missing keys keep their defaults (so the
        configs of older checkpoints load with today's defaults)."""
        if not isinstance(values, dict):  # a file's path listed its letters as unknown keys
            raise TypeError(f"from_dict takes a dict of fields, got {type(values).__name__}: for a JSON file give "
                            "TrainConfig.from_file(path)")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown configuration keys: {unknown_fields(unknown)}")
        base = cls().with_preset(values["preset"]) if values.get("preset") is not None else cls()
        return dataclasses.replace(base, **values)

    @classmethod
    def from_file(cls, path) -> "TrainConfig":
        if isinstance(path, dict):  # (pathlib said "expected str, bytes or os.PathLike object, not dict")
            raise TypeError("from_file takes a JSON file's path, got dict: for a dict of fields give "
                            "TrainConfig.from_dict(values)")
        values = read_values(path)
        hints = field_types()  # a count written 2e4 or 20000.0 is JSON's float of a whole number: taken as one
        values = {k: int(v) if without_none(hints.get(k)) is int and isinstance(v, float) and v.is_integer() else v
                  for k, v in values.items()}
        try:
            cfg = cls.from_dict(values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        problems = type_problems(cfg, hints)  # the file's own mistakes name the file
        if problems:
            raise ValueError(f"{path}: {'; '.join(problems)}")
        return cfg

    def dataset_options(self) -> dict:
        """Keyword arguments of :func:`taichi_nerf.runs.datasets.load_dataset` for this run (the
        data loaders' options plus the built-in scene's)."""
        return dict(format=self.data_format, downscale=self.downscale, near=self.near, far=self.far, aabb=self.aabb,
                    every=self.every, limit=self.limit or None, val_every=self.val_every, ndc=self.ndc,
                    unbounded=self.unbounded,
                    mask_mode=self.mask_mode,
                    views=self.scene_views, size=self.scene_size,
                    progress=self.progress)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` (None values ignored: "not given"). A ``preset`` among them is
        applied first, so the other changes win over its values (flags over --preset)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:  # dataclasses.replace's own TypeError names __init__, not what to do
            raise TypeError(f"not TrainConfig fields: {unknown_fields(unknown)} (taichi_nerf/config.py lists them; "
                            f"videos of a trained field: render_path or render_orbit)")
        base = self.with_preset(changes["preset"]) if "preset" in changes else self
        return dataclasses.replace(base, **changes)

    def with_preset(self, name: str) -> "TrainConfig":
        """A copy with preset ``name``'s values (taichi_nerf/presets.py) set over this config's."""
        from .presets import PRESETS

        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose {' or '.join(PRESETS)}")
        return dataclasses.replace(self, preset=name, **PRESETS[name].values)


def given_config(config, name: str = "config") -> "TrainConfig":
    """``config`` when it is a TrainConfig, else a TypeError saying how to make one: the API's train, open_run and
    Trainer take one (a dict or a JSON file's path failed inside, "'dict' object has no attribute 'validate'")."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"{name} must be a TrainConfig, got {type(config).__name__}: give TrainConfig.from_file(path) "
                        "for a JSON file, TrainConfig.from_dict(values) or the fields as keywords (train(steps=500))")
    return config


def _absolute(path: str) -> str:
    """An absolute path, symlinks kept (os.path.abspath, not resolve: a user's linked folder stays theirs)."""
    return os.path.abspath(os.path.expanduser(path))


def unknown_fields(names: list[str]) -> str:
    """The unknown names, each with the field it most likely meant (config_file.with_guesses)."""
    fields = dataclasses.fields(TrainConfig)
    flags = {alias.lstrip("-").replace("-", "_"): f.name for f in fields for alias in f.metadata.get("aliases", ())}
    return with_guesses(names, [f.name for f in fields], flags)


def field_types() -> dict:
    """TrainConfig's type hints, resolved (the annotations are strings under __future__ annotations)."""
    return typing.get_type_hints(TrainConfig)


def choice_fields() -> dict[str, tuple]:
    """Fields typed ``Literal[...]`` (or ``Literal[...] | None``) and their choices."""
    return {name: typing.get_args(without_none(hint)) for name, hint in field_types().items()
            if typing.get_origin(without_none(hint)) is Literal}


# The fields that say what to train on: the dataset flags `train`, `gui` and `data info` share.
DATASET_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["group"] == DATA)
