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
from typing import Protocol

READ = select.EPOLLIN | select.EPOLLRDHUP
WRITE = select.EPOLLOUT
# How many ready sockets one wake-up handles before the loop gets its turn back.
MAX_EVENTS = 1024


class Watched(Protocol):
    """What a watched socket's owner offers: called with the ready events (EPOLLIN, ...)."""

    def ready(self, events: int) -> None: ...


class Watcher:
    """Tells a socket's owner when it is readable (or closed, or failed) or writable."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        # Each descriptor's owner, at the descriptor's place: 8 bytes a descriptor, where a
        # dict takes 50 a key. The owners themselves, not their bound `ready` methods: at
        # ten thousand connections, a method object each is memory and work for the collector.
        self._owners: list[Watched | None] = []
        loop.add_reader(self._epoll.fileno(), self.poll)

    def __repr__(self) -> str:
        return f"<Watcher watching={sum(owner is not None for owner in self._owners)}>"

    def watch(self, fd: int, owner: Watched, events: int = READ) -> None:
        owners = self._owners
        if fd >= len(owners):
            owners.extend([None] * max(fd + 1 - len(owners), len(owners)))
        self._epoll.register(fd, events)
        owners[fd] = owner

    def change(self, fd: int, events: int) -> None:
        """Watch ``fd`` for these events from now on (0: for nothing but errors)."""
        self._epoll.modify(fd, events)

    def forget(self, fd: int) -> None:
        """Stop calling ``fd``'s owner; call before closing it (closing unregisters it)."""
        if fd < len(self._owners):
            self._owners[fd] = None

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd``, which stays open: a socket left registered and unowned
        would wake the loop for ever once readable (the epoll is level-triggered)."""
        self.forget(fd)
        self._epoll.unregister(fd)

    def poll(self) -> None:
        """Tell the owner of every socket that is ready now."""
        owners = self._owners
        for fd, events in self._epoll.poll(0, MAX_EVENTS):
            owner = owners[fd]  # a registered descriptor has its place
            if owner is not None:
                owner.ready(events)

    def close(self) -> None:
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._owners.clear()
