"""Time-sharing of the GUI (no window, no Taichi): how each frame's time is split between training
steps and rendering, and how the view refines progressively, from a coarse image while the
camera moves to full resolution once it stops.
"""
import math
from dataclasses import dataclass, field

import numpy as np

MIN_COARSE_PIXELS = 8  # the coarsest level keeps at least this many pixels across


class PausableClock:
    """A clock that stands still while held: the trainer's (``Trainer.clock``, what --time-limit
    counts) while ``train --viewer web`` is paused from the browser, so a pause spends none of the
    time limit and anneals no learning rate."""

    def __init__(self, clock):
        self.clock, self.held_s, self.held_at = clock, 0.0, None

    def __call__(self) -> float:
        return (self.clock() if self.held_at is None else self.held_at) - self.held_s

    def hold(self, held: bool) -> None:
        if held and self.held_at is None:
            self.held_at = self.clock()
        elif not held and self.held_at is not None:
            self.held_s += self.clock() - self.held_at
            self.held_at = None


@dataclass
class TrainingSchedule:
    """Whether a frame trains, and with ``steps_per_frame`` how many steps (None: as many as
    the frame's time budget pays for, :class:`FrameBudget`). ``yield_while_moving``: no
    training while the camera moves, so on a CPU the coarse preview follows the mouse."""
    steps_per_frame: int | None = None
    paused: bool = False
    can_train: bool = True  # False when only viewing a checkpoint
    yield_while_moving: bool = True
    stop_at: int | None = None  # pause once when the step count reaches this
    _stop_reached: bool = False

    def may_train(self, camera_moving: bool) -> bool:
        return self.can_train and not self.paused and not (self.yield_while_moving and camera_moving)

    def steps_for_frame(self, camera_moving: bool) -> int | None:
        """This frame's steps: 0 while it may not train, None when the frame's time budget
        decides (no ``steps_per_frame``), else ``steps_per_frame`` (never negative)."""
        if not self.may_train(camera_moving):
            return 0
        if self.steps_per_frame is None:
            return None
        return max(0, int(self.steps_per_frame))

    def toggle_pause(self) -> bool:
        self.paused = not self.paused
        return self.paused

    def reached(self, step: int) -> bool:
        """True exactly once, on the first frame at or past ``stop_at`` (then pauses)."""
        if self.stop_at is None or self._stop_reached or step < self.stop_at:
            return False
        self._stop_reached = True
        self.paused = True
        return True


@dataclass(frozen=True)
class Band:
    level: int
    row0: int
    row1: int


@dataclass
class ProgressiveResolution:
    """Which rows of which resolution level to render next.

    Level ``k`` renders at ``full / divisors[k]``. A camera move restarts from the coarsest
    level, which is always rendered whole in one frame (so a moving view is never half
    old, half new). Finer levels are rendered in bands of rows across frames, and each
    finished level replaces the one shown, up to the ``target`` level: full resolution, or
    while training ``limit``, the finest level that can be redone in a few seconds. When
    the field changes (training), the target level is re-rendered in bands over the image
    already shown, so the picture never lags far behind the field. A refresh ``from_below``
    (finer levels interpolated from the level below where it is flat, viewing/view.py) redoes the
    level below first, hidden, so that no stale pixel is interpolated.
    """
    full_width: int
    full_height: int
    divisors: tuple = (4, 2, 1)
    level: int = 0  # level being rendered
    rows_done: int = 0  # rows of ``level`` finished
    shown: int = -1  # level finished last since the last restart (-1: none)
    working: bool = True
    limit: int | None = None  # finest level to refine to (None: full resolution)
    passes: int = 0  # levels finished, ever (a script waits for a picture newer than some moment)
    refreshing: bool = False  # redoing the target level for a changed field
    from_below: bool = False  # ...after the level below it (hidden)
    _sizes: list = field(default_factory=list, init=False)

    def __post_init__(self):
        self.resize(self.full_width, self.full_height)

    def resize(self, full_width: int, full_height: int) -> None:
        self.full_width, self.full_height = max(1, int(full_width)), max(1, int(full_height))
        self._sizes = [(max(1, math.ceil(self.full_width / d)), max(1, math.ceil(self.full_height / d)))
                       for d in self.divisors]
        self.restart()

    def retarget(self, seconds_per_pixel: float, target_s: float, max_divisor: int = 64,
                 min_pixels: int = MIN_COARSE_PIXELS) -> bool:
        """Pick the coarsest level so that rendering it takes about ``target_s`` (dynamic
        resolution: a slow field or machine gets a coarser moving preview, a fast one a
        sharper one), at most ``max_divisor`` and ``min_pixels`` across; levels halve the
        divisor down to 1. Returns True if they changed (which restarts the refinement)."""
        pixels = self.full_width * self.full_height
        wanted = math.sqrt(max(pixels * seconds_per_pixel / max(target_s, 1e-6), 1.0))
        cap = min(max_divisor, min(self.full_width, self.full_height) / min_pixels)  # still a picture
        coarsest = 1
        while coarsest < wanted and 2 * coarsest <= cap:
            coarsest *= 2
        return self.use_divisors(tuple(coarsest >> k for k in range(coarsest.bit_length())))

    def use_divisors(self, divisors: tuple) -> bool:
        """Levels at these divisors from now on; True if they changed (which restarts the refinement)."""
        if tuple(divisors) == tuple(self.divisors):
            return False
        self.divisors = tuple(divisors)
        self.resize(self.full_width, self.full_height)
        return True

    def size(self, level: int) -> tuple[int, int]:
        return self._sizes[level]

    @property
    def top(self) -> int:
        return len(self._sizes) - 1

    @property
    def target(self) -> int:
        return self.top if self.limit is None else max(0, min(int(self.limit), self.top))

    @property
    def complete(self) -> bool:
        """The target level's image is shown and nothing is pending."""
        return self.shown == self.target and not self.working

    def set_limit(self, limit: int | None) -> None:
        """Refine no finer than ``limit`` (None: full resolution); a higher limit refines on."""
        self.limit = limit
        if not self.working and 0 <= self.shown < self.target:
            self.level, self.rows_done, self.working = self.shown + 1, 0, True

    def restart(self) -> None:
        """The camera (or anything that changes the whole picture) changed."""
        self.level, self.rows_done, self.shown, self.working, self.refreshing = 0, 0, -1, True, False

    def refresh(self, from_below: bool = False) -> None:
        """The field changed: redo the target level once it is reached (a level in progress
        already sees the new field); ``from_below``: the level below it first."""
        if not self.working:
            self.from_below = from_below and self.target > 0
            self.level, self.rows_done, self.working = self.target - self.from_below, 0, True
            self.refreshing = True

    def next_band(self, max_rows: int) -> Band | None:
        if not self.working:
            return None
        height = self._sizes[self.level][1]
        whole = self.level == 0 and self.shown < 0  # a fresh view: never half old, half new
        rows = height if whole else max(1, int(max_rows))
        return Band(self.level, self.rows_done, min(height, self.rows_done + rows))

    def finish(self, band: Band) -> None:
        if not self.working or band.level != self.level or band.row0 != self.rows_done:
            return  # stale band (the view restarted meanwhile)
        self.rows_done = band.row1
        if self.rows_done >= self._sizes[self.level][1]:
            if self.level == self.target or self.level > self.shown:  # a refresh's hidden level stays hidden
                self.shown = self.level
            self.passes += 1
            if self.level < self.target:
                self.level, self.rows_done = self.level + 1, 0
            else:
                self.working = self.refreshing = False

    @property
    def hidden(self) -> bool:
        """The level in progress is not drawn (a refresh redoing the level below the shown one)."""
        return self.level < self.shown


@dataclass
class RateMeter:
    """Exponential moving average of a per-frame quantity (fps, ms)."""
    smoothing: float = 0.8
    value: float | None = None

    def add(self, x: float) -> float:
        self.value = x if self.value is None else self.smoothing * self.value + (1 - self.smoothing) * x
        return self.value


@dataclass
class RenderCost:
    """Seconds per pixel of rendering the view, by height in the picture (``bins`` horizontal
    strips). Rows through the object cost several times rows of empty space (measured on
    the built-in scene: 18 against 7 us per pixel on the CPU), so one average makes a band
    through the object overrun its frame several times over. Each rendered band updates
    the strips it covered; a band is sized by adding up its rows' costs. A strip not
    measured yet costs the average of those that are."""
    bins: int = 32
    smoothing: float = 0.6
    _per_pixel: list = field(default_factory=list)

    def __post_init__(self):
        self._per_pixel = [None] * self.bins

    @property
    def measured(self) -> bool:
        return any(c is not None for c in self._per_pixel)

    def _bin(self, y: float) -> int:
        return min(self.bins - 1, max(0, int(y * self.bins)))

    def add(self, y0: float, y1: float, pixels: int, seconds: float) -> None:
        """A band from ``y0`` to ``y1`` (fractions of the height, top = 0) took ``seconds``."""
        cost = seconds / max(1, pixels)
        for b in range(self._bin(y0), self._bin(max(y0, y1 - 1e-9)) + 1):
            old = self._per_pixel[b]
            self._per_pixel[b] = cost if old is None else self.smoothing * old + (1 - self.smoothing) * cost

    @property
    def per_pixel(self) -> float:
        known = [c for c in self._per_pixel if c is not None]
        return sum(known) / len(known) if known else 1e-4

    def _row_costs(self, width: int, height: int, row0: int, row1: int, row_pixels=None) -> np.ndarray:
        """Predicted seconds of each row ``row0``..``row1`` (numpy: this runs every frame, for
        every level of a canvas up to ~800 rows high). ``row_pixels``: how many pixels of each
        row of the picture are rendered (default: ``width``)."""
        mean = self.per_pixel
        table = np.array([mean if c is None else c for c in self._per_pixel])
        rows = np.arange(row0, row1)
        strip = np.clip(((rows + 0.5) / height * self.bins).astype(np.int64), 0, self.bins - 1)
        pixels = width if row_pixels is None else row_pixels[row0:row1]
        return pixels * table[strip]

    def seconds(self, width: int, height: int, row0: int = 0, row1: int | None = None, row_pixels=None) -> float:
        """Predicted time of rows ``row0``..``row1`` of a ``width`` x ``height`` picture."""
        return float(self._row_costs(width, height, row0, height if row1 is None else row1, row_pixels).sum())

    def rows_within(self, seconds: float, width: int, height: int, row0: int, row_pixels=None) -> int:
        """How many rows from ``row0`` render in ``seconds`` (0: not even one)."""
        spent = np.cumsum(self._row_costs(width, height, row0, height, row_pixels))
        return int(np.searchsorted(spent, seconds * (1 + 1e-9), side="right"))  # (rounding in the sum)

    def first_band_rows(self, seconds: float, width: int, height: int, row0: int, row_pixels=None) -> int:
        """The rows of a frame's first band: what ``seconds`` buys (:meth:`rows_within`), but at
        least MIN_BAND_PIXELS rendered pixels' worth (or the rest of the picture)."""
        floor = rows_for_pixels(MIN_BAND_PIXELS, width, height, row0, row_pixels)
        return max(floor, self.rows_within(seconds, width, height, row0, row_pixels))


# A frame's first band renders at least this many pixels (or the rest of its level). A band has a
# fixed cost besides its pixels (kernel launches, tensors, copies: milliseconds on a CPU), which
# RenderCost charges to the pixels; bands of one row under a tight budget made that charge large,
# the next band smaller still, and refinement crawled a row per frame.
MIN_BAND_PIXELS = 2048


def rows_for_pixels(pixels: int, width: int, height: int, row0: int, row_pixels=None) -> int:
    """The fewest rows from ``row0`` that hold ``pixels`` rendered pixels (all the rest if they
    hold fewer); ``row_pixels`` as in :meth:`RenderCost.seconds`."""
    if row_pixels is None:
        return max(1, min(height - row0, -(-int(pixels) // max(1, width))))
    held = np.cumsum(np.asarray(row_pixels[row0:height]))
    return max(1, min(height - row0, int(np.searchsorted(held, pixels, side="left")) + 1))


MAX_WORK_FRAMES = 2  # a frame's work and counted overhead reach at most this many target periods


@dataclass
class FrameBudget:
    """Each frame's time, split between training steps and rendering, so the window keeps its
    frame rate at any model size. The work time of a frame is the target period less what
    the frame costs besides (input, composing, presenting; measured). Training gets
    ``train_share`` of it on average, in whole steps: a credit grows by its share every
    frame and each step is paid from it, so a step slower than a frame runs every few frames
    instead of stalling every one. Rendering gets the rest of the frame (at least its share).
    """
    frame_s: float = 0.08  # target frame period: 12.5 fps; whole training steps overshoot it ~10 %
    train_share: float = 0.5
    min_work_s: float = 0.015
    credit_s: float = 0.0
    overhead: RateMeter = field(default_factory=lambda: RateMeter(0.9))
    step_s: RateMeter = field(default_factory=lambda: RateMeter(0.8))
    _first_step: bool = True

    def work_s(self) -> float:
        """The frame's time for training and rendering: the target period less the overhead, but
        never less than the overhead itself. Where presenting alone takes longer than the target
        (a software Vulkan driver over X forwarding: 150 ms a frame, measured under Xvfb with
        lavapipe) the frame rate cannot be kept anyway, and the work gets half of each frame
        rather than a sliver (15 ms of 165: a tenth of the training and one row of a video)."""
        overhead = self.overhead.value or 0.0
        return min(MAX_WORK_FRAMES * self.frame_s, max(self.min_work_s, self.frame_s - overhead, overhead))

    def period_s(self) -> float:
        """The frame period to expect: the target, or longer when the overhead and the work exceed it."""
        return max(self.frame_s, self.work_s() + (self.overhead.value or 0.0))

    def grant(self, last_render_s: float = 0.0) -> None:
        """A training frame begins: add training's share of the work time, or when the last
        frame's rendering overran its part, as much time as rendering took in proportion
        (the split holds in time, not just per frame). At most one step is kept in hand, so
        frames without training (the camera moving) save nothing up."""
        share = self.train_share
        grant = max(share * self.work_s(), share / max(1.0 - share, 1e-3) * last_render_s)
        self.credit_s = min(self.credit_s + grant, grant + (self.step_s.value or 0.0))

    def forfeit(self) -> None:
        """A frame without training: no credit carried over."""
        self.credit_s = min(self.credit_s, 0.0)

    def wants_step(self) -> bool:
        """Another step fits: the credit covers at least half the expected step time (the
        first step, of unknown cost, always runs)."""
        return self.credit_s > 0.0 and self.credit_s >= 0.5 * (self.step_s.value or 0.0)

    def paid(self, seconds: float) -> None:
        """A step took ``seconds``. The first step (kernels compile) is not measured, and a
        step far slower than usual (validation, a checkpoint) counts as at most three, so
        one outlier neither stalls training for many frames nor skews the estimate."""
        if self._first_step:
            self._first_step = False
            self.credit_s = 0.0
            return
        usual = self.step_s.value
        seconds = seconds if usual is None else min(seconds, 3.0 * usual)
        self.credit_s = max(self.credit_s - seconds, -seconds)
        self.step_s.add(seconds)

    def render_s(self, train_spent_s: float) -> float:
        """Rendering's time this frame: what training left of the work time, at least its share."""
        work = self.work_s()
        return max(work - train_spent_s, (1.0 - self.train_share) * work)

    def frame_done(self, period_s: float, work_s: float) -> None:
        """A busy frame took ``period_s`` start to start, ``work_s`` of it training and rendering."""
        # capped: a start-up compile is no trend
        self.overhead.add(min(max(0.0, period_s - work_s), MAX_WORK_FRAMES * self.frame_s))
