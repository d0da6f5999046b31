"""The server engine: slow poetry servers and conditioned proxies on one asyncio loop.

Every connection's bytes go through a ``Shaper``, which carries out a
``conditions.StreamSchedule`` on a transport: each piece is written on its absolute
deadline, run by the process's one ``TimerQueue``, so a late wake-up never delays the
pieces after it, and every chunk's emission records how late it was against its
schedule. (A plain concurrent poem server skips the transports: see ``_bulk.py``.)

A poem server feeds its whole poem to one shaper when a connection is accepted. A proxy
(``upstream:``) connects to its upstream and feeds each direction's bytes to a shaper as
they arrive: conditioned in the directions the scenario names, passed through (still
with backpressure) in the others.

A ``serial`` server accepts one connection at a time: the others wait in the listen
backlog, as with the classic single-threaded server, and the wait counts in their
time. A ``concurrent`` server serves every connection at once. A server whose fault is
``refuse`` binds its port but never listens, so every connect is refused.

Writes respect backpressure: a shaper hands the transport at most ``WRITE_PIECE`` at a
time and only while it is below its high-water mark, and a proxy stops reading from
one side while the other side's shaper holds more than ``READ_PAUSE``.
"""

from __future__ import annotations

import array
import asyncio
import collections
import errno
import heapq
import itertools
import math
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netsim._errors import PortBusyError, ServerStartError
from netsim.conditions import Conditions, Emission, StreamSchedule, cut, fault_of, pause_stream

if TYPE_CHECKING:  # a server process needs no pydantic: it is started without it at scale
    from netsim.scenario import Server

Event = dict[str, Any]
Emit = Callable[[Event], None]
ChunkSent = Callable[[Emission, float, bool], None]  # the emission, when it went, held?

# Connections that may wait to be accepted. Serial servers queue their clients here,
# so it must hold every client a scenario opens at once (the kernel caps it at somaxconn).
BACKLOG = 4096

# Largest piece handed to the transport at once, so buffering stays bounded whatever
# the chunk size, while keeping writes few for ordinary poems.
WRITE_PIECE = 64 * 1024  # 64 KiB

# A proxy stops reading from one side while the other side's shaper holds more than
# this, and reads again once it is down to a quarter.
READ_PAUSE = 256 * 1024  # 256 KiB

# The longest a TimerQueue runs due callbacks before it lets the loop poll for I/O.
RUN_SLICE = 0.002  # seconds

# SO_LINGER on, timeout 0: close() sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class ServerPlan:
    """What one server does, in wall-clock seconds (the time scale already applied)."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    chunks: tuple[bytes, ...] = ()  # the poem, cut; empty for a proxy
    conditions: Conditions = field(default_factory=Conditions)
    serial: bool = False
    seed: int = 0
    upstream: str | None = None  # HOST:PORT, or the name of another server of the run
    direction: str = "downstream"  # which way a proxy applies its conditions
    chunking: str | int = "line"  # how a proxy cuts what it forwards

    @classmethod
    def from_server(cls, server: Server, *, time_scale: float = 1.0, port: int | None = None,
                    seed: int = 0) -> ServerPlan:
        return cls(
            name=server.name,
            host=server.host,
            port=server.port if port is None else port,
            chunks=() if server.is_proxy else tuple(server.chunks()),
            conditions=Conditions.of(server).scaled(time_scale),
            serial=server.mode == "serial",
            seed=seed,
            upstream=server.upstream,
            direction=server.direction or "downstream",
            chunking=server.chunk if isinstance(server.chunk, str) else server.chunk.bytes,
        )

    @property
    def refuses(self) -> bool:
        return self.conditions.fault == "refuse"


@dataclass(frozen=True)
class Listener:
    """A bound socket of one server: listening, or, for a server that refuses, not."""

    plan: ServerPlan
    sock: socket.socket

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return (str(host), int(port))


def open_listeners(plans: Sequence[ServerPlan]) -> list[Listener]:
    """Bind (and, unless it refuses, listen on) every server's address; all or none.

    Raises PortBusyError for a fixed port in use, ServerStartError for other failures.
    """
    listeners: list[Listener] = []
    try:
        for plan in plans:
            listeners.append(Listener(plan, _bind(plan)))
    except BaseException:
        for listener in listeners:
            listener.sock.close()
        raise
    return listeners


def _bind(plan: ServerPlan) -> socket.socket:
    host = "127.0.0.1" if plan.host == "localhost" else plan.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets the next run rebind a fixed port while the last run's connections sit in
        # TIME_WAIT; Linux still refuses it while another socket listens there.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, plan.port))
        # A chunk due now goes now, not after the previous one's ACK. Set here, Linux
        # hands it to every accepted socket (the bulk path counts on that).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not plan.refuses:  # bound but not listening: the kernel refuses every connect
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortBusyError(
                f"server {plan.name!r}: port {plan.port} on {host} is already in use; "
                f"stop what holds it (ss -ltnp 'sport = :{plan.port}'), choose another port, "
                f"or use port 0 for any free one"
            ) from None
        if error.errno == errno.EACCES:
            raise ServerStartError(
                f"server {plan.name!r}: not allowed to bind port {plan.port} on {host} "
                f"(ports below 1024 need privileges)"
            ) from None
        raise ServerStartError(f"server {plan.name!r}: cannot listen on {host}:{plan.port}: "
                               f"{error.strerror or error}") from None
    return sock


class TimerQueue:
    """One loop timer for every deadline of the process's shapers.

    asyncio makes a handle for each ``call_at`` and passes it through its ready queue;
    at tens of thousands of deadlines a second that bookkeeping is most of the server's
    work. Here a deadline is a heap entry, the loop holds a single timer set for the
    earliest, and each wake-up runs everything that has come due, in deadline order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties go first come, first served
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._running = False

    def __repr__(self) -> str:
        return f"<TimerQueue pending={len(self._heap)} next={self._heap[0][0] if self._heap else None}>"

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
        # Give the loop back now and then, even when behind: accepts and reads wait on it,
        # and a connection accepted late is late for its whole schedule.
        until = clock() + RUN_SLICE
        try:
            while heap and heap[0][0] <= (now := clock()) and now < until:
                heapq.heappop(heap)[2]()
        finally:
            self._running = False
            if heap:
                self._arm(heap[0][0])


class Shaper:
    """Writes one direction's bytes to ``sink`` on the deadlines of a StreamSchedule."""

    def __init__(self, schedule: StreamSchedule, sink: asyncio.Transport, *, chunking: str | int,
                 timers: TimerQueue, on_chunk: ChunkSent | None, on_fault: Callable[[], None],
                 on_done: Callable[[], None], on_drain: Callable[[], None] | None = None) -> None:
        self.schedule = schedule
        self._timers = timers
        self._sink = sink
        self._chunking = chunking
        self._on_chunk = on_chunk
        self._on_fault = on_fault
        self._on_done = on_done
        self._on_drain = on_drain
        self._loop = asyncio.get_running_loop()
        self._data: collections.deque[bytes | memoryview] = collections.deque()  # what waits to go
        self._partial: memoryview | None = None  # the rest of a piece the sink could not take yet
        self.buffered = 0  # bytes waiting here, not yet handed to the sink
        self._waiting = False  # a step is queued on the timers
        self._paused = False
        self._held_since: float | None = None
        self._input_ended: float | None = None
        self.finished = False
        self.sent = 0  # bytes handed to the sink

    def __repr__(self) -> str:
        return (f"<Shaper buffered={self.buffered}B pending={len(self.schedule.emissions)} "
                f"paused={self._paused} finished={self.finished}>")

    def feed(self, data: bytes | memoryview) -> None:
        """Bytes to send, available now, cut into chunks."""
        now = self._loop.time()
        for piece in cut(bytes(data), self._chunking):
            self.feed_chunk(piece, arrival=now)

    def feed_chunk(self, chunk: bytes, *, arrival: float) -> None:
        """One chunk, as it is: a pause follows it."""
        taken = self.schedule.add(len(chunk), arrival)
        if taken:
            self._data.append(chunk if taken == len(chunk) else memoryview(chunk)[:taken])
            self.buffered += taken
        self._arm()

    def end_input(self) -> None:
        """No more bytes will come: close once everything is sent and the pauses are over."""
        if self._input_ended is None:
            self._input_ended = self._loop.time()
            self._arm()

    def pause(self) -> None:
        self._paused = True
        self._held_since = self._loop.time()

    def resume(self) -> None:
        self._paused = False
        self._step()

    def cancel(self) -> None:
        self.finished = True  # a step still queued on the timers will find this and stop

    def _arm(self) -> None:
        if not self._waiting and not self.finished:
            self._step()

    def _later(self, when: float) -> None:
        self._waiting = True
        self._timers.call_at(when, self._step)

    def _step(self) -> None:
        self._waiting = False
        if self.finished:
            return
        if self._sink.is_closing():  # the client went away: connection_lost follows
            self.finished = True
            return
        now = self._loop.time()
        emissions = self.schedule.emissions
        while not self._paused and self._partial is None and emissions and emissions[0].due <= now:
            emission = emissions.popleft()
            # Held: it came due while a slow reader made the transport push back. Its
            # lateness is the reader's doing, not the server's, and is not counted as such.
            if emission.first and self._on_chunk is not None:
                held = self._held_since is not None and self._held_since <= emission.due
                self._on_chunk(emission, now, held)
            self._write(self._take(emission.size))
        if self._partial is not None and not self._paused:
            self._write(self._partial)
        if self._paused or self._partial is not None:
            return  # resume() steps again
        self._held_since = None
        if emissions:
            self._later(emissions[0].due)
        elif self.schedule.fault_at is not None:
            if now >= self.schedule.fault_at:
                self.finished = True
                self._on_fault()
            else:
                self._later(self.schedule.fault_at)
        elif self._input_ended is not None:
            closing = self.schedule.close_time(self._input_ended)
            if now >= closing:
                self.finished = True
                self._on_done()
            else:
                self._later(closing)

    def _take(self, size: int) -> bytes | memoryview:
        head = self._data[0]
        if len(head) <= size:  # the common case: one chunk, one write
            self._data.popleft()
            piece = head
        else:
            view = memoryview(head)
            piece, self._data[0] = view[:size], view[size:]
        self.buffered -= len(piece)
        if self._on_drain is not None and self.buffered < READ_PAUSE // 4:
            self._on_drain()
        return piece

    def _write(self, data: bytes | memoryview) -> None:
        self._partial = None
        if len(data) <= WRITE_PIECE:  # the common case: a line, a small chunk
            self.sent += len(data)
            self._sink.write(data)
            return
        # A large piece goes in slices, and stops as soon as the transport pushes back.
        view = memoryview(data)
        for start in range(0, len(view), WRITE_PIECE):
            if self._paused:
                self._partial = view[start:]
                return
            piece = view[start:start + WRITE_PIECE]
            self.sent += len(piece)
            self._sink.write(piece)


class _Connection(asyncio.Protocol):
    """What poem and proxy connections share: logging, counting, faults, the end."""

    def __init__(self, server: _ServerState) -> None:
        self._server = server
        self._plan = server.plan
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._peer_port = 0
        self._fault: str | None = None
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self.index = 0

    def _chunk_sent(self, emission: Emission, now: float, held: bool, **fields: Any) -> None:
        self._server.chunk_sent(emission, now, held, self._peer_port, **fields)

    def _log(self, event: str, now: float, **fields: Any) -> None:
        self._server.log(event, now, self._peer_port, **fields)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer_port = int(peer[1]) if peer else 0
        self.index = self._server.next_index()
        self._server.live.add(self)
        self._fault = fault_of(self._plan.conditions, self._plan.seed, self._plan.name, self.index)
        now = self._loop.time()
        self._log("conn_accepted", now, index=self.index, **({"fault": self._fault} if self._fault else {}))
        if self._fault == "blackhole":
            # Accept, never send, never close. It still reads (and drops what comes), or
            # it would never notice the client leave, and a serial server would wait on
            # this connection for ever.
            return
        self.start(now)

    def start(self, accepted: float) -> None:
        raise NotImplementedError

    def _schedule(self, start: float, direction: str) -> StreamSchedule:
        plan = self._plan
        # A Random costs 2.5 KB: only connections with jitter need their own.
        pauses = pause_stream(plan.seed, plan.name, self.index, direction) if plan.conditions.jitter else None
        return StreamSchedule(plan.conditions, pauses, start,
                              fault_after=plan.conditions.fault_after if self._fault else None)

    def _strike(self) -> None:
        """The fault's moment has come: reset, close, or go silent (stall)."""
        assert self._fault is not None and self._transport is not None
        now = self._loop.time()
        self._log("fault_struck", now, kind=self._fault, bytes=self.sent)
        if self._fault == "reset":
            self._reset()
        elif self._fault == "close":
            self._close()
        # stall: keep the connection open and send nothing more, until the client leaves

    def _reset(self) -> None:
        assert self._transport is not None
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self._closed = True
        self._transport.abort()

    def _close(self) -> None:
        assert self._transport is not None
        if not self._closed:
            self._closed = True
            self._log("conn_closed", self._loop.time(), bytes=self.sent)
            self._transport.close()

    @property
    def sent(self) -> int:
        return 0

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            reason = f"{type(exc).__name__}: {exc}" if exc else "the client closed the connection"
            self._log("conn_lost", self._loop.time(), bytes=self.sent, reason=reason)
            self._closed = True
        self.stop()
        self._server.live.discard(self)
        if not self._done.done():
            self._done.set_result(None)

    def stop(self) -> None:
        """Cancel whatever is still scheduled."""

    async def wait_closed(self) -> None:
        await self._done


class PoemProtocol(_Connection):
    """Serves one connection: the poem's chunks on their schedule, then a close."""

    def __init__(self, server: _ServerState) -> None:
        super().__init__(server)
        self._shaper: Shaper | None = None

    def __repr__(self) -> str:
        return f"<PoemProtocol {self._plan.name}#{self.index} peer_port={self._peer_port} {self._shaper}>"

    @property
    def buffered_bytes(self) -> int:
        """Bytes copied into the transport's buffer and not yet taken by the kernel.

        What waits in the shaper costs nothing: it is a view of the plan's own chunks.
        """
        return self._transport.get_write_buffer_size() if self._transport else 0

    @property
    def sent(self) -> int:
        return 0 if self._shaper is None else self._shaper.sent

    def start(self, accepted: float) -> None:
        assert self._transport is not None
        schedule = self._schedule(accepted + self._plan.conditions.accept_delay, "downstream")
        self._shaper = Shaper(schedule, self._transport, chunking="all", timers=self._server.timers,
                              on_chunk=self._chunk_sent,
                              on_fault=self._strike, on_done=self._close)
        for chunk in self._plan.chunks:
            self._shaper.feed_chunk(chunk, arrival=0.0)
        self._shaper.end_input()

    def pause_writing(self) -> None:
        if self._shaper is not None:
            self._shaper.pause()

    def resume_writing(self) -> None:
        if self._shaper is not None:
            self._shaper.resume()

    def stop(self) -> None:
        if self._shaper is not None:
            self._shaper.cancel()


class _ServerState:
    """One server of the run: its plan, its connection count, where its events go."""

    def __init__(self, plan: ServerPlan, emit: Emit, t0: float,
                 addresses: dict[str, tuple[str, int]], lateness: array.array[float],
                 detail: bool = True, timers: TimerQueue | None = None) -> None:
        self.plan = plan
        self.timers = timers or TimerQueue(asyncio.get_running_loop())
        self.emit = emit
        self.t0 = t0
        self.addresses = addresses
        self.lateness = lateness  # of every chunk not held back by its reader, in seconds
        self.detail = detail  # send every event, or only what the measurements need
        self._accepted = 0
        # The loop forgets a transport that is not reading (paused by backpressure), and
        # a forgotten transport is collected and closes its socket: hold them here.
        self.live: set[_Connection] = set()
        self._protocol_class: type[_Connection] = PoemProtocol
        if plan.upstream is not None:
            # Imported here, not on the first connection: an import costs milliseconds.
            from netsim._proxy import ProxyProtocol

            self._protocol_class = ProxyProtocol

    def next_index(self) -> int:
        self._accepted += 1
        return self._accepted

    def log(self, event: str, now: float, peer_port: int, **fields: Any) -> None:
        """Send a connection's event (with ``detail`` only), its times on the run's clock."""
        if not self.detail:
            return
        self.emit({"event": event, "t": now - self.t0, "server": self.plan.name,
                   "peer_port": peer_port, **fields})

    def chunk_sent(self, emission: Emission, now: float, held: bool, peer_port: int,
                   **fields: Any) -> None:
        """Count a chunk's lateness (unless a slow reader held it back) and log it."""
        if not held:
            self.lateness.append(now - emission.due)
        if self.detail:
            self.log("chunk_sent", now, peer_port, index=emission.chunk, bytes=emission.size,
                     scheduled=emission.scheduled - self.t0, lateness=now - emission.due,
                     **({"held": True} if held else {}), **fields)

    def protocol(self) -> _Connection:
        return self._protocol_class(self)


async def serve(listeners: Sequence[Listener], emit: Emit, t0: float, *,
                lateness: array.array[float] | None = None, detail: bool = True,
                on_ready: Callable[[], None] | None = None) -> None:
    """Serve every listener until cancelled; closes the sockets on the way out.

    Every chunk's lateness goes into ``lateness``; events go to ``emit``, all of them
    with ``detail``, else only the servers' own (listening) ones. ``on_ready`` is called
    once every listener is being served.
    """
    from netsim._bulk import BulkServer, eligible

    loop = asyncio.get_running_loop()
    timers = TimerQueue(loop)
    if lateness is None:
        lateness = array.array("d")
    addresses = {listener.plan.name: listener.address for listener in listeners}
    servers: list[asyncio.Server] = []
    bulk: list[BulkServer] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for listener in listeners:
            plan = listener.plan
            state = _ServerState(plan, emit, t0, addresses, lateness, detail, timers)
            emit({"event": "server_listening", "t": time.monotonic() - t0, "server": plan.name,
                  "host": listener.address[0], "port": listener.address[1],
                  "mode": "serial" if plan.serial else "concurrent",
                  **({"refusing": True} if plan.refuses else {})})
            if plan.refuses:
                continue
            if eligible(listener):  # nothing but chunks on time: the lean path
                bulk.append(BulkServer(listener, state))
                bulk[-1].start()
            elif plan.serial:
                tasks.append(asyncio.create_task(_serve_serially(listener, state)))
            else:
                servers.append(await loop.create_server(state.protocol, sock=listener.sock,
                                                        backlog=BACKLOG))
        if on_ready is not None:
            on_ready()
        # A serial server's accept loop ends only by failing (out of descriptors, say):
        # that must stop the run with an error, not leave its clients waiting unseen.
        await asyncio.gather(*tasks)
        await asyncio.Event().wait()  # until cancelled
    finally:
        for task in tasks:
            task.cancel()
        for server in servers:
            server.close()
        for plain in bulk:
            plain.close()
        for listener in listeners:
            listener.sock.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _serve_serially(listener: Listener, state: _ServerState) -> None:
    loop = asyncio.get_running_loop()
    while True:
        conn, _ = await loop.sock_accept(listener.sock)
        protocol = state.protocol()
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)  # noqa: B023 (called at once)
        try:
            await protocol.wait_closed()
        except asyncio.CancelledError:
            transport.abort()
            raise
