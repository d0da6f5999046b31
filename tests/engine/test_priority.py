"""The scheduling the server process asks for: real time where safe and allowed, and its guards.

Each case runs in a subprocess of its own, since a process's scheduling policy is the
kernel's and cannot be undone by a test that raised it.
"""

from __future__ import annotations

import json
import os
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


# Whether this machine lets a process take real time: root (or CAP_SYS_NICE) on two cores
# or more. CI runs as root on two cores; elsewhere the cases check the fallback instead.
PRIVILEGED = os.geteuid() == 0
TWO_CORES = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
REALTIME_POSSIBLE = PRIVILEGED and TWO_CORES and sys.platform.startswith("linux")


def test_the_server_asks_for_real_time_where_allowed_and_a_raised_niceness_where_not() -> None:
    """Granted real time: SCHED_RR at priority 1, a CPU budget, and children at normal
    policy. Refused: the raised niceness, or nothing; the answer says which."""
    result = _run("""
        granted = _priority.ask_for_priority()
        child = os.fork()
        if child == 0:
            os._exit(os.sched_getscheduler(0))
        _, status = os.waitpid(child, 0)
        print(json.dumps({
            "granted": granted.value,
            "policy": os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK,
            "priority": os.sched_getparam(0).sched_priority,
            "budget": resource.getrlimit(resource.RLIMIT_RTTIME)[0],
            "child_policy": os.waitstatus_to_exitcode(status),
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        }))
    """)
    if REALTIME_POSSIBLE:
        assert result["granted"] == Priority.REALTIME.value
        assert result["policy"] == os.SCHED_RR
        assert result["priority"] == _priority.REALTIME_PRIORITY
        assert result["budget"] == int(_priority.REALTIME_BUDGET * 1e6)
        assert result["child_policy"] == os.SCHED_OTHER  # not inherited
    elif PRIVILEGED:  # one core: real time would leave nothing for the rest
        assert result["granted"] == Priority.RAISED.value
        assert result["niceness"] == SERVER_NICENESS
    else:  # without the privilege nothing changes, quietly
        assert result["granted"] == Priority.NORMAL.value
        assert result["niceness"] == os.getpriority(os.PRIO_PROCESS, 0)
        assert result["policy"] == os.SCHED_OTHER


@pytest.mark.skipif(not REALTIME_POSSIBLE,
                    reason="needs root on two cores: here real time is refused, which the test above checks")
def test_a_real_time_server_that_computes_past_its_budget_goes_back_to_normal_policy() -> None:
    """A server that runs without waiting for longer than its budget gets SIGXCPU from the
    kernel and carries on at the normal policy and the raised niceness."""
    result = _run("""
        _priority.REALTIME_BUDGET = 0.05  # seconds of CPU without blocking
        assert _priority.ask_for_priority() is _priority.Priority.REALTIME
        import time
        began = time.process_time()
        while _priority.granted() is _priority.Priority.REALTIME and time.process_time() - began < 5:
            pass  # computes without a blocking call, as a runaway would
        print(json.dumps({
            "cpu": time.process_time() - began,
            "granted": _priority.granted().value,
            "policy": os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK,
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        }))
    """)
    assert result["granted"] == Priority.RAISED.value
    assert result["policy"] == os.SCHED_OTHER
    assert result["niceness"] == SERVER_NICENESS
    assert isinstance(result["cpu"], float) and 0.05 <= result["cpu"] < 5


@pytest.mark.skipif(_precise._libc() is None, reason="timerfd is Linux's")
def test_a_real_time_process_spins_only_on_what_it_earned_by_sleeping(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the spin learned at its longest, a wait shorter than it is spent polling. A
    real-time process polls only once it has slept enough to afford it: straight after
    work it sleeps on its timer instead."""
    selector = _precise.PreciseEpollSelector(_precise._libc())
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


@pytest.mark.skipif(_precise._libc() is None, reason="timerfd is Linux's")
def test_a_real_time_process_waiting_back_to_back_leaves_its_core_free(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real-time loop whose every wait is shorter than its spin would poll all the time;
    within its budget it leaves a share of its core free."""
    selector = _precise.PreciseEpollSelector(_precise._libc())
    monkeypatch.setattr(_priority, "_granted", Priority.REALTIME)
    try:
        cpu, wall = time.thread_time(), time.monotonic()
        while time.monotonic() - wall < 0.3:
            selector.spin = _precise.MAX_SPIN
            selector.select(0.4e-3)
        share = (time.thread_time() - cpu) / (time.monotonic() - wall)
    finally:
        selector.close()
    # BUSY_SHARE is 0.7 of the time; each wake-up from a sleep costs this machine 0.1-0.2 ms
    # of CPU besides, which the budget counts as sleep (measured: 0.8 of the CPU).
    assert share < 0.9
