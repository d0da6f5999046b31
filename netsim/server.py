"""The server engine: slow poetry servers on one asyncio event loop.

Each connection is an ``asyncio.Protocol`` driven by ``loop.call_at`` on absolute
deadlines: chunk *i* is due at ``accepted + i * delay`` and the connection closes at
``accepted + len(chunks) * delay``. A late wake-up therefore never delays the chunks
after it, and every emission records how late it was against its schedule.

A ``serial`` server accepts one connection at a time: the others wait in the listen
backlog, as with the classic single-threaded server, and the wait counts in their
time. A ``concurrent`` server serves every connection at once.

Writes respect backpressure: a chunk is fed to the transport in pieces while the
transport is below its high-water mark, so a client that stops reading costs the
server a bounded buffer, never an unbounded one.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netsim._errors import PortBusyError, ServerStartError
from netsim.scenario import Server

Event = dict[str, Any]
Emit = Callable[[Event], None]

# Connections that may wait to be accepted. Serial servers queue their clients here,
# so it must hold every client a scenario opens at once (the kernel caps it at somaxconn).
BACKLOG = 4096

# Largest piece handed to the transport at once, so buffering stays bounded whatever
# the chunk size, while keeping writes few for ordinary poems.
WRITE_PIECE = 64 * 1024  # 64 KiB


@dataclass(frozen=True)
class ServerPlan:
    """What one server does, in wall-clock seconds (the time scale already applied)."""

    name: str
    host: str
    port: int  # 0: any free port
    chunks: tuple[bytes, ...]
    delay: float  # seconds after every chunk, the last included
    serial: bool

    @classmethod
    def from_server(cls, server: Server, *, time_scale: float = 1.0, port: int | None = None) -> ServerPlan:
        return cls(
            name=server.name,
            host=server.host,
            port=server.port if port is None else port,
            chunks=tuple(server.chunks()),
            delay=server.delay * time_scale,
            serial=server.mode == "serial",
        )


@dataclass(frozen=True)
class Listener:
    """A bound, listening socket of one server."""

    plan: ServerPlan
    sock: socket.socket

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return (str(host), int(port))


def open_listeners(plans: Sequence[ServerPlan]) -> list[Listener]:
    """Bind and listen on every server's address; close them all if one fails.

    Raises PortBusyError for a fixed port in use, ServerStartError for other failures.
    """
    listeners: list[Listener] = []
    try:
        for plan in plans:
            listeners.append(Listener(plan, _listen(plan)))
    except BaseException:
        for listener in listeners:
            listener.sock.close()
        raise
    return listeners


def _listen(plan: ServerPlan) -> socket.socket:
    host = "127.0.0.1" if plan.host == "localhost" else plan.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets the next run rebind a fixed port while the last run's connections sit in
        # TIME_WAIT; Linux still refuses it while another socket listens there.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, plan.port))
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


class PoemProtocol(asyncio.Protocol):
    """Serves one connection: the chunks on their schedule, then a close."""

    def __init__(self, plan: ServerPlan, emit: Emit, t0: float, done: asyncio.Future[None] | None = None):
        self._plan = plan
        self._emit = emit
        self._t0 = t0
        self._done = done
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._start = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._queue: collections.deque[tuple[int, memoryview]] = collections.deque()
        self._closing = False
        self._sent = 0
        self._peer_port = 0

    def __repr__(self) -> str:
        return (f"<PoemProtocol {self._plan.name} peer_port={self._peer_port} sent={self._sent}B "
                f"queued={len(self._queue)} paused={self._paused}>")

    @property
    def buffered_bytes(self) -> int:
        """Bytes copied into the transport's buffer and not yet taken by the kernel.

        What waits in the queue costs nothing: it is a view of the plan's own chunks.
        """
        return self._transport.get_write_buffer_size() if self._transport else 0

    def _event(self, event: str, now: float, **fields: Any) -> None:
        self._emit({"event": event, "t": now - self._t0, "server": self._plan.name,
                    "peer_port": self._peer_port, **fields})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer_port = int(peer[1]) if peer else 0
        self._start = self._loop.time()
        self._event("conn_accepted", self._start)
        self._due(0)

    def _due(self, index: int) -> None:
        """Chunk ``index`` is due now: send it, and set the timer for what follows."""
        now = self._loop.time()
        scheduled = self._start + index * self._plan.delay
        chunk = self._plan.chunks[index]
        if self._queue or self._paused:
            # The reader is behind: the chunk waits its turn and is logged when it goes.
            self._queue.append((index, memoryview(chunk)))
        else:
            self._event("chunk_sent", now, index=index, bytes=len(chunk),
                        scheduled=scheduled - self._t0, lateness=now - scheduled)
            self._queue.append((-1, memoryview(chunk)))
            self._pump()
        following = index + 1
        deadline = self._start + following * self._plan.delay
        if following < len(self._plan.chunks):
            self._timer = self._loop.call_at(deadline, self._due, following)
        else:
            self._timer = self._loop.call_at(deadline, self._finish)

    def _pump(self) -> None:
        """Feed queued data while the transport takes it."""
        assert self._transport is not None
        while self._queue and not self._paused:
            index, view = self._queue.popleft()
            piece, rest = view[:WRITE_PIECE], view[WRITE_PIECE:]
            if index >= 0:
                now = self._loop.time()
                scheduled = self._start + index * self._plan.delay
                self._event("chunk_sent", now, index=index, bytes=len(view),
                            scheduled=scheduled - self._t0, lateness=now - scheduled, held=True)
            if len(rest):
                self._queue.appendleft((-1, rest))
            self._sent += len(piece)
            self._transport.write(piece)
        if self._closing and not self._queue:
            self._close()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._pump()

    def _finish(self) -> None:
        self._timer = None
        self._closing = True
        if not self._queue:
            self._close()

    def _close(self) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._event("conn_closed", self._loop.time(), bytes=self._sent)
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closing:
            reason = f"{type(exc).__name__}: {exc}" if exc else "the client closed the connection"
            self._event("conn_lost", self._loop.time(), bytes=self._sent, reason=reason)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)


async def serve(listeners: Sequence[Listener], emit: Emit, t0: float) -> None:
    """Serve every listener until cancelled; closes the listening sockets on the way out."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for listener in listeners:
            plan = listener.plan
            emit({"event": "server_listening", "t": time.monotonic() - t0, "server": plan.name,
                  "host": listener.address[0], "port": listener.address[1],
                  "mode": "serial" if plan.serial else "concurrent"})
            if plan.serial:
                tasks.append(asyncio.create_task(_serve_serially(listener, emit, t0)))
            else:
                servers.append(await loop.create_server(
                    lambda plan=plan: PoemProtocol(plan, emit, t0),  # type: ignore[misc]
                    sock=listener.sock, backlog=BACKLOG))
        await asyncio.Event().wait()  # until cancelled
    finally:
        for task in tasks:
            task.cancel()
        for server in servers:
            server.close()
        for listener in listeners:
            listener.sock.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _serve_serially(listener: Listener, emit: Emit, t0: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        conn, _ = await loop.sock_accept(listener.sock)
        done: asyncio.Future[None] = loop.create_future()
        protocol = PoemProtocol(listener.plan, emit, t0, done)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)  # noqa: B023 (called at once)
        try:
            await done
        except asyncio.CancelledError:
            transport.abort()
            raise
