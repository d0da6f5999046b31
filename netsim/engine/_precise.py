"""An event loop that wakes on time to the tens of microseconds, not the millisecond.

asyncio waits with ``epoll_wait``, whose timeout is whole milliseconds: CPython rounds
it up, so a timer due in 0.2 ms fires about 1 ms late. A server whose whole job is to
send on time cannot live with that. On Linux, the selector here waits for sub-millisecond
timeouts on a ``timerfd`` registered with its epoll: the kernel wakes the loop at the
deadline itself (within the timer slack, 50 µs by default). Elsewhere, or if timerfd is
not available, the loop is asyncio's own.

The time the process would sleep before a deadline can go to work that asked for it
(``add_idle``): a server plans its next connections' courses there rather than at their
accepts. Such work yields as soon as a socket is ready, ends before the spin begins,
and, in a real-time process, takes only credit the spins do not need.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import select
import selectors
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from netsim._libc import PR_SET_TIMERSLACK, libc, prctl
from netsim.engine._collector import MIDDLE_GAP, collect_in_gap, defer_old_generations
from netsim.engine._priority import Priority, granted

# The last stretch before a deadline is spent polling rather than sleeping: waking a
# sleeping process takes 60-500 µs on this kind of machine (the scheduler, the
# hypervisor; the longer it slept, the longer), and a server that must send on time pays
# that on every timer. So the selector measures how late its timer wakes it and spins
# for a little more than that: at least SPIN, at most MAX_SPIN, forgetting a slow wake
# by DECAY per wake. Spinning costs CPU, but only this long per deadline, and only when
# nothing else is ready.
SPIN = 150e-6  # seconds
MAX_SPIN = 1e-3  # seconds
DECAY = 0.98
MARGIN = 1.25  # spin this much longer than the latest wake-ups were late

# A real-time process (see _priority) spins within a budget, so that it sleeps now and
# then for the tasks its priority puts behind it. (One that never sleeps, as a server at
# 10,000 connections would if it spun before every deadline, starves them, and the
# kernel then stops it for tens of milliseconds to let them run.) Time in the selector's
# waits earns spin at 1 - BUSY_SHARE, the time outside them and spinning spend it; the
# balance is kept within CREDIT_CAP either way, so that neither a long sleep nor a long
# burst of work counts for long. What it bounds is the spin: a server with more work
# than that sleeps only between its deadlines, and a wait counts in full though waking
# from it costs CPU (the whole process was measured at 0.75-0.9 of its core when every
# wait was shorter than the spin).
BUSY_SHARE = 0.7
CREDIT_CAP = 2e-3  # seconds

# Work that a process may do while it waits (``IdleWork``: a server planning its next
# connections, 5-10 µs apiece) gets the part of the wait it would sleep, but
# IDLE_MARGIN, so that it is done before the spin begins; it is not started with less
# than IDLE_LEAST to go, and does at most IDLE_MOST before a wait with no deadline or a
# distant one. A real-time process gives it only the credit its sleeping earned beyond
# the longest spin (see BUSY_SHARE). The spin itself is left alone: work there (tried)
# brought the collector's young collections, which the work's allocations set off, to
# the moment before a deadline, and some of them took 1-3 ms there (elsewhere under
# 0.5 ms; why was not found): the writes due then went that late.
IDLE_MARGIN = 15e-6  # seconds
IDLE_LEAST = 10e-6  # seconds
IDLE_MOST = 0.02  # seconds

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd_libc() -> Any:
    """The C library, with the argument types of its timerfd calls; None where there is none."""
    library = libc()
    if library is None:
        return None
    try:
        library.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        library.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                            ctypes.c_void_p]
    except AttributeError:
        return None
    return library


class IdleWork(Protocol):
    """Work for the time a process would sleep: done by ``until`` (``time.monotonic()``),
    not begun, or left for later, when ``busy()`` says a socket or the timer is ready
    (a system call: worth asking only when there is work to do)."""

    def __call__(self, until: float, busy: Callable[[], bool], /) -> None: ...


class IdleHook(Protocol):
    """Where idle work is given the time before each wait (a PreciseEpollSelector)."""

    def add_idle(self, work: IdleWork) -> None: ...

    def remove_idle(self, work: IdleWork) -> None: ...


class PreciseEpollSelector(selectors.EpollSelector):
    """An epoll selector whose timeouts are kept by a timerfd, to the microsecond, and
    which gives the time it would sleep to work that asked for it (``add_idle``)."""

    def __init__(self, libc: Any, collect_in_gaps: bool = False) -> None:
        super().__init__()
        self._libc = libc
        self._collect_in_gaps = collect_in_gaps  # see _collector
        self._timer = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self._timer < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._spec = _Itimerspec()
        self._armed = False
        self.spin = SPIN  # how long before a deadline to stop sleeping (learned)
        self._credit = 0.0  # spin a real-time process has earned by sleeping (seconds)
        self._entered = time.monotonic()  # when the last wait began
        self._slept = 0.0  # how long it slept
        self._idle: list[IdleWork] = []
        # Registered with the epoll object itself, not as a selector key: its readiness
        # wakes the wait and is then ignored by the selector's own bookkeeping.
        self._epoll().register(self._timer, select.EPOLLIN)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._collect_in_gaps and (timeout is None or timeout >= MIDDLE_GAP):
            began = time.monotonic()
            collect_in_gap(timeout)
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - began))
        spin = self.spin
        budget = math.inf  # for idle work besides the spin
        realtime = granted() is Priority.REALTIME
        if realtime:
            now = time.monotonic()
            # The core was free while the last wait slept, and owes 1 - BUSY_SHARE of all
            # the time since it began.
            credit = self._credit + self._slept - (1 - BUSY_SHARE) * (now - self._entered)
            self._credit = credit = min(CREDIT_CAP, max(-CREDIT_CAP, credit))
            self._entered, self._slept = now, 0.0
            spin = min(spin, max(0.0, credit))
            # Idle work costs the core as spinning does, and gets only the credit that the
            # longest spin would not need: the next deadlines' spins come first.
            budget = credit - MAX_SPIN
        if self._idle:
            room = min(IDLE_MOST, budget, math.inf if timeout is None else timeout - spin - IDLE_MARGIN)
            if room >= IDLE_LEAST:
                timeout = self._run_idle(timeout, room)
        if timeout is not None and 0 < timeout <= spin:
            return self._spin(timeout)
        wake = math.inf
        if timeout is not None and spin < timeout < 1.0:
            timeout -= spin  # wake a little early, and spin the rest (see SPIN)
            # Arm the timer for exactly `timeout`; epoll's own timeout (rounded up, plus
            # a margin) is only the fallback, the timer's readiness is the wake-up.
            self._set(max(1000, int(timeout * 1e9)))
            self._armed = True
            wake = time.monotonic() + timeout
            timeout = math.ceil(timeout * 1e3) * 1e-3 + 0.002
        elif self._armed:
            self._set(0)  # disarm: a stale expiry must not wake a longer wait
            self._armed = False
        ready = super().select(timeout)
        if realtime and timeout != 0:
            self._slept = time.monotonic() - now
        if self._armed:
            try:
                os.read(self._timer, 8)  # consume the expiry, so the fd is quiet again
                self._armed = False
            except BlockingIOError:
                pass  # woken by a socket before the deadline: the timer is still armed
            else:
                late = time.monotonic() - wake  # how late the timer's wake-up came
                # From what was learned, not from what the budget allowed this time.
                self.spin = min(MAX_SPIN, max(SPIN, self.spin * DECAY, late * MARGIN))
        return ready

    def add_idle(self, work: IdleWork) -> None:
        """Give ``work`` the time before each wait (see IdleWork), from now on."""
        self._idle.append(work)

    def remove_idle(self, work: IdleWork) -> None:
        if work in self._idle:
            self._idle.remove(work)

    def _run_idle(self, timeout: float | None, room: float) -> float | None:
        """Give the idle work ``room`` seconds of a wait of ``timeout``; what is left of the wait."""
        began = time.monotonic()
        until = began + room
        for work in tuple(self._idle):
            if time.monotonic() >= until:
                break
            work(until, self._busy)
        if timeout is None:
            return None
        return max(0.0, timeout - (time.monotonic() - began))

    def _busy(self) -> bool:
        """Is a registered descriptor (or the timer) ready now?"""
        return bool(self._epoll().poll(0, 1))

    def _spin(self, timeout: float) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll without sleeping until ``timeout`` has passed or something is ready."""
        deadline = time.monotonic() + timeout
        while True:
            ready = super().select(0)
            if ready or time.monotonic() >= deadline:
                return ready

    def _epoll(self) -> Any:
        return getattr(self, "_selector")  # noqa: B009 (the epoll object; private in typeshed)

    def _set(self, nanoseconds: int) -> None:
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(nanoseconds, 1_000_000_000)
        self._libc.timerfd_settime(self._timer, 0, ctypes.byref(self._spec), None)

    def close(self) -> None:
        try:
            os.close(self._timer)
        finally:
            super().close()


# The precise selector of each loop new_event_loop made, for idle_hook.
_selectors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PreciseEpollSelector] = \
    weakref.WeakKeyDictionary()


def idle_hook(loop: asyncio.AbstractEventLoop) -> PreciseEpollSelector | None:
    """Where ``loop`` takes idle work (``add_idle``), if it runs on the precise selector."""
    return _selectors.get(loop)


def new_event_loop(collect_in_gaps: bool = False) -> asyncio.AbstractEventLoop:
    """A loop with the precise selector where it can be had, asyncio's default otherwise.

    It also asks the kernel for the least timer slack for this process: by default the
    kernel may fire a timer up to 50 µs late to save wake-ups, and this process exists
    to be on time. With ``collect_in_gaps`` (for a process of its own: it sets the
    process's collector thresholds), the older generations of Python's garbage are
    collected in the waits between deadlines (see ``_collector``).
    """
    library = _timerfd_libc()
    if library is None:
        return asyncio.new_event_loop()
    prctl(PR_SET_TIMERSLACK, 1)  # 1 ns; harmless if refused
    try:
        selector = PreciseEpollSelector(library, collect_in_gaps)
    except OSError:
        return asyncio.new_event_loop()
    if collect_in_gaps:
        defer_old_generations()
    loop = asyncio.SelectorEventLoop(selector)
    _selectors[loop] = selector
    return loop
