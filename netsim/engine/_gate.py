"""A server's listening socket over its life: answering handshakes, holding them, refusing.

What a client's kernel meets at ``connect()`` is one of three states of the socket:

* ``open``: listening; the server accepts what comes.
* ``held``: listening with a full accept queue. Linux drops a SYN that finds the accept
  queue full (with ``net.ipv4.tcp_abort_on_overflow=0``, the default, it neither answers
  nor refuses it), and the client's kernel sends it again 1 s later, then 3 s, 7 s...
  after its connect, until the client's own timeout. So the backlog is set to 0, which
  one connection fills, and filled with a connection of our own (a *filler*); nothing is
  accepted while held. This needs no privileges, where a firewall rule would.
* ``refusing``: bound but not listening (the kernel answers every SYN with a reset, and
  holds the port for us); a server that is down, or whose fault is ``refuse``.

Going from one to another rebinds the same address (SO_REUSEADDR) or changes the
backlog of the socket in place. Connections waiting in the backlog when the socket stops
listening are reset by the kernel; those waiting when handshakes are held stay there,
and are served once they are answered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable
from typing import Literal

from netsim._errors import PortBusyError
from netsim.engine._plans import BACKLOG, Listener, bind

GateState = Literal["open", "held", "refusing"]

# How long accepting pauses when the process runs out of descriptors or memory.
RETRY_ACCEPT = 1.0  # seconds
_SHORT_OF = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def accept_failed(error: OSError, loop: asyncio.AbstractEventLoop, *, stop: Callable[[], None],
                  resume: Callable[[], None], failed: asyncio.Future[None] | None) -> None:
    """What an accept that raised means, for poem servers and proxies alike.

    Out of descriptors or memory, accepting pauses for RETRY_ACCEPT: the backlog stays
    readable, and retrying at once would spin on failing accepts. Anything else stops it
    for good and fails ``failed``, so that the run hears of it rather than leave its
    clients waiting in the backlog.
    """
    stop()
    if error.errno in _SHORT_OF:
        loop.call_later(RETRY_ACCEPT, resume)
    elif failed is not None and not failed.done():
        failed.set_exception(error)


class Gate:
    """The listening socket of one server, in one of the states above."""

    def __init__(self, listener: Listener, loop: asyncio.AbstractEventLoop,
                 accept: Callable[[], None]) -> None:
        self.plan = listener.plan
        self.sock = listener.sock
        self.address = listener.address  # a port 0 was resolved at the first bind: kept for good
        self.state: GateState = "refusing" if listener.plan.refuses else "open"
        self._loop = loop
        self._accept = accept
        self._wanted = False  # the server takes connections (a serial one, one at a time)
        self._reading = False
        self._fillers: list[socket.socket] = []
        self._discard: set[tuple[str, int]] = set()  # fillers queued, to close once accepted
        # Told of the listening socket just before it closes (to refuse): what waits in its
        # backlog is reset by the close unless this takes it out first.
        self.on_closing: Callable[[socket.socket], None] | None = None

    def __repr__(self) -> str:
        return f"<Gate {self.plan.name} {self.state} {self.address[0]}:{self.address[1]}>"

    @property
    def listening(self) -> bool:
        """Does the socket listen (open, or held), so that there may be a connection to accept?"""
        return self.state != "refusing"

    def want(self, wanted: bool) -> None:
        """Accept connections whenever the gate is open (or stop)."""
        self._wanted = wanted
        self._watch()

    def set(self, state: GateState) -> None:
        """Move to ``state``. Raises PortBusyError when the port cannot be listened on again
        (another program took it while the server was refusing), ServerStartError when the
        address cannot be bound again."""
        if state == self.state:
            return
        if state == "refusing":
            self._release_fillers()
            self._rebind()
        else:
            # From refusing, the bound socket starts listening; from open or held, listen()
            # on a listening socket changes its backlog in place (Linux).
            try:
                self.sock.listen(0 if state == "held" else BACKLOG)
            except OSError as error:
                raise PortBusyError(f"server {self.plan.name!r}: cannot listen on port "
                                    f"{self.address[1]} again: {error.strerror or error}") from None
        if state == "held":
            self._fill()
        elif self.state == "held":
            self._release_fillers()
        self.state = state
        self._watch()

    def is_filler(self, peer: tuple[str, int]) -> bool:
        """Was this accepted connection one of our fillers (to close, not serve)?"""
        if (peer[0], peer[1]) in self._discard:
            self._discard.discard((peer[0], peer[1]))
            return True
        return False

    def close(self) -> None:
        self._unwatch()
        self._release_fillers()
        self.sock.close()

    def _watch(self) -> None:
        if self._wanted and self.state == "open":
            if not self._reading:
                self._reading = True
                self._loop.add_reader(self.sock.fileno(), self._accept)
        else:
            self._unwatch()

    def _unwatch(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self.sock.fileno())

    def _rebind(self) -> None:
        """A fresh socket on the same address, bound and not listening: connects are refused."""
        self._unwatch()
        if self.on_closing is not None and self.listening:
            self.on_closing(self.sock)
        self.sock.close()  # the kernel resets what waits in its backlog
        self.sock = bind(self.plan, self.address[1], listen=False)

    def _fill(self) -> None:
        """Fill the accept queue (of backlog 0) with a connection of our own."""
        host = self.address[0]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if host in ("0.0.0.0", "::"):  # a wildcard listener is reached on loopback
            host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        filler = socket.socket(family, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect((host, self.address[1]))
        self._fillers.append(filler)

    def _release_fillers(self) -> None:
        """Close our fillers; one the server has yet to accept is remembered, to be dropped."""
        for filler in self._fillers:
            with contextlib.suppress(OSError):
                name = filler.getsockname()
                filler.getpeername()  # raises unless the handshake completed: then it is queued
                self._discard.add((str(name[0]), int(name[1])))
            filler.close()
        self._fillers.clear()
