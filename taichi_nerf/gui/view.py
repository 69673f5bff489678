"""The window's view of the field: the user's camera rendered progressively. A coarse level
follows a moving camera; once it stops, finer levels up to the canvas's full resolution are
rendered in bands of rows, as many as the frame's time budget allows (on a GPU, with no
budget, the full resolution at once). What changed since the window image was composed is
kept as dirty bands, so the app redraws only those rows.
"""
import copy
import dataclasses
import time

import numpy as np
import torch

from ..metrics import colorize
from .schedule import Band, ProgressiveResolution, RenderCost

MODES = ("rgb", "depth", "opacity", "compare")
MOVING_FRAME_S = 0.1  # the coarse preview that follows the mouse should render in about this long
ADAPTIVE_START = (8, 4, 2, 1)  # levels before the first measured render speed


class ProgressiveView:
    """Resolution levels of the view (``progressive`` decides which rows to render next,
    ``levels`` holds each level's rgb/depth/opacity) and the renders that fill them."""

    def __init__(self, renderer, background: torch.Tensor, size: tuple[int, int], render_samples: int,
                 max_samples: int, divisors: tuple | None = None, whole: bool = False):
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
        self.dirty: list[Band] | None = None  # rendered since the last compose; None: everything

    def resize(self, width: int, height: int) -> None:
        if (width, height) != (self.progressive.full_width, self.progressive.full_height):
            self.progressive.resize(width, height)
            self.dirty = None

    def restart(self, moving_frame_s: float = MOVING_FRAME_S) -> None:
        """From the coarsest level again; adaptive: sized to render in ``moving_frame_s``."""
        self.dirty = None
        if self.adaptive and self.cost.measured:
            if self.progressive.retarget(self.cost.per_pixel, moving_frame_s):
                self.levels = [None] * len(self.progressive.divisors)
                return
        self.progressive.restart()

    def limit_refresh(self, max_render_s: float | None) -> None:
        """Refine no finer than the level that renders whole in ``max_render_s`` (None or an
        unmeasured speed: full resolution)."""
        p = self.progressive
        if max_render_s is None or not self.cost.measured:
            p.set_limit(None)
            return
        fits = [k for k in range(p.top + 1) if self.cost.seconds(*p.size(k)) <= max_render_s]
        p.set_limit(max(fits, default=0))

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
            width, height = p.size(p.level)
            rows = 1 << 30 if budget_s is None else self.cost.rows_within(budget_s - spent, width, height, p.rows_done)
            if rendered and rows == 0:
                return True  # another band would overrun the frame
            band = self.progressive.next_band(rows)
            if band is None:
                return rendered
            shown = self.progressive.shown
            self._render_band(renderer, camera, band)
            self.progressive.finish(band)
            if self.dirty is not None:
                self.dirty.append(band)
                if self.progressive.shown != shown:  # a finer level replaced the one shown
                    self.dirty = None
            rendered = True

    def _render_band(self, renderer, camera, band: Band) -> None:
        w, h = self.progressive.size(band.level)
        buf = self.levels[band.level]
        if buf is None or buf["rgb"].shape[:2] != (h, w):
            buf = self.levels[band.level] = {"rgb": torch.ones(h, w, 3), "depth": torch.zeros(h, w),
                                             "opacity": torch.zeros(h, w)}
        pose = torch.from_numpy(camera.pose())[None]
        intr = torch.from_numpy(camera.intrinsics(w, h))[None]
        rows = band.row1 - band.row0
        t0 = time.perf_counter()
        out = renderer.render_pixels(pose, intr, 0, w, band.row0 * w, rows * w, self.background,
                                     samples_per_ray=self.render_samples)
        for key in ("rgb", "depth", "opacity"):
            buf[key][band.row0:band.row1] = out[key].view(rows, w, *out[key].shape[1:]).cpu()
        buf["near"], buf["far"] = renderer.scene.near, renderer.scene.far
        for cached in buf.get("shown", {}).values():
            cached[1].append((band.row0, band.row1))  # the colour-mapped rows are stale
        self.cost.add(band.row0 / h, band.row1 / h, w * rows, time.perf_counter() - t0)

    def renderer_for(self, camera):
        """The renderer with near/far moved by how much closer or further than the training
        cameras we are, so zooming does not clip the scene (forward-facing scenes excepted:
        their near/far live in NDC)."""
        scene = self.renderer.scene
        if scene.ndc or scene.forward_facing:
            return self.renderer
        shift = float(np.linalg.norm(camera.eye - np.asarray(scene.center))) - scene.orbit_radius
        if abs(shift) < 1e-6:
            return self.renderer
        view = copy.copy(self.renderer)
        view.scene = dataclasses.replace(scene, near=max(1e-2, scene.near + shift), far=max(2e-2, scene.far + shift))
        return view

    def uses_grid(self) -> bool:
        """An updated occupancy grid decides the samples per ray (the slider has no say)."""
        grid = self.renderer.grid
        return grid is not None and grid.updates > 0

    def layers(self, mode: str) -> list[tuple[torch.Tensor, int | None]]:
        """(image, rows valid) to draw, bottom first: the finest finished level, then the
        finished rows of the finer level being rendered over it."""
        p, out = self.progressive, []
        if p.shown >= 0 and self.levels[p.shown] is not None:
            out.append((shown_as(self.levels[p.shown], mode), None))
        if p.working and p.level != p.shown and p.rows_done > 0 and self.levels[p.level] is not None:
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
            rgb = colorize(buf["depth"][r0:r1].numpy(), buf["opacity"][r0:r1].numpy() > 0.05, lo=buf.get("near"),
                           hi=buf.get("far"))
            image[r0:r1] = torch.from_numpy(rgb).float() / 255.0
        else:
            image[r0:r1] = buf["opacity"][r0:r1, :, None]
    stale.clear()
    return image
