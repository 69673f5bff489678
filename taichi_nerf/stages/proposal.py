"""Proposal sampling: a small density network decides where the field is sampled (mip-NeRF
360's proposal MLP, nerfacc's PropNetEstimator), for scenes where the occupancy grid carves
little: the contracted shell of unbounded scenery (the default there), or a forward-facing
backdrop in NDC.

Each ray is cut into ``bins`` equal bins of a spacing s: s = t for forward-facing
(NDC) and boxed scenes; for unbounded ones s is linear in t inside the box and linear in 1/t
beyond it, with the ray's box-exit distance as the unit, so the far scenery gets as many bins
as the box. The proposal network's opacities at the bins give compositing weights, a
histogram over s. The field's samples are the intervals between its inverse CDF's quantiles:
they cover the whole ray, densely where the proposal sees surfaces. The network learns only
from :func:`interlevel_loss`: its histogram must cover the field's weight on every field
interval (mip-NeRF 360's bound; the field's weights are a fixed target there).
:func:`distortion_loss` pulls each ray's field weight together in s, so a surface is one thin
peak instead of a haze spread along the ray (the speckled depth of unbounded scenery).
"""

import dataclasses

import taichi as ti
import torch
import torch.nn.functional as F
from torch import nn

from .encoding import HarmonicSpec, encode_samples
from .packing import Samples, fixed_layout, ray_box
from .space import box_centre_half

# Share of the field's samples spread evenly over s whatever the histogram says: a surface the
# proposal has not found yet still gets samples (NeRF's coarse floor, as a mixture).
UNIFORM_SHARE = 0.05


@ti.func
def spacing(t: ti.f32, scale: ti.f32, unbounded: ti.i32) -> ti.f32:
    """s of the distance ``t``: t itself, or (unbounded) x/2 inside the box, 1 - 1/(2x) beyond, x = t / scale."""
    s = t
    if unbounded:
        x = t / scale
        s = 0.5 * x if x < 1.0 else 1.0 - 0.5 / x
    return s


@ti.func
def distance(s: ti.f32, scale: ti.f32, unbounded: ti.i32) -> ti.f32:
    """The inverse of :func:`spacing`."""
    t = s
    if unbounded:
        t = scale * (2.0 * s if s < 0.5 else 0.5 / ti.max(1.0 - s, 1e-7))
    return t


def spacing_torch(t: torch.Tensor, scale: torch.Tensor, unbounded: bool) -> torch.Tensor:
    """:func:`spacing` on tensors (the loss maps the field's intervals back to s)."""
    if not unbounded:
        return t
    x = t / scale
    return torch.where(x < 1.0, 0.5 * x, 1.0 - 0.5 / x.clamp_min(1e-12))


@ti.kernel
def _bins_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), aabb: ti.types.ndarray(), near: ti.f32,
                 far: ti.f32, unbounded: ti.i32, bins: ti.i32, jitter: ti.types.ndarray(), use_jitter: ti.i32,
                 s_lo: ti.types.ndarray(), s_hi: ti.types.ndarray(), scale: ti.types.ndarray(),
                 t: ti.types.ndarray()):
    for r in range(origins.shape[0]):
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
        t0, t1 = ray_box(o, d, aabb, near, far)
        unit = 1.0
        if unbounded:  # the box-exit distance is the unit; a ray that misses the box: its distance to the centre
            unit = t1
            if t1 <= t0:
                centre, _ = box_centre_half(aabb)
                unit = (centre - o).norm()
            unit = ti.max(unit, near, 1e-4)
            t0, t1 = near, far
        elif t1 <= t0:  # a miss: an empty interval at the entry, as the stratified sampler gives
            t1 = t0
        a, b = spacing(t0, unit, unbounded), spacing(t1, unit, unbounded)
        s_lo[r], s_hi[r], scale[r] = a, b, unit
        width = (b - a) / bins
        for j in range(bins):
            u = 0.5
            if use_jitter:
                u = jitter[r * bins + j]
            t[r * bins + j] = distance(a + (j + u) * width, unit, unbounded)


@ti.kernel
def _field_intervals_kernel(s_lo: ti.types.ndarray(), s_hi: ti.types.ndarray(), scale: ti.types.ndarray(),
                            unbounded: ti.i32, weights: ti.types.ndarray(), bins: ti.i32, u: ti.types.ndarray(),
                            count: ti.i32, uniform: ti.f32, t: ti.types.ndarray(), delta: ti.types.ndarray()):
    for r in range(s_lo.shape[0]):
        total = 0.0
        for j in range(bins):
            total += weights[r, j]
        width = (s_hi[r] - s_lo[r]) / bins
        # What the histogram leaves unexplained (the transmittance past its last bin) is spread
        # evenly, and ``uniform`` of everything: p_j = (1 - uniform) (w_j + leftover / bins) + uniform / bins.
        keep = 1.0 - uniform
        spread = (keep * ti.max(1.0 - total, 0.0) + uniform) / bins
        # Inverse CDF at count + 1 sorted quantiles: the bin pointer only moves forward.
        j = 0
        below = 0.0  # the CDF at the start of bin j
        p = weights[r, 0] * keep + spread
        previous = 0.0
        for k in range(count + 1):
            q = u[r, k]
            while j < bins - 1 and below + p < q:
                below += p
                j += 1
                p = weights[r, j] * keep + spread
            frac = ti.min(ti.max((q - below) / ti.max(p, 1e-12), 0.0), 1.0)
            s = s_lo[r] + (j + frac) * width
            if k == count:  # the far end exactly: the CDF's rounding, over a thin last bin, moves it by %
                s = s_hi[r]
            edge = distance(s, scale[r], unbounded)
            if k > 0:
                t[r * count + k - 1] = 0.5 * (previous + edge)
                delta[r * count + k - 1] = ti.max(edge - previous, 0.0)
            previous = edge


@dataclasses.dataclass
class ProposalHistogram:
    """One batch's proposal weights, for :func:`interlevel_loss`: ``cumulative`` (R, bins + 1),
    differentiable; each ray's s range and unit."""
    cumulative: torch.Tensor
    s_lo: torch.Tensor
    s_hi: torch.Tensor
    scale: torch.Tensor
    unbounded: bool


class ProposalSampler(nn.Module):
    """The proposal network and the sampling around it. ``bins``: proposal samples per ray
    (the network is cheap: one hidden layer); ``count``: the field's samples per ray while
    training (gradients on); ``render_count`` (default ``count``): without gradients, when
    rendering, where more samples cost no backward pass and smooth the depth."""

    def __init__(self, aabb, bins: int, count: int, unbounded: bool, frequencies: int = 6, width: int = 32,
                 render_count: int | None = None):
        super().__init__()
        self.bins, self.count, self.unbounded = int(bins), int(count), bool(unbounded)
        self.render_count = int(render_count or count)
        self.pos = HarmonicSpec(frequencies)
        self.hidden = nn.Linear(self.pos.dim, width)
        self.out = nn.Linear(width, 1)
        nn.init.constant_(self.out.bias, -5.0)  # thin at the start: a nearly even first histogram
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone())

    def opacity(self, encoded: torch.Tensor) -> torch.Tensor:
        """Optical depth per bin: the histogram is a shape over s, so the network's output is
        per bin, not per world unit (an unbounded ray's last bins are hundreds of units long)."""
        return F.softplus(self.out(F.relu(self.hidden(encoded)))[:, 0])

    def sample(self, origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float,
               generator: torch.Generator | None = None, jitter: bool = False,
               contract_box: torch.Tensor | None = None) -> tuple[Samples, ProposalHistogram | None]:
        """The field's samples for these rays, and (while gradients are on) the histogram the
        interlevel loss trains the network from."""
        n, dev = origins.shape[0], origins.device
        bins, count = self.bins, self.count if torch.is_grad_enabled() else self.render_count
        s_lo, s_hi, scale = (torch.empty(n, device=dev) for _ in range(3))
        t = torch.empty(n * bins, device=dev)
        u = torch.rand(n * bins, device=dev, generator=generator) if jitter else torch.empty(1, device=dev)
        if n:
            _bins_kernel(origins, dirs, self.aabb, float(near), float(far), int(self.unbounded), bins, u, int(jitter),
                         s_lo, s_hi, scale, t)
        ray_index = fixed_layout(n, bins, dev)[2]
        encoded = encode_samples(origins, dirs, t, ray_index, self.pos, None, contract_box=contract_box)
        optical = self.opacity(encoded).reshape(n, bins)
        # weights = T * alpha, T = exp(-(optical depth before the bin))
        before = torch.cumsum(optical, 1) - optical
        weights = torch.exp(-before) * -torch.expm1(-optical)
        # count + 1 stratified quantiles, sorted per ray by construction
        k = torch.arange(count + 1, device=dev, dtype=torch.float32)
        offset = torch.rand(n, 1, device=dev, generator=generator) if jitter else torch.full((n, 1), 0.5, device=dev)
        quantiles = ((k + offset) / (count + 1)).contiguous()
        quantiles[:, 0], quantiles[:, -1] = 0.0, 1.0  # the intervals cover the whole ray
        field_t = torch.empty(n * count, device=dev)
        field_delta = torch.empty(n * count, device=dev)
        if n:
            _field_intervals_kernel(s_lo, s_hi, scale, int(self.unbounded), weights.detach().contiguous(), bins,
                                    quantiles, count, UNIFORM_SHARE, field_t, field_delta)
        offsets, counts, field_ray = fixed_layout(n, count, dev)
        samples = Samples(field_t, field_delta, field_ray, offsets, counts, count)
        histogram = None
        if torch.is_grad_enabled():
            cumulative = F.pad(torch.cumsum(weights, 1), (1, 0))
            histogram = ProposalHistogram(cumulative, s_lo, s_hi, scale, self.unbounded)
        return samples, histogram


def _interval_ends(histogram: ProposalHistogram, samples: Samples, ray: torch.Tensor):
    """(a, b, lo, span) per field sample: its interval [t - delta/2, t + delta/2] in s, and its
    ray's s range start and length (``ray``: each sample's ray, as int64)."""
    lo, scale = histogram.s_lo[ray], histogram.scale[ray]
    span = (histogram.s_hi[ray] - lo).clamp_min(1e-12)
    half = 0.5 * samples.delta
    a = spacing_torch(samples.t - half, scale, histogram.unbounded)
    b = spacing_torch(samples.t + half, scale, histogram.unbounded)
    return a, b, lo, span


def interlevel_loss(histogram: ProposalHistogram, samples: Samples, weights: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360's proposal loss: for each field interval [t - delta/2, t + delta/2] of weight
    w, the proposal weight of the bins it overlaps, b, should be at least w; the loss is
    sum(max(0, w - b)^2 / w) per ray, averaged over rays. Only the proposal learns from it."""
    cumulative = histogram.cumulative
    n, bins = cumulative.shape[0], cumulative.shape[1] - 1
    if samples.num_samples == 0 or n == 0:
        return cumulative.sum() * 0.0
    ray = samples.ray_index.long()
    a, b, lo, span = _interval_ends(histogram, samples, ray)
    first = torch.floor((a - lo) / span * bins).long().clamp(0, bins)
    last = torch.ceil((b - lo) / span * bins - 1e-4).long().clamp(0, bins)
    last = torch.maximum(last, first)
    bound = cumulative[ray, last] - cumulative[ray, first]
    w = weights.detach()
    excess = F.relu(w - bound)
    return (excess * excess / (w + 1e-7)).sum() / n


def distortion_loss(histogram: ProposalHistogram, samples: Samples, weights: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360's distortion loss over each ray's field intervals, in s normalised to [0, 1]:
    sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (b_i - a_i) for intervals [a_i, b_i] with
    midpoints m_i, averaged over rays. ``weights`` must be differentiable (compositing's are).
    The intervals of a ray are in order, so the double sum is a prefix sum within each ray:
    2 sum_i w_i (m_i W_<i - (wm)_<i). Any packed layout: rays may have different counts (the
    hidden samples dropped, ``skip_hidden``)."""
    n = histogram.s_lo.shape[0]
    if samples.num_samples == 0 or n == 0:
        return weights.sum() * 0.0
    ray = samples.ray_index.long()
    a, b, lo, span = _interval_ends(histogram, samples, ray)
    a, b = (a - lo) / span, (b - lo) / span
    m = 0.5 * (a + b)
    w = weights
    between = 2.0 * w * (m * _before_in_ray(w, samples, ray) - _before_in_ray(w * m, samples, ray))
    within = w * w * (b - a) / 3.0
    return (between + within).sum() / n


def _before_in_ray(x: torch.Tensor, samples: Samples, ray: torch.Tensor) -> torch.Tensor:
    """Per sample, the sum of ``x`` over the samples before it on its ray (packed: a ray's samples
    are contiguous and in order). One running sum, less what it held at each ray's first sample;
    in float64, so that rays late in the batch do not lose the small sums to rounding."""
    wide = x.double()
    exclusive = torch.cumsum(wide, 0) - wide
    start = exclusive[samples.offsets.long().clamp(max=samples.num_samples - 1)]  # empty rays: never read
    return (exclusive - start[ray]).to(x.dtype)
