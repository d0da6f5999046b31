"""A loop whose clock the test moves: what the engine's timers and executor need of a loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class FakeHandle:
    when: float
    order: int
    callback: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """``time()`` is what the test says it is; timers fire only when the test moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeHandle] = []
        self.readers: dict[int, Callable[[], object]] = {}
        self.soon: list[Callable[[], object]] = []
        self._order = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeHandle:
        self._order += 1
        handle = FakeHandle(when, self._order, callback)
        self.timers.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], object], /) -> FakeHandle:
        return self.call_at(self.now + delay, callback)

    def call_soon(self, callback: Callable[[], object], /) -> None:
        self.soon.append(callback)

    def add_reader(self, fd: int, callback: Callable[[], object], /) -> None:
        self.readers[fd] = callback

    def remove_reader(self, fd: int, /) -> bool:
        return self.readers.pop(fd, None) is not None

    def armed(self) -> list[float]:
        """When the timers that are set (not cancelled) are due."""
        return sorted(handle.when for handle in self.timers if not handle.cancelled)

    def fire_next(self) -> None:
        """Fire the earliest timer that is set, moving the clock to it unless already past."""
        handle = min(handle for handle in self.timers if not handle.cancelled)
        self.timers.remove(handle)
        self.now = max(self.now, handle.when)
        handle.callback()

    def advance(self, to: float) -> None:
        """Move the clock to ``to``, firing every timer due by then in order, each at its time
        (or now, if the clock is already past it, as a late wake-up would)."""
        while True:
            due = sorted(handle for handle in self.timers if not handle.cancelled and handle.when <= to)
            if not due:
                break
            handle = due[0]
            self.timers.remove(handle)
            self.now = max(self.now, handle.when)
            handle.callback()
        self.now = max(self.now, to)
