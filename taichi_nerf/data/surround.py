"""Which background the training images were composited onto, read from the pixels.

The trainer composites the field onto a background colour; that colour must be the one the
images show where nothing is, or the field has to paint the difference in as fog:

* images with real transparency (alpha < 255 on a meaningful share of pixels) keep today's
  white: the loader kept the alpha and the trainer composites the same way it does now;
* opaque images (RGB-only npz, JPEG captures): the surround is read off a band a few per cent
  wide around every sampled training image. A band that is nearly one colour is a backdrop
  (renders on black or white, a studio sweep): that colour is the background. Robust, not
  exact: the dominant colour is the most common coarse colour bin, and the band counts as
  uniform when at least UNIFORM of its pixels lie within TOLERANCE of it, so an object that
  crosses a border does not flip the decision. A textured band means the surround is scenery
  (phone captures, forward-facing shots): it is part of the scene and must be modelled, so
  the background has to be one that biases nothing (see ``BackgroundChoice``).

Vectorised torch on the uint8 pixels of at most MAX_IMAGES images; no float image is built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_IMAGES = 50  # images sampled, evenly over the train split
BAND = 0.04  # border band width, as a fraction of the image's shorter side
PIXEL_SAMPLE = 256  # the checks read about this many pixels along each image side
TRANSPARENT_ALPHA = 250  # alpha below this is real transparency, not rounding
TRANSPARENT_FRACTION = 0.01  # share of pixels that must be transparent for the data to count as alpha data
TOLERANCE = 24  # max per-channel distance (of 255) to the dominant colour: noise, JPEG, vignetting
UNIFORM = 0.9  # share of band pixels near the dominant colour: a backdrop
SURE = 0.95  # above this the backdrop decision is confident
MOSTLY = 0.75  # between this and UNIFORM: still the backdrop (objects cross the borders), not confident
DARK = 20  # every channel at most this: the backdrop is black
LIGHT = 235  # every channel at least this: white
MIN_IMAGES = 5  # fewer images than this: never confident
DOMINANT_SAMPLE = 1 << 18  # border pixels read to find the dominant colour


@dataclass
class BackgroundChoice:
    """``name``: "white", "black", "colour" (a uniform backdrop of another colour, ``colour``),
    or "scene" (the surround is scenery and must be modelled: train with a background that
    biases nothing, e.g. "random" per ray, which forces every pixel to be explained by opaque
    density; "random" itself is never chosen here, it is the user's or caller's answer to
    "scene"). ``confident`` False: the caller should warn and name ``--background``."""

    name: str
    reason: str
    confident: bool
    colour: tuple[float, float, float] | None = None  # RGB in [0, 1]; None for "scene"
    uniform_fraction: float = 0.0  # share of border pixels near the dominant colour (opaque data)


def _sample_indices(count: int) -> torch.Tensor:
    k = min(count, MAX_IMAGES)
    return torch.linspace(0, count - 1, k).round().long().unique()


def _transparent_fraction(rgba: torch.Tensor, idx: torch.Tensor) -> float:
    """Share of (strided) pixels whose alpha is below TRANSPARENT_ALPHA."""
    h, w = rgba.shape[1:3]
    step = max(1, max(h, w) // PIXEL_SAMPLE)
    alpha = rgba[idx, ::step, ::step, 3]
    return float((alpha < TRANSPARENT_ALPHA).sum()) / max(alpha.numel(), 1)


def border_pixels(rgba: torch.Tensor, idx: torch.Tensor, band: int, step: int = 1) -> torch.Tensor:
    """(K, P, C) of the band ``band`` pixels wide around each image ``idx``, every ``step``-th
    pixel along both axes: RGB (C = 3) of (N, H, W, 4) images, or the one channel of masks
    given as (N, H, W, 1)."""
    h, w = rgba.shape[1:3]
    band = max(1, min(band, h // 2, w // 2))
    s = max(1, step)
    parts = [rgba[idx, :band:s, ::s, :3], rgba[idx, h - band::s, ::s, :3],
             rgba[idx, band:h - band:s, :band:s, :3], rgba[idx, band:h - band:s, w - band::s, :3]]
    return torch.cat([p.reshape(len(idx), -1, p.shape[-1]) for p in parts], dim=1)


def _channel_medians(pixels: torch.Tensor) -> torch.Tensor:
    """(3,) float: per-channel medians of (M, 3) uint8 pixels, from 256-bin histograms (a
    sort of millions of floats would take seconds)."""
    offsets = torch.arange(3, dtype=torch.long) * 256
    hist = torch.bincount((pixels.long() + offsets).reshape(-1), minlength=768).reshape(3, 256)
    below = hist.cumsum(dim=1) < (pixels.shape[0] + 1) // 2
    return below.sum(dim=1).float()


def dominant_colour(pixels: torch.Tensor) -> torch.Tensor:
    """(3,) float 0..255: the median of the most common 16-level colour bin, refined once as
    the median of every pixel within TOLERANCE of it (a colour on a bin edge is split across
    two bins; the refinement gathers both). Reads at most DOMINANT_SAMPLE pixels."""
    flat = pixels.reshape(-1, 3)
    flat = flat[:: max(1, flat.shape[0] // DOMINANT_SAMPLE)]
    q = (flat >> 4).long()
    key = (q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2]
    top = int(torch.bincount(key, minlength=4096).argmax())
    first = _channel_medians(flat[key == top])
    near = (flat.to(torch.int16) - first.to(torch.int16)).abs().amax(dim=1) <= TOLERANCE
    return _channel_medians(flat[near])


def choose_background(dataset) -> BackgroundChoice:
    """The background the training images of ``dataset`` were composited onto (see module)."""
    train = dataset.split("train")
    rgba = train.rgba
    if rgba.dtype != torch.uint8:
        raise TypeError(f"choose_background expects uint8 RGBA images, got {rgba.dtype}")
    idx = _sample_indices(train.count)
    few = len(idx) < MIN_IMAGES
    few_note = f"; only {len(idx)} image(s), so this is a guess" if few else ""
    transparent = _transparent_fraction(rgba, idx)
    if transparent >= TRANSPARENT_FRACTION:
        source = "the masks make" if getattr(dataset, "mask_mode", "") == "transparent" else "the images have"
        return BackgroundChoice("white", f"{source} transparency ({100 * transparent:.0f}% of pixels): "
                                f"composited onto white{few_note}", confident=not few, colour=(1.0, 1.0, 1.0))

    band = round(BAND * min(train.height, train.width))
    pixels = border_pixels(rgba, idx, band, step=max(train.height, train.width) // PIXEL_SAMPLE)
    dominant = dominant_colour(pixels)
    near = (pixels.to(torch.int16) - dominant.round().to(torch.int16)).abs().amax(dim=2) <= TOLERANCE  # (K, P)
    fraction = float(near.float().mean())
    where = f"{100 * fraction:.0f}% of the image borders"
    if fraction < MOSTLY:
        return BackgroundChoice("scene", f"opaque images with a varied surround (only {where} match its most common "
                                "colour): the background is part of the scene and must be modelled"
                                f"{few_note}", confident=False, uniform_fraction=fraction)
    if float(dominant.max()) <= DARK:
        name, colour = "black", (0.0, 0.0, 0.0)
    elif float(dominant.min()) >= LIGHT:
        name, colour = "white", (1.0, 1.0, 1.0)
    else:
        name, colour = "colour", tuple(round(float(v) / 255.0, 4) for v in dominant)
    shown = "(" + ", ".join(f"{v:.0f}" for v in dominant.tolist()) + ")"
    if fraction >= UNIFORM:
        reason = f"opaque images on a uniform {name} backdrop: {where} are within {TOLERANCE} of {shown}"
    else:
        reason = (f"opaque images, mostly a {name} backdrop: {where} are within {TOLERANCE} of {shown}, the rest "
                  "is content crossing the borders or scenery")
    return BackgroundChoice(name, reason + few_note, confident=not few and fraction >= SURE, colour=colour,
                            uniform_fraction=fraction)
