"""The window's view of the field: the user's camera rendered progressively. A coarse level
follows a moving camera; once it stops, finer levels up to the canvas's full resolution are
rendered in bands of rows, as many as the frame's time budget allows (on a GPU, with no
budget, the full resolution at once). What changed since the window image was composed is
kept as dirty bands, so the app redraws only those rows.

A finer level renders only the pixels where the level below varies (adaptive refinement):
where the 3x3 neighbourhood of the coarser picture is flat to within ``FLAT_RANGE`` in colour
and opacity, the finer pixel is interpolated from it instead. On the trained built-in
scene at 774x774 that renders a fifth of the full level's pixels, and the picture is within
65 dB PSNR of rendering every pixel (docs/BENCHMARKS.md).
"""
import time

import torch
import torch.nn.functional as F

from ..outputs.depth_view import depth_colors
from ..rendering.renderer import renderer_seen_from
from .schedule import MIN_COARSE_PIXELS, Band, ProgressiveResolution, RenderCost

MODES = ("rgb", "depth", "opacity", "compare")
MOVING_FRAME_S = 0.1  # the coarse preview that follows the mouse should render in about this long
ADAPTIVE_START = (8, 4, 2, 1)  # levels before the first measured render speed
FLAT_RANGE = 0.05  # a finer pixel is interpolated where the coarser picture varies less than this
SPARSE_AT_MOST = 0.7  # a level with more of its pixels to render is rendered whole (scattered rays cost more)


class ProgressiveView:
    """Resolution levels of the view (``progressive`` decides which rows to render next,
    ``levels`` holds each level's rgb/depth/opacity) and the renders that fill them."""

    def __init__(self, renderer, background: torch.Tensor, size: tuple[int, int], render_samples: int,
                 max_samples: int, divisors: tuple | None = None, whole: bool = False,
                 flat_range: float = FLAT_RANGE):
        self.renderer, self.background = renderer, background
        self.render_samples = render_samples  # samples per ray when no occupancy grid decides them
        self.max_samples = max(render_samples, max_samples)
        # Fixed divisors when given; ``whole`` (a GPU): full resolution at once; otherwise the
        # coarsest level follows the measured render speed.
        self.adaptive = divisors is None and not whole
        self.whole = whole and divisors is None
        divisors = divisors or ((1,) if whole else ADAPTIVE_START)
        self.progressive = ProgressiveResolution(size[0], size[1], tuple(divisors))
        self.levels: list[dict | None] = [None] * len(self.progressive.divisors)
        self.cost = RenderCost()  # seconds per pixel, by height in the picture: sizes the bands
        # Levels interpolated where flat render mostly edge pixels, dearer than a whole level's average.
        self.sparse_cost = RenderCost()
        self.flat_range = flat_range  # 0: every level renders every pixel
        self.plan: dict | None = None  # the level in progress: which pixels to render, the rest interpolated
        self.need_fraction: dict[int, float] = {}  # level -> share of its pixels rendered last time
        self.dirty: list[Band] | None = None  # rendered since the last compose; None: everything
        self.restarted_at = time.perf_counter()
        self.refined_after_s: dict[str, float] = {}  # "WxH" -> seconds from the restart to that level shown
        self.min_coarse_pixels = MIN_COARSE_PIXELS  # the moving preview's floor across its short side

    def resize(self, width: int, height: int) -> None:
        if (width, height) != (self.progressive.full_width, self.progressive.full_height):
            self.progressive.resize(width, height)
            self.dirty = self.plan = None

    def restart(self, moving_frame_s: float = MOVING_FRAME_S) -> None:
        """From the coarsest level again; adaptive: sized to render in ``moving_frame_s``."""
        self.dirty = self.plan = None
        self.restarted_at, self.refined_after_s = time.perf_counter(), {}
        p = self.progressive
        if self.adaptive:
            if self.cost.measured:
                changed = p.retarget(self.cost.per_pixel, moving_frame_s, min_pixels=self.min_coarse_pixels)
            else:  # the levels before a measured speed keep the floor too (the browser's 32 pixels)
                short = min(p.full_width, p.full_height)
                changed = p.use_divisors(tuple(d for d in ADAPTIVE_START
                                               if d == 1 or short / d >= self.min_coarse_pixels))
            if changed:
                self.levels = [None] * len(p.divisors)
                return
        p.restart()

    def limit_refresh(self, max_render_s: float | None) -> None:
        """Refine no finer than the level that renders whole in ``max_render_s`` (None or an
        unmeasured speed: full resolution)."""
        p = self.progressive
        if max_render_s is None or not self.cost.measured:
            p.set_limit(None)
            return
        fits = [k for k in range(p.top + 1) if self.refresh_seconds(k) <= max_render_s]
        p.set_limit(max(fits, default=0))

    def refresh(self) -> None:
        """The field changed (a training step): redo the target level, from the level below
        when that is predicted to be cheaper than rendering it whole."""
        p = self.progressive
        p.refresh(from_below=self._from_below_seconds(p.target) < self.cost.seconds(*p.size(p.target)))

    def refresh_seconds(self, level: int) -> float:
        """Predicted time to redo ``level`` for a changed field (see :meth:`refresh`)."""
        return min(self.cost.seconds(*self.progressive.size(level)), self._from_below_seconds(level))

    def _from_below_seconds(self, level: int) -> float:
        """The level below whole, then the share of this level's pixels rendered last time."""
        p = self.progressive
        if self.flat_range <= 0 or level == 0 or not self.sparse_cost.measured:
            return float("inf")
        share = self.need_fraction.get(level, 1.0)
        return self.cost.seconds(*p.size(level - 1)) + share * self.sparse_cost.seconds(*p.size(level))

    def take_dirty(self) -> list[Band] | None:
        """Bands rendered since the last call (None: redraw everything)."""
        dirty, self.dirty = self.dirty, []
        return dirty

    def refine(self, camera, budget_s: float | None, coarse_only: bool = False) -> bool:
        """At least one band per frame (so refinement always progresses), more while
        ``budget_s`` lasts (None: no limit); only the coarse level while the camera moves
        (the next frame starts over anyway). False when the view was already complete."""
        start = time.perf_counter()
        renderer = self.renderer_for(camera)
        rendered = False
        while True:
            spent = time.perf_counter() - start
            if rendered and (coarse_only or (budget_s is not None and spent >= budget_s)):
                return True
            p = self.progressive
            if not p.working:
                return rendered
            width, height = p.size(p.level)
            plan = self.plan_for(p.level)
            cost, row_pixels = (self.cost, None) if plan is None else (self.sparse_cost, plan["row_pixels"])
            if budget_s is None:
                rows = 1 << 30
            elif rendered:
                rows = cost.rows_within(budget_s - spent, width, height, p.rows_done, row_pixels)
                if rows == 0:
                    return True  # another band would overrun the frame
            else:  # the frame's one band, worth its fixed cost
                rows = cost.first_band_rows(budget_s - spent, width, height, p.rows_done, row_pixels)
            band = p.next_band(rows)
            shown, hidden = p.shown, p.hidden
            self._render_band(renderer, camera, band, plan)
            p.finish(band)
            if self.dirty is not None and not hidden:  # a hidden level changes nothing on screen
                self.dirty.append(band)
                if p.shown != shown:  # a finer level replaced the one shown
                    self.dirty = None
            size = "{}x{}".format(*p.size(p.shown)) if p.shown >= 0 else None
            if size is not None and size not in self.refined_after_s:  # to 0.1 ms: a GPU may show one in under 1 ms
                self.refined_after_s[size] = round(time.perf_counter() - self.restarted_at, 4)
            rendered = True

    def plan_for(self, level: int) -> dict | None:
        """Which pixels of ``level`` to render (None: all of them) and the interpolated
        picture for the others, made from the level below when the level starts. The
        coarsest level, and the hidden level below a refresh, render every pixel."""
        p = self.progressive
        if self.flat_range <= 0 or level == 0 or (p.refreshing and (level < p.target or not p.from_below)):
            return None  # (a refresh interpolates only from a level below it redid first)
        key = (level, p.passes)  # one pass over the level: passes counts finished levels
        if self.plan is None or self.plan["key"] != key:
            below = self.levels[level - 1]
            self.plan = {"key": key} if below is None else self._make_plan(below, *p.size(level), key)
            if "need" in self.plan:
                share = float(self.plan["row_pixels"].sum()) / max(1, p.size(level)[0] * p.size(level)[1])
                self.need_fraction[level] = share
                if share > SPARSE_AT_MOST:
                    self.plan = {"key": key}
        return self.plan if "need" in self.plan else None

    def _make_plan(self, below: dict, width: int, height: int, key) -> dict:
        coarse = torch.cat([below["rgb"], below["opacity"][..., None], below["depth"][..., None]], -1)
        coarse = coarse.permute(2, 0, 1)[None]
        # Flat in colour and opacity (silhouettes). Depth is left out: a slanted surface's
        # depth changes fast but linearly, which interpolation gets right.
        seen = coarse[:, :4]
        spread = (F.max_pool2d(seen, 3, 1, 1) + F.max_pool2d(-seen, 3, 1, 1)).amax(1, keepdim=True)
        need = F.interpolate((spread > self.flat_range).float(), size=(height, width), mode="nearest")[0, 0] > 0
        # align_corners=False maps pixel centres to pixel centres: each level spans the same view
        fine = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]
        return {"key": key, "need": need, "row_pixels": need.sum(1).numpy(),
                "rgb": fine[:3].permute(1, 2, 0), "opacity": fine[3], "depth": fine[4]}

    def _render_band(self, renderer, camera, band: Band, plan: dict | None) -> None:
        w, h = self.progressive.size(band.level)
        buf = self.levels[band.level]
        if buf is None or buf["rgb"].shape[:2] != (h, w):
            buf = self.levels[band.level] = {"rgb": torch.ones(h, w, 3), "depth": torch.zeros(h, w),
                                             "opacity": torch.zeros(h, w)}
        pose = torch.from_numpy(camera.pose())[None]
        intr = torch.from_numpy(camera.intrinsics(w, h))[None]
        rows = band.row1 - band.row0
        t0 = time.perf_counter()
        if plan is None:
            out = renderer.render_pixels(pose, intr, 0, w, band.row0 * w, rows * w, self.background,
                                         samples_per_ray=self.render_samples)
            for key in ("rgb", "depth", "opacity"):
                buf[key][band.row0:band.row1] = out[key].view(rows, w, *out[key].shape[1:]).cpu()
            pixels = w * rows
        else:
            for key in ("rgb", "depth", "opacity"):
                buf[key][band.row0:band.row1] = plan[key][band.row0:band.row1]
            index = plan["need"][band.row0:band.row1].reshape(-1).nonzero()[:, 0] + band.row0 * w
            pixels = index.numel()
            if pixels:
                out = renderer.render_pixels(pose, intr, 0, w, 0, 0, self.background,
                                             samples_per_ray=self.render_samples, pixels=index)
                for key in ("rgb", "depth", "opacity"):
                    buf[key].view(h * w, -1)[index] = out[key].cpu().view(pixels, -1)
        buf["scene"] = renderer.scene  # near/far as rendered: renderer_for moves them with the camera
        for cached in buf.get("shown", {}).values():
            cached[1].append((band.row0, band.row1))  # the colour-mapped rows are stale
        if pixels:
            cost = self.cost if plan is None else self.sparse_cost
            cost.add(band.row0 / h, band.row1 / h, pixels, time.perf_counter() - t0)

    def renderer_for(self, camera):
        """The renderer with near/far moved by how much closer or further than the training
        cameras we are, so zooming does not clip the scene (forward-facing scenes excepted:
        their near/far live in NDC)."""
        return renderer_seen_from(self.renderer, camera.eye)

    def samples_decided(self) -> str | None:
        """What decides the samples per ray where the slider has no say: an updated occupancy
        grid, or the proposal network; None: the slider."""
        grid = self.renderer.grid
        if grid is not None and grid.updates > 0:
            return "occupancy grid"
        return "proposal network" if self.renderer.proposal is not None else None

    def layers(self, mode: str) -> list[tuple[torch.Tensor, int | None]]:
        """(image, rows valid) to draw, bottom first: the finest finished level, then the
        finished rows of the finer level being rendered over it."""
        p, out = self.progressive, []
        if p.shown >= 0 and self.levels[p.shown] is not None:
            out.append((shown_as(self.levels[p.shown], mode), None))
        if p.working and p.level > p.shown and p.rows_done > 0 and self.levels[p.level] is not None:
            out.append((shown_as(self.levels[p.level], mode), p.rows_done))
        return out


def shown_as(buf: dict, mode: str) -> torch.Tensor:
    """(H, W, 3) float image of a rendered level in a render mode. Depth and opacity images
    are kept with the level and recomputed only in the rows rendered since (a full-canvas
    colour map per frame would cost more than the frame)."""
    if mode not in ("depth", "opacity"):
        return buf["rgb"]
    cache = buf.setdefault("shown", {})
    if mode not in cache:
        cache[mode] = (torch.empty_like(buf["rgb"]), [(0, buf["rgb"].shape[0])])
    image, stale = cache[mode]
    for r0, r1 in stale:
        if mode == "depth":
            rgb = depth_colors(buf["depth"][r0:r1], buf["opacity"][r0:r1], buf["scene"])
            image[r0:r1] = torch.from_numpy(rgb).float() / 255.0
        else:
            image[r0:r1] = buf["opacity"][r0:r1, :, None]
    stale.clear()
    return image
