"""StopRequest with real signals sent to this process: a first Ctrl-C asks for a stop, a second
raises; a stop agreed with other ranks is not this process's Ctrl-C, and the launcher's own
signal that arrives after the run has unwound is absorbed once."""
import os
import signal

import pytest

from taichi_nerf.interrupts import StopRequest


def deliver(sig):
    os.kill(os.getpid(), sig)  # CPython runs the Python-level handler before the next bytecode


def test_a_first_signal_asks_for_a_stop_and_a_second_ctrl_c_raises():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        deliver(signal.SIGTERM)
        assert stop.requested and stop.signals == 1
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_stop_agreed_with_other_ranks_is_not_a_first_ctrl_c():
    with StopRequest() as stop:
        stop.stop_with_peers()  # another rank's vote
        assert stop.requested and stop.peer_stopped
        deliver(signal.SIGINT)  # this rank's copy of the launcher's signal: no KeyboardInterrupt
        assert stop.signals == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # nothing left installed


def test_the_launchers_signal_after_an_agreed_stop_is_absorbed_once():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest() as stop:
        stop.stop_with_peers()
    deliver(signal.SIGINT)  # late: the run has unwound; once it raised KeyboardInterrupt at exit
    assert {s: signal.getsignal(s) for s in before} == before
    with pytest.raises(KeyboardInterrupt):  # a real Ctrl-C after that behaves as always
        deliver(signal.SIGINT)


def test_a_stop_this_process_asked_for_itself_leaves_no_absorber():
    with StopRequest() as stop:
        deliver(signal.SIGINT)
        stop.stop_with_peers()  # the vote it started comes back
        assert not stop.peer_stopped
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)
