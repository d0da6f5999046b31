"""How the server process asks the kernel to run it on time.

A poem server sleeps between deadlines and must run the moment one comes. Under the
normal policy the kernel weighs it against every other task: a client model or the
runner that wakes on its core, or a task of the machine's own, runs first now and then,
and a sleeping server that wakes may wait behind them for a few milliseconds, or stay
queued behind one while the other core idles. At 10,000 connections those waits set the
run's p99 and max lateness (docs/performance.md, "Real-time servers").

So the server process asks for the lowest real-time priority (``SCHED_RR``, 1): its
wake-ups then preempt every normal task at once, and the kernel moves it to a free core
rather than leave it queued. (Round-robin rather than FIFO: the servers of runs made
side by side take turns among themselves.) A real-time process that computed without pause would take
a core from everything else, so three guards come with it:

- it is asked for only where the process may use two cores or more, so that one is
  always left to the rest of the machine;
- the kernel's ``RLIMIT_RTTIME`` counts the CPU time the process uses without blocking;
  past ``REALTIME_BUDGET`` it sends SIGXCPU, and the process goes back to the normal
  policy (at niceness ``SERVER_NICENESS``) for the rest of its life;
- children do not inherit it (``SCHED_RESET_ON_FORK``).

A real-time server still spins before its deadlines (see ``_precise``), since waking
a halted virtual CPU can take milliseconds, but within a budget that leaves its core
asleep at least 30% of the time, for the tasks it would otherwise starve. Where real
time is refused (no root or CAP_SYS_NICE, a
container without real-time runtime), the process asks for niceness -10 instead, and
failing that keeps the normal priority; the run measures what it got.
"""

from __future__ import annotations

import enum
import os
import resource
import signal
import sys
from types import FrameType

# The niceness asked for when real time is not to be had, or after leaving it.
SERVER_NICENESS = -10
# The lowest real-time priority: ahead of every normal task, behind the kernel's own
# real-time threads.
REALTIME_PRIORITY = 1
# The longest a real-time server may compute without once waiting (seconds of CPU). A
# server at 10,000 connections waits every few writes; this is for a runaway.
REALTIME_BUDGET = 0.5


class Priority(enum.Enum):
    """What the kernel granted the server process."""

    REALTIME = "real-time"  # SCHED_RR at REALTIME_PRIORITY
    RAISED = "raised"  # the normal policy at SERVER_NICENESS
    NORMAL = "normal"  # nothing granted


# What this process was granted: process-wide, as the policy itself is. The precise
# loop reads it before each wait; SIGXCPU may change it at any moment.
_granted = Priority.NORMAL


def granted() -> Priority:
    """What the kernel grants this process now (a real-time server may have fallen back)."""
    return _granted


def ask_for_priority() -> Priority:
    """Ask for real time where it is safe and allowed, else a raised niceness; say which."""
    global _granted
    if _can_be_realtime():
        previous = signal.signal(signal.SIGXCPU, _leave_realtime)
        try:
            resource.setrlimit(resource.RLIMIT_RTTIME, (int(REALTIME_BUDGET * 1e6), resource.RLIM_INFINITY))
            policy = os.SCHED_RR | os.SCHED_RESET_ON_FORK
            os.sched_setscheduler(0, policy, os.sched_param(REALTIME_PRIORITY))
        except (OSError, ValueError):
            signal.signal(signal.SIGXCPU, previous)
        else:
            _granted = Priority.REALTIME
            return _granted
    _granted = _raise_niceness()
    return _granted


def _can_be_realtime() -> bool:
    needed = ("SCHED_RR", "SCHED_RESET_ON_FORK", "sched_setscheduler", "sched_getaffinity")
    if not sys.platform.startswith("linux") or not all(hasattr(os, name) for name in needed):
        return False
    if not hasattr(resource, "RLIMIT_RTTIME"):
        return False  # without the budget a runaway could keep its core
    return len(os.sched_getaffinity(0)) >= 2


def _raise_niceness() -> Priority:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, SERVER_NICENESS)
    except OSError:
        return Priority.NORMAL  # needs root or CAP_SYS_NICE
    return Priority.RAISED


def _leave_realtime(signum: int, frame: FrameType | None) -> None:
    """SIGXCPU: the server used its real-time budget without waiting; it goes back to normal."""
    global _granted
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        return  # still real time; the kernel repeats the signal each second of CPU
    _granted = _raise_niceness()
