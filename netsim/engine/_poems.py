"""Poem servers: every connection's timeline carried out on raw non-blocking sockets.

A poem server knows everything it will send when it accepts a connection, so it plans
the connection's whole course then (``conditions.Timeline``: a rate is more writes, a
fault a timeline cut short with its ending, serial mode a gate on accepting) and only
has to carry it out. For that, an asyncio transport and protocol per connection is a lot
of machinery: at ten thousand connections their bookkeeping, not the sends, is where
the server's CPU goes, and their objects are most of its memory.

A connection's course is planned when it is accepted; one that is its own (jitter,
slices, corruption: drawn for each connection) is planned ahead, while the loop would
sleep (``Planner.plan_ahead``), so that a ramp of accepts finds them ready.

Here a connection is a file descriptor, a start time, a timeline and a position in it.
The server keeps one heap of the next deadline of each of its connections, and every
wake-up sends everything that has come due in one pass: a heap pop, a ``write()`` and a
heap push per write. The loop watches only the listening socket; the process's
TimerQueue holds one entry for the heap's earliest deadline, and a ``Watcher`` tells
the server at once when a client leaves (EOF or reset), sends something (it is read and
dropped), or can take more after pushing back.

Every connection ends with an account (``ConnEnded``), sent even without a detailed
log: when it was accepted and got its first byte, how many bytes went and how many the
client's kernel acknowledged (the send queue's unacknowledged count, ``SIOCOUTQ``), and
how it ended. That is what measures a client netsim cannot instrument. When the
server's time to close comes, a client that has read on time has acknowledged every
byte, and the socket is closed there and then. Otherwise, to read the acknowledged
count at the end, the server closes its side with a FIN and keeps the socket until the
client closes too (``CLOSE_GRACE`` at most); a serial server takes its next client at
the FIN, as a real one would at its close.

A client that shuts down its sending side (EOF) while bytes remain to be sent is only
half gone (``nc`` and many HTTP clients half-close): it still gets the rest, and the
next write finds out whether it closed for good (its kernel answers with a reset). A
connection with nothing left to send ends at once.

Backpressure holds: when a client stops reading and a write goes only in part, the
rest waits (a view of the plan's own bytes, no copy) until the socket is writable, the
connection leaves the heap, and the writes that come due meanwhile are logged as held
and not counted as late: that lateness is the reader's doing.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import functools
import heapq
import math
import os
import select
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable, Sequence

from netsim.conditions import Conditions, Planner, Streams, Timeline, fault_of, replan
from netsim.engine._gate import Gate, accept_failed
from netsim.engine._plans import Listener
from netsim.engine._precise import IdleHook
from netsim.engine._record import ServerRecord
from netsim.engine._timers import RUN_SLICE, TimerQueue
from netsim.engine._watch import READ, WRITE, Watcher
from netsim.events import How

# How long one wake-up may spend accepting before it sends what has come due: a ramp of
# thousands of connections a second never keeps the timers waiting for longer.
ACCEPT_SLICE = 0.5e-3  # seconds

# A server whose connections each get a course of their own (jitter, slices, corruption)
# plans the next ones' while it waits (Planner.plan_ahead), so that an accept finds its
# course ready: twice as many ahead as it has accepted so far (a ramp that has begun
# goes on), at least AHEAD_LEAST and at most AHEAD_MOST (about 200 bytes each).
AHEAD_LEAST = 64
AHEAD_MOST = 8192

# What one read of a client's bytes takes; a poem server drops them.
READ_SIZE = 64 * 1024  # 64 KiB

# Linux hands an accepted socket the listener's TCP_NODELAY (set in _plans.bind);
# elsewhere each accepted socket is set on its own.
INHERITS_NODELAY = sys.platform.startswith("linux")

# SO_LINGER on, timeout 0: close() sends RST instead of FIN.
LINGER_RESET = struct.pack("ii", 1, 0)

# How long a connection the server has closed (FIN sent) waits for its client to close
# too, so that what the client's kernel acknowledged can be read at the end. A client
# that reads to the end closes at once; this bounds one that never does.
CLOSE_GRACE = 2.0  # seconds

# A silent connection (a stall struck, or a blackhole) whose client sent its EOF is
# accounted for as left then, but its socket stays open, unanswered: the EOF may be a
# half-close (nc and HTTP/1.0-style clients shut their side after the request) of a
# client that still waits, and a close would hand it an end of file where a stalled
# server gives it silence until its own timeout. Whether it has gone for good no packet
# tells, so such sockets are closed PARK_GRACE later, when the server stops, or, past
# PARK_MOST of them, the oldest first.
PARK_GRACE = 60.0  # seconds
PARK_MOST = 4096

_GONE = select.EPOLLERR | select.EPOLLHUP | select.EPOLLIN | select.EPOLLRDHUP


class PoemServer:
    """Accepts the connections of one poem server and carries out each one's timeline."""

    def __init__(self, listener: Listener, record: ServerRecord, timers: TimerQueue, watcher: Watcher,
                 loop: asyncio.AbstractEventLoop, failed: asyncio.Future[None] | None = None,
                 idle: IdleHook | None = None) -> None:
        self.gate = Gate(listener, loop, self._accept)
        self._record = record
        self._timers = timers
        self._watcher = watcher
        self._loop = loop
        self._clock = loop.time
        self._failed = failed  # set with the error when accepting fails for good
        plan = record.plan
        self._planner = Planner(plan.name, plan.chunks, plan.conditions, plan.seed)
        self._serial = plan.serial
        # The next deadline of every connection: (due, accept number, connection).
        self._heap: list[tuple[float, int, PoemConnection]] = []
        self._armed_for = math.inf  # the TimerQueue entry that wakes run_due
        self._accepting = False
        self._closed = False
        self.live: set[PoemConnection] = set()
        self.serving = 0  # connections not yet closed by the server: a serial one holds one
        # A serial server's clients taken out of its backlog when its listener closed (down,
        # or a refuse fault), in their order: connected, they wait their turn here.
        self._waiting: collections.deque[tuple[int, tuple[str, int]]] = collections.deque()
        if self._serial:
            self.gate.on_closing = self._keep_backlog
        # Connections the server has closed (FIN sent), waiting for their clients to close,
        # oldest first: one timer entry lets go of those past CLOSE_GRACE, and a connection
        # whose client closes leaves at once (at ten thousand, an entry each held 8 MB).
        self._closing: collections.OrderedDict[int, PoemConnection] = collections.OrderedDict()
        self._sweep_armed = False
        # Silent connections accounted for, their sockets kept open (see PARK_GRACE): the
        # descriptor and when it was parked, oldest first.
        self._parked: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._unpark_armed = False
        self._idle = idle  # where it plans ahead while the loop would sleep
        self._idling = False  # is _plan_ahead given the idle time? (while courses are its own)
        self._want_idle()

    def __repr__(self) -> str:
        mode = "serial" if self._serial else "concurrent"
        return f"<PoemServer {self._record.name} {mode} live={len(self.live)} due={len(self._heap)}>"

    def start(self) -> None:
        """Start accepting, whenever the gate is open (a serial server: once it has no connection)."""
        if not self._accepting and not self._closed and not (self._serial and self.serving):
            self._accepting = True
            self.gate.want(True)

    def _stop_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            self.gate.want(False)

    def close(self) -> None:
        """Stop serving: every connection still open is accounted for (``stopped``) and closed."""
        self._closed = True
        self._stop_accepting()
        self._want_idle()
        now = self._clock()
        for connection in list(self.live):
            # A client that shut its side and has not been heard of since has most likely left.
            how: How = ("closed" if connection.closing is not None
                        else "client_closed" if connection.end_of_input else "stopped")
            connection.conclude(now, how)
        self._heap.clear()
        while self._waiting:
            os.close(self._waiting.popleft()[0])
        while self._parked:
            os.close(self._parked.popitem(last=False)[0])

    def _want_idle(self) -> None:
        """Take idle time while the planner plans each connection's course, and the server is open."""
        want = self._idle is not None and self._planner.plans_each and not self._closed
        if want != self._idling and self._idle is not None:
            (self._idle.add_idle if want else self._idle.remove_idle)(self._plan_ahead)
            self._idling = want

    def _plan_ahead(self, until: float, busy: Callable[[], bool]) -> None:
        """Idle work: plan the courses of the next connections (see AHEAD_LEAST)."""
        planner, accepted = self._planner, self._record.accepted
        most = min(AHEAD_MOST, max(AHEAD_LEAST, 2 * accepted))
        if planner.planned_ahead < most and not busy():
            planner.plan_ahead(accepted + 1, most, until, time.monotonic, busy)

    def _accept(self) -> None:
        if not self._accepting or not self.gate.listening:
            return  # a serial server that took a connection since this call was queued, or is down
        # socket._accept: the descriptor alone, without a socket object around it.
        accept = self.gate.sock._accept  # type: ignore[attr-defined]
        until = self._clock() + ACCEPT_SLICE
        while True:
            try:
                fd, peer = accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:  # the client gave up before we got to it
                continue
            except OSError as error:
                accept_failed(error, self._loop, stop=self._stop_accepting, resume=self.start,
                              failed=self._failed)
                break
            if self.gate.is_filler(peer):  # what held handshakes back, not a client
                os.close(fd)
                continue
            self._adopt_accepted(fd, peer)
            if self._serial:
                self._stop_accepting()  # the others wait in the backlog until this one ends
                break
            if self._clock() >= until:
                break  # the rest of the backlog is still readable: the loop comes back
        self.run_due()  # send what has come due, the new connections' first writes included

    def _adopt_accepted(self, fd: int, peer: tuple[str, int]) -> None:
        if not INHERITS_NODELAY:  # pragma: no cover (Linux inherits it)
            view = socket.socket(fileno=fd)
            view.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            view.detach()
        self.adopt(fd, peer)

    def _keep_backlog(self, sock: socket.socket) -> None:
        """The listener is about to close: take its waiting clients out of the backlog, where
        the close would reset them (they have connected: open connections go on)."""
        accept = sock._accept  # type: ignore[attr-defined]
        while True:
            try:
                fd, peer = accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # that client gave up already
                continue
            except OSError:
                return  # what is left is reset with the socket, as it was before
            if self.gate.is_filler(peer):
                os.close(fd)
            else:
                self._waiting.append((fd, peer))

    def adopt(self, fd: int, peer: tuple[str, int]) -> PoemConnection:
        """Serve a connected socket on its timeline from now on; ``run_due`` makes its first write."""
        os.set_blocking(fd, False)
        now = self._clock()
        record = self._record
        index = record.next_index()
        planner = self._planner
        timeline, offsets = planner.course(index)
        delay = planner.conditions.accept_delay
        # One string for every connection from the same host, and a start that is the
        # accept itself when nothing delays it: at ten thousand, each is a megabyte.
        conn = PoemConnection(self, fd, sys.intern(str(peer[0])), int(peer[1]), index, now,
                              now + delay if delay else now, timeline, offsets, planner.conditions)
        self.live.add(conn)
        self.serving += 1
        record.conn_accepted(now, conn.peer_port, index, timeline.fault)
        self._watcher.watch(fd, conn)
        if timeline.fault != "blackhole":  # a blackhole sends nothing and never closes
            conn.due = conn.start + offsets[0]
            heapq.heappush(self._heap, (conn.due, index, conn))
        return conn

    def change(self, conditions: Conditions, generation: int) -> None:
        """Serve with ``conditions`` from now on: new connections, and the rest of every open
        one's course, planned anew from where it stands (``conditions.replan``), its pauses
        and slices drawn from the streams of this ``generation`` of changes."""
        plan = self._record.plan
        self._planner = Planner(plan.name, plan.chunks, conditions, plan.seed)
        self._want_idle()
        now = self._clock()
        for conn in self.live:
            if conn.closing is not None:
                continue  # closed by the server already
            fault = fault_of(conditions, plan.seed, plan.name, conn.index)
            if conn.silent or conn.timeline.fault == "blackhole":
                if fault in ("stall", "blackhole"):
                    continue  # silent still
                # The silence is over, as a hung server comes back: the rest of its poem goes
                # from where the stall cut it (a blackhole's from its start), as the new
                # conditions have it; its bytes are known, so none is lost.
                conn.silent = False
            timeline = replan(plan.chunks, conn.planned, conn.next, conn.conditions, conditions,
                              fault=fault, streams=Streams(plan.seed, plan.name, conn.index, generation),
                              now=now - conn.start, accepted=conn.accepted - conn.start)
            committed = conn.sent + (len(conn.pending) if conn.pending is not None else 0)
            if conn.timeline.fault == "corrupt" and committed > conn.conditions.fault_after:
                conn.corrupted = True  # the bytes it was sent stay corrupted, whatever comes next
            conn.timeline, conn.offsets, conn.conditions = timeline, timeline.offsets, conditions
            conn.next = 0
            due = conn.start + timeline.offsets[0]
            # Else it goes back on the heap once its reader catches up; and an entry for the
            # same moment is on the heap already (a second would make the write twice).
            if conn.pending is None and due != conn.due:
                conn.due = due
                heapq.heappush(self._heap, (due, conn.index, conn))
        self.run_due()

    def open_connections(self) -> list[tuple[int, int, int, float]]:
        """Each open connection's index, peer port, bytes sent and accept time (loop clock)."""
        return sorted((conn.index, conn.peer_port, conn.sent, conn.accepted) for conn in self.live
                      if conn.closing is None)

    def reset_open(self) -> int:
        """Reset every connection still open (a serial server's waiting clients too); how
        many there were."""
        now = self._clock()
        count = 0
        for conn in list(self.live):
            if conn.closing is None:
                conn.conclude(now, "reset")
                count += 1
        while self._waiting:
            fd = self._waiting.popleft()[0]
            _reset_at_close(fd)
            os.close(fd)
            count += 1
        return count

    def wake(self, when: float) -> None:
        """Make sure run_due runs at ``when`` (an entry armed for later goes stale)."""
        if when < self._armed_for:
            self._armed_for = when
            self._timers.call_at(when, functools.partial(self._fire, when))

    def _fire(self, when: float) -> None:
        if when == self._armed_for:  # else stale: an earlier entry was armed since
            self._armed_for = math.inf
            self.run_due()

    def run_due(self) -> None:
        """Make every write that is due, and end every connection whose time has come."""
        heap, clock, write = self._heap, self._clock, os.write
        record = self._record
        count_late = record.lateness.append
        detail = record.detail
        now = clock()
        until = now + RUN_SLICE
        while heap and heap[0][0] <= now < until:
            due, _, conn = heapq.heappop(heap)
            if conn.fd < 0 or conn.pending is not None or due != conn.due:
                # Gone, held for its reader (it comes back when writable), or planned anew
                # since this entry was pushed (its new deadline has an entry of its own).
                now = clock()
                continue
            i = conn.next
            timeline = conn.timeline
            if i == len(timeline.pieces):
                conn.end(now)
                now = clock()
                continue
            held = conn.held_since is not None and conn.held_since <= due
            chunk = timeline.chunks[i]
            piece = timeline.pieces[i]
            if conn.first_byte is None:  # (a course planned anew starts again at its write 0)
                conn.first_byte = now
            if chunk >= 0:  # a write that begins a chunk: the chunk is sent now
                if detail:
                    record.chunk_sent(now, conn.peer_port, chunk, len(piece), due, held)
                elif not held:
                    count_late(now - due)
            try:
                sent = write(conn.fd, piece)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                conn.lost(error, now)
                now = clock()
                continue
            conn.sent += sent
            conn.next = i = i + 1
            if sent < len(piece):
                conn.hold(memoryview(piece)[sent:], now)
            else:
                conn.due = after = conn.start + conn.offsets[i]
                if conn.held_since is not None and after > now:
                    conn.held_since = None  # caught up with the schedule
                heapq.heappush(heap, (after, conn.index, conn))
            now = clock()
        if heap:
            self.wake(heap[0][0])

    def resume(self, conn: PoemConnection) -> None:
        """A held connection's reader caught up: its next deadline goes back on the heap."""
        conn.due = when = conn.start + conn.offsets[conn.next]
        heapq.heappush(self._heap, (when, conn.index, conn))
        self.run_due() if when <= self._clock() else self.wake(when)

    def wait_for_close(self, conn: PoemConnection) -> None:
        """Let ``conn`` wait CLOSE_GRACE at most for its client to close."""
        assert conn.closing is not None
        self._closing[conn.index] = conn
        if not self._sweep_armed:
            self._sweep_armed = True
            self._timers.call_at(conn.closing + CLOSE_GRACE, self._sweep)

    def _sweep(self) -> None:
        """Account for the connections whose clients did not close within CLOSE_GRACE."""
        self._sweep_armed = False
        closing, now = self._closing, self._clock()
        while closing:
            conn = next(iter(closing.values()))
            assert conn.closing is not None
            if conn.closing + CLOSE_GRACE > now:
                self._sweep_armed = True
                self._timers.call_at(conn.closing + CLOSE_GRACE, self._sweep)
                return
            conn.conclude(now, "closed")  # takes it out of `closing`

    def park(self, fd: int, now: float) -> None:
        """Keep the socket of a silent connection that was accounted for open, unanswered."""
        parked = self._parked
        parked[fd] = now
        if len(parked) > PARK_MOST:
            os.close(parked.popitem(last=False)[0])
        if not self._unpark_armed:
            self._unpark_armed = True
            self._timers.call_at(now + PARK_GRACE, self._unpark)

    def _unpark(self) -> None:
        """Close the parked sockets kept PARK_GRACE."""
        self._unpark_armed = False
        parked, now = self._parked, self._clock()
        while parked:
            fd, since = next(iter(parked.items()))
            if since + PARK_GRACE > now:
                self._unpark_armed = True
                self._timers.call_at(since + PARK_GRACE, self._unpark)
                return
            del parked[fd]
            os.close(fd)

    def released(self) -> None:
        """A connection no longer holds the server: a serial one takes its next client."""
        self.serving -= 1
        if self._serial and not self.serving:
            self._loop.call_soon(self._next_client)

    def _next_client(self) -> None:
        """A serial server's turn for its next client: one kept from a closed backlog first,
        else whoever waits in the backlog (when the server listens)."""
        if self._closed or self.serving:
            return
        if self._waiting:
            self._adopt_accepted(*self._waiting.popleft())
            self.run_due()
            return
        self.start()
        self._accept()


def _reset_at_close(fd: int) -> None:
    """Make closing socket ``fd`` send RST rather than FIN (SO_LINGER on, timeout 0)."""
    view = socket.socket(fileno=fd)
    try:
        view.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    finally:
        view.detach()


def _socket_error(fd: int) -> OSError | None:
    """The error pending on socket ``fd`` (SO_ERROR, which reading clears), if any."""
    view = socket.socket(fileno=fd)
    try:
        code = view.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    finally:
        view.detach()
    return OSError(code, os.strerror(code)) if code else None


class PoemConnection:
    """One connection of a poem server: its descriptor, its timeline and where it is."""

    __slots__ = ("accepted", "closing", "conditions", "corrupted", "due", "end_of_input", "fd", "first_byte",
                 "held_since", "host", "index", "next", "offsets", "peer_port", "pending", "sent", "server",
                 "silent", "start", "timeline")

    def __init__(self, server: PoemServer, fd: int, host: str, peer_port: int, index: int, accepted: float,
                 start: float, timeline: Timeline, offsets: Sequence[float], conditions: Conditions) -> None:
        self.server = server
        self.fd = fd
        self.host = host  # the client's address, one string per host (sys.intern)
        self.peer_port = peer_port
        self.index = index
        self.accepted = accepted
        self.start = start  # accept + accept_delay: the timeline counts from here
        # Its course: the writes and the ending of ``timeline`` (which other connections may
        # share) at ``offsets``, its own with jitter (see ``Planner.course``).
        self.timeline = timeline
        self.offsets = offsets
        self.conditions = conditions  # those the timeline was planned under
        self.due = math.inf  # the deadline of its entry on the server's heap
        self.next = 0  # the next write, or, once all are made, the ending
        self.sent = 0
        self.first_byte: float | None = None  # when the first write went
        self.pending: memoryview | None = None  # the unsent rest of a write: the reader is behind
        self.held_since: float | None = None  # when the reader fell behind
        self.end_of_input = False  # the client shut down its sending side
        self.closing: float | None = None  # when the server closed its side (FIN sent)
        self.silent = False  # a stall struck: it sends nothing, ever again
        self.corrupted = False  # it was sent corrupted bytes before its course was planned anew

    def __repr__(self) -> str:
        return f"<PoemConnection #{self.index} peer_port={self.peer_port} sent={self.sent}B next={self.next}>"

    @property
    def planned(self) -> Timeline:
        """Its course as one Timeline."""
        return self.timeline.at(self.offsets)

    @property
    def has_more(self) -> bool:
        """Are bytes still to be sent? (A stall or a blackhole sends none, ever again.)"""
        timeline = self.timeline
        return self.next < len(timeline.pieces) and timeline.fault != "blackhole" and self.closing is None

    def ready(self, events: int) -> None:
        """The watcher's call: the socket is readable, writable, or failed."""
        if self.pending is not None and events & WRITE:
            self._writable()
        if self.fd >= 0 and events & _GONE:
            self._readable()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self.lost(error, self.server._clock())
            return
        if data:
            return  # the client said something: a poem server does not listen
        now = self.server._clock()
        if self.closing is not None:  # the client closed after the server: the usual end
            self.conclude(now, "closed")
            return
        if not self.has_more:
            self.lost(None, now)
            return
        if self.end_of_input:
            # Past its EOF a read says EOF again and never the error, while epoll, which
            # cannot be told not to, reports the hang-up or error that came since: the
            # reset a closed client's kernel answers a write with. That is the end.
            self.lost(_socket_error(self.fd), now)
            return
        # A half-close: the rest of the poem still goes (see the module's docstring).
        self.end_of_input = True
        self.server._record.peer_shutdown(now, self.peer_port, self.sent)
        self.server._watcher.change(self.fd, WRITE if self.pending is not None else 0)

    def hold(self, rest: memoryview, now: float) -> None:
        self.pending = rest
        self.held_since = now
        self.server._watcher.change(self.fd, WRITE if self.end_of_input else READ | WRITE)

    def _writable(self) -> None:
        assert self.pending is not None
        try:
            sent = os.write(self.fd, self.pending)
        except BlockingIOError:
            return
        except OSError as error:
            self.lost(error, self.server._clock())
            return
        self.sent += sent
        self.pending = self.pending[sent:] if sent < len(self.pending) else None
        if self.pending is None:
            self.server._watcher.change(self.fd, 0 if self.end_of_input else READ)
            self.server.resume(self)

    def end(self, now: float) -> None:
        """The timeline's ending has come: close, or strike its fault."""
        fault = self.timeline.fault
        if fault == "corrupt":  # its corrupted bytes went with its writes: it ends as any other
            fault = None
        record = self.server._record
        if fault is not None:
            record.fault_struck(now, self.peer_port, fault, self.sent)
        if fault is None or fault == "close":
            record.conn_closed(now, self.peer_port, self.sent)
            self._close(now)
        elif fault == "reset":
            self.conclude(now, "reset")
        else:  # stall: keep the connection open and send nothing more, until the client leaves
            self.silent = True
            if self.end_of_input:  # its client has shut down its side already: it stays silent
                self.lost(None, now)

    def _close(self, now: float) -> None:
        """Close now if the client's kernel has acknowledged every byte; else send FIN and wait
        for the client to close too (or CLOSE_GRACE), the server free."""
        unacknowledged = _unacknowledged(self.fd)
        if not unacknowledged:
            # A client that reads on time: its account is complete already, and a close now
            # spares the server a wake-up, a read and two epoll changes at each of its ends.
            self.conclude(now, "closed", unacknowledged)
            return
        self.closing = now
        self.server.released()
        try:
            view = socket.socket(fileno=self.fd)  # a view: shutdown() is a socket's method
            try:
                view.shutdown(socket.SHUT_WR)
            finally:
                view.detach()
        except OSError as error:  # the client has gone already
            self.conclude(now, "client_reset" if isinstance(error, ConnectionResetError) else "closed")
            return
        if self.end_of_input:  # the client closed its side already: nothing to wait for
            self.conclude(now, "closed")
            return
        self.server._watcher.change(self.fd, READ)
        self.server.wait_for_close(self)

    def lost(self, error: OSError | None, now: float) -> None:
        """The client left (EOF: ``error`` None, or a reset), or the socket failed. A silent
        connection's EOF keeps its socket open (see PARK_GRACE)."""
        if self.closing is not None:  # after the server's FIN: a reset there is still its end
            self.conclude(now, "closed")
            return
        self.server._record.conn_lost(now, self.peer_port, self.sent, error)
        if error is None or (self.end_of_input and isinstance(error, ConnectionResetError | BrokenPipeError)):
            # (After its EOF, a reset is its kernel's answer to a write: it had closed for good.)
            how: How = "client_closed"
        elif isinstance(error, ConnectionResetError | BrokenPipeError):
            how = "client_reset"
        else:
            how = "error"
        # Silent, or with only a stall to come: what it sends next is silence.
        silent = self.silent or (self.timeline.fault in ("blackhole", "stall") and not self.has_more)
        self.conclude(now, how, keep_open=error is None and silent)

    def conclude(self, now: float, how: How, unacknowledged: int | None = None, *,
                 keep_open: bool = False) -> None:
        """The connection is over: account for it, and close the descriptor now (a heap entry
        left finds it gone), or park it (``keep_open``). A server's reset goes out here, as
        the socket closes. ``unacknowledged``: the send queue's count, if the caller has
        just read it."""
        if self.fd < 0:
            return
        server = self.server
        if unacknowledged is None:
            unacknowledged = _unacknowledged(self.fd)
        acked = self.sent - max(0, unacknowledged - (self.closing is not None))
        if how == "reset":
            _reset_at_close(self.fd)
        ended = now if self.closing is None or how != "closed" else self.closing
        fault = "corrupt" if self.corrupted and self.timeline.fault is None else self.timeline.fault
        server._record.conn_ended(now, (self.host, self.peer_port), self.index, self.accepted,
                                  self.first_byte, ended, self.sent, acked, how, fault)
        server._closing.pop(self.index, None)
        self.pending = None
        if keep_open:
            server._watcher.unwatch(self.fd)
            server.park(self.fd, now)
        else:
            server._watcher.forget(self.fd)
            os.close(self.fd)
        self.fd = -1
        server.live.discard(self)
        if self.closing is None:
            server.released()


def _unacknowledged(fd: int) -> int:
    """Bytes (and a FIN) sent on ``fd`` that the peer's kernel has not acknowledged yet."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0
