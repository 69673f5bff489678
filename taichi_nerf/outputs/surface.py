"""Where a trained field's rendered surface is: for each ray at least ``min_opacity`` opaque,
the point at its median depth (where it reaches half its opacity: on the surface, where the
expected depth of a soft edge lies between the surface and what is behind it), and its colour
un-composited from the background. For point clouds (export.extract_points) and for the density
the mesh's automatic threshold reads (export.surface_density).
"""
from __future__ import annotations

import gc

import numpy as np
import torch

from ..rendering.renderer import Renderer

# Surface points of a forward-facing (NDC) field deeper than this NDC z are left out: at 0.99 a point
# is 200 times the near plane's distance away (the rescaled capture's nearest depth is 1.33).
NDC_INFINITY = 0.99


def surface_points(renderer: Renderer, poses, intr, cam: int, width: int, height: int, background,
                   min_opacity: float, with_colors: bool = False, chunk: int = 4096):
    """(points, colours or None) of camera ``cam``'s every pixel: see :func:`surface_hits`."""
    from ..stages.cameras import image_rays

    poses = renderer.drawn_poses(poses.to(renderer.device).float().contiguous(), cam)  # a refined run's: carried
    intr = intr.to(renderer.device).float().contiguous()
    count = width * height
    return _joined([surface_hits(renderer, *image_rays(poses, intr, cam, width, start, min(chunk, count - start)),
                                 background, min_opacity, with_colors) for start in range(0, count, chunk)])


def sampled_surface_points(renderer: Renderer, poses, intr, width: int, height: int, background, min_opacity: float,
                           pixels: np.ndarray, chunk: int = 4096):
    """(points, colours) of the given pixels of every camera, flat indices (camera * H * W + pixel)."""
    from ..stages.cameras import batch_rays

    poses = poses.to(renderer.device).float().contiguous()
    poses = torch.stack([renderer.drawn_poses(poses, cam)[cam] for cam in range(len(poses))])  # refined: carried
    intr, flat = intr.to(renderer.device).float().contiguous(), torch.from_numpy(pixels).to(renderer.device)
    parts = []
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk]
        image, pixel = part // (width * height), part % (width * height)
        rays = batch_rays(poses, intr, image.int().contiguous(), pixel.int().contiguous(), width)
        parts.append(surface_hits(renderer, *rays, background, min_opacity, True))
    return _joined(parts)


def _joined(parts: list) -> tuple:
    points = torch.cat([p for p, _ in parts]) if parts else torch.zeros(0, 3)
    colors = torch.cat([c for _, c in parts]) if parts and parts[0][1] is not None else None
    return points, colors


def surface_hits(renderer: Renderer, o, d, background, min_opacity: float, with_colors: bool):
    """World points where the rays (``o``, ``d``) at least ``min_opacity`` opaque reach half their
    opacity, and (``with_colors``) their colours without the background."""
    from ..stages.cameras import ndc_to_world

    bg = background.to(renderer.device).reshape(1, 3)
    out = renderer.render_rays(o, d, bg, early_termination=True)
    keep = out.opacity >= min_opacity
    depth = median_depth(out, o.shape[0])
    if renderer.scene.ndc:  # the samples' t runs along the NDC ray: its point, back in the world
        o_ndc, d_ndc = renderer.sampling_rays(o, d)
        hit = o_ndc + depth[:, None] * d_ndc
        keep &= hit[:, 2] < NDC_INFINITY  # the backdrop at infinity has no finite place
        hit = ndc_to_world(hit, renderer.scene)
    else:
        hit = o + depth[:, None] * d
    gc.collect(1)  # see density_lattice
    if not with_colors:
        return hit[keep], None
    a = out.opacity[keep, None]
    return hit[keep], ((out.rgb[keep] - (1.0 - a) * bg) / a).clamp(0, 1)


def median_depth(out, rays: int) -> torch.Tensor:
    """(N,) distance of each ray's first sample where its accumulated weight reaches half
    its opacity, over the packed layout (0 for rays without samples)."""
    s, w = out.samples, out.weights
    m = w.shape[0]
    if m == 0:
        return torch.zeros(rays, device=w.device)
    ray = s.ray_index.long()
    cum = torch.cumsum(w.double(), 0)
    before = torch.where(s.offsets > 0, cum[(s.offsets.long() - 1).clamp_min(0)], torch.zeros_like(cum[:1]))
    reached = (cum - before[ray]) >= 0.5 * out.opacity.double()[ray]
    first = torch.full((rays,), m, dtype=torch.long, device=w.device)
    first.scatter_reduce_(0, ray[reached], torch.arange(m, device=w.device)[reached], "amin")
    return torch.where(first < m, s.t[first.clamp(max=m - 1)], torch.zeros(rays, device=w.device))
