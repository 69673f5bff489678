"""Time-sharing of the GUI (plain Python): how many training steps run in a frame, and how
the view refines progressively, from a coarse image while the camera moves to full
resolution once it stops.
"""
import math
from dataclasses import dataclass, field


@dataclass
class TrainingSchedule:
    """Training steps per frame. ``yield_while_moving``: no training while the camera moves,
    so on a CPU the coarse preview follows the mouse at interactive rates."""
    steps_per_frame: int = 1
    paused: bool = False
    can_train: bool = True  # False when only viewing a checkpoint
    yield_while_moving: bool = True
    stop_at: int | None = None  # pause once when the step count reaches this
    _stop_reached: bool = False

    def steps_for_frame(self, camera_moving: bool) -> int:
        if not self.can_train or self.paused or (self.yield_while_moving and camera_moving):
            return 0
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
    finished level replaces the one shown. When the field changes (training), the finest
    level is re-rendered in bands over the image already shown.
    """
    full_width: int
    full_height: int
    divisors: tuple = (4, 2, 1)
    level: int = 0  # level being rendered
    rows_done: int = 0  # rows of ``level`` finished
    shown: int = -1  # finest level finished since the last restart (-1: none)
    working: bool = True
    _sizes: list = field(default_factory=list, init=False)

    def __post_init__(self):
        self.resize(self.full_width, self.full_height)

    def resize(self, full_width: int, full_height: int) -> None:
        self.full_width, self.full_height = max(1, int(full_width)), max(1, int(full_height))
        self._sizes = [(max(1, math.ceil(self.full_width / d)), max(1, math.ceil(self.full_height / d)))
                       for d in self.divisors]
        self.restart()

    def retarget(self, seconds_per_pixel: float, target_s: float, max_divisor: int = 16) -> bool:
        """Pick the coarsest level so that rendering it takes about ``target_s`` (dynamic
        resolution: a slow field or machine gets a coarser moving preview, a fast one a
        sharper one); levels halve the divisor down to 1. Returns True if they changed
        (which restarts the refinement)."""
        pixels = self.full_width * self.full_height
        wanted = math.sqrt(max(pixels * seconds_per_pixel / max(target_s, 1e-6), 1.0))
        coarsest = 1
        while coarsest < wanted and coarsest < max_divisor:
            coarsest *= 2
        divisors = tuple(coarsest >> k for k in range(coarsest.bit_length()))
        if divisors == tuple(self.divisors):
            return False
        self.divisors = divisors
        self.resize(self.full_width, self.full_height)
        return True

    def size(self, level: int) -> tuple[int, int]:
        return self._sizes[level]

    @property
    def top(self) -> int:
        return len(self._sizes) - 1

    @property
    def complete(self) -> bool:
        """The full-resolution image is shown and nothing is pending."""
        return self.shown == self.top and not self.working

    def restart(self) -> None:
        """The camera (or anything that changes the whole picture) changed."""
        self.level, self.rows_done, self.shown, self.working = 0, 0, -1, True

    def refresh(self) -> None:
        """The field changed: redo the finest level once it is reached (a coarser level in
        progress already sees the new field)."""
        if not self.working:
            self.level, self.rows_done, self.working = self.top, 0, True

    def next_band(self, max_rows: int) -> Band | None:
        if not self.working:
            return None
        height = self._sizes[self.level][1]
        rows = height if self.level == 0 else max(1, int(max_rows))
        return Band(self.level, self.rows_done, min(height, self.rows_done + rows))

    def finish(self, band: Band) -> None:
        if not self.working or band.level != self.level or band.row0 != self.rows_done:
            return  # stale band (the view restarted meanwhile)
        self.rows_done = band.row1
        if self.rows_done >= self._sizes[self.level][1]:
            self.shown = self.level
            if self.level < self.top:
                self.level, self.rows_done = self.level + 1, 0
            else:
                self.working = False


@dataclass
class RateMeter:
    """Exponential moving average of a per-frame quantity (fps, ms)."""
    smoothing: float = 0.8
    value: float | None = None

    def add(self, x: float) -> float:
        self.value = x if self.value is None else self.smoothing * self.value + (1 - self.smoothing) * x
        return self.value
