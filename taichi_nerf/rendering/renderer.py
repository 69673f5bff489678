"""The Renderer: ties the stages, sampling -> encoding -> field -> compositing together for ray
batches (training) and for whole images in memory-bounded chunks (eval, video, GUI)."""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import backend
from ..config_checks import number_at_least
from ..profiling import stage
from ..stages import cameras
from ..stages.compositing import composite
from ..stages.encoding import HarmonicSpec, encode_points, encode_samples
from ..stages.field import RadianceField
from ..stages.occupancy import OccupancyGrid, terminate
from ..stages.packing import Samples, compact
from ..stages.proposal import ProposalHistogram, ProposalSampler
from ..stages.sampling import importance, ray_bounds, stratified
from .backgrounds import render_colour
from .carried_corrections import CarriedCorrections
from .scene import Scene, seen_from

# Warm-up marching of unbounded scenes: this many times the grid's step (~30-60 samples/ray).
UNBOUNDED_WARMUP_STEP_SCALE = 2.0
# Rendering without gradients evaluates densities front to back in segments from this long.
FIRST_SEGMENT = 8
# Rays marked by restrict_grid_to_seen: every training pixel up to this many, else a strided subset.
SEEN_RAYS = 1 << 20


def bf16_rows(m: int) -> int:
    """``m`` rounded up to a multiple of an eighth of its power of two (at least 64): at most
    8 row counts per doubling, so oneDNN's bf16 kernels are built once per count and reused,
    for at most 12.5% more rows (from 512 rows up)."""
    quantum = max(64, 1 << max(0, m.bit_length() - 4))
    return -(-m // quantum) * quantum


if TYPE_CHECKING:
    from ..config import TrainConfig


@dataclass
class RayOutput:
    """What :meth:`Renderer.render_rays` returns for N rays and their M samples."""
    rgb: torch.Tensor  # (N, 3) composited over the background
    opacity: torch.Tensor  # (N,) sum of the weights
    depth: torch.Tensor  # (N,) expected ray distance, not normalised by opacity
    weights: torch.Tensor  # (M,) compositing weight of each sample (differentiable: the distortion loss)
    samples: Samples  # where the field was evaluated (after early termination, if any)
    histogram: ProposalHistogram | None = None  # the proposal sampler's, while training (its loss)


UNCLIPPED = 1e30  # half-size of the sampling box when samples are not clipped to the scene box


class Renderer:
    """A radiance field plus how to sample and encode for it.

    ``pos`` and ``direction`` encode sample positions and viewing directions. ``bf16`` runs
    the MLP under bf16 autocast (on CUDA, or a CPU with native bf16). ``early_stop``: with ``early_termination``,
    samples behind this transmittance are dropped before their colour is computed."""

    def __init__(self, field_: RadianceField, pos: HarmonicSpec, direction: HarmonicSpec, scene: Scene,
                 samples_per_ray: int, device, grid: OccupancyGrid | None = None, fine_samples: int = 0,
                 bf16: bool = False, early_stop: float = 1e-4):
        self.field, self.pos, self.direction, self.scene = field_, pos, direction, scene
        self.samples_per_ray = samples_per_ray
        self.grid = grid  # used once it has been updated from the field at least once
        self.proposal: ProposalSampler | None = None  # sampler "proposal": places the field's samples
        self.fine_samples = fine_samples  # > 0: hierarchical sampling (coarse pass, then importance)
        self.bf16 = bf16
        self.early_stop = early_stop
        # Training only: Gaussian noise of this std on the raw density (NeRF's raw_noise_std,
        # 1 for its real forward-facing scenes). Fog, a density spread thinly along every ray,
        # is what full-frame scenes fall into first; under noise only decisive densities (very
        # high or very low) keep their colour, so the field leaves the fog sooner.
        self.density_noise = 0.0
        # Stratified intervals: False, each sample's bin; True, the gap to the next sample and
        # an opaque far end (TrainConfig.intervals "gaps": the Keras example's).
        self.gaps = False
        # Training: drop the samples behind where a ray turned opaque before the full pass
        # (TrainConfig.skip_hidden); their densities are evaluated once more, without gradients.
        self.skip_hidden = False
        # A run with pose refinement: the corrections carried to the cameras rendered
        # (rendering/carried_corrections.py); None renders every camera as given.
        self.carried: CarriedCorrections | None = None
        self.device = torch.device(device)
        self.aabb = torch.tensor(scene.aabb, dtype=torch.float32, device=self.device)
        # Unbounded scenes: positions outside the box are contracted before encoding (stages/space.py).
        self.contract_box = self.aabb if scene.unbounded else None

    @classmethod
    def from_config(cls, cfg: TrainConfig, scene: Scene, device, train_images: int = 0) -> Renderer:
        """A fresh (untrained) renderer shaped by a training configuration; ``train_images``:
        how many appearance codes the field holds (with ``cfg.appearance_dim``)."""
        cfg = cfg.with_kind_defaults_for(scene)  # the sampler and its counts, as a Trainer resolves them
        pos = HarmonicSpec(cfg.pos_frequencies, cfg.include_input, cfg.frequency_base)
        direction = HarmonicSpec(cfg.dir_frequencies, cfg.include_input,
                                 cfg.frequency_base) if cfg.view_dependent else None
        # opacity-softplus10: density = softplus10(raw) / the stratified bins' length (presets.PYTORCH3D)
        nominal_spacing = (scene.far - scene.near) / cfg.samples_per_ray
        field_ = RadianceField(pos.dim, direction.dim if direction is not None else 0, cfg.width, cfg.depth,
                               skip=cfg.skip_layer, color_width=cfg.color_width, density_bias=cfg.density_bias,
                               activation=cfg.activation, density_activation=cfg.density_activation,
                               density_scale=1.0 / nominal_spacing, feature_layer=cfg.feature_layer,
                               init=cfg.init, appearance_images=train_images,
                               appearance_dim=cfg.appearance_dim_for(scene)).to(device)
        grid = None
        if cfg.sampler == "grid" or (scene.unbounded and cfg.sampler != "proposal"):  # unbounded: march (render_rays)
            grid = OccupancyGrid(torch.tensor(scene.aabb), cfg.grid_resolution, cfg.march_steps_for(scene),
                                 render_steps_across=cfg.render_march_steps,
                                 device=device, unbounded=scene.unbounded)
        fine = cfg.fine_samples if cfg.sampler == "hierarchical" else 0
        # bf16 where it is fast: asked for, or by default on a CPU with bf16 instructions (backend.use_bf16)
        bf16 = backend.use_bf16(cfg.mixed_precision_for(scene), device)
        renderer = cls(field_, pos, direction, scene, cfg.eval_samples, device, grid, fine, bf16=bf16)
        renderer.density_noise = float(cfg.density_noise)  # resolved by scene kind above (kind_defaults.py)
        renderer.gaps = cfg.intervals == "gaps"
        if cfg.sampler == "proposal":
            renderer.proposal = ProposalSampler(scene.aabb, cfg.samples_per_ray, cfg.fine_samples, scene.unbounded,
                                                width=cfg.proposal_width,
                                                render_count=cfg.render_samples_per_ray or None).to(device)
        renderer.skip_hidden = cfg.skip_hidden_for(scene)
        if not cfg.clip_to_box:  # stratified bins span all of [near, far] (the tutorials'): an unlimited sampling box
            renderer.aabb = torch.tensor([-UNCLIPPED] * 3 + [UNCLIPPED] * 3, dtype=torch.float32,
                                         device=renderer.device)
        return renderer

    @torch.no_grad()
    def restrict_grid_to_seen(self, split) -> float | None:
        """Keep the occupancy grid to the cells that the training cameras' rays cross
        (:meth:`OccupancyGrid.restrict_to_seen`); returns the share of cells seen, or None
        without a grid."""
        if self.grid is None or split.count == 0:
            return None
        height, width = split.height, split.width
        stride = max(1, math.ceil(math.sqrt(split.count * height * width / SEEN_RAYS)))
        pixels = cameras.strided_pixels(width, height, stride).to(device=self.device, dtype=torch.int32)

        def rays():
            for image in range(split.count):
                o, d = cameras.batch_rays(split.poses, split.intrinsics, torch.full_like(pixels, image), pixels, width)
                yield self.sampling_rays(o, d)

        return self.grid.restrict_to_seen(rays(), self.scene.near, self.scene.far)

    def sampling_rays(self, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rays as the samplers march them, along which samples' ``t`` runs: in normalised device
        coordinates for a forward-facing scene, the world's rays otherwise."""
        return cameras.ndc_rays(origins, dirs, self.scene) if self.scene.ndc else (origins, dirs)

    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor,
                    samples_per_ray: int | None = None, generator: torch.Generator | None = None,
                    jitter: bool = False, early_termination: bool = False,
                    image_index: torch.Tensor | None = None) -> RayOutput:
        """Render a batch of rays. ``early_termination`` (rendering, not training: training
        keeps every marched sample, so occluded space still gets gradients) evaluates
        densities first and colour only where the ray can still see. ``image_index``
        (training): each ray's training image, whose appearance code colours it (None: new
        views' code, see stages/field.py)."""
        view_dirs = dirs  # unit world directions: what view-dependent colour depends on
        origins, dirs = self.sampling_rays(origins, dirs)
        histogram = None
        with stage("marching"):  # samples are placed, not learned: pose refinement's gradients stop here
            if self.proposal is not None:
                samples, histogram = self.proposal.sample(origins.detach(), dirs.detach(), self.scene.near,
                                                          self.scene.far, generator, jitter, self.contract_box)
            else:
                samples = self._sample(origins.detach(), dirs.detach(), view_dirs.detach(), background,
                                       samples_per_ray, generator, jitter)
        if early_termination and self.early_stop > 0:
            with stage("MLP forward"):
                samples, sigma, rgb = self._visible(origins, dirs, view_dirs, samples)
        else:
            noise = None
            if jitter and self.density_noise > 0 and torch.is_grad_enabled():
                noise = self.density_noise * torch.randn(samples.num_samples, device=origins.device,
                                                         generator=generator)
            if self.skip_hidden and torch.is_grad_enabled() and samples.num_samples:
                with stage("hidden samples"):
                    samples, noise = self._drop_hidden(origins, dirs, samples, noise)
            with stage("encoding"):
                encoded = encode_samples(origins, dirs, samples.t, samples.ray_index, self.pos, self.direction,
                                         view_dirs=view_dirs, contract_box=self.contract_box)
            with stage("MLP forward"):
                codes = None
                if image_index is not None and self.field.appearance is not None:
                    codes = self.field.appearance_codes(image_index, image_index.shape[0])[samples.ray_index.long()]
                sigma, rgb = self.evaluate_field(encoded, noise, codes)
        with stage("compositing"):
            out_rgb, opacity, depth, weights = composite(sigma, rgb, samples, background)
        return RayOutput(out_rgb, opacity, depth, weights, samples, histogram)

    def _sample(self, origins, dirs, view_dirs, background, samples_per_ray, generator, jitter) -> Samples:
        """Where the rays are sampled: the occupancy grid's march once it knows anything,
        stratified (optionally then importance-resampled) before."""
        if self.grid is not None and (self.grid.updates > 0 or self.scene.unbounded):
            # An unbounded scene has no finite interval to stratify: before its grid knows
            # anything it marches the all-occupied grid with coarser steps instead.
            scale = UNBOUNDED_WARMUP_STEP_SCALE
            if self.grid.updates > 0:  # rendering (no gradients) marches finer: it has no backward pass
                scale = 1.0 if torch.is_grad_enabled() else self.grid.render_step_scale
            samples = self.grid.march(origins, dirs, self.scene.near, self.scene.far, generator, jitter, scale)
        else:
            t_near, t_far = ray_bounds(origins, dirs, self.aabb, self.scene.near, self.scene.far)
            samples = stratified(t_near, t_far, samples_per_ray or self.samples_per_ray, generator, jitter, self.gaps)
            if self.fine_samples:
                with torch.no_grad():  # the coarse pass only decides where to look
                    coarse_enc = encode_samples(origins, dirs, samples.t, samples.ray_index, self.pos, self.direction,
                                                view_dirs=view_dirs, contract_box=self.contract_box)
                    c_sigma, c_rgb = self.evaluate_field(coarse_enc)
                    weights = composite(c_sigma, c_rgb, samples, background)[3]
                samples = importance(t_near, t_far, samples, weights, self.fine_samples, generator, jitter)
        return samples

    @torch.no_grad()
    def _drop_hidden(self, origins, dirs, samples: Samples, noise: torch.Tensor | None):
        """Training: the samples in front of where each ray turns opaque (transmittance
        ``early_stop``), from the field's densities under the same noise as the full pass. The
        dropped ones would add < ``early_stop`` to any pixel, and their gradients as little."""
        sigma, _, _ = self._densities_front_to_back(origins.detach(), dirs.detach(), samples, noise)
        index, kept = terminate(samples, sigma, self.early_stop)
        if index.numel() == samples.num_samples:
            return samples, noise
        return compact(samples, index, kept), None if noise is None else noise[index]

    def _densities_front_to_back(self, origins, dirs, samples: Samples, noise: torch.Tensor | None = None,
                                 keep_features: bool = False):
        """Densities (M,) of the samples, evaluated front to back in segments of doubling
        length (8, 8, 16, 32... samples of each ray), only for rays still below full opacity:
        the samples behind where a ray turned opaque stay 0 (:func:`terminate` drops them).
        With ``keep_features``, also the evaluated samples' trunk features and each sample's
        row among them (-1: not evaluated; None without). Samples are encoded when evaluated, never all at once."""
        m, n = samples.num_samples, samples.num_rays
        device = samples.t.device
        sigma = torch.zeros(m, device=device)
        feature_row = torch.full((m,), -1, dtype=torch.long, device=device) if keep_features else None
        features, rows = [], 0  # with keep_features: trunk features; feature_row maps a sample to its row
        if m:
            offsets, counts = samples.offsets.long(), samples.counts.long()
            ray = samples.ray_index.long()
            optical_depth = torch.zeros(n, device=device)
            opaque = -math.log(self.early_stop) + 1e-3  # a margin over terminate()'s float32 product
            active = (counts > 0).nonzero()[:, 0]
            lo, length = 0, FIRST_SEGMENT
            while active.numel():
                take = (counts[active] - lo).clamp(0, length)  # each active ray's samples in [lo, lo + length)
                first = offsets[active] + lo
                ends = torch.cumsum(take, 0)
                idx = torch.repeat_interleave(first - (ends - take), take, output_size=int(ends[-1]))
                idx += torch.arange(idx.numel(), device=device)
                with stage("encoding"):
                    encoded = encode_samples(origins, dirs, samples.t[idx], samples.ray_index[idx], self.pos, None,
                                             contract_box=self.contract_box)
                h, density = self._in_field(self._features_and_density, encoded,
                                            None if noise is None else noise[idx])
                density = density.float()
                if keep_features:
                    features.append(h)
                    feature_row[idx] = torch.arange(rows, rows + idx.numel(), device=device)
                    rows += idx.numel()
                sigma[idx] = density
                optical_depth.index_add_(0, ray[idx], density * samples.delta[idx])
                lo += length
                length = lo  # doubling segments: 8, 8, 16, 32...
                active = active[(counts[active] > lo) & (optical_depth[active] < opaque)]
        return sigma, features, feature_row

    def _visible(self, origins, dirs, view_dirs, samples: Samples) -> tuple[Samples, torch.Tensor, torch.Tensor]:
        """The samples a viewer can see, their densities and colours, for as little work as
        possible (rendering only: nothing here is differentiated): densities front to back
        (:meth:`_densities_front_to_back`), colour only for the samples in front of where a
        ray turned opaque (:func:`terminate`). On a trained built-in view rays march ~24
        samples and keep ~6."""
        device = samples.t.device
        sigma, features, feature_row = self._densities_front_to_back(origins, dirs, samples, keep_features=True)
        index, kept = terminate(samples, sigma, self.early_stop)
        visible = compact(samples, index, kept)
        if not features:
            return visible, sigma[index], torch.zeros(index.numel(), 3, device=device)
        h = torch.cat(features)[feature_row[index]]  # every visible sample was evaluated
        encoded_dir = None
        if self.direction is not None:
            with stage("encoding"):
                encoded_dir = encode_samples(origins, dirs, visible.t, visible.ray_index, self.pos, self.direction,
                                             view_dirs=view_dirs,
                                             contract_box=self.contract_box)[:, self.field.pos_dim:]
        rgb = self._in_field(self.field.color_from, h, encoded_dir).float()
        return visible, sigma[index].contiguous(), rgb

    def _features_and_density(self, encoded: torch.Tensor, noise: torch.Tensor | None):
        h = self.field.features(encoded)
        return h, self.field.density_from(h, noise)

    def _precision(self):
        """bf16 autocast for the MLP's matrix products where ``bf16`` is on, else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def _in_field(self, fn, *rows):
        """``fn(*rows)`` under :meth:`_precision`, where ``rows`` are (M, ...) tensors (or None)
        and ``fn`` returns (M, ...) tensors. With bf16 on the CPU the rows are padded to a few
        sizes (:func:`bf16_rows`) and the results cut back: oneDNN builds its bf16 kernels anew
        for every new row count, and a step's count is new every step (4x slower than float32,
        docs/BENCHMARKS.md, "bf16 on the CPU")."""
        m = next(x.shape[0] for x in rows if x is not None)
        pad = bf16_rows(m) - m if self.bf16 and self.device.type == "cpu" else 0
        if pad:
            rows = tuple(None if x is None else F.pad(x, (0, 0) * (x.dim() - 1) + (0, pad)) for x in rows)
        with self._precision():
            out = fn(*rows)
        if pad:
            out = tuple(o[:m] for o in out) if isinstance(out, tuple) else out[:m]
        return out

    def evaluate_field(self, encoded: torch.Tensor, raw_noise: torch.Tensor | None = None,
                       codes: torch.Tensor | None = None):
        sigma, rgb = self._in_field(self.field, encoded, raw_noise, codes)
        return sigma.float(), rgb.float()  # the kernels take float32 (a no-op without bf16)

    @property
    def max_samples_per_ray(self) -> int:
        """The most samples any ray can get: what Taichi's autodiff stack must hold."""
        most = self.samples_per_ray + self.fine_samples
        if self.proposal is not None:
            most = max(most, self.proposal.count, self.proposal.render_count)
        return max(most, self.grid.max_samples) if self.grid is not None else most

    @torch.no_grad()  # as render_image: a notebook's densities came back tracking gradients (no .numpy())
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Field density at points of field space (world space, or contracted space for an
        unbounded scene: what the occupancy grid measures, cell by cell), without gradients. ``points`` may
        be numpy's or float64: the kernels take float32 on the renderer's device (float64 compiled a kernel of
        its own)."""
        points = torch.as_tensor(points, dtype=torch.float32, device=self.device)
        return self._in_field(self.field.density_only, encode_points(points, self.pos)).float()

    def drawn_poses(self, poses: torch.Tensor, camera: int) -> torch.Tensor:
        """``poses`` with camera ``camera`` where this renderer draws it: with :attr:`carried`
        corrections carried to it (a copy), else as given (``poses`` itself)."""
        if self.carried is None:
            return poses
        poses = poses.clone()
        poses[camera] = self.carried.pose(poses[camera])
        return poses

    @torch.no_grad()
    def render_image(self, poses: torch.Tensor, intrinsics: torch.Tensor, camera: int, width: int, height: int,
                     background: torch.Tensor, chunk: int = 4096, samples_per_ray: int | None = None,
                     carry: bool = True) -> dict:
        """(H, W, 3) rgb, (H, W) opacity and (H, W) depth (normalised by opacity) of one camera.
        No gradients, so rays terminate early (see :meth:`render_rays`)."""
        width, height = number_at_least("width", width, 1), number_at_least("height", height, 1)  # (32.0 too)
        out = self.render_pixels(poses, intrinsics, camera, width, 0, width * height, background, chunk,
                                 samples_per_ray, carry=carry)
        return {"rgb": out["rgb"].view(height, width, 3), "opacity": out["opacity"].view(height, width),
                "depth": out["depth"].view(height, width)}

    @torch.no_grad()
    def render_pixels(self, poses: torch.Tensor, intrinsics: torch.Tensor, camera: int, width: int, first_pixel: int,
                      count: int, background: torch.Tensor, chunk: int = 4096, samples_per_ray: int | None = None,
                      pixels: torch.Tensor | None = None, carry: bool = True) -> dict:
        """(count, 3) rgb, (count,) opacity and (count,) depth (normalised by opacity) of
        ``count`` consecutive pixels (row-major, from ``first_pixel``) of one camera, in chunks
        of ``chunk`` rays: a whole image, or a band of its rows (the GUI, video recording).
        ``pixels``: these row-major pixel indices instead (``first_pixel`` and ``count`` unused):
        the scattered pixels that the viewers' finer levels render (viewing/view.py). ``carry``: with
        :attr:`carried` corrections, the camera gets them (False: a pose already final, an aligned one)."""
        chunk = number_at_least("chunk", chunk, 1)  # (range() said "arg 3 must not be zero")
        poses = torch.as_tensor(poses, dtype=torch.float32, device=self.device).contiguous()  # numpy's too
        if carry:
            poses = self.drawn_poses(poses, camera)
        intrinsics = torch.as_tensor(intrinsics, dtype=torch.float32, device=self.device).contiguous()
        bg = render_colour(background, self.device)  # "white", a grey level, a triple
        if pixels is not None:
            pixels = torch.as_tensor(pixels).to(self.device, torch.int32).contiguous()  # numpy's too
            count = pixels.shape[0]
            cameras_of = torch.full((min(chunk, count),), camera, dtype=torch.int32, device=self.device)
        rgb = torch.empty(count, 3, device=self.device)
        opacity = torch.empty(count, device=self.device)
        depth = torch.empty(count, device=self.device)
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            if pixels is None:
                o, d = cameras.image_rays(poses, intrinsics, camera, width, first_pixel + start, n)
            else:
                o, d = cameras.batch_rays(poses, intrinsics, cameras_of[:n], pixels[start:start + n], width)
            out = self.render_rays(o, d, bg, samples_per_ray, early_termination=True)
            rgb[start:start + n] = out.rgb
            opacity[start:start + n] = out.opacity
            depth[start:start + n] = out.depth
        depth = torch.where(opacity > 1e-3, depth / opacity.clamp_min(1e-3), torch.zeros_like(depth))
        return {"rgb": rgb, "opacity": opacity, "depth": depth}


def renderer_seen_from(renderer, eye, widen: bool = False):
    """``renderer``, or a shallow copy whose scene's near/far follow a camera at ``eye``
    (``scene.seen_from``): the window, the browser view and videos (``widen``: the interval only
    grows) move closer or further than the training cameras without clipping the scene. Only
    ``renderer.scene`` is read."""
    scene = seen_from(renderer.scene, eye, widen)
    if scene is renderer.scene:
        return renderer
    view = copy.copy(renderer)
    view.scene = scene
    return view
