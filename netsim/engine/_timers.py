"""One loop timer for every deadline of a server process.

asyncio makes a handle for each ``call_at`` and passes it through its ready queue; at
tens of thousands of deadlines a second that bookkeeping is most of a server's work.
Here a deadline is a heap entry, the loop holds a single timer set for the earliest,
and each wake-up runs everything that has come due, in deadline order.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Protocol

# The longest a TimerQueue runs due callbacks before it lets the loop poll for I/O:
# accepts and reads wait on the loop, and a connection accepted late is late for its
# whole schedule.
RUN_SLICE = 0.002  # seconds


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What a TimerQueue needs of its loop: asyncio's, or a test's controllable one."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Cancellable: ...


class TimerQueue:
    """Runs callbacks at their deadlines, earliest first, on one timer of ``loop``."""

    def __init__(self, loop: Clock) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties go first come, first served
        self._handle: Cancellable | None = None
        self._armed_for = math.inf
        self._running = False

    def __repr__(self) -> str:
        return f"<TimerQueue pending={len(self._heap)} next={self._heap[0][0] if self._heap else None}>"

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._order), callback))
        if not self._running and when < self._armed_for:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._run)
        self._armed_for = when

    def _run(self) -> None:
        self._handle, self._armed_for, self._running = None, math.inf, True
        heap, clock = self._heap, self._loop.time
        until = clock() + RUN_SLICE
        try:
            while heap and heap[0][0] <= (now := clock()) and now < until:
                heapq.heappop(heap)[2]()
        finally:
            self._running = False
            if heap:
                self._arm(heap[0][0])
