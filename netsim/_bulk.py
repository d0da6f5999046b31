"""The bulk path: plain poem servers served from raw non-blocking sockets.

A poem server with no rate, no fault and no serial queue has nothing to do but send
each chunk on time and close. For that, an asyncio transport and protocol per
connection is a lot of machinery: at ten thousand connections their bookkeeping, not
the sends, is where the server's CPU goes, and their objects are most of its memory.

Here a connection is a file descriptor, a start time and a position in the poem. The
server plans the poem's timeline once (every connection without jitter shares it), keeps
one heap of the next deadline of each of its connections, and every wake-up sends
everything that has come due in one pass: a heap pop, a ``write()`` and a heap push per
chunk. The loop watches only the listening socket; the process's TimerQueue holds one
entry for the heap's earliest deadline.

Backpressure still holds: when a client stops reading and a chunk goes only in part,
the rest waits (a view of the plan's own bytes, no copy) for the socket to be writable,
the connection leaves the heap, and the chunks that come due meanwhile are logged as
held and not counted as late: that lateness is the reader's doing.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import heapq
import math
import os
import socket
import sys
from typing import Any

from netsim.conditions import Emission, StreamSchedule, pause_stream
from netsim.server import RUN_SLICE, Listener, ServerPlan, _ServerState

# How long one wake-up may spend accepting before it sends what has come due: a ramp of
# thousands of connections a second never keeps the timers waiting for longer.
ACCEPT_SLICE = 0.5e-3  # seconds

# How long accepting pauses when the process runs out of descriptors.
RETRY_ACCEPT = 1.0  # seconds

# Linux hands an accepted socket the listener's TCP_NODELAY (set in server._bind);
# elsewhere each accepted socket is set on its own.
INHERITS_NODELAY = sys.platform.startswith("linux")


def eligible(listener: Listener) -> bool:
    """Can this server be served on the bulk path?"""
    plan = listener.plan
    conditions = plan.conditions
    return (plan.upstream is None and not plan.serial and conditions.rate is None
            and conditions.fault is None)


def timeline(plan: ServerPlan, pauses: Any = None) -> tuple[float, ...]:
    """When each chunk that carries bytes goes, then when the connection closes, in seconds
    from its start (its accept plus accept_delay). Empty chunks only take their pause."""
    schedule = StreamSchedule(plan.conditions, pauses, 0.0)
    dues: list[float] = []
    for chunk in plan.chunks:
        if schedule.add(len(chunk), 0.0):
            dues.append(schedule.emissions.popleft().due)
    dues.append(schedule.close_time(0.0))
    return tuple(dues)


class BulkServer:
    """Accepts connections of one plain poem server and sends every chunk on time."""

    def __init__(self, listener: Listener, state: _ServerState) -> None:
        self._listener = listener
        self._state = state
        self._loop = asyncio.get_running_loop()
        plan = state.plan
        self._chunks = tuple(chunk for chunk in plan.chunks if chunk)
        # Which chunk of the plan each sent chunk is, for the event log.
        self._chunk_numbers = tuple(i for i, chunk in enumerate(plan.chunks) if chunk)
        self._shared = None if plan.conditions.jitter else timeline(plan)
        # The next deadline of every connection: (due, accept number, connection).
        self._heap: list[tuple[float, int, BulkConnection]] = []
        self._armed_for = math.inf  # the TimerQueue entry that wakes _run
        self.live: set[BulkConnection] = set()

    def __repr__(self) -> str:
        return f"<BulkServer {self._state.plan.name} live={len(self.live)} due={len(self._heap)}>"

    def start(self) -> None:
        self._loop.add_reader(self._listener.sock.fileno(), self._accept)

    def close(self) -> None:
        self._loop.remove_reader(self._listener.sock.fileno())
        for connection in list(self.live):
            connection.drop()
        self._heap.clear()

    def _accept(self) -> None:
        # socket._accept: the descriptor alone, without a socket object around it.
        state, clock = self._state, self._loop.time
        accept = self._listener.sock._accept  # type: ignore[attr-defined]
        conditions = state.plan.conditions
        until = clock() + ACCEPT_SLICE
        while True:
            try:
                fd, peer = accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:  # the client gave up before we got to it
                continue
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors or memory: the backlog stays readable, so stop
                    # watching it for a while rather than spin on failing accepts.
                    self._loop.remove_reader(self._listener.sock.fileno())
                    self._loop.call_later(RETRY_ACCEPT, self.start)
                    break
                raise
            os.set_blocking(fd, False)
            if not INHERITS_NODELAY:  # pragma: no cover (Linux inherits it)
                view = socket.socket(fileno=fd)
                view.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                view.detach()
            now = clock()
            index = state.next_index()
            dues = self._shared or timeline(state.plan, pause_stream(state.plan.seed,
                                                                    state.plan.name, index))
            conn = BulkConnection(self, fd, int(peer[1]), index, now + conditions.accept_delay, dues)
            self.live.add(conn)
            if state.detail:
                state.log("conn_accepted", now, conn.peer_port, index=index)
            heapq.heappush(self._heap, (conn.start + dues[0], index, conn))
            if now >= until:
                break  # the rest of the backlog is still readable: the loop comes back
        # Send what has come due, the new connections' first chunks included.
        self._run()

    def wake(self, when: float) -> None:
        """Make sure _run runs at ``when`` (an entry armed for later goes stale)."""
        if when < self._armed_for:
            self._armed_for = when
            self._state.timers.call_at(when, functools.partial(self._fire, when))

    def _fire(self, when: float) -> None:
        if when == self._armed_for:  # else stale: an earlier entry was armed since
            self._armed_for = math.inf
            self._run()

    def _run(self) -> None:
        """Send every chunk that is due, and close every connection whose time has come."""
        heap, clock, chunks, write = self._heap, self._loop.time, self._chunks, os.write
        count = len(chunks)  # conn.next == count: the close is next
        state = self._state
        count_late = state.lateness.append
        detail = state.detail
        now = clock()
        until = now + RUN_SLICE
        while heap and heap[0][0] <= now < until:
            due, _, conn = heapq.heappop(heap)
            if conn.fd < 0 or conn.pending is not None:
                now = clock()  # gone, or held for its reader (it comes back when writable)
                continue
            i = conn.next
            if i == count:
                conn.close(now)
                now = clock()
                continue
            held = conn.held_since is not None and conn.held_since <= due
            if detail:
                state.chunk_sent(self._emission(conn, i), now, held, conn.peer_port)
            elif not held:
                count_late(now - due)
            chunk = chunks[i]
            try:
                sent = write(conn.fd, chunk)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                conn.lost(error, now)
                now = clock()
                continue
            conn.sent += sent
            conn.next = i = i + 1
            if sent < len(chunk):
                conn.hold(memoryview(chunk)[sent:], now)
            else:
                after = conn.start + conn.dues[i]
                if conn.held_since is not None and after > now:
                    conn.held_since = None  # caught up with the schedule
                heapq.heappush(heap, (after, conn.index, conn))
            now = clock()
        if heap:
            self.wake(heap[0][0])

    def _emission(self, conn: BulkConnection, i: int) -> Emission:
        due = conn.start + conn.dues[i]
        return Emission(due, len(self._chunks[i]), self._chunk_numbers[i], True, due)

    def resume(self, conn: BulkConnection) -> None:
        """A held connection's reader caught up: its next deadline goes back on the heap."""
        when = conn.start + conn.dues[conn.next]
        heapq.heappush(self._heap, (when, conn.index, conn))
        self._run() if when <= self._loop.time() else self.wake(when)


class BulkConnection:
    """One connection on the bulk path: its descriptor, its timeline and where it is."""

    __slots__ = ("dues", "fd", "held_since", "index", "next", "peer_port", "pending", "sent",
                 "server", "start")

    def __init__(self, server: BulkServer, fd: int, peer_port: int, index: int, start: float,
                 dues: tuple[float, ...]) -> None:
        self.server = server
        self.fd = fd
        self.peer_port = peer_port
        self.index = index
        self.start = start  # accept + accept_delay: the timeline counts from here
        self.dues = dues  # each chunk's offset from start, then the close's (see timeline)
        self.next = 0  # the next chunk to send, or, once all are sent, the close
        self.sent = 0
        self.pending: memoryview | None = None  # the unsent rest of a chunk: the reader is behind
        self.held_since: float | None = None  # when the reader fell behind

    def __repr__(self) -> str:
        return f"<BulkConnection #{self.index} peer_port={self.peer_port} sent={self.sent}B>"

    def hold(self, rest: memoryview, now: float) -> None:
        self.pending = rest
        self.held_since = now
        self.server._loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        assert self.pending is not None
        try:
            sent = os.write(self.fd, self.pending)
        except BlockingIOError:
            return
        except OSError as error:
            self.lost(error, self.server._loop.time())
            return
        self.sent += sent
        self.pending = self.pending[sent:] if sent < len(self.pending) else None
        if self.pending is None:
            self.server._loop.remove_writer(self.fd)
            self.server.resume(self)

    def close(self, now: float) -> None:
        state = self.server._state
        if state.detail:
            state.log("conn_closed", now, self.peer_port, bytes=self.sent)
        self.drop()

    def lost(self, error: OSError, now: float) -> None:
        self.server._state.log("conn_lost", now, self.peer_port, bytes=self.sent,
                               reason=f"{type(error).__name__}: {error}")
        self.drop()

    def drop(self) -> None:
        """Close the descriptor now, whatever is scheduled (a heap entry left finds it gone)."""
        if self.fd >= 0:
            if self.pending is not None:
                self.server._loop.remove_writer(self.fd)
                self.pending = None
            os.close(self.fd)
            self.fd = -1
        self.server.live.discard(self)
