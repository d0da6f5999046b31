"""The server process's precise selector: sub-millisecond timers, a spin that learns, and
idle work in the time it would sleep."""

from __future__ import annotations

import asyncio
import selectors
import socket
import statistics
import time
from collections.abc import Callable, Iterator

import pytest

from netsim.engine import _precise
from netsim.engine._priority import Priority

pytestmark = pytest.mark.skipif(_precise._timerfd_libc() is None, reason="timerfd is Linux's")


def lateness_of_timers(ahead: float, count: int) -> list[float]:
    loop = _precise.new_event_loop()
    late: list[float] = []

    def fired(due: float) -> None:
        late.append(time.monotonic() - due)
        if len(late) == count:
            loop.stop()
        else:
            schedule()

    def schedule() -> None:
        due = loop.time() + ahead
        loop.call_at(due, fired, due)

    try:
        schedule()
        loop.run_forever()
    finally:
        loop.close()
    return late


def test_a_timer_due_in_a_fraction_of_a_millisecond_is_not_rounded_up() -> None:
    """asyncio's own epoll wait rounds 0.3 ms up to a whole millisecond; this one does not."""
    late = lateness_of_timers(0.3e-3, 30)
    assert statistics.median(late) < 0.5e-3
    assert min(late) >= 0  # never early


def test_the_spin_grows_to_cover_a_late_wake_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the timer's wake-up comes late, the selector spins longer before later deadlines,
    never beyond MAX_SPIN."""
    libc = _precise._timerfd_libc()
    selector = _precise.PreciseEpollSelector(libc)
    epoll_select = selectors.EpollSelector.select

    def slow_wake(self: selectors.EpollSelector,
                  timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = epoll_select(self, timeout)
        time.sleep(0.6e-3)  # the process gets the CPU back this much after the timer fired
        return ready

    try:
        assert selector.spin == _precise.SPIN
        monkeypatch.setattr(selectors.EpollSelector, "select", slow_wake)
        selector.select(5e-3)
        assert selector.spin >= 0.6e-3
        for _ in range(5):
            selector.select(5e-3)
        assert selector.spin <= _precise.MAX_SPIN
    finally:
        selector.close()


class Recorder:
    """Idle work that notes the time it was given and whether the selector was busy."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, bool]] = []  # (called at, until, busy then)

    def __call__(self, until: float, busy: Callable[[], bool]) -> None:
        self.calls.append((time.monotonic(), until, busy()))


@pytest.fixture
def selector() -> Iterator[_precise.PreciseEpollSelector]:
    one = _precise.PreciseEpollSelector(_precise._timerfd_libc())
    yield one
    one.close()


def test_idle_work_gets_the_wait_but_the_spin_and_the_wait_still_ends_on_time(
        selector: _precise.PreciseEpollSelector) -> None:
    work = Recorder()
    selector.add_idle(work)
    began = time.monotonic()
    selector.select(5e-3)
    ended = time.monotonic()
    called, until, busy = work.calls[0]
    assert not busy
    # The spin (SPIN: a new selector's) is the deadline's, the rest of the wait the work's
    # (the selector began the wait, and gave the work its time, before it was called).
    assert until <= called + 5e-3 - _precise.SPIN - _precise.IDLE_MARGIN
    assert until - called > 3e-3
    assert ended - began < 5e-3 + 2e-3


def test_idle_work_leaves_the_spin_before_a_deadline_alone(selector: _precise.PreciseEpollSelector) -> None:
    work = Recorder()
    selector.add_idle(work)
    selector.select(0.1e-3)  # shorter than the spin: no sleep at all
    assert work.calls == []


def test_idle_work_is_told_a_socket_is_ready_and_given_no_wait_too_short(
        selector: _precise.PreciseEpollSelector) -> None:
    work = Recorder()
    selector.add_idle(work)
    selector.select(_precise.IDLE_LEAST / 2)
    assert work.calls == []
    reader, writer = socket.socketpair()
    try:
        selector.register(reader, selectors.EVENT_READ)
        writer.send(b"x")
        assert selector.select(5e-3)
        assert [busy for _, _, busy in work.calls] == [True]
    finally:
        selector.unregister(reader)
        reader.close()
        writer.close()


def test_idle_work_removed_is_not_called(selector: _precise.PreciseEpollSelector) -> None:
    work = Recorder()
    selector.add_idle(work)
    selector.remove_idle(work)
    selector.remove_idle(work)  # twice is harmless
    selector.select(2e-3)
    assert work.calls == []


def test_a_real_time_process_idles_only_on_what_its_sleep_earned(
        selector: _precise.PreciseEpollSelector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle work costs the core as spinning does: a real-time server gets neither without
    having slept, and never more than CREDIT_CAP."""
    monkeypatch.setattr(_precise, "granted", lambda: Priority.REALTIME)
    work = Recorder()
    time.sleep(0.01)  # busy since the selector began: no credit
    selector.add_idle(work)
    selector.select(5e-3)
    assert work.calls == []
    selector.remove_idle(work)
    selector.select(10e-3)  # a long sleep earns the most credit
    selector.add_idle(work)
    began = time.monotonic()
    selector.select(5e-3)
    _, until, _ = work.calls[0]
    assert until - began <= _precise.CREDIT_CAP


def test_a_loop_of_new_event_loop_takes_idle_work() -> None:
    loop = _precise.new_event_loop()
    plain = asyncio.new_event_loop()
    try:
        assert isinstance(_precise.idle_hook(loop), _precise.PreciseEpollSelector)
        assert _precise.idle_hook(plain) is None
    finally:
        loop.close()
        plain.close()
