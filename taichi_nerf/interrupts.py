"""Interrupts: Ctrl-C and SIGTERM stop a run between steps, so a checkpoint never holds a
half-applied optimiser step or grid update."""
from __future__ import annotations

import signal


class StopRequest:
    """SIGINT/SIGTERM handlers that ask the training loop to stop at the next step boundary;
    a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is None:
                continue
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
