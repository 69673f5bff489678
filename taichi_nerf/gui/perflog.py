"""``gui.jsonl`` in the run folder: once a second, what the window achieved in that second
(frame rate, time spent rendering and training, steps per second, the size of the view
shown), so its speed can be checked without a person watching (scripts/gui_fps.py)."""
import json
import math
import time
from pathlib import Path

from ..files import read_jsonl

INTERVAL_S = 1.0
FILE_NAME = "gui.jsonl"


def _finite(x: float, digits: int = 3) -> float:
    return round(float(x), digits) if math.isfinite(x) else 0.0


class PerformanceLog:
    """Collects per-frame figures and writes one strict JSON line per ``interval_s``."""

    def __init__(self, path: Path, interval_s: float = INTERVAL_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", buffering=1)  # a line per write: readers see whole lines
        self.interval_s = interval_s
        self.start = self.last = time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        self.frames, self.render_s, self.train_s, self.steps_run = 0, 0.0, 0.0, 0

    def frame(self, now: float, step: int, render_s: float, train_s: float, steps_run: int,
              app_state: dict) -> dict | None:
        """One frame done; writes (and returns) a line when a second has passed."""
        self.frames += 1
        self.render_s += render_s
        self.train_s += train_s
        self.steps_run += steps_run
        elapsed = now - self.last
        if elapsed < self.interval_s:
            return None
        line = {
            "time_s": _finite(now - self.start), "fps": _finite(self.frames / elapsed, 2),
            "frame_ms": _finite(1000.0 * elapsed / self.frames, 1),
            # per frame: frames without rendering count 0
            "render_ms": _finite(1000.0 * self.render_s / self.frames, 1),
            "train_ms": _finite(1000.0 * self.train_s / self.frames, 1),
            "train_steps_per_s": _finite(self.steps_run / elapsed, 2), "step": int(step), **app_state,
        }
        self.file.write(json.dumps(line, allow_nan=False) + "\n")
        self.last = now
        self._reset()
        return line

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


read = read_jsonl  # the lines of a gui.jsonl (scripts and tests read it)
