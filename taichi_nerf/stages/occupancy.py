"""Occupancy grid, packed ray marching, and early ray termination.

The grid caches, per cell of a G^3 lattice over the scene box, the largest density the field
has shown there recently (each update takes max(decay * old, new sample)). Marching walks
each ray in fixed steps and emits a sample only inside occupied cells; it runs twice (count,
then fill) so the packed buffers are sized exactly with no per-ray Python.

Early termination uses the field's own densities at the marched samples (:func:`terminate`),
not the grid's cached maxima: stopping rays on stale cached densities kept samples in front
of where the surface had moved, and training then locked that wrong surface in (measured:
validation PSNR peaked at 23.6 dB and fell to 18.3 dB over 5000 steps).
"""
import math

import taichi as ti
import torch
from torch import nn

from .. import backend
from .packing import Samples, offsets_of, ray_box
from .space import box_norm, contract, contracted_box


@ti.func
def _cell_of(p: ti.template(), aabb: ti.template(), res: ti.i32) -> ti.i32:
    idx = 0
    for k in ti.static(range(3)):
        c = ti.cast(ti.floor((p[k] - aabb[k]) / (aabb[k + 3] - aabb[k]) * res), ti.i32)
        idx = idx * res + ti.min(ti.max(c, 0), res - 1)
    return idx


@ti.func
def _first_step(o: ti.template(), d: ti.template(), t0: ti.f32, step: ti.f32, cone: ti.f32, inner: ti.template(),
                unbounded: ti.i32) -> ti.f32:
    dt = ti.max(step, t0 * cone)
    if unbounded:
        dt = step * ti.max(1.0, box_norm(o + t0 * d, inner)) ** 2
    return dt


@ti.func
def _step_cell(o: ti.template(), d: ti.template(), t: ti.f32, aabb: ti.template(), res: ti.i32, step: ti.f32,
               cone: ti.f32, inner: ti.template(), unbounded: ti.i32):
    """The grid cell at ray distance ``t`` and the marching step taken from there."""
    dt = ti.min(ti.max(step, t * cone), 16.0 * step)  # steps grow with distance when cone > 0
    p = o + t * d
    if unbounded:
        # Outside the inner box contraction shrinks distances by about 1/s^2: steps
        # of step * s^2 are then about even in contracted space, where the grid is.
        s = ti.max(1.0, box_norm(p, inner))
        dt = step * s * s
        p = contract(p, inner)
    return _cell_of(p, aabb, res), dt


@ti.kernel
def _march_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), aabb: ti.types.ndarray(),
                  near: ti.f32, far: ti.f32, res: ti.i32, occupied: ti.types.ndarray(),
                  step: ti.f32, cone: ti.f32, jitter: ti.types.ndarray(), use_jitter: ti.i32,
                  max_samples: ti.i32, inner: ti.types.ndarray(), unbounded: ti.i32,
                  counts: ti.types.ndarray(), offsets: ti.types.ndarray(), fill: ti.template(),
                  t_out: ti.types.ndarray(), delta_out: ti.types.ndarray(), ray_out: ti.types.ndarray(),
                  serial: ti.template()):
    ti.loop_config(serialize=serial)
    for r in range(origins.shape[0]):
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
        t0, t1 = near, far  # unbounded: the whole ray; the grid covers all of contracted space
        if not unbounded:
            t0, t1 = ray_box(o, d, aabb, near, far)
        u = 0.5
        if use_jitter:
            u = jitter[r]
        n = 0
        base = 0
        limit = max_samples
        if ti.static(fill):
            # The two passes are compiled separately, so float rounding may let the fill pass
            # take one step more than was counted: never write past this ray's slots.
            base = offsets[r]
            limit = counts[r]
        t = t0 + u * _first_step(o, d, t0, step, cone, inner, unbounded)
        while t < t1 and n < limit:
            c, dt = _step_cell(o, d, t, aabb, res, step, cone, inner, unbounded)
            if occupied[c] != 0:
                if ti.static(fill):
                    t_out[base + n] = t
                    delta_out[base + n] = dt
                    ray_out[base + n] = r
                n += 1
            t += dt
        if ti.static(fill):
            while n < limit:  # ...or one step fewer: pad with empty intervals that add nothing
                t_out[base + n] = t1
                delta_out[base + n] = 0.0
                ray_out[base + n] = r
                n += 1
        else:
            counts[r] = n


@ti.kernel
def _mark_seen_kernel(origins: ti.types.ndarray(), dirs: ti.types.ndarray(), aabb: ti.types.ndarray(),
                      near: ti.f32, far: ti.f32, res: ti.i32, step: ti.f32, cone: ti.f32, max_steps: ti.i32,
                      inner: ti.types.ndarray(), unbounded: ti.i32, seen: ti.types.ndarray()):
    # The march's own steps from each step's middle, every cell counted whether occupied or not.
    for r in range(origins.shape[0]):
        o = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        d = ti.Vector([dirs[r, 0], dirs[r, 1], dirs[r, 2]])
        t0, t1 = near, far
        if not unbounded:
            t0, t1 = ray_box(o, d, aabb, near, far)
        t = t0 + 0.5 * _first_step(o, d, t0, step, cone, inner, unbounded)
        n = 0
        while t < t1 and n < max_steps:
            c, dt = _step_cell(o, d, t, aabb, res, step, cone, inner, unbounded)
            seen[c] = ti.u8(1)
            t += dt
            n += 1


@ti.kernel
def _cell_points_kernel(cells: ti.types.ndarray(), jitter: ti.types.ndarray(), aabb: ti.types.ndarray(),
                        res: ti.i32, points: ti.types.ndarray()):
    for i in range(cells.shape[0]):
        c = cells[i]
        ijk = ti.Vector([c // (res * res), (c // res) % res, c % res])
        for k in ti.static(range(3)):
            points[i, k] = aabb[k] + (ti.f32(ijk[k]) + jitter[i, k]) / res * (aabb[k + 3] - aabb[k])


@ti.kernel
def _update_kernel(cells: ti.types.ndarray(), new_density: ti.types.ndarray(), decay: ti.f32,
                   density: ti.types.ndarray()):
    for i in range(cells.shape[0]):
        c = cells[i]
        density[c] = ti.max(density[c] * decay, new_density[i])


@ti.kernel
def _terminate_kernel(sigma: ti.types.ndarray(), delta: ti.types.ndarray(), offsets: ti.types.ndarray(),
                      counts: ti.types.ndarray(), min_transmittance: ti.f32,
                      keep: ti.types.ndarray(), kept: ti.types.ndarray()):
    for r in range(offsets.shape[0]):
        trans = 1.0
        n = 0
        for j in range(counts[r]):
            i = offsets[r] + j
            visible = trans > min_transmittance
            keep[i] = ti.cast(visible, ti.u8)
            if visible:
                n += 1
            trans *= ti.exp(-sigma[i] * delta[i])  # forward-only kernel: exp is safe here
        kept[r] = n


def terminate(samples: Samples, sigma: torch.Tensor,
              min_transmittance: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Which samples are still visible (transmittance above ``min_transmittance``) given the
    field's densities ``sigma`` (M,): returns (index (K,) int64 of the kept samples, kept
    counts (N,) int32 per ray). The kept samples of a ray are a prefix of its samples, so
    :func:`taichi_nerf.stages.packing.compact` (samples, index, counts) is packed again."""
    keep = torch.empty(samples.num_samples, dtype=torch.uint8, device=sigma.device)
    kept = torch.empty_like(samples.counts)
    if samples.num_rays and samples.num_samples:
        _terminate_kernel(sigma.detach().contiguous(), samples.delta, samples.offsets, samples.counts,
                          float(min_transmittance), keep, kept)
    else:
        kept.zero_()
    return keep.nonzero()[:, 0], kept


class OccupancyGrid(nn.Module):
    """A density cache over the scene box that decides where samples are taken.

    ``step`` is the marching step; occupancy means a cell's cached density would make a
    sample of that length at least ``min_alpha`` opaque (or exceeds the grid's mean, when the
    mean is lower: early in training every faint structure is kept).

    A module with buffers ``aabb``, ``density``, ``occupied`` and the update count as extra
    state, so ``state_dict``/``load_state_dict`` and ``.to()`` come from torch. Grids saved
    before it was a module (keys density/occupied/updates/resolution/step) still load.

    ``render_steps_across`` (default ``steps_across``): the steps when rendering, which has no
    backward pass and stops opaque rays, so it can afford finer ones (``render_step_scale``)."""

    def __init__(self, aabb: torch.Tensor, resolution: int = 64, steps_across: int = 192,
                 decay: float = 0.95, min_alpha: float = 0.01, cone_angle: float = 0.0, device="cpu",
                 unbounded: bool = False, full_updates: int = 4, explore_fraction: float = 0.125,
                 render_steps_across: int | None = None):
        super().__init__()
        self.render_step_scale = steps_across / (render_steps_across or steps_across)
        device = torch.device(device)
        inner = torch.as_tensor(aabb, dtype=torch.float32).to(device).contiguous()
        self.unbounded = bool(unbounded)
        # Unbounded scenes: ``inner`` is the scene box, the grid covers its contracted cube
        # (taichi_nerf.stages.space) and rays march out to ``far`` through the contracted shell.
        self.register_buffer("inner", inner)
        self.register_buffer("aabb", contracted_box(inner.cpu()).to(device) if self.unbounded else inner.clone())
        self.resolution = int(resolution)
        if self.unbounded:
            # The contracted shell costs about as many steps again as crossing the box: take
            # half as many across it, so a ray's budget matches a bounded scene's.
            steps_across = max(1, steps_across // 2)
        size = inner[3:] - inner[:3]
        self.step = float(size.norm()) / steps_across
        self.max_samples = (2 * steps_across if self.unbounded else steps_across) + 1
        self.decay, self.min_alpha, self.cone_angle = decay, min_alpha, cone_angle
        self.full_updates, self.explore_fraction = full_updates, explore_fraction
        self.last_update_cells = 0
        cells = self.resolution**3
        self.register_buffer("density", torch.zeros(cells, device=device))
        self.register_buffer("occupied", torch.ones(cells, dtype=torch.uint8, device=device))  # all, until first update
        # Cells some training ray crosses (restrict_to_seen) and, with masks, inside their visual
        # hull (restrict_to); all until told. No other cell is ever measured or marched: nothing
        # there is constrained, and measuring it cost NDC and unbounded scenes a fifth of each step
        # (docs/BENCHMARKS.md, "Cells no training ray crosses").
        self.register_buffer("seen", torch.ones(cells, dtype=torch.uint8, device=device))
        self.updates = 0  # a plain int (extra state): reading it never syncs the device

    @property
    def device(self) -> torch.device:
        return self.density.device

    @property
    def occupancy(self) -> float:
        return float(self.occupied.float().mean())

    def _points(self, cells: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
        pts = torch.empty(cells.shape[0], 3, device=self.device)
        _cell_points_kernel(cells, jitter.contiguous(), self.aabb, self.resolution, pts)
        return pts

    @torch.no_grad()
    def update(self, density_fn, generator: torch.Generator | None = None, chunk: int = 65536) -> None:
        """Re-measure cells at a random point inside each and refresh the occupancy bits.

        The first ``full_updates`` updates measure every cell. After that an update measures
        the occupied cells (where carving matters) plus a random ``explore_fraction`` of the
        rest (where new content may appear): on a carved grid that is a few percent of the
        cells, so the update no longer stalls training (issue 12's profile: 0.4 s per full
        64^3 update on CPU-2, a quarter of all training time)."""
        n = self.resolution**3
        seen = self.seen.bool()
        if self.updates < self.full_updates:
            cells = torch.nonzero(seen)[:, 0].to(torch.int32)
        else:
            explore = torch.rand(n, device=self.device, generator=generator) < self.explore_fraction
            cells = torch.nonzero((explore & seen) | self.occupied.bool())[:, 0].to(torch.int32)
        jitter = torch.rand(cells.shape[0], 3, device=self.device, generator=generator)
        pts = self._points(cells, jitter)
        m = cells.shape[0]
        fresh = torch.cat([density_fn(pts[i:i + chunk]) for i in range(0, m, chunk)]).float().contiguous()
        _update_kernel(cells, fresh, self.decay, self.density)
        # The mean over all cells, never-measured ones at 0: over the seen cells alone it rose with
        # the masks' hull and carved the object too soon (ethiopianHead -0.6 dB; BENCHMARKS.md).
        threshold = min(float(self.density.mean()), -math.log(1.0 - self.min_alpha) / self.step)
        occupied = ((self.density > threshold) & seen).to(torch.uint8)
        # A featureless field (e.g. all-equal density) would empty the grid, starving every ray
        # of samples and so of gradients: keep the previous occupancy instead.
        if bool(occupied.any()):
            self.occupied = occupied
        self.updates += 1
        self.last_update_cells = m

    @torch.no_grad()
    def restrict_to_seen(self, rays, near: float, far: float) -> float:
        """Mark the cells that the rays (an iterable of (origins, dirs) batches: the training
        cameras' pixels) cross, dilated by one cell (for pose refinement's small moves and the
        pixels between the rays), and keep every other cell empty from now on (:meth:`restrict_to`).
        Returns the share of cells seen; with no cell seen, nothing changes."""
        seen = torch.zeros_like(self.seen)
        for origins, dirs in rays:
            if origins.shape[0]:
                _mark_seen_kernel(origins.contiguous(), dirs.contiguous(), self.aabb, float(near), float(far),
                                  self.resolution, self.step, self.cone_angle, 8 * self.max_samples, self.inner,
                                  int(self.unbounded), seen)
        res = self.resolution
        dilated = torch.nn.functional.max_pool3d(seen.float().view(1, 1, res, res, res), 3, stride=1, padding=1)
        self.restrict_to((dilated.reshape(-1) > 0).to(torch.uint8))
        return float(self.seen.float().mean())

    @torch.no_grad()
    def restrict_to(self, cells: torch.Tensor) -> None:
        """Keep only those seen cells that ``cells`` ((R^3,) 0/1) allows, e.g. the masks' visual
        hull; nothing changes if that would leave none."""
        kept = self.seen & cells.to(device=self.seen.device, dtype=self.seen.dtype)
        if bool(kept.any()):
            self.seen = kept
            self.occupied &= kept

    def march(self, origins: torch.Tensor, dirs: torch.Tensor, near: float, far: float,
              generator: torch.Generator | None = None, jitter: bool = False, step_scale: float = 1.0) -> Samples:
        """Packed samples of every step that falls in an occupied cell; ``step_scale`` > 1
        marches coarser (an unbounded scene's warm-up, before the grid knows anything), < 1
        finer (rendering, ``render_step_scale``), with room for as many more samples per ray."""
        n = origins.shape[0]
        most = self.max_samples if step_scale >= 1 else math.ceil((self.max_samples - 1) / step_scale) + 1
        dev = origins.device
        u = torch.rand(n, device=dev, generator=generator) if jitter else torch.empty(1, device=dev)
        counts = torch.empty(n, dtype=torch.int32, device=dev)
        dummy_f = torch.empty(1, device=dev)
        dummy_i = torch.empty(1, dtype=torch.int32, device=dev)
        args = (origins, dirs, self.aabb, float(near), float(far), self.resolution, self.occupied,
                self.step * step_scale, self.cone_angle, u, int(jitter), most, self.inner, int(self.unbounded))
        serial = backend.serial_loop(n)
        if n:
            _march_kernel(*args, counts, dummy_i, False, dummy_f, dummy_f, dummy_i, serial)
        offsets = offsets_of(counts)
        m = int(counts.sum()) if n else 0  # the one sync: buffers must be sized
        t = torch.empty(m, device=dev)
        delta = torch.empty(m, device=dev)
        ray_index = torch.empty(m, dtype=torch.int32, device=dev)
        if m:
            _march_kernel(*args, counts, offsets, True, t, delta, ray_index, serial)
        return Samples(t, delta, ray_index, offsets, counts, most)

    def get_extra_state(self) -> dict:
        return {"updates": self.updates}

    def set_extra_state(self, state: dict) -> None:
        self.updates = int(state["updates"])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "resolution" in state_dict:  # the format written before the grid was a module
            resolution = int(state_dict.pop(prefix + "resolution"))
            if resolution != self.resolution:
                raise ValueError(f"occupancy grid resolution {resolution} != {self.resolution}")
            state_dict.pop(prefix + "step", None)  # derived from the box and steps_across, as before
            state_dict[prefix + "_extra_state"] = {"updates": int(state_dict.pop(prefix + "updates"))}
            state_dict.setdefault(prefix + "aabb", self.aabb)  # it never saved the box: the scene's
        state_dict.setdefault(prefix + "inner", self.inner)  # grids saved before unbounded scenes
        state_dict.setdefault(prefix + "seen", torch.ones_like(self.seen))  # ...and before seen cells
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
