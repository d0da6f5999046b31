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
``StartFailed`` instead of ``Listening`` when a server cannot listen. An ``EventBatch``
may carry its most frequent kind ``Packed`` (see ``Outbox``). Live control asks
the servers with a ``ControlMessage`` and hears back ``ControlDone`` or ``ServerStates``.
"""

from __future__ import annotations

import array
import dataclasses
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


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The values of these attributes of an object, always as a tuple."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda item: (one(item),)
    return lambda item: ()


def _wire(cls: type[_W]) -> type[_W]:
    cls._values = _getter([field.name for field in dataclasses.fields(cls)])  # type: ignore[arg-type]
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


How = Literal["closed", "reset", "client_closed", "client_reset", "client_closed_early", "error", "stopped",
              "upstream_failed"]


@_wire
@dataclass(slots=True)
class ConnEnded(_Event):
    """A connection is over, as its server saw it: one of these for every connection, with
    or without a detailed log, so that a run can be measured from the servers' side alone.

    ``how``: the server ``closed`` it (its schedule done, or a close fault) or ``reset`` it
    (a reset fault); the client left first (``client_closed``, ``client_reset``; a proxy's
    ``client_closed_early``: it closed before bytes its upstream sent, which came after); the
    socket failed (``error``); or it was still open when the servers stopped
    (``stopped``). ``acked`` is how many of the ``bytes`` sent the client's kernel
    acknowledged before the end (None where it cannot be told: proxies). A proxy's
    account names its ``upstream`` (as the scenario does) and the local port of its
    connection there (``upstream_port``; None if it never connected): the upstream's own
    account of that connection is the proxy's, not a client's.
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
    upstream: str | None = None
    upstream_port: int | None = None


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
    """A ``command`` client's program ended: its exit code and its output (64 KiB of it at most).

    ``exit_code`` is negative when a signal ended it, 127 when it could not be found and 126
    when it could not be run (as shells say);
    ``timed_out``: netsim ended it (and its process group) at the client's timeout, which
    it began to do at ``stopped`` (the run's clock, as ``t``). ``left_running``: how many
    processes it had started that were still running when it exited, which netsim ended
    then. ``printed``: with ``output:``, a server's name for each of its poems that its
    whole standard output held, one a connection (None: not looked for).
    """

    t: float
    client: str
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    stopped: float | None = None
    left_running: int = 0
    printed: list[str] | None = None
    started: bool = True  # False: it could not be started (exit 126 or 127, and why on stderr)


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
_KINDS = {kind.__name__: kind for kind in EVENT_TYPES}


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
    """The client model returned, leaving ``threads_left`` threads of its own running (its
    process ends without waiting for them)."""

    threads_left: int = 0


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
    """The servers stopped: what they cost, and whether they left real time (see engine._priority)."""

    cpu_seconds: float
    max_rss_mb: float
    left_realtime: bool = False


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


# -- packed events --------------------------------------------------------------------

# The field types that travel as doubles; a field of any other type (an optional number
# included) travels as itself, in a list beside them.
_NUMBERS: dict[str, type[Any]] = {"float": float, "int": int, "bool": bool}


@_wire
@dataclass(slots=True)
class Packed(_Wire):
    """Events of one kind, packed: each one's numbers a row of doubles, its other fields
    in ``others``, and its place among the batch's other events first in its row."""

    kind: str  # the events' class name
    rows: bytes  # the bytes of an array("d")
    others: list[Any]


class _Codec:
    """How the events of one class are packed into a row and unpacked from it."""

    def __init__(self, kind: type[_Event]) -> None:
        self.kind = kind
        numbers: list[str] = []
        others: list[str] = []
        # Where each field comes back from, in the class's order: (a number?, its place there, its type)
        self.plan: list[tuple[bool, int, type[Any]]] = []
        for field in dataclasses.fields(kind):
            number = _NUMBERS.get(str(field.type))
            if number is not None:
                self.plan.append((True, len(numbers), number))
                numbers.append(field.name)
            else:
                self.plan.append((False, len(others), object))
                others.append(field.name)
        self.width = 1 + len(numbers)  # the event's place among the loose ones first
        self.extra = len(others)
        self.numbers = _getter(numbers)
        self.others = _getter(others)

    def unpack(self, values: Sequence[float], others: Sequence[Any]) -> Event:
        made = [(values[at] if kind is float else kind(values[at])) if number else others[at]
                for number, at, kind in self.plan]
        return self.kind(*made)  # type: ignore[return-value]


_CODECS: dict[type[_Event], _Codec] = {}


def _codec(kind: type[_Event]) -> _Codec:
    codec = _CODECS.get(kind)
    if codec is None:
        codec = _CODECS[kind] = _Codec(kind)
    return codec


@_wire
@dataclass(slots=True)
class EventBatch(_Wire):
    """Events in the order they were recorded; the most frequent kind may come ``packed``."""

    loose: list[Event]
    packed: Packed | None = None

    def events(self) -> list[Event]:
        """Every event of the batch, the packed ones unpacked, in the order they were recorded."""
        if self.packed is None:
            return self.loose
        codec = _codec(_KINDS[self.packed.kind])
        values = array.array("d")
        values.frombytes(self.packed.rows)
        width, extra, others, loose = codec.width, codec.extra, self.packed.others, self.loose
        merged: list[Event] = []
        taken = 0  # loose events merged so far
        for row in range(len(values) // width):
            start = row * width
            place = int(values[start])  # how many loose events were recorded before it
            merged.extend(loose[taken:place])
            taken = place
            row_others = others[row * extra:(row + 1) * extra]
            merged.append(codec.unpack(values[start + 1:start + width], row_others))
        merged.extend(loose[taken:])
        return merged


class Outbox:
    """A process's events until the next flush, with the most frequent kind packed as it comes.

    Pickling an event takes about 2.5 µs. At ten thousand connections a server sends
    forty thousand ``chunk_sent`` a second, and pickling a flush's worth held its loop up
    for 5 ms every 50 ms: a hundred writes late each time. Packed, the events of ``kind``
    cost a row of doubles each (a tenth of that), and the runner unpacks them.
    """

    def __init__(self, kind: type[_Event]) -> None:
        self.kind = kind
        self._codec = _codec(kind)
        self._loose: list[Event] = []
        self._rows = array.array("d")
        self._others: list[Any] = []
        self._count = 0

    def __repr__(self) -> str:
        return f"<Outbox {self.kind.__name__} packed={self._count} loose={len(self._loose)}>"

    def __len__(self) -> int:
        return self._count + len(self._loose)

    def add(self, event: Event) -> None:
        """Keep ``event`` for the next batch (an emit function)."""
        if type(event) is not self.kind:
            self._loose.append(event)
            return
        codec, rows = self._codec, self._rows
        rows.append(len(self._loose))
        rows.extend(codec.numbers(event))
        self._others.extend(codec.others(event))
        self._count += 1

    def take(self) -> EventBatch | None:
        """What was kept since the last call; None when nothing was."""
        if not self._count and not self._loose:
            return None
        packed = None
        if self._count:
            packed = Packed(self.kind.__name__, self._rows.tobytes(), self._others)
        batch = EventBatch(self._loose, packed)
        self._loose, self._rows, self._others, self._count = [], array.array("d"), [], 0
        return batch


ServerMessage = (Listening | StartFailed | EventBatch | LatenessBatch | Stopped | Flushed
                 | ControlDone | ServerStates)
ClientMessage = EventBatch | Finished | Crashed | LimitReached
Message = ServerMessage | ClientMessage


__all__ = [
    "CONNECTION_EVENTS",
    "EVENT_TYPES",
    "SERVER_STATE_EVENTS",
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
    "Outbox",
    "Packed",
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
