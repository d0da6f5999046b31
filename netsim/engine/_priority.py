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
side by side take turns among themselves.) A real-time process that computed without
pause would take a core from everything else, so guards come with it:

- it is asked for only where the process may use two cores or more (on one core it
  would leave nothing to the client; servers of runs made side by side can still take
  both, and then only their pauses and the kernel's throttling of real time, 5% kept
  for the rest, stand between them and the other tasks);
- the kernel's ``RLIMIT_RTTIME`` counts the CPU time the process uses without blocking:
  past ``REALTIME_BUDGET`` it sends SIGXCPU, and the process goes back to the normal
  policy (at niceness ``SERVER_NICENESS``) for the rest of its life, which its
  ``left_realtime()`` says; if the signal cannot be handled (a call into C that does not
  return), the kernel kills the process at ``REALTIME_LIMIT``;
- children and threads do not inherit it (``SCHED_RESET_ON_FORK``).

A real-time server still spins before its deadlines (see ``_precise``), since waking
a halted virtual CPU can take milliseconds, but only as much as its sleeping earns.
Where real time is refused (no root or CAP_SYS_NICE, a container without real-time
runtime) or unsafe (one core), the process asks for niceness -10 instead, which needs
the same privilege, and failing that keeps the normal priority; the run measures what
it got.
"""

from __future__ import annotations

import contextlib
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
# Past this much CPU without waiting, the kernel kills a real-time process that could
# not act on SIGXCPU (seconds; never above a lower hard limit already set).
REALTIME_LIMIT = 5.0


class Priority(enum.Enum):
    """What the kernel granted the server process."""

    REALTIME = "real-time"  # SCHED_RR at REALTIME_PRIORITY
    RAISED = "raised"  # the normal policy at SERVER_NICENESS
    NORMAL = "normal"  # nothing granted


# What this process was granted: process-wide, as the policy itself is. The precise
# loop reads it before each wait; SIGXCPU may change it at any moment.
_granted = Priority.NORMAL
_left_realtime = False


def granted() -> Priority:
    """What the kernel grants this process now (a real-time server may have fallen back)."""
    return _granted


def left_realtime() -> bool:
    """Whether this process was real-time and used up its budget (it runs at normal policy since)."""
    return _left_realtime


def ask_for_priority() -> Priority:
    """Ask for real time where it is safe and allowed, else a raised niceness; say which.

    Call it from the main thread of the process that serves: the fallback is a signal
    handler, and the policy is the calling thread's.
    """
    global _granted
    _granted = Priority.REALTIME if _can_be_realtime() and _become_realtime() else _raise_niceness()
    return _granted


def _become_realtime() -> bool:
    try:
        previous_handler = signal.signal(signal.SIGXCPU, _leave_realtime)
    except ValueError:  # not the main thread: no handler, so no real time
        return False
    previous_limit = resource.getrlimit(resource.RLIMIT_RTTIME)
    hard = int(REALTIME_LIMIT * 1e6)
    if previous_limit[1] != resource.RLIM_INFINITY:
        hard = min(hard, previous_limit[1])
    try:
        resource.setrlimit(resource.RLIMIT_RTTIME, (min(int(REALTIME_BUDGET * 1e6), hard), hard))
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(REALTIME_PRIORITY))
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_RTTIME, previous_limit)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL if previous_handler is None else previous_handler)
        return False
    return True


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
    """SIGXCPU: the server used its real-time budget without waiting; it goes back to normal.

    The same signal also says that a process's CPU time passed its RLIMIT_CPU: that one
    keeps its default action, ending the process.
    """
    global _granted, _left_realtime
    cpu_limit = resource.getrlimit(resource.RLIMIT_CPU)[0]
    if cpu_limit != resource.RLIM_INFINITY and sum(os.times()[:2]) >= cpu_limit:
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGXCPU)
        return
    if _granted is not Priority.REALTIME:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        return  # still real time; the kernel repeats the signal each second of CPU
    _left_realtime = True
    _granted = _raise_niceness()
