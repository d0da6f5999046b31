"""The server process's precise selector: sub-millisecond timers, and a spin that learns."""

from __future__ import annotations

import selectors
import statistics
import time

import pytest

from netsim.engine import _precise

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
