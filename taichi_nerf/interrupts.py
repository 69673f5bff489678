"""Interrupts: Ctrl-C, SIGTERM and a hang-up (SIGHUP: the SSH session to a remote machine
dropped) stop a run between steps and save it, so a checkpoint never holds a half-applied
optimiser step or grid update. A hang-up that was ignored when the process started (`nohup`)
stays ignored: the run goes on.

A command's start (the imports, then Taichi's start) has a guard of its own
(:func:`guard_startup`): Taichi 1.7.4's kernel decorators run a bare ``except: pass``
(``taichi.lang.kernel_impl._inside_class``), so a Ctrl-C while a module defines its kernels was
swallowed and the command ran on to the end."""
from __future__ import annotations

import contextlib
import signal
import threading

# SIGTERM (a scheduler, `timeout`) and SIGHUP (a dropped session); None where the platform has none
TERMINATIONS = (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
STOPS = (signal.SIGINT, *TERMINATIONS)  # what stops a run: Ctrl-C and the terminations


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class StopRequest:
    """SIGINT/SIGTERM/SIGHUP handlers that ask the training loop to stop at the next step
    boundary; a second Ctrl-C raises KeyboardInterrupt at once.

    Under torchrun a stop can also be agreed with the other ranks (:meth:`stop_with_peers`)
    before this rank's own copy of the launcher's signal has arrived: that signal is not a
    second Ctrl-C, and when it comes after the run has unwound it is absorbed, once, instead
    of ending the process with a KeyboardInterrupt (each rank gets one from torchrun)."""

    def __init__(self):
        self.requested = False
        self.signals = 0  # signals this process received itself
        self.peer_stopped = False  # the stop came from another rank's vote
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signals and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signals += 1
        self.requested = True

    def stop_with_peers(self) -> None:
        """Another rank voted to stop: stop here too, without counting it as this rank's signal."""
        if not self.requested:
            self.peer_stopped = True
        self.requested = True

    def _absorb_one(self, signum, frame):
        self._restore()

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self):
        for sig in STOPS:
            if sig is None:
                continue
            if sig != signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # `nohup`: the user asked the run to outlive the terminal
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        if self.peer_stopped and not self.signals:  # the launcher's signal to this rank is still on its way
            for sig in self._previous:
                signal.signal(sig, self._absorb_one)
        else:
            self._restore()
        return False


class StartupGuard:
    """Ctrl-C while a command starts: raises KeyboardInterrupt as Python's own handler does, and
    remembers it, so that one swallowed on the way (Taichi's kernel decorators) is raised again
    when the start ends (:func:`startup_over`, once Taichi is up)."""

    def __init__(self):
        self.interrupted = False
        self.previous = None

    def _handle(self, signum, frame):
        self.interrupted = True
        raise KeyboardInterrupt

    def install(self) -> "StartupGuard":
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def raise_swallowed(self) -> None:
        """A Ctrl-C swallowed so far is raised now (once)."""
        if self.interrupted:
            self.interrupted = False
            raise KeyboardInterrupt

    def end(self) -> None:
        """The start is over: Python's handler again; a Ctrl-C that was swallowed is raised now."""
        if self.previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        self.raise_swallowed()


_startup: StartupGuard | None = None


def guard_startup() -> StartupGuard:
    """Guard a command's start (the entry point's first line) until :func:`startup_over`."""
    global _startup
    _startup = StartupGuard().install()
    return _startup


def raise_swallowed() -> None:
    """Raise now a Ctrl-C that was swallowed so far in the start (the command line's imports define most
    kernels), the guard staying up until Taichi is: a command that never starts Taichi (``data from-photos``,
    ``data info``) never reaches :func:`startup_over`, and ran on to its end."""
    if _startup is not None:
        _startup.raise_swallowed()


def startup_over() -> None:
    """Called once Taichi is up (backend.init): every module that defines kernels is imported by then."""
    global _startup
    guard, _startup = _startup, None
    if guard is not None:
        guard.end()


@contextlib.contextmanager
def _handled_in_main_thread(signals, handler):
    """``handler`` for each of ``signals`` (None: not on this platform) that is not ignored (a `nohup`'s
    hang-up stays ignored), set in the main thread alone (no other may set one), for the block; then
    the handlers they had."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            if sig is not None and signal.getsignal(sig) != signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


@contextlib.contextmanager
def terminations_interrupt():
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the block, as Ctrl-C does: work after training
    (its video) that a scheduler or a dropped session cuts short is then said, as a Ctrl-C's is, not
    ended without a word. A hang-up ignored at the start (`nohup`) stays ignored."""
    with _handled_in_main_thread(TERMINATIONS, _raise_interrupt):
        yield


@contextlib.contextmanager
def interrupted_at_once():
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt in the block at once, for work that a stop may cut
    short at no cost (the final validation, after the checkpoint is saved): a first Ctrl-C there only
    asked to stop, and the validation of every view went on, minutes on a large capture, without a word."""
    with _handled_in_main_thread(STOPS, _raise_interrupt):
        yield


@contextlib.contextmanager
def held_signals():
    """Ctrl-C, SIGTERM and SIGHUP wait for the block's end, then reach the handler they would have reached (a
    KeyboardInterrupt, a window's own): files written as a set (a video's mp4, depth mp4 and gif) are never half
    this render's and half an earlier one's. A second Ctrl-C does not wait. Outside the main thread: no change."""
    received = []

    def hold(signum, frame):
        if signum == signal.SIGINT and signum in received:
            raise KeyboardInterrupt
        received.append(signum)

    with _handled_in_main_thread(STOPS, hold):
        yield
    for sig in dict.fromkeys(received):  # not after an exception: that one is said instead
        try:
            signal.raise_signal(sig)
        except KeyboardInterrupt as exc:  # the set is whole: whoever catches it must not call it missing
            exc.after_whole_set = True
            raise
