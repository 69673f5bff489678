"""Per-stage wall-clock profile of a training step (``scripts/benchmark.py profile``).

The pipeline's stages wrap themselves in ``with stage("encoding"):``. Off by default, when a
stage is a shared no-op context (well under a microsecond); on, it synchronises the device
around each stage so that asynchronous CUDA work is charged to the stage that queued it.
Stages nest (compositing's backward runs inside ``backward``); each is charged its own time
only, so the stages add up to the step.
"""
import contextlib
import time
from collections import defaultdict

import torch

_NOOP = contextlib.nullcontext()


class StageProfile:
    def __init__(self):
        self.enabled = False
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[float] = []  # time spent in nested stages, per open stage

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def stage(self, name: str):
        return self._timed(name) if self.enabled else _NOOP

    @contextlib.contextmanager
    def _timed(self, name: str):
        _sync()
        start = time.perf_counter()
        self._children.append(0.0)
        try:
            yield
        finally:
            _sync()
            elapsed = time.perf_counter() - start
            nested = self._children.pop()
            if self._children:
                self._children[-1] += elapsed
            self.seconds[name] += elapsed - nested
            self.calls[name] += 1

    def table(self, steps: int) -> list[dict]:
        """Milliseconds per step of each stage, largest first, and its share of the total."""
        total = sum(self.seconds.values()) or 1.0
        rows = [{"stage": k, "ms_per_step": 1000 * v / max(steps, 1), "share": v / total}
                for k, v in self.seconds.items()]
        return sorted(rows, key=lambda r: -r["ms_per_step"])


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


PROFILE = StageProfile()
stage = PROFILE.stage
