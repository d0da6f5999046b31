"""The one interface every client model implements, and its instrumentation.

A client model is a function ``run(targets, recorder)``. It opens one connection per
target, reads until the server closes, and tells the recorder what happened, as it
happens:

    conn = recorder.open(target)      # before connecting: the connection's clock starts
    conn.connected(local_port)        # the TCP handshake completed; the client's own port
    conn.received(data)               # every chunk of bytes, as a read returned them
    conn.eof()                        # the server closed cleanly; bytes are checked here
    conn.failed(exc)                  # the connection ended in an error instead (its phase:
                                      # connecting, before connected(), or reading)

The local port is what the servers see as the connection's peer port: the runner
matches the two to put the servers' events and the client's side by side. Any way of
doing I/O can report it (a stdlib socket's ``getsockname()[1]``, a Twisted transport's
``getHost().port``, a trio stream's ``socket.getsockname()[1]``).

A target's ``timeout`` bounds every wait for the next byte, connecting included: a
connection silent for longer ends with ``conn.failed(TimeoutError(...))``.

Every call is timestamped on the monotonic clock the whole run shares, so that the
runner can line client events up with the servers' events. A model never lets one
connection's error stop the others, and never raises for a network error: it
records it and goes on.
"""

from __future__ import annotations

import errno
import heapq
import inspect
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from netsim.events import (
    BytesReceived,
    ClientEvent,
    ConnEstablished,
    ConnFailed,
    ConnStarted,
    EofReceived,
    ErrorKind,
)

EventSink = Callable[[list[ClientEvent]], None]

# How often buffered events travel to the runner: often enough for a live log, rarely
# enough that sending them costs the measured client nothing worth noticing.
FLUSH_INTERVAL = 0.05  # seconds
# How long events may wait for a model that has gone quiet (blocked in a read, waiting
# out a server's pause) before the recorder sends them anyway. Twice the interval: a busy
# model sends its own in time, and the timer then finds nothing to do.
QUIET_FLUSH = 2 * FLUSH_INTERVAL  # seconds
# When the timer finds the batch in the middle of being added to or sent, it tries again
# this much later.
RETRY_FLUSH = 0.01  # seconds

# Read size of every model. Small poems arrive whole; large ones in pieces of this.
RECV_SIZE = 64 * 1024  # 64 KiB


@dataclass(frozen=True)
class Target:
    """One connection a client model must make."""

    conn: int  # 1-based number of the connection within this run
    server: str
    host: str
    port: int
    expected: bytes | None  # what the server sends, to verify what arrived; None: unknown
    # Longest wait for the next byte (connecting included) before the connection ends
    # as a timeout, in seconds; None: wait as long as it takes.
    timeout: float | None = None
    # When to connect, in seconds after the model's run began (a ramp spreads these out).
    start_at: float = 0.0

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True)
class ClientOptions:
    """What a scenario's client entry says beyond the model's name, for a model that takes it."""

    run: Sequence[str] | None = None  # a command: its argv, placeholders not yet filled in
    concurrent: bool | None = None
    output: str | None = None  # "poems" or "lines": what the output must hold of every poem
    # With an output to check: each server's poem, as the output may hold it (any one will do).
    poems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float | None = None  # wall seconds
    folder: Path = Path()  # the scenario file's folder
    cycle: int = 0  # how many of the targets are the client's own list (the rest repeat it)
    time_scale: float = 1.0  # of the run: a program may scale its own waits by it


@dataclass(frozen=True)
class ClientModel:
    """A way of writing a client, with what the ideal-timing model needs to know."""

    name: str
    summary: str  # one line for `netsim clients`
    concurrent: bool  # do its connections overlap (True) or follow one another?
    run: Callable[[Sequence[Target], Recorder], None]
    # The most connections it can hold at once, and why; None: only the system's limits.
    limit: int | None = None
    limit_reason: str = ""
    # False: it tells the recorder nothing of its connections (a program of the user's);
    # the servers' own accounts measure them.
    instrumented: bool = True
    # Makes the model a scenario's client entry asks for, from the entry's options.
    configure: Callable[[ClientOptions], ClientModel] | None = None

    def __post_init__(self) -> None:
        # Checked where the model is made: a package's mistake shows when its model is
        # first loaded, naming the package, not as a crash in the middle of a run.
        if not callable(self.run):
            raise TypeError(f"client model {self.name!r}: run must be a function "
                            f"run(targets, recorder), not {type(self.run).__name__}")
        if inspect.iscoroutinefunction(self.run):
            raise TypeError(f"client model {self.name!r}: run is a coroutine function (async def), "
                            f"which netsim cannot await: make run a plain function that runs the "
                            f"event loop itself, as asyncio.run(main(targets, recorder)) does")
        if not isinstance(self.concurrent, bool):
            raise TypeError(f"client model {self.name!r}: concurrent must be True or False, "
                            f"not {self.concurrent!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"client model {self.name!r}: limit must be a whole number of "
                             f"connections, 1 or more (or None for no limit of its own), not {self.limit!r}")

    def beyond_limit(self, connections: int) -> str | None:
        """Why the model cannot hold ``connections`` connections (its limit and the reason
        for it), or None when it can."""
        if self.limit is None or connections <= self.limit:
            return None
        return f"more than the {self.name} model's limit of {self.limit}: {self.limit_reason}"


class ModelLimitError(Exception):
    """A client model met a limit of its own design (not a bug): the run cannot go on."""


def classify_error(error: BaseException) -> ErrorKind:
    """Name a connection's failure the way results report it."""
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return "timeout"
    if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
        return "refused"
    return "error"


class Recorder:
    """Timestamps a client model's events and sends them to the runner in batches."""

    def __init__(self, client: str, t0: float, sink: EventSink, *, every_receive: bool = True,
                 quiet_flush: bool = False) -> None:
        self.client = client
        # Every read an event (for logs), or only a connection's first (for ttfb).
        self.every_receive = every_receive
        self._t0 = t0
        self._sink = sink
        self._pending: list[ClientEvent] = []
        self._last_flush = time.monotonic()
        # The threads model records from many threads at once.
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        # With `quiet_flush` (the client process), a one-shot timer (SIGALRM) sends what
        # waits once the model has been quiet for QUIET_FLUSH. A signal rather than a
        # thread: a thread that looked now and then would take the GIL from a busy model,
        # which shows in its timings at ten thousand connections; the signal's handler
        # runs in the main thread, between two of its steps (a blocking call is resumed).
        self._timed = quiet_flush
        self._armed = False
        self._closed = False
        self._previous: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = None
        if quiet_flush:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)

    def __repr__(self) -> str:
        return f"<Recorder client={self.client!r} pending={len(self._pending)}>"

    def now(self) -> float:
        """Seconds since the run began, on the clock every process of the run shares."""
        return time.monotonic() - self._t0

    def record(self, event: ClientEvent) -> None:
        """Keep an event (its ``t`` taken just before) and send the batch when it is due."""
        with self._lock:
            # Appended under the lock, so that batches stay in time order even when many
            # threads record at once (their `t` are read just before, outside it: the
            # runner sorts the run's events by time in the end).
            self._pending.append(event)
            now = time.monotonic()
            if now - self._last_flush < FLUSH_INTERVAL:
                if self._timed and not self._armed:
                    self._arm(self._last_flush + QUIET_FLUSH - now)
                return
            batch, self._pending = self._pending, []
            self._last_flush = now
        self._send(batch)

    def flush(self) -> None:
        """Send every event held now."""
        with self._send_lock:  # after a batch in flight, in order
            with self._lock:
                batch, self._pending = self._pending, []
                self._last_flush = time.monotonic()
            if batch:
                self._sink(batch)

    def close(self) -> None:
        """Send every event held, and nothing more on the recorder's own (the timer is
        stopped): what the caller sends next on the same pipe comes after them."""
        if self._timed and not self._closed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if self._previous is None else self._previous)
        self._closed = True
        self.flush()

    def _send(self, batch: list[ClientEvent]) -> None:
        # The pipe takes one writer at a time; a thread sending must not hold up the
        # others' timestamps (the runner puts events in time order itself).
        with self._send_lock:
            self._sink(batch)

    def _arm(self, delay: float) -> None:
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, max(delay, RETRY_FLUSH))

    def _on_alarm(self, _signal: int, _frame: FrameType | None) -> None:
        """Send what waits, if the model has sent nothing for QUIET_FLUSH. This interrupts
        the main thread wherever it is: in the middle of adding to the batch or sending
        one, it leaves them be and tries again shortly."""
        self._armed = False
        if self._closed:
            return
        if not self._send_lock.acquire(blocking=False):
            self._arm(RETRY_FLUSH)
            return
        try:
            if not self._lock.acquire(blocking=False):
                self._arm(RETRY_FLUSH)
                return
            try:
                if not self._pending:
                    return
                quiet = time.monotonic() - self._last_flush
                if quiet < QUIET_FLUSH:  # the model sent its own meanwhile: wait from then
                    self._arm(QUIET_FLUSH - quiet)
                    return
                batch, self._pending = self._pending, []
                self._last_flush = time.monotonic()
            finally:
                self._lock.release()
            self._sink(batch)
        finally:
            self._send_lock.release()

    def open(self, target: Target) -> ConnectionRecord:
        """Start the clock of one connection; call it just before connecting."""
        return ConnectionRecord(self, target)


class ConnectionRecord:
    """What one connection did, reported to the recorder as it happens."""

    __slots__ = ("_connected", "_received", "_recorder", "done", "target")

    def __init__(self, recorder: Recorder, target: Target) -> None:
        self.target = target
        self._recorder = recorder
        self._received = bytearray()
        self._connected = False
        self.done = False
        recorder.record(ConnStarted(recorder.now(), recorder.client, target.server, target.conn, target.port))

    def __repr__(self) -> str:
        state = "done" if self.done else "open"
        where = f"{self.target.server}#{self.target.conn}"
        return f"<ConnectionRecord {where} {state} {len(self._received)}B>"

    def connected(self, local_port: int) -> None:
        """The handshake completed; ``local_port`` is the client's end (the server's peer port)."""
        self._connected = True
        recorder, target = self._recorder, self.target
        recorder.record(ConnEstablished(recorder.now(), recorder.client, target.server, target.conn,
                                        local_port))

    def received(self, data: bytes) -> None:
        first = not self._received
        self._received += data
        recorder = self._recorder
        if first or recorder.every_receive:
            recorder.record(BytesReceived(recorder.now(), recorder.client, self.target.server,
                                          self.target.conn, len(data)))

    def eof(self) -> None:
        """The server closed the connection; check that every byte arrived intact."""
        if self.done:
            return
        self.done = True
        expected = self.target.expected
        intact = None if expected is None else bytes(self._received) == expected
        recorder = self._recorder
        recorder.record(EofReceived(recorder.now(), recorder.client, self.target.server, self.target.conn,
                                    len(self._received), intact))

    def failed(self, error: BaseException) -> None:
        if self.done:
            return
        self.done = True
        recorder = self._recorder
        recorder.record(ConnFailed(recorder.now(), recorder.client, self.target.server, self.target.conn,
                                   classify_error(error), f"{type(error).__name__}: {error}",
                                   len(self._received), phase="read" if self._connected else "connect"))


class Deadlines:
    """When each connection gives up waiting, for models that multiplex many sockets.

    Every byte moves a connection's deadline on; the earliest deadline is what a
    select() loop may sleep until. A heap keeps that cheap for ten thousand sockets, with
    one entry per connection at or before its deadline: a read only notes the new
    deadline, and an entry that comes up before its connection's deadline is moved to it
    then. (An entry a read, a hundred thousand at ten thousand connections, took most of
    this class's time in pushing and popping stale ones.)
    """

    def __init__(self) -> None:
        self._current: dict[int, float] = {}  # by socket descriptor
        self._heap: list[tuple[float, int]] = []

    def __repr__(self) -> str:
        return f"<Deadlines watching={len(self._current)} entries={len(self._heap)}>"

    def set(self, fd: int, timeout: float | None) -> None:
        """Give ``fd`` ``timeout`` seconds from now (None: no deadline)."""
        if timeout is None:
            return
        deadline = time.monotonic() + timeout
        previous = self._current.get(fd)
        self._current[fd] = deadline
        if previous is None or deadline < previous:
            # Else its entry, at or before the previous deadline, is early enough.
            heapq.heappush(self._heap, (deadline, fd))

    def forget(self, fd: int) -> None:
        self._current.pop(fd, None)

    def earliest(self) -> float | None:
        """The next deadline, or None when no connection has one."""
        heap, current = self._heap, self._current
        while heap:
            deadline, fd = heap[0]
            due = current.get(fd)
            if due == deadline:
                return deadline
            if due is None:
                heapq.heappop(heap)  # its connection is gone (the descriptor may be another's by now)
            else:
                heapq.heapreplace(heap, (due, fd))  # it has read since: on to its deadline
        return None

    def expired(self, now: float) -> list[int]:
        """The descriptors whose deadline has passed; they are forgotten."""
        gone = []
        while (deadline := self.earliest()) is not None and deadline <= now:
            _, fd = heapq.heappop(self._heap)
            del self._current[fd]
            gone.append(fd)
        return gone


def start_connecting(target: Target) -> socket.socket:
    """A non-blocking socket whose connect to ``target`` has begun: it turns writable when
    the handshake is over, one way or the other (``finish_connecting`` says which).

    A loop that multiplexes connections must not wait in ``connect()``: a server can hold
    a handshake back for seconds (a ``syn_drop`` or ``handshake_delay`` fault), and every
    other connection would wait with it. Raises OSError when the connect fails at once.
    """
    host, port = target.address
    failure: OSError | None = None
    # Each address the host has, in turn, as socket.create_connection does; a connect that
    # is under way (EINPROGRESS, or interrupted: it goes on) is the caller's to watch.
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code in (0, errno.EINPROGRESS, errno.EINTR, errno.EWOULDBLOCK):
            return sock
        sock.close()
        failure = OSError(code, os.strerror(code))  # e.g. ConnectionRefusedError
    raise failure or OSError(f"{host!r} has no address to connect to")


def finish_connecting(sock: socket.socket) -> None:
    """The handshake of a socket from ``start_connecting`` is over (it is writable): raise
    the OSError it ended in (``ConnectionRefusedError``...), if it did not succeed."""
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))
