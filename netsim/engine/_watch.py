"""Readiness of every connection of a server process, on one epoll of its own.

A poem server writes on its own schedule and needs the loop only to learn that a
client has left (EOF, reset), has sent bytes (read and dropped), or can take more after
pushing back. Registering each of ten thousand sockets with asyncio would cost a
handle and a selector key each; here each is one ``epoll_ctl`` call, the kernel keeps
the set, and the loop watches the one epoll descriptor. Closing a socket removes it
from the set by itself.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

READ = select.EPOLLIN | select.EPOLLRDHUP
WRITE = select.EPOLLOUT
# How many ready sockets one wake-up handles before the loop gets its turn back.
MAX_EVENTS = 1024

Handler = Callable[[int], None]  # called with the ready events (EPOLLIN, EPOLLOUT, ...)


class Watcher:
    """Calls a socket's handler when it is readable (or closed, or failed) or writable."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        loop.add_reader(self._epoll.fileno(), self.poll)

    def __repr__(self) -> str:
        return f"<Watcher watching={len(self._handlers)}>"

    def watch(self, fd: int, handler: Handler, events: int = READ) -> None:
        self._handlers[fd] = handler
        self._epoll.register(fd, events)

    def change(self, fd: int, events: int) -> None:
        """Watch ``fd`` for these events from now on (0: for nothing but errors)."""
        self._epoll.modify(fd, events)

    def forget(self, fd: int) -> None:
        """Stop calling ``fd``'s handler; call before closing it (closing unregisters it)."""
        self._handlers.pop(fd, None)

    def poll(self) -> None:
        """Handle every socket that is ready now."""
        handlers = self._handlers
        for fd, events in self._epoll.poll(0, MAX_EVENTS):
            handler = handlers.get(fd)
            if handler is not None:
                handler(events)

    def close(self) -> None:
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._handlers.clear()
