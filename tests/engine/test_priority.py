"""The scheduling the server process asks for: real time where safe and allowed, and its guards.

The cases that change a process's policy run in a subprocess of their own, since the
policy is the kernel's and a test that raised it could not undo it; the selector's
spin budget is checked in this process, with the grant stood in for.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import textwrap
import time

import pytest

from netsim.engine import _precise, _priority
from netsim.engine._priority import SERVER_NICENESS, Priority


def _run(body: str) -> dict[str, object]:
    script = "import json, os, resource, sys\nfrom netsim.engine import _priority\n" + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_server_says_what_it_was_granted_and_is_in_that_state() -> None:
    """Granted real time: SCHED_RR at priority 1, the CPU budget and its hard limit, and
    children at normal policy. Refused: the raised niceness, or nothing changed."""
    result = _run("""
        before = os.getpriority(os.PRIO_PROCESS, 0)
        granted = _priority.ask_for_priority()
        child = os.fork()
        if child == 0:
            os._exit(os.sched_getscheduler(0))
        _, status = os.waitpid(child, 0)
        print(json.dumps({
            "granted": granted.value,
            "policy": os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK,
            "priority": os.sched_getparam(0).sched_priority,
            "budget": resource.getrlimit(resource.RLIMIT_RTTIME),
            "child_policy": os.waitstatus_to_exitcode(status),
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            "before": before,
            "cores": len(os.sched_getaffinity(0)),
        }))
    """)
    if result["granted"] == Priority.REALTIME.value:
        assert result["cores"] >= 2  # never on one core
        assert result["policy"] == os.SCHED_RR
        assert result["priority"] == _priority.REALTIME_PRIORITY
        assert result["budget"] == [int(_priority.REALTIME_BUDGET * 1e6), int(_priority.REALTIME_LIMIT * 1e6)]
        assert result["child_policy"] == os.SCHED_OTHER  # not inherited
    elif result["granted"] == Priority.RAISED.value:
        assert result["policy"] == os.SCHED_OTHER
        assert result["niceness"] == SERVER_NICENESS
    else:  # nothing granted, nothing changed
        assert result["granted"] == Priority.NORMAL.value
        assert result["policy"] == os.SCHED_OTHER
        assert result["niceness"] == result["before"]
    if os.geteuid() == 0 and sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) >= 2:
        # As on CI: root on two cores. (A container without CAP_SYS_NICE or real-time
        # runtime would refuse; the branches above check what it then says.)
        assert result["granted"] == Priority.REALTIME.value


def test_a_real_time_server_that_computes_past_its_budget_goes_back_to_normal_policy() -> None:
    """A server that runs without waiting for longer than its budget gets SIGXCPU from the
    kernel and carries on at the normal policy and the raised niceness, and says so."""
    result = _run("""
        _priority.REALTIME_BUDGET = 0.05  # seconds of CPU without blocking
        if _priority.ask_for_priority() is not _priority.Priority.REALTIME:
            print(json.dumps({"refused": True}))
            sys.exit(0)
        import time
        began = time.process_time()
        while _priority.granted() is _priority.Priority.REALTIME and time.process_time() - began < 5:
            pass  # computes without a blocking call, as a runaway would
        print(json.dumps({
            "cpu": time.process_time() - began,
            "granted": _priority.granted().value,
            "left": _priority.left_realtime(),
            "policy": os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK,
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        }))
    """)
    if result.get("refused"):
        pytest.skip("real time is refused here (the test above checks what is granted instead)")
    assert result["granted"] == Priority.RAISED.value and result["left"] is True
    assert result["policy"] == os.SCHED_OTHER
    assert result["niceness"] == SERVER_NICENESS
    # The kernel counts the budget in scheduler ticks (4 ms here), so a little either side.
    assert isinstance(result["cpu"], float) and 0.04 <= result["cpu"] < 5


@pytest.mark.skipif(_precise._timerfd_libc() is None, reason="timerfd is Linux's")
def test_a_real_time_process_spins_only_on_what_it_earned_by_sleeping(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the spin learned at its longest, a wait shorter than it is spent polling. A
    real-time process polls only once it has slept enough to afford it: straight after
    work it sleeps on its timer instead."""
    selector = _precise.PreciseEpollSelector(_precise._timerfd_libc())
    wait = 0.9 * _precise.MAX_SPIN

    def cpu_of_one_wait() -> float:
        selector.spin = _precise.MAX_SPIN
        began = time.thread_time()
        selector.select(wait)
        return time.thread_time() - began

    def work(seconds: float) -> None:
        began = time.thread_time()
        while time.thread_time() - began < seconds:
            pass

    try:
        spinning = max(cpu_of_one_wait() for _ in range(3))  # normal priority: always
        monkeypatch.setattr(_priority, "_granted", Priority.REALTIME)
        after_work = []
        for _ in range(3):
            work(0.02)  # busy: nothing earned
            after_work.append(cpu_of_one_wait())
        after_sleep = []
        for _ in range(3):
            selector.select(0.05)  # a long sleep earns the most that is kept
            after_sleep.append(cpu_of_one_wait())
    finally:
        selector.close()
    # Sleeping costs this machine's CPU 0.1-0.2 ms a wake-up; polling costs the whole wait.
    assert spinning > wait / 2  # polled
    assert max(after_work) < wait / 2  # slept
    assert max(after_sleep) > wait / 2  # polled, as at normal priority


@pytest.mark.skipif(_precise._timerfd_libc() is None, reason="timerfd is Linux's")
def test_a_wait_cut_short_by_the_budget_does_not_unlearn_the_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the selector learned of late wake-ups stays when the budget allows no spin."""
    selector = _precise.PreciseEpollSelector(_precise._timerfd_libc())
    monkeypatch.setattr(_priority, "_granted", Priority.REALTIME)
    try:
        began = time.thread_time()
        while time.thread_time() - began < 0.01:
            pass  # no credit left
        selector.spin = _precise.MAX_SPIN
        selector.select(0.005)  # slept on the timer: too little credit to spin
        assert selector.spin >= _precise.MAX_SPIN * _precise.DECAY
    finally:
        selector.close()


@pytest.mark.skipif(_precise._timerfd_libc() is None, reason="timerfd is Linux's")
def test_a_real_time_process_waiting_back_to_back_leaves_its_core_free(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real-time loop whose every wait is shorter than its spin would poll all the time;
    within its budget it polls at most BUSY_SHARE of the time and sleeps the rest."""
    selector = _precise.PreciseEpollSelector(_precise._timerfd_libc())
    monkeypatch.setattr(_priority, "_granted", Priority.REALTIME)
    spun = []
    spin = selector._spin

    def timed_spin(timeout: float) -> list[tuple[selectors.SelectorKey, int]]:
        began = time.monotonic()
        try:
            return spin(timeout)
        finally:
            spun.append(time.monotonic() - began)

    monkeypatch.setattr(selector, "_spin", timed_spin)
    try:
        wall = time.monotonic()
        while time.monotonic() - wall < 0.3:
            selector.spin = _precise.MAX_SPIN
            selector.select(0.4e-3)
        share = sum(spun) / (time.monotonic() - wall)
    finally:
        selector.close()
    # Wall time, so that being preempted while polling counts as polling.
    assert 0 < share <= _precise.BUSY_SHARE
