"""Presets: the two tutorials this project grew from, as TrainConfig values, run through the
project's own kernels (Taichi rays, sampling, encoding and compositing; a torch MLP).

``taichi-nerf train --preset keras`` / ``tn.train(preset="pytorch3d")``. A preset is applied
over the base configuration (the defaults or a --config file) first; every option given
beside it wins (``--preset pytorch3d --steps 500``). Each preset's docstring below cites every
number against its tutorial, and says where the project's pipeline differs.
"""
from __future__ import annotations

from dataclasses import dataclass

STEP_COST = ("batch_rays", "batch_images", "samples_per_ray", "width")  # what a step costs on a CPU


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # the tutorial, by its title
    values: dict  # TrainConfig field -> value
    doc: str
    cpu_warning: str = ""  # said when the run is on a CPU: the tutorial ran on a GPU

    def cpu_warning_for(self, cfg) -> str:
        """:attr:`cpu_warning`, unless ``cfg`` changed what a step's cost its figures state comes from
        (the rays, samples or width of a step): a shrunk run is not the tutorial's."""
        changed = any(key in self.values and getattr(cfg, key) != self.values[key] for key in STEP_COST)
        return "" if changed else self.cpu_warning

    def describe(self, cfg=None) -> str:
        """One line: the preset, what it sets, and which of those ``cfg`` overrides."""
        overridden = {} if cfg is None else {k: getattr(cfg, k) for k, v in self.values.items() if getattr(cfg, k) != v}
        text = f"preset {self.name} ({self.source}): " + ", ".join(f"{k}={v}" for k, v in self.values.items())
        if overridden:
            text += "; overridden: " + ", ".join(f"{k}={v}" for k, v in overridden.items())
        return text


KERAS = Preset(
    name="keras",
    source='Keras example "3D volumetric rendering with NeRF"',
    values=dict(
        pos_frequencies=16, frequency_base=1.0, include_input=True, view_dependent=False,
        width=64, depth=8, skip_layer=5, activation="relu", feature_layer=False, color_width=0,
        density_activation="relu", density_bias=0.0, init="glorot",
        sampler="stratified", samples_per_ray=32, render_samples_per_ray=0, clip_to_box=False, near=2.0, far=6.0,
        intervals="gaps",
        batch_images=5, batch_rays=0, image_order="epochs",
        loss="mse", silhouette_weight=0.0,
        lr=1e-3, lr_warmup=0, lr_schedule="constant", steps=320, adam_beta2=0.999, adam_eps=1e-7,
        density_noise=0.0, appearance_dim=0,
    ),
    doc="""The Keras example (keras.io/examples/vision/nerf), number by number:

    POS_ENCODE_DIMS = 16: ``encode_position`` returns [x, sin(2^k x), cos(2^k x)] for
        k = 0..15 -> pos_frequencies=16, frequency_base=1 (2^0), include_input (x itself):
        3 + 2*16*3 = 99 inputs. Only positions go in -> view_dependent=False.
    ``get_nerf_model(num_layers=8)``: 8 x Dense(units=64, activation="relu") -> depth=8,
        width=64, activation=relu; ``if i % 4 == 0 and i > 0`` concatenates the inputs after
        layer i = 4 (the fifth), so layer 5 takes [x, inputs] -> skip_layer=5. Its last layer,
        Dense(4), is read straight off the trunk: rgb = sigmoid(out[:3]),
        sigma = relu(out[3]) -> feature_layer off, color_width=0 (colour is a linear
        read-out), density_activation=relu; Dense's Glorot-uniform weights and zero biases
        -> init=glorot, density_bias=0.
    NUM_SAMPLES = 32, ``render_flat_rays``: t = linspace(near=2.0, far=6.0, 32) plus
        uniform noise * (far - near) / 32 when training -> sampler=stratified (equal bins,
        jittered), samples_per_ray=32, near=2, far=6; no scene box -> clip_to_box off.
    ``render_rgb_depth``: ``delta = t[1:] - t[:-1]`` and 1e10 for the last sample ->
        intervals=gaps (the far end is opaque).
    BATCH_SIZE = 5 images of 100 x 100, every ray of each -> batch_images=5, batch_rays=0;
        ``shuffle(...).batch(BATCH_SIZE, drop_remainder=True)`` each epoch -> image_order=epochs.
    ``keras.losses.MeanSquaredError`` -> loss=mse; ``keras.optimizers.Adam()``: Keras's
        default learning rate 1e-3, no schedule -> lr=1e-3, lr_schedule=constant; its
        beta_2 0.999 and epsilon 1e-7 -> adam_beta2=0.999, adam_eps=1e-7.
    EPOCHS = 20 over its 84 training images in 16 batches of 5 (drop_remainder) = 320 steps.
    No noise on the density and no per-image appearance code -> density_noise=0,
        appearance_dim=0 (whatever the scene kind's defaults).

    Where it differs: directions are unit vectors here (Keras's are unnormalised, so its t
    is depth along the optical axis, not distance, and its corner rays reach ~10% further);
    samples are jittered in 32 equal bins of [2, 6] (Keras adds one bin, 4/32, of noise to
    ``linspace(2, 6, 32)``, whose spacing is 4/31); rays are composited over the trainer's
    background (the Keras renderer has none, i.e. black, which is what its data shows); an
    epoch is a full shuffle (Keras's shuffle buffer holds 5 images, so its epochs run
    nearly in file order); validation renders bin centres (Keras's jitters).""",
    cpu_warning="this preset's steps are whole images (every pixel of 5, ~50k rays x 32 samples): on a 2-core CPU "
                "a step takes 3-15 s and its 320 steps 15-75 min (docs/BENCHMARKS.md); the defaults (no --preset) "
                "pass its PSNR within a minute",
)

PYTORCH3D = Preset(
    name="pytorch3d",
    source='PyTorch3D tutorial "Fit a simple Neural Radiance Field via raymarching"',
    values=dict(
        pos_frequencies=60, dir_frequencies=60, frequency_base=0.1, include_input=False, view_dependent=True,
        width=256, depth=2, skip_layer=0, activation="softplus10", feature_layer=False, color_width=256,
        density_activation="opacity-softplus10", density_bias=-1.5, init="torch",
        sampler="stratified", samples_per_ray=128, render_samples_per_ray=0, clip_to_box=False,
        batch_images=6, batch_rays=6 * 750, image_order="random", pixel_sampling="uniform", intervals="bins",
        loss="pseudo-huber", huber_delta=0.1, silhouette_weight=1.0,
        lr=1e-3, lr_warmup=0, lr_final=1e-4, lr_schedule="step", lr_step_at=0.75, steps=3000, adam_beta2=0.999,
        adam_eps=1e-8, density_noise=0.0, appearance_dim=0,
    ),
    doc="""The PyTorch3D tutorial (docs/tutorials/fit_simple_neural_radiance_field.ipynb):

    ``HarmonicEmbedding(n_harmonic_functions=60, omega0=0.1)``: frequencies
        0.1 * 2^k, k = 0..59, ``cat(sin, cos)`` without the input -> pos_frequencies=60,
        frequency_base=0.1, include_input off: 60*2*3 = 360 inputs (sin/cos of up to
        0.1 * 2^59 * x: in float32 the high ones are noise, in the tutorial as here). The same
        embedding of the normalised ray direction feeds the colour -> dir_frequencies=60,
        view_dependent (the column order differs: a permutation of the first layer's inputs).
    ``self.mlp``: Linear(360, 256), Softplus(beta=10), Linear(256, 256), Softplus(beta=10)
        -> width=256, depth=2, activation=softplus10, skip_layer=0 (no re-injection).
    ``self.color_layer``: Linear(256 + 360, 256), Softplus(10), Linear(256, 3), Sigmoid on
        [features, direction embedding] -> feature_layer off, color_width=256.
    ``self.density_layer``: Linear(256, 1), Softplus(beta=10), bias set to -1.5, then
        ``1 - exp(-raw)`` is each point's opacity, which EmissionAbsorptionRaymarcher
        composites directly -> density_bias=-1.5, init=torch (torch's default layer init
        everywhere), density_activation=opacity-softplus10: the compositing kernel computes
        alpha_i = 1 - exp(-sigma_i delta_i); sigma_i = softplus10(raw) / delta_nominal with
        delta_nominal = (far - near) / samples_per_ray makes alpha_i = 1 - exp(-softplus10(raw))
        exactly for stratified samples across all of [near, far] (their bins are
        delta_nominal long) -> clip_to_box off. Rendering with other sample counts stays
        consistent: sigma is a density.
    ``MonteCarloRaysampler(n_rays_per_image=750, n_pts_per_ray=128, min_depth=0.1,
        max_depth=volume_extent_world)``, ``batch_size = 6`` cameras per iteration ->
        batch_images=6, batch_rays=6*750=4500 (750 per image), samples_per_ray=128.
    ``huber(x, y, scaling=0.1) = ((1 + (x - y)^2 / 0.1^2).clamp(1e-4).sqrt() - 1) * 0.1`` on
        colours and on silhouettes, ``loss = color_err + sil_err`` -> loss=pseudo-huber,
        huber_delta=0.1, silhouette_weight=1.
    ``Adam(lr=1e-3)``; ``if iteration == round(n_iter * 0.75)``: a new Adam at lr * 0.1;
        ``n_iter = 3000`` -> lr=1e-3, lr_schedule=step, lr_step_at=0.75, lr_final=1e-4,
        steps=3000; torch's betas (0.9, 0.999) and eps 1e-8 -> adam_beta2=0.999, adam_eps=1e-8.
    ``batch_idx = torch.randperm(len(target_cameras))[:batch_size]`` every iteration ->
        image_order=random; MonteCarloRaysampler's points are uniform over each image ->
        pixel_sampling=uniform; the opacity mapping above needs the samples' bins -> intervals=bins
        (set, so a --config file's epochs or gaps cannot slip under the preset). No noise on the
        density and no per-image appearance code -> density_noise=0, appearance_dim=0.

    Where it differs: near/far stay the data's. The tutorial's depths 0.1 and
    ``volume_extent_world = 3.0`` are its cow's (cameras 2.7 from a scene about 3 wide);
    this project's data puts cameras 4 from the centre, where 0.1..3.0 would stop short of
    the object: pass ``--near 0.1 --far 3.0`` on the tutorial's own scene. Samples are jittered
    within their equal bins (the tutorial's MonteCarloRaysampler samples equidistant
    depths); pixels are whole pixel centres (the tutorial samples continuous NDC points
    bilinearly); the learning-rate cut keeps Adam's moments (the tutorial makes a new Adam);
    colours are composited over the trainer's background (the tutorial's raymarcher has
    none: black).""",
    cpu_warning="this preset is the tutorial's GPU run (4500 rays x 128 samples a step through 256-wide layers): "
                "on a CPU a step takes seconds and a 100x100 validation view about 10 s, so a --time-limit is spent "
                "on a few steps; on a CPU, train with the defaults (no --preset)",
)

PRESETS = {p.name: p for p in (KERAS, PYTORCH3D)}
