"""TimerQueue on a clock the test controls: one loop timer, deadline order, bounded passes."""

from __future__ import annotations

from netsim.engine import _timers
from netsim.engine._timers import TimerQueue
from tests.engine.fakeloop import FakeLoop


def test_callbacks_run_in_deadline_order_ties_first_come() -> None:
    """Whatever the order they were added in, callbacks run by deadline, equal deadlines in turn."""
    loop = FakeLoop()
    timers = TimerQueue(loop)
    ran: list[str] = []
    for when, name in [(0.3, "c"), (0.1, "a"), (0.2, "b1"), (0.2, "b2")]:
        timers.call_at(when, lambda name=name: ran.append(name))  # type: ignore[misc]
    loop.advance(1.0)
    assert ran == ["a", "b1", "b2", "c"]


def test_one_loop_timer_is_armed_for_the_earliest_deadline() -> None:
    """Many deadlines hold one loop timer; an earlier deadline moves it, a later one does not."""
    loop = FakeLoop()
    timers = TimerQueue(loop)
    for when in (0.5, 0.7, 0.9):
        timers.call_at(when, lambda: None)
    assert loop.armed() == [0.5]
    timers.call_at(0.2, lambda: None)
    assert loop.armed() == [0.2]  # the timer for 0.5 was cancelled, not left to fire
    loop.advance(0.2)
    assert loop.armed() == [0.5] and len(timers) == 3


def test_a_late_wake_runs_everything_due_and_keeps_the_rest_on_time() -> None:
    """Woken late, the queue runs every callback already due in one pass and re-arms for the next."""
    loop = FakeLoop()
    timers = TimerQueue(loop)
    ran: list[float] = []
    for when in (0.1, 0.2, 0.3, 0.5):
        timers.call_at(when, lambda: ran.append(loop.time()))
    loop.timers.clear()  # the loop oversleeps: its timer for 0.1 is lost
    loop.now = 0.35
    timers._run()  # the next wake-up, late
    assert ran == [0.35, 0.35, 0.35]
    assert loop.armed() == [0.5]  # the next deadline is absolute, not 0.15 after the late wake


def test_a_pass_gives_the_loop_back_after_its_slice() -> None:
    """Callbacks that take time stop running after RUN_SLICE; the rest wait for the next pass."""
    loop = FakeLoop()
    timers = TimerQueue(loop)
    ran: list[int] = []

    def slow(number: int) -> None:
        ran.append(number)
        loop.now += 0.001  # each callback takes a millisecond

    for number in range(10):
        timers.call_at(0.0, lambda number=number: slow(number))  # type: ignore[misc]
    loop.fire_next()  # one pass
    assert len(ran) == round(_timers.RUN_SLICE / 0.001)  # two, then the loop polls I/O
    assert loop.armed() == [0.0]  # due already: the loop comes back to them after polling I/O
    loop.advance(loop.now)
    assert ran == list(range(10))


def test_a_callback_may_add_deadlines_while_the_queue_runs() -> None:
    """A callback that schedules another for now has it run in the same pass; a later one is armed."""
    loop = FakeLoop()
    timers = TimerQueue(loop)
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        timers.call_at(loop.time(), lambda: ran.append("now"))
        timers.call_at(loop.time() + 1.0, lambda: ran.append("later"))

    timers.call_at(0.1, first)
    loop.advance(0.1)
    assert ran == ["first", "now"]
    assert loop.armed() == [1.1]
