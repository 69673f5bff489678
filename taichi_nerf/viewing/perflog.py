"""The front ends' performance logs in the run folder, one strict JSON line a second, so their
speed is measured without a person watching: ``gui.jsonl`` (:class:`WindowLog`: frame rate,
rendering and training ms per frame, steps per second, the view's size; scripts/gui_fps.py)
and ``viewer.jsonl`` (:class:`ViewerLog`: pictures sent, the latency from a camera move to its
first picture, training steps; scripts/viewer_bench.py).

Each line is appended on its own, so no file stays open between (or after) sessions and a
reader never sees half a line; a run folder removed (or a full disk) while the field is on
view costs one warning and the log, never the session (the field is in memory)."""
import json
import math
import statistics
import sys
import time
from pathlib import Path

from ..files import read_jsonl

INTERVAL_S = 1.0
read = read_jsonl  # the lines of a gui.jsonl or viewer.jsonl (scripts and tests read them)


def _finite(x: float, digits: int = 3) -> float:
    return round(float(x), digits) if math.isfinite(x) else 0.0


class PerformanceLog:
    """Sums each frame's figures and writes a line (:meth:`line`) once ``interval_s`` has passed."""

    who = "the front end"  # who stops logging, in the warning

    def __init__(self, path: Path, interval_s: float = INTERVAL_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")  # this session's lines only
        self.closed = False
        self.interval_s = interval_s
        self.start = self.last = time.perf_counter()
        self.step, self.state = 0, {}
        self._reset()

    def _reset(self) -> None:
        self.frames, self.steps, self.train_s, self.render_s = 0, 0, 0.0, 0.0
        self.sent_count, self.latencies = 0, []

    def frame(self, now: float, step: int, steps: int, train_s: float, render_s: float, state: dict) -> dict | None:
        """One frame done: ``steps`` training steps in ``train_s``, ``render_s`` rendering (0 when
        it rendered nothing); writes (and returns) a line once ``interval_s`` has passed."""
        self.frames += 1
        self.steps += steps
        self.train_s += train_s
        self.render_s += render_s
        self.step, self.state = step, state
        if now - self.last >= self.interval_s:
            return self.flush_line(now)
        return None

    def flush_line(self, now: float) -> dict | None:
        """Write the figures since the last line (also part of an interval, at the end)."""
        if self.closed:
            return None
        line = self.line(now, max(now - self.last, 1e-6))
        try:
            with open(self.path, "a") as file:
                file.write(json.dumps(line, allow_nan=False) + "\n")
        except OSError as exc:  # the run folder removed or full: the field is in memory, the view goes on
            print(f"warning: {self.path}: {exc.strerror or exc}; {self.who} stops logging there", file=sys.stderr)
            self.closed = True
        self.last = now
        self._reset()
        return line

    def line(self, now: float, elapsed: float) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


class WindowLog(PerformanceLog):
    """``gui.jsonl``: the window's frames per second and, per frame, rendering and training
    time (frames without rendering count 0)."""

    who = "the window"

    def line(self, now: float, elapsed: float) -> dict:
        frames = max(self.frames, 1)
        return {"time_s": _finite(now - self.start), "fps": _finite(self.frames / elapsed, 2),
                "frame_ms": _finite(1000.0 * elapsed / frames, 1),
                "render_ms": _finite(1000.0 * self.render_s / frames, 1),
                "train_ms": _finite(1000.0 * self.train_s / frames, 1),
                "train_steps_per_s": _finite(self.steps / elapsed, 2), "step": int(self.step), **self.state}


class ViewerLog(PerformanceLog):
    """``viewer.jsonl``: pictures sent per second, the median latency from a camera message to
    its first picture, and training and rendering ms per second."""

    who = "the viewer"

    def __init__(self, path: Path, interval_s: float = INTERVAL_S):
        super().__init__(path, interval_s)
        self.fps = 0.0

    def sent(self) -> None:
        self.sent_count += 1

    def latency(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def recent_fps(self) -> float:
        """Pictures sent per second over the last whole interval."""
        return self.fps

    def line(self, now: float, elapsed: float) -> dict:
        self.fps = self.sent_count / elapsed
        return {"time_s": round(now - self.start, 3), "unix_s": round(time.time(), 3), "fps": round(self.fps, 2),
                "latency_ms": round(1000 * statistics.median(self.latencies), 1) if self.latencies else None,
                "moves": len(self.latencies), "train_steps_per_s": round(self.steps / elapsed, 2),
                "train_ms_per_s": round(1000 * self.train_s / elapsed, 1),
                "render_ms_per_s": round(1000 * self.render_s / elapsed, 1), "step": int(self.step), **self.state}
