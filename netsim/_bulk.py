"""The bulk path: plain poem servers served from raw non-blocking sockets.

A poem server with no rate, no fault and no serial queue has nothing to do but send
each chunk on time and close. For that, an asyncio transport and protocol per
connection is a lot of machinery: at ten thousand connections their bookkeeping, not
the sends, is where the server's CPU goes, and their objects are most of its memory.
Here a connection is a socket, a schedule and a few fields: the loop watches the
listening socket for accepts, the process's TimerQueue runs each connection's next
deadline, and a chunk is one ``send()``.

Backpressure still holds: when a client stops reading and ``send()`` takes only part
of a chunk, the rest waits (a view of the plan's own bytes, no copy) for the socket
to be writable, and later chunks queue behind it, logged as held.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
from typing import Any

from netsim.conditions import StreamSchedule, pause_stream
from netsim.server import Listener, _ServerState

# Connections taken from the backlog per wake-up: enough to keep up with a ramp of
# thousands a second, few enough that the timers are never kept waiting for long.
ACCEPT_BATCH = 256

# How long accepting pauses when the process runs out of descriptors.
RETRY_ACCEPT = 1.0  # seconds


def eligible(listener: Listener) -> bool:
    """Can this server be served on the bulk path?"""
    plan = listener.plan
    conditions = plan.conditions
    return (plan.upstream is None and not plan.serial and conditions.rate is None
            and conditions.fault is None)


class BulkServer:
    """Accepts connections of one plain poem server and serves each from its socket."""

    def __init__(self, listener: Listener, state: _ServerState) -> None:
        self._listener = listener
        self._state = state
        self._loop = asyncio.get_running_loop()
        self.live: set[BulkConnection] = set()

    def __repr__(self) -> str:
        return f"<BulkServer {self._state.plan.name} live={len(self.live)}>"

    def start(self) -> None:
        self._loop.add_reader(self._listener.sock.fileno(), self._accept)

    def close(self) -> None:
        self._loop.remove_reader(self._listener.sock.fileno())
        for connection in list(self.live):
            connection.drop()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self._listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # the client gave up before we got to it
                continue
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors or memory: the backlog stays readable, so stop
                    # watching it for a while rather than spin on failing accepts.
                    self._loop.remove_reader(self._listener.sock.fileno())
                    self._loop.call_later(RETRY_ACCEPT, self.start)
                    return
                raise
            sock.setblocking(False)
            # As asyncio's transports do: a line due now goes now, not after an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            BulkConnection(self, sock, int(peer[1])).start()


class BulkConnection:
    """One connection on the bulk path: its socket and its schedule."""

    __slots__ = ("_chunks", "_held_since", "_pending", "_server", "_sock", "_start", "index",
                 "peer_port", "schedule", "sent")

    def __init__(self, server: BulkServer, sock: socket.socket, peer_port: int) -> None:
        self._server = server
        self._sock = sock
        self.peer_port = peer_port
        self.index = 0
        self.sent = 0
        self._start = 0.0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._pending: memoryview | None = None  # the unsent rest of a chunk: the reader is behind
        self._held_since: float | None = None  # when the reader fell behind

    def __repr__(self) -> str:
        return f"<BulkConnection #{self.index} peer_port={self.peer_port} sent={self.sent}B>"

    def _log(self, event: str, now: float, **fields: Any) -> None:
        self._server._state.log(event, now, self.peer_port, **fields)

    def start(self) -> None:
        state = self._server._state
        plan = state.plan
        self.index = state.next_index()
        self._server.live.add(self)
        now = self._server._loop.time()
        self._log("conn_accepted", now, index=self.index)
        self._start = now + plan.conditions.accept_delay
        pauses = pause_stream(plan.seed, plan.name, self.index) if plan.conditions.jitter else None
        self.schedule = StreamSchedule(plan.conditions, pauses, self._start)
        # Chunks are scheduled one at a time, as the previous one goes: an accept then
        # costs one chunk's planning, not ten, which matters when thousands arrive at once.
        self._chunks.extend(plan.chunks)
        self._plan_next()
        self._step()

    def _plan_next(self) -> None:
        """Schedule the next chunk that carries bytes (empty ones just take their pause)."""
        while self._chunks and self.schedule.add(len(self._chunks[0]), self._start) == 0:
            self._chunks.popleft()

    def _step(self) -> None:
        if self._pending is not None or self._sock.fileno() < 0:
            return  # the reader is behind (_writable steps again), or the connection is gone
        loop = self._server._loop
        state = self._server._state
        emissions = self.schedule.emissions
        now = loop.time()
        while emissions and emissions[0].due <= now:
            emission = emissions.popleft()
            # Held: due while the reader was behind; that lateness is the reader's doing.
            held = self._held_since is not None and self._held_since <= emission.due
            state.chunk_sent(emission, now, held, self.peer_port)
            chunk = self._chunks.popleft()
            self._plan_next()
            if not self._send(chunk):
                return
        self._held_since = None
        if emissions:
            state.timers.call_at(emissions[0].due, self._step)
        else:
            state.timers.call_at(self.schedule.close_time(self._start), self.close)

    def _send(self, chunk: bytes) -> bool:
        """Send a chunk; False if the connection is gone or the reader fell behind."""
        try:
            sent = self._sock.send(chunk)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._lost(error)
            return False
        self.sent += sent
        if sent < len(chunk):
            self._pending = memoryview(chunk)[sent:]
            self._held_since = self._server._loop.time()
            self._server._loop.add_writer(self._sock.fileno(), self._writable)
            return False
        return True

    def _writable(self) -> None:
        assert self._pending is not None
        try:
            sent = self._sock.send(self._pending)
        except BlockingIOError:
            return
        except OSError as error:
            self._server._loop.remove_writer(self._sock.fileno())
            self._lost(error)
            return
        self.sent += sent
        self._pending = self._pending[sent:] if sent < len(self._pending) else None
        if self._pending is None:
            self._server._loop.remove_writer(self._sock.fileno())
            self._step()

    def close(self) -> None:
        if self._sock.fileno() < 0:
            return
        self._log("conn_closed", self._server._loop.time(), bytes=self.sent)
        self.drop()

    def _lost(self, error: OSError) -> None:
        self._log("conn_lost", self._server._loop.time(), bytes=self.sent,
                  reason=f"{type(error).__name__}: {error}")
        self.drop()

    def drop(self) -> None:
        """Close the socket now, whatever is scheduled (a step still queued finds it closed)."""
        if self._sock.fileno() >= 0:
            if self._pending is not None:
                self._server._loop.remove_writer(self._sock.fileno())
            self._sock.close()
        self._server.live.discard(self)
