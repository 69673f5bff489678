"""``viewer.jsonl`` in the run folder: once a second, what the browser viewer delivered in
that second (pictures sent, the latency from a camera move to its first picture, training
steps, the view's size), so its speed is measured without a person watching
(scripts/viewer_bench.py)."""
import json
import statistics
import sys
import time
from pathlib import Path

from ..files import read_jsonl

INTERVAL_S = 1.0
FILE_NAME = "viewer.jsonl"


class ViewerLog:
    def __init__(self, path: Path, interval_s: float = INTERVAL_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")  # each line is appended on its own: no file stays open between (or after) sessions
        self.closed = False
        self.interval_s = interval_s
        self.start = self.last = time.perf_counter()
        self.fps = 0.0
        self.step, self.state = 0, {}
        self._reset()

    def _reset(self) -> None:
        self.sent_count, self.latencies, self.steps, self.train_s, self.render_s = 0, [], 0, 0.0, 0.0

    def sent(self, now: float) -> None:
        self.sent_count += 1

    def latency(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def recent_fps(self) -> float:
        """Pictures sent per second over the last whole interval."""
        return self.fps

    def frame(self, now: float, step: int, steps: int, train_s: float, render_s: float, state: dict) -> None:
        self.steps += steps
        self.train_s += train_s
        self.render_s += render_s
        self.step, self.state = step, state
        if now - self.last >= self.interval_s:
            self.flush_line(now)

    def flush_line(self, now: float) -> None:
        elapsed = max(now - self.last, 1e-6)
        if self.closed:
            return
        self.fps = self.sent_count / elapsed
        line = {"time_s": round(now - self.start, 3), "unix_s": round(time.time(), 3), "fps": round(self.fps, 2),
                "latency_ms": round(1000 * statistics.median(self.latencies), 1) if self.latencies else None,
                "moves": len(self.latencies), "train_steps_per_s": round(self.steps / elapsed, 2),
                "train_ms_per_s": round(1000 * self.train_s / elapsed, 1),
                "render_ms_per_s": round(1000 * self.render_s / elapsed, 1), "step": int(self.step), **self.state}
        try:
            with open(self.path, "a") as file:
                file.write(json.dumps(line, allow_nan=False) + "\n")
        except OSError as exc:  # the run folder removed or full: the field is in memory, the view goes on
            print(f"warning: {self.path}: {exc.strerror or exc}; the viewer stops logging there", file=sys.stderr)
            self.closed = True
        self.last = now
        self._reset()

    def close(self) -> None:
        self.closed = True


read = read_jsonl  # the lines of a viewer.jsonl (scripts and tests read it)
