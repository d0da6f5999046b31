"""The recorder: how a model's events travel to the runner, in batches, and when."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from netsim.clients import Recorder
from netsim.events import ClientEvent, ClientFinished, ClientStarted


@pytest.fixture(autouse=True)
def _alarm_kept() -> Iterator[None]:
    """pytest-timeout keeps its own SIGALRM timer in this process: it is given back after each
    test (netsim's client process, where the recorder's timer runs, has none)."""
    handler = signal.getsignal(signal.SIGALRM)
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, handler)
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, remaining)


def started(recorder: Recorder, number: int) -> ClientStarted:
    return ClientStarted(recorder.now(), "c", f"m{number}", 1)


def test_events_held_for_a_batch_go_once_the_model_is_quiet() -> None:
    """Events recorded within FLUSH_INTERVAL of a send wait for the batch; if the model then
    records nothing more, they are sent anyway, while the model waits (here, on an event)."""
    batches: list[list[ClientEvent]] = []
    arrived = threading.Event()

    def sink(batch: list[ClientEvent]) -> None:
        batches.append(batch)
        arrived.set()

    recorder = Recorder("c", time.monotonic(), sink, quiet_flush=True)
    try:
        recorder.record(started(recorder, 1))  # within the interval of the recorder's start: held
        recorder.record(started(recorder, 2))
        assert not batches
        assert arrived.wait(5.0)
        assert [event.model for batch in batches for event in batch] == ["m1", "m2"]  # type: ignore[union-attr]
    finally:
        recorder.close()


def test_after_close_the_recorder_sends_nothing_more_and_gives_sigalrm_back() -> None:
    """close() sends what is held and stops the timer, so that what the client process sends
    next on the pipe (its Finished) comes after every event; SIGALRM is as it was."""
    batches: list[list[ClientEvent]] = []
    before = signal.getsignal(signal.SIGALRM)
    recorder = Recorder("c", time.monotonic(), batches.append, quiet_flush=True)
    recorder.record(started(recorder, 1))
    recorder.record(ClientFinished(recorder.now(), "c"))
    recorder.close()
    sent = [event for batch in batches for event in batch]
    assert [type(event) for event in sent] == [ClientStarted, ClientFinished]
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    count = len(batches)
    recorder.record(started(recorder, 2))  # held: nothing sends it now
    time.sleep(0.3)
    assert len(batches) == count


def test_a_recorder_without_the_timer_leaves_sigalrm_alone() -> None:
    """Outside netsim's client process (a test calling a model) the recorder installs no
    signal handler: held events go with the next batch or flush()."""
    before = signal.getsignal(signal.SIGALRM)
    batches: list[list[ClientEvent]] = []
    recorder = Recorder("c", time.monotonic(), batches.append)
    recorder.record(started(recorder, 1))
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # none was armed
    recorder.flush()
    assert len(batches) == 1
