"""The few C library calls that Python's ``os`` module lacks (Linux): ``prctl`` to name a
process, to have it die with its parent and to shrink its timer slack; and the library
itself for ``timerfd`` (engine/_precise.py).

Every process of a run uses them, the servers' and client models' as well as a program
forked by the ``command`` model before it runs, so the library is the one the process has
loaded already (``CDLL(None)``): looking it up by name runs ``ldconfig``, 2-4 ms, and has
no place between a fork and an exec. Elsewhere each call does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_TIMERSLACK = 29
PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library this process has loaded, or None off Linux (or where it is not found)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def prctl(option: int, argument: int | ctypes.c_char_p) -> bool:
    """``prctl(option, argument)``; False where it failed or there is no such call."""
    library = libc()
    if library is None:
        return False
    with contextlib.suppress(AttributeError):
        return bool(library.prctl(option, argument, 0, 0, 0) == 0)
    return False


def take_name(name: str) -> None:
    """Name this process (at most 15 bytes) for top, ps and the kernel's traces."""
    prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))


def on_parent_death(signum: int) -> None:
    """Ask the kernel for ``signum`` when this process's parent (the thread that forked it)
    dies."""
    prctl(PR_SET_PDEATHSIG, signum)


def die_with(parent: int) -> None:
    """Ask for SIGKILL when ``parent`` (this process's parent) dies, and leave at once if it
    has died already: before the request was in place, the kernel would not send it."""
    on_parent_death(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def adopt_orphans() -> bool:
    """Become the reaper of this process's descendants: one whose parent dies is this
    process's child from then on, not init's, however it detached (``setsid``, a double
    fork), so that it can be found and ended. False where the kernel does not offer it."""
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def children() -> list[int]:
    """The process ids of this process's children (those it adopted too), from /proc."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children",
                                                    encoding="ascii") as listed:
                found += [int(pid) for pid in listed.read().split()]
    return found
