"""Rendering stage: ties sampling -> encoding -> field -> compositing together for ray
batches (training) and for whole images in memory-bounded chunks (eval, video, GUI)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from . import cameras
from .compositing import composite
from .encoding import HarmonicSpec, encode_points, encode_samples
from .field import RadianceField
from .occupancy import OccupancyGrid, terminate
from .packing import Samples, compact
from .sampling import importance, ray_bounds, stratified
from .scene import Scene

if TYPE_CHECKING:
    from .config import TrainConfig


@dataclass
class RayOutput:
    """What :meth:`Renderer.render_rays` returns for N rays and their M samples."""
    rgb: torch.Tensor  # (N, 3) composited over the background
    opacity: torch.Tensor  # (N,) sum of the weights
    depth: torch.Tensor  # (N,) expected ray distance, not normalised by opacity
    weights: torch.Tensor  # (M,) compositing weight of each sample (not differentiable)
    samples: Samples  # where the field was evaluated (after early termination, if any)


class Renderer:
    """A radiance field plus how to sample and encode for it.

    ``pos`` and ``direction`` encode sample positions and viewing directions. ``bf16`` runs
    the MLP under bf16 autocast (CUDA only). ``early_stop``: with ``early_termination``,
    samples behind this transmittance are dropped before their colour is computed."""

    def __init__(self, field_: RadianceField, pos: HarmonicSpec, direction: HarmonicSpec, scene: Scene,
                 samples_per_ray: int, device, grid: OccupancyGrid | None = None, fine_samples: int = 0,
                 bf16: bool = False, early_stop: float = 1e-4):
        self.field, self.pos, self.direction, self.scene = field_, pos, direction, scene
        self.samples_per_ray = samples_per_ray
        self.grid = grid  # used once it has been updated from the field at least once
        self.fine_samples = fine_samples  # > 0: hierarchical sampling (coarse pass, then importance)
        self.bf16 = bf16
        self.early_stop = early_stop
        self.device = torch.device(device)
        self.aabb = torch.tensor(scene.aabb, dtype=torch.float32, device=self.device)

    @classmethod
    def from_config(cls, cfg: TrainConfig, scene: Scene, device) -> Renderer:
        """A fresh (untrained) renderer shaped by a training configuration."""
        pos = HarmonicSpec(cfg.pos_frequencies, True)
        direction = HarmonicSpec(cfg.dir_frequencies, True)
        field_ = RadianceField(pos.dim, direction.dim, cfg.width, cfg.depth, density_bias=cfg.density_bias).to(device)
        grid = None
        if cfg.sampler == "grid":
            grid = OccupancyGrid(torch.tensor(scene.aabb), cfg.grid_resolution, cfg.march_steps, device=device)
        fine = cfg.fine_samples if cfg.sampler == "hierarchical" else 0
        return cls(field_, pos, direction, scene, cfg.eval_samples, device, grid, fine, bf16=cfg.mixed_precision)

    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor,
                    samples_per_ray: int | None = None, generator: torch.Generator | None = None,
                    jitter: bool = False, early_termination: bool = False) -> RayOutput:
        """Render a batch of rays. ``early_termination`` (rendering, not training: training
        keeps every marched sample, so occluded space still gets gradients) evaluates
        densities first and colour only where the ray can still see; it is off under bf16."""
        view_dirs = dirs  # unit world directions: what view-dependent colour depends on
        if self.scene.ndc:  # forward-facing scenes sample in normalised device coordinates
            origins, dirs = cameras.ndc_rays(origins, dirs, self.scene)
        if self.grid is not None and self.grid.updates > 0:
            samples = self.grid.march(origins, dirs, self.scene.near, self.scene.far, generator, jitter)
        else:
            t_near, t_far = ray_bounds(origins, dirs, self.aabb, self.scene.near, self.scene.far)
            samples = stratified(t_near, t_far, samples_per_ray or self.samples_per_ray, generator, jitter)
            if self.fine_samples:
                with torch.no_grad():  # the coarse pass only decides where to look
                    coarse_enc = encode_samples(origins, dirs, samples.t, samples.ray_index, self.pos, self.direction,
                                                view_dirs=view_dirs)
                    c_sigma, c_rgb = self.evaluate_field(coarse_enc)
                    weights = composite(c_sigma, c_rgb, samples, background)[3]
                samples = importance(t_near, t_far, samples, weights, self.fine_samples, generator, jitter)
        encoded = encode_samples(origins, dirs, samples.t, samples.ray_index, self.pos, self.direction,
                                 view_dirs=view_dirs)
        if early_termination and self.early_stop > 0 and not self.bf16:
            h = self.field.features(encoded[:, : self.field.pos_dim])
            sigma = self.field.density_from(h)
            index, counts = terminate(samples, sigma, self.early_stop)
            samples = compact(samples, index, counts)
            sigma = sigma[index].contiguous()
            rgb = self.field.color_from(h[index], encoded[index, self.field.pos_dim:])
        else:
            sigma, rgb = self.evaluate_field(encoded)
        out_rgb, opacity, depth, weights = composite(sigma, rgb, samples, background)
        return RayOutput(out_rgb, opacity, depth, weights, samples)

    def evaluate_field(self, encoded: torch.Tensor):
        if self.bf16 and self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                sigma, rgb = self.field(encoded)
            return sigma.float(), rgb.float()  # the kernels take float32
        return self.field(encoded)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Field density at arbitrary points (what the occupancy grid measures)."""
        return self.field.density_only(encode_points(points, self.pos))

    @torch.no_grad()
    def render_image(self, poses: torch.Tensor, intrinsics: torch.Tensor, camera: int, width: int, height: int,
                     background: torch.Tensor, chunk: int = 4096, samples_per_ray: int | None = None) -> dict:
        """(H, W, 3) rgb, (H, W) opacity and (H, W) depth (normalised by opacity) of one camera.
        No gradients, so rays terminate early (see :meth:`render_rays`)."""
        poses = poses.to(self.device).contiguous()
        intrinsics = intrinsics.to(self.device).contiguous()
        bg = background.to(self.device).reshape(1, 3)
        n = width * height
        rgb = torch.empty(n, 3, device=self.device)
        opacity = torch.empty(n, device=self.device)
        depth = torch.empty(n, device=self.device)
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            o, d = cameras.image_rays(poses, intrinsics, camera, width, start, count)
            out = self.render_rays(o, d, bg, samples_per_ray, early_termination=True)
            rgb[start:start + count] = out.rgb
            opacity[start:start + count] = out.opacity
            depth[start:start + count] = out.depth
        depth = torch.where(opacity > 1e-3, depth / opacity.clamp_min(1e-3), torch.zeros_like(depth))
        return {"rgb": rgb.view(height, width, 3), "opacity": opacity.view(height, width),
                "depth": depth.view(height, width)}
