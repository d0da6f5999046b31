"""The one vocabulary of a run: every event its servers and clients emit, and every
message its processes exchange.

Each kind of event is a class here, with typed fields, so that a measurement, a log or a
report that reads an event names its class: a renamed event or field is a mypy error
and an ``AttributeError``, never an empty measurement. ``name`` is the snake_case verb
in the past tense that logs show (``chunk_sent``).

Times (``t``, ``scheduled``) are seconds since the run began, on the one monotonic
clock every process of the run shares; ``lateness`` is in wall seconds.

Why slotted dataclasses, and not TypedDicts or a serialisation library: a TypedDict is
a dict at run time, so neither ``isinstance`` nor ``match`` can tell one event from
another, and the name of an event would again be a string compared by hand; msgspec
would be a fourth runtime dependency for what the standard library does. A slotted
dataclass is made in 0.25 µs (a dict: 0.2 µs), and ``_Wire`` pickles it as its class and
a tuple of its values, so that a batch crosses a pipe as fast as a batch of dicts does.

Server events name the server and the client's port (``peer_port``), which is all a
server knows of a connection; the runner matches that port with the one the client
reported (``ConnEstablished.local_port``) and fills in ``client`` and ``conn``.

Process messages travel on the pipe between the runner and its children: a child sends
``Listening`` (servers) once every server accepts connections, ``EventBatch`` and
``LatenessBatch`` as the run goes on, and ends with ``Finished``, ``Crashed`` or
``LimitReached`` (a client) or ``Stopped`` (servers, after the runner's ``Stop``);
``StartFailed`` instead of ``Listening`` when a server cannot listen. Live control asks
the servers with a ``ControlMessage`` and hears back ``ControlDone`` or ``ServerStates``.
"""

from __future__ import annotations

import array
import dataclasses
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

_W = TypeVar("_W", bound="_Wire")


class _Wire:
    """Pickles as ``(class, values)``: a third of the time of a slotted dataclass's default."""

    __slots__ = ()
    _values: ClassVar[Callable[[Any], tuple[Any, ...]]]

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return (type(self), type(self)._values(self))


def _wire(cls: type[_W]) -> type[_W]:
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if len(names) > 1:
        cls._values = operator.attrgetter(*names)
    elif names:
        one = operator.attrgetter(names[0])
        cls._values = lambda item: (one(item),)
    else:
        cls._values = lambda item: ()
    if issubclass(cls, _Event):
        cls.name = _snake_case(cls.__name__)
    return cls


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# -- events ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Event(_Wire):
    name: ClassVar[str] = ""  # what logs call it: ChunkSent is chunk_sent (set by _wire)

    def fields(self) -> dict[str, Any]:
        """The event as a mapping, ``event`` (its name) first: what the logs write."""
        keys: tuple[str, ...] = self.__match_args__
        return {"event": self.name, **{key: getattr(self, key) for key in keys}}


# Server events. `client` and `conn` are filled in by the runner (None under `serve`).


@_wire
@dataclass(slots=True)
class ServerListening(_Event):
    """A server bound its port (and listens, unless it refuses every connection)."""

    t: float
    server: str
    host: str
    port: int
    mode: Literal["concurrent", "serial"]
    refusing: bool = False
    client: str | None = None


@_wire
@dataclass(slots=True)
class ConnAccepted(_Event):
    """A server accepted connection number ``index`` (1-based, in accept order)."""

    t: float
    server: str
    peer_port: int
    index: int
    fault: str | None = None  # the fault this connection will meet, if any
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class ChunkSent(_Event):
    """A chunk went out: ``lateness`` is how long after ``scheduled`` (wall seconds).

    ``held``: it came due while a slow reader made the socket push back, so its lateness
    is the reader's doing and is not counted against the server.
    """

    t: float
    server: str
    peer_port: int
    index: int  # which chunk, 0-based
    bytes: int
    scheduled: float
    lateness: float
    held: bool = False
    direction: str | None = None  # a proxy's: downstream or upstream
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class FaultStruck(_Event):
    """A connection's fault came: ``kind`` reset, close or stall, after ``bytes`` bytes."""

    t: float
    server: str
    peer_port: int
    kind: str
    bytes: int
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class ConnClosed(_Event):
    """The server closed a connection, its schedule done (or cut short by a close fault)."""

    t: float
    server: str
    peer_port: int
    bytes: int  # sent over the whole connection
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class ConnLost(_Event):
    """A connection ended from the client's side, or in an error, before its schedule did.

    ``how`` is ``eof`` (the client closed its end and nothing was left to send), ``reset``
    (the client reset it, or closed it for good and the next write found out) or
    ``error`` (another failure, in ``reason``).
    """

    t: float
    server: str
    peer_port: int
    bytes: int
    how: Literal["eof", "reset", "error"]
    reason: str
    client: str | None = None
    conn: int | None = None


How = Literal["closed", "reset", "client_closed", "client_reset", "error", "stopped"]


@_wire
@dataclass(slots=True)
class ConnEnded(_Event):
    """A connection is over, as its server saw it: one of these for every connection, with
    or without a detailed log, so that a run can be measured from the servers' side alone.

    ``how``: the server ``closed`` it (its schedule done, or a close fault) or ``reset`` it
    (a reset fault); the client left first (``client_closed``, ``client_reset``); the
    socket failed (``error``); or it was still open when the servers stopped
    (``stopped``). ``acked`` is how many of the ``bytes`` sent the client's kernel
    acknowledged before the end (None where it cannot be told: proxies).
    """

    t: float
    server: str
    peer_port: int
    peer_host: str
    index: int
    accepted: float
    first_byte: float | None  # when the first byte was written
    ended: float  # when the server closed or reset it, or saw the client leave
    bytes: int
    acked: int | None
    how: How
    fault: str | None = None
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class PeerShutdown(_Event):
    """The client shut down its sending side (EOF) while the server still had bytes to send.

    A half-close, as ``nc`` and many HTTP clients do: the rest of the schedule goes on.
    """

    t: float
    server: str
    peer_port: int
    bytes: int  # sent so far
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class UpstreamConnected(_Event):
    """A proxy connected to its upstream for a client's connection."""

    t: float
    server: str
    peer_port: int
    upstream: str  # HOST:PORT
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class UpstreamFailed(_Event):
    """A proxy could not connect to its upstream; it resets the client's connection."""

    t: float
    server: str
    peer_port: int
    upstream: str
    reason: str
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class UpstreamLost(_Event):
    """A proxy's upstream connection failed midway; it resets the client's connection."""

    t: float
    server: str
    peer_port: int
    reason: str
    client: str | None = None
    conn: int | None = None


@_wire
@dataclass(slots=True)
class ConditionsChanged(_Event):
    """A server's conditions changed from ``t`` on: ``changes`` are the keys that changed, as
    a scenario writes them; ``source`` is ``phase N`` (its N-th phase) or ``control``."""

    t: float
    server: str
    changes: dict[str, Any]
    source: str
    client: str | None = None


@_wire
@dataclass(slots=True)
class ServerWentDown(_Event):
    """A server stopped listening: connects are refused until it comes back up;
    ``reset`` connections still open were reset with it."""

    t: float
    server: str
    source: str
    reset: int = 0
    client: str | None = None


@_wire
@dataclass(slots=True)
class ServerCameUp(_Event):
    """A server that was down listens again, on the same port; or, with ``error``, could not
    (another program took the port meanwhile), and stays down."""

    t: float
    server: str
    source: str
    error: str | None = None
    client: str | None = None


@_wire
@dataclass(slots=True)
class ConnsReset(_Event):
    """A server reset every connection it had open (``count`` of them) on request."""

    t: float
    server: str
    count: int
    source: str
    client: str | None = None


@_wire
@dataclass(slots=True)
class HandshakesHeld(_Event):
    """A server stopped answering handshakes (``syn_drop``, ``handshake_delay``): a connect
    waits for a SYN retransmission after ``until`` (None: until the conditions change)."""

    t: float
    server: str
    until: float | None
    client: str | None = None


@_wire
@dataclass(slots=True)
class HandshakesAnswered(_Event):
    """A server answers handshakes again."""

    t: float
    server: str
    client: str | None = None


ServerEvent = (ServerListening | ConnAccepted | ChunkSent | FaultStruck | ConnClosed | ConnLost
               | ConnEnded | PeerShutdown | UpstreamConnected | UpstreamFailed | UpstreamLost
               | ConditionsChanged | ServerWentDown | ServerCameUp | ConnsReset | HandshakesHeld
               | HandshakesAnswered)
# The events of a server as a whole, not of one connection: tagged with the client whose
# run it serves.
SERVER_STATE_EVENTS = (ServerListening, ConditionsChanged, ServerWentDown, ServerCameUp, ConnsReset,
                       HandshakesHeld, HandshakesAnswered)
# The events of one connection as a server saw it, matched to a client's by peer_port.
ConnectionEvent = (ConnAccepted | ChunkSent | FaultStruck | ConnClosed | ConnLost | ConnEnded
                   | PeerShutdown | UpstreamConnected | UpstreamFailed | UpstreamLost)
CONNECTION_EVENTS = (ConnAccepted, ChunkSent, FaultStruck, ConnClosed, ConnLost, ConnEnded, PeerShutdown,
                     UpstreamConnected, UpstreamFailed, UpstreamLost)


# Client events: a client model's recorder emits these.


@_wire
@dataclass(slots=True)
class ClientStarted(_Event):
    """A client model began its run."""

    t: float
    client: str
    model: str
    connections: int


@_wire
@dataclass(slots=True)
class ClientFinished(_Event):
    """A client model returned from its run."""

    t: float
    client: str


@_wire
@dataclass(slots=True)
class ConnStarted(_Event):
    """A client is about to connect: the connection's clock starts."""

    t: float
    client: str
    server: str
    conn: int  # 1-based, in the client's order of targets
    port: int


@_wire
@dataclass(slots=True)
class ConnEstablished(_Event):
    """The TCP handshake completed; ``local_port`` is what the server sees as peer_port."""

    t: float
    client: str
    server: str
    conn: int
    local_port: int


@_wire
@dataclass(slots=True)
class BytesReceived(_Event):
    """A read returned ``bytes`` bytes."""

    t: float
    client: str
    server: str
    conn: int
    bytes: int


@_wire
@dataclass(slots=True)
class EofReceived(_Event):
    """The server closed cleanly; ``intact``: the bytes equal what it sent (None: unknown)."""

    t: float
    client: str
    server: str
    conn: int
    bytes: int
    intact: bool | None


ErrorKind = Literal["refused", "reset", "timeout", "error"]


@_wire
@dataclass(slots=True)
class ConnFailed(_Event):
    """The connection ended in an error instead of a clean EOF."""

    t: float
    client: str
    server: str
    conn: int
    error: ErrorKind
    message: str
    bytes: int
    intact: bool = False
    phase: Literal["connect", "read"] | None = None  # connecting, or once connected


@_wire
@dataclass(slots=True)
class ProgramOutput(_Event):
    """A line a ``command`` client's program wrote (without its newline)."""

    t: float
    client: str
    stream: Literal["stdout", "stderr"]
    line: str


@_wire
@dataclass(slots=True)
class ProgramExited(_Event):
    """A ``command`` client's program ended: its exit code and (the start of) its output.

    ``exit_code`` is negative when a signal ended it, 127 when it could not be started;
    ``timed_out``: netsim ended it (and its process group) at the client's timeout.
    """

    t: float
    client: str
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


ClientEvent = (ClientStarted | ClientFinished | ConnStarted | ConnEstablished | BytesReceived
               | EofReceived | ConnFailed | ProgramOutput | ProgramExited)
Event = ServerEvent | ClientEvent
Observer = Callable[[Event], None]
EVENT_TYPES: tuple[type[_Event], ...] = (
    ServerListening, ConnAccepted, ChunkSent, FaultStruck, ConnClosed, ConnLost, ConnEnded, PeerShutdown,
    UpstreamConnected, UpstreamFailed, UpstreamLost, ConditionsChanged, ServerWentDown, ServerCameUp,
    ConnsReset, HandshakesHeld, HandshakesAnswered,
    ClientStarted, ClientFinished, ConnStarted, ConnEstablished, BytesReceived, EofReceived, ConnFailed,
    ProgramOutput, ProgramExited,
)


# -- process messages --------------------------------------------------------------------


@_wire
@dataclass(slots=True)
class Listening(_Wire):
    """Every server accepts connections: each one's name and bound address, and when they
    became ready (seconds since the run began): their phases count from then."""

    addresses: dict[str, tuple[str, int]]
    ready: float = 0.0


@_wire
@dataclass(slots=True)
class StartFailed(_Wire):
    """A server could not listen; nothing was served."""

    port_busy: bool
    message: str


@_wire
@dataclass(slots=True)
class EventBatch(_Wire):
    events: Sequence[Event]


@_wire
@dataclass(slots=True)
class LatenessBatch(_Wire):
    """Chunk lateness in wall seconds, as the bytes of an ``array("d")``: 8 bytes a chunk."""

    packed: bytes

    def values(self) -> array.array[float]:
        unpacked = array.array("d")
        unpacked.frombytes(self.packed)
        return unpacked


@_wire
@dataclass(slots=True)
class Finished(_Wire):
    """The client model returned."""


@_wire
@dataclass(slots=True)
class Crashed(_Wire):
    """The client model raised: a bug in the model, with where it happened."""

    message: str
    traceback: str


@_wire
@dataclass(slots=True)
class LimitReached(_Wire):
    """The client model met a limit of its own design (select()'s FD_SETSIZE, say)."""

    message: str


@_wire
@dataclass(slots=True)
class Stopped(_Wire):
    """The servers stopped: what they cost."""

    cpu_seconds: float
    max_rss_mb: float


@_wire
@dataclass(slots=True)
class Stop(_Wire):
    """The runner asks the servers to stop."""


@_wire
@dataclass(slots=True)
class Flush(_Wire):
    """The runner asks the servers to send what they hold now, then ``Flushed``."""


@_wire
@dataclass(slots=True)
class Flushed(_Wire):
    """Everything the servers held when asked to flush has been sent before this."""


# Live control: the runner asks, the servers answer each request (by its number) once it
# has taken effect, with ControlDone, or ServerStates for ReportStates.


@_wire
@dataclass(slots=True)
class ChangeConditions(_Wire):
    """Change a server's conditions from now on: ``fields`` of its Conditions, in wall-clock
    units, and ``written``, the same keys as a scenario writes them (for the log)."""

    request: int
    server: str
    fields: dict[str, Any]
    written: dict[str, Any]


@_wire
@dataclass(slots=True)
class TakeDown(_Wire):
    """Take a server down (connects refused); ``reset``: its open connections too."""

    request: int
    server: str
    reset: bool = False


@_wire
@dataclass(slots=True)
class BringUp(_Wire):
    """Bring a server that is down back up, on its port."""

    request: int
    server: str


@_wire
@dataclass(slots=True)
class ResetConnections(_Wire):
    """Reset every connection a server has open."""

    request: int
    server: str


@_wire
@dataclass(slots=True)
class ReportStates(_Wire):
    """Ask for every server's conditions and open connections, as they are now."""

    request: int


ControlMessage = ChangeConditions | TakeDown | BringUp | ResetConnections | ReportStates


@_wire
@dataclass(slots=True)
class ControlDone(_Wire):
    """A control request took effect at ``t`` (seconds since the run began), or failed
    (``error``); ``count``: the connections it reset."""

    request: int
    t: float
    error: str | None = None
    count: int = 0


@_wire
@dataclass(slots=True)
class ServerState(_Wire):
    """A server as it is: up or down, answering handshakes or not, its conditions (Conditions
    fields, wall-clock units) and its open connections (index, peer port, bytes sent, and
    accepted, seconds since the run began)."""

    name: str
    host: str
    port: int
    up: bool
    handshakes: Literal["answered", "held"]
    conditions: dict[str, Any]
    connections: list[tuple[int, int, int, float]]


@_wire
@dataclass(slots=True)
class ServerStates(_Wire):
    """The answer to ReportStates."""

    request: int
    servers: list[ServerState]


_HOWS: tuple[How, ...] = ("closed", "reset", "client_closed", "client_reset", "error", "stopped")
_ROW = 9  # doubles a connection's account takes in an AccountBatch


@_wire
@dataclass(slots=True)
class AccountBatch(_Wire):
    """Connections' accounts (``ConnEnded``), packed: numbers as doubles, names beside.

    A server process sends one account per connection even without a detailed log. At
    ten thousand connections closing within a second, pickling as many events on the
    servers' loop held it up for a millisecond at every flush; rows of doubles cost a
    fraction of that, and the runner unpacks them into events.
    """

    # _ROW doubles a connection: t, peer_port, index, accepted, first_byte (NaN: none),
    # ended, bytes, acked (-1: unknown), how (its place in _HOWS)
    rows: bytes
    servers: list[str]
    hosts: list[str]
    faults: list[str | None]

    def events(self) -> list[ConnEnded]:
        values = array.array("d")
        values.frombytes(self.rows)
        found = []
        for row, (server, host, fault) in enumerate(zip(self.servers, self.hosts, self.faults,
                                                        strict=True)):
            t, port, index, accepted, first, ended, sent, acked, how = values[row * _ROW:(row + 1) * _ROW]
            found.append(ConnEnded(t, server, int(port), host, int(index), accepted,
                                   None if math.isnan(first) else first, ended, int(sent),
                                   None if acked < 0 else int(acked), _HOWS[int(how)], fault))
        return found


class Accounts:
    """Where a server process keeps its connections' accounts until the next flush."""

    def __init__(self) -> None:
        self._rows = array.array("d")
        self._servers: list[str] = []
        self._hosts: list[str] = []
        self._faults: list[str | None] = []
        self._known: dict[str, str] = {}  # one string object a host: pickled once a batch

    def __len__(self) -> int:
        return len(self._servers)

    def add(self, event: ConnEnded) -> None:
        host = self._known.setdefault(event.peer_host, event.peer_host)
        self._rows.extend((event.t, event.peer_port, event.index, event.accepted,
                           math.nan if event.first_byte is None else event.first_byte, event.ended,
                           event.bytes, -1 if event.acked is None else event.acked,
                           _HOWS.index(event.how)))
        self._servers.append(event.server)
        self._hosts.append(host)
        self._faults.append(event.fault)

    def take(self) -> AccountBatch | None:
        """What was kept since the last call, packed; None when nothing was."""
        if not self._servers:
            return None
        batch = AccountBatch(self._rows.tobytes(), self._servers, self._hosts, self._faults)
        self._rows, self._servers, self._hosts, self._faults = array.array("d"), [], [], []
        return batch


ServerMessage = (Listening | StartFailed | EventBatch | LatenessBatch | AccountBatch | Stopped | Flushed
                 | ControlDone | ServerStates)
ClientMessage = EventBatch | Finished | Crashed | LimitReached
Message = ServerMessage | ClientMessage


__all__ = [
    "CONNECTION_EVENTS",
    "EVENT_TYPES",
    "SERVER_STATE_EVENTS",
    "AccountBatch",
    "Accounts",
    "BringUp",
    "BytesReceived",
    "ChangeConditions",
    "ChunkSent",
    "ClientEvent",
    "ClientFinished",
    "ClientMessage",
    "ClientStarted",
    "ConditionsChanged",
    "ConnAccepted",
    "ConnClosed",
    "ConnEnded",
    "ConnEstablished",
    "ConnFailed",
    "ConnLost",
    "ConnStarted",
    "ConnectionEvent",
    "ConnsReset",
    "ControlDone",
    "ControlMessage",
    "Crashed",
    "EofReceived",
    "ErrorKind",
    "Event",
    "EventBatch",
    "FaultStruck",
    "Finished",
    "Flush",
    "Flushed",
    "HandshakesAnswered",
    "HandshakesHeld",
    "How",
    "LatenessBatch",
    "LimitReached",
    "Listening",
    "Message",
    "Observer",
    "PeerShutdown",
    "ProgramExited",
    "ProgramOutput",
    "ReportStates",
    "ResetConnections",
    "ServerCameUp",
    "ServerEvent",
    "ServerListening",
    "ServerMessage",
    "ServerState",
    "ServerStates",
    "ServerWentDown",
    "StartFailed",
    "Stop",
    "Stopped",
    "TakeDown",
    "UpstreamConnected",
    "UpstreamFailed",
    "UpstreamLost",
]
