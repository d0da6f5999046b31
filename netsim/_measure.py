"""Turn the events of one client model's run into its measured results."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from dataclasses import dataclass

from netsim.events import (
    CONNECTION_EVENTS,
    SERVER_STATE_EVENTS,
    BytesReceived,
    ClientFinished,
    ClientStarted,
    ConnectionEvent,
    ConnEnded,
    ConnEstablished,
    ConnFailed,
    ConnStarted,
    EofReceived,
    Event,
    Observer,
    ProgramExited,
)
from netsim.results import ConnectionResult, Lateness, Served, lateness_of


class Correlator:
    """Tags server events with the client and connection they belong to.

    A server knows a connection by its peer's port; the client reports its local port
    once connected. Server events that arrive before that are held back until then
    (or until the run ends), so every event the observer sees is complete.
    """

    def __init__(self, client: str | None, observer: Observer | None) -> None:
        self.client = client  # None: no client to tag with (netsim serve): deliver at once
        self.events: list[Event] = []
        self._observer = observer
        self._conns: dict[tuple[str, int], int] = {}
        self._held: dict[tuple[str, int], list[ConnectionEvent]] = {}  # by (server, peer port)
        self.lateness = array.array("d")  # every chunk's, in wall seconds, as the servers sent it

    def __repr__(self) -> str:
        return f"<Correlator client={self.client!r} events={len(self.events)} held={len(self._held)}>"

    def add_lateness(self, packed: bytes) -> None:
        self.lateness.frombytes(packed)

    def add(self, batch: Sequence[Event]) -> None:
        for event in batch:
            if self.client is None:
                self._deliver(event)
                continue
            if isinstance(event, ConnEstablished):
                key = (event.server, event.local_port)
                self._conns[key] = event.conn
                self._deliver(event)
                for held in self._held.pop(key, []):
                    held.client, held.conn = self.client, event.conn
                    self._deliver(held)
                continue
            if isinstance(event, CONNECTION_EVENTS):
                key = (event.server, event.peer_port)
                conn = self._conns.get(key)
                if conn is None:
                    self._held.setdefault(key, []).append(event)
                    continue
                event.client, event.conn = self.client, conn
            elif isinstance(event, SERVER_STATE_EVENTS):
                event.client = self.client
            self._deliver(event)

    def finish(self) -> list[Event]:
        """Deliver whatever is still held; return every event of the run in time order."""
        for events in self._held.values():
            for event in events:
                event.client, event.conn = self.client, None
                self._deliver(event)
        self._held.clear()
        self.events.sort(key=lambda event: event.t)
        return self.events

    def _deliver(self, event: Event) -> None:
        self.events.append(event)
        if self._observer is not None:
            self._observer(event)


@dataclass(frozen=True)
class Slot:
    """One connection a client was to make: to which server, and what it should receive."""

    server: str
    port: int
    expected: int | None  # the bytes a whole poem is; None: unknown (a proxy to the outside)
    refuses: bool = False  # its server refuses every connection
    drops_syn: bool = False  # its server never answers a handshake (syn_drop)


@dataclass(frozen=True)
class Measured:
    """What one client model's run measured."""

    wall_elapsed: float  # seconds
    connections: list[ConnectionResult]
    lateness: Lateness  # scenario time
    lateness_wall_p99: float
    program: ProgramExited | None  # a command client's program
    started: float = math.nan  # when the client model began, in seconds since the run began


@dataclass
class _Conn:
    start: float = math.nan
    first_byte: float = math.nan
    end: float = math.nan
    bytes: int = 0
    intact: bool | None = False
    error: str | None = None
    message: str | None = None
    phase: str | None = None
    ended: bool = False


def measure(events: Sequence[Event], lateness: Sequence[float], slots: Sequence[Slot], time_scale: float,
            *, instrumented: bool = True) -> Measured:
    """Measure a run from its events: each connection from the client's side when the model
    reports its connections (``instrumented``), else from the servers' accounts alone; the
    servers' side is attached to each connection either way (``served``)."""
    started = finished = math.nan
    program: ProgramExited | None = None
    ended: list[ConnEnded] = []
    conns = {number: _Conn() for number in range(1, len(slots) + 1)}
    for event in events:
        match event:
            case ClientStarted():
                started = event.t
            case ClientFinished():
                finished = event.t
            case ProgramExited():
                program = event
            case ConnEnded():
                ended.append(event)
            case ConnStarted():
                conns[event.conn].start = event.t
            case BytesReceived():
                conn = conns[event.conn]
                if math.isnan(conn.first_byte):
                    conn.first_byte = event.t
            case EofReceived() | ConnFailed():
                conn = conns[event.conn]
                if not conn.ended:
                    conn.ended = True
                    conn.end = event.t
                    conn.bytes = event.bytes
                    conn.intact = event.intact
                    if isinstance(event, ConnFailed):
                        conn.error, conn.message, conn.phase = event.error, event.message, event.phase
    served = _match(ended, slots, instrumented)
    results = []
    for number, conn in conns.items():
        slot = slots[number - 1]
        account = served.get(number)
        seen = None if account is None else _served(account, started, time_scale)
        if not instrumented:
            results.append(_from_the_server(number, slot, seen))
            continue
        if not conn.ended:  # the model returned without finishing this connection
            conn.error, conn.message, conn.end = "error", "the client model never finished it", finished
        results.append(ConnectionResult(
            conn=number, server=slot.server, port=slot.port, bytes=conn.bytes, intact=conn.intact,
            error=conn.error, ttfb=(conn.first_byte - conn.start) / time_scale,
            duration=(conn.end - conn.start) / time_scale, message=conn.message, served=seen,
            phase=conn.phase))
    summary = lateness_of(lateness, time_scale)
    return Measured(finished - started, results, summary, summary.p99 * time_scale, program, started)


def served_connections(ended: Sequence[ConnEnded], slots: Sequence[Slot],
                       time_scale: float) -> list[ConnectionResult]:
    """Connections measured from their servers' accounts alone, one per slot, in order; times
    count from the first accept."""
    origin = min((event.accepted for event in ended), default=0.0)
    return [_from_the_server(number, slot, _served(event, origin, time_scale))
            for number, (event, slot) in enumerate(zip(ended, slots, strict=True), start=1)]


def _match(ended: Sequence[ConnEnded], slots: Sequence[Slot], instrumented: bool) -> dict[int, ConnEnded]:
    """Each connection's account by connection number.

    The runner has matched an instrumented model's connections by port already (``conn``);
    a program's are taken to be made in its order of targets: a server's first accepted
    connection is the first connection to it, and so on.
    """
    if instrumented:
        return {event.conn: event for event in ended if event.conn is not None}
    waiting: dict[str, list[int]] = {}
    for number, slot in enumerate(slots, start=1):
        waiting.setdefault(slot.server, []).append(number)
    matched = {}
    for event in sorted(ended, key=lambda event: (event.server, event.index)):
        numbers = waiting.get(event.server)
        if numbers:
            matched[numbers.pop(0)] = event
    return matched


def _served(event: ConnEnded, started: float, time_scale: float) -> Served:
    return Served(
        peer=f"{event.peer_host}:{event.peer_port}", accepted=(event.accepted - started) / time_scale,
        ttfb=math.nan if event.first_byte is None else (event.first_byte - event.accepted) / time_scale,
        duration=(event.ended - event.accepted) / time_scale, bytes=event.bytes, acked=event.acked,
        how=event.how, fault=event.fault)


# How a connection the client did not report ended, from the server's account.
_ENDINGS: dict[str, tuple[str | None, str]] = {
    "closed": (None, ""),
    "reset": ("reset", "the server reset it (a reset fault, or its server went down with a reset)"),
    "client_reset": ("reset", "the client reset it"),
    "client_closed": ("error", "the client closed it before the server's end"),
    "error": ("error", "the connection failed"),
    "stopped": ("timeout", "still open when the client's run ended"),
}


def _from_the_server(number: int, slot: Slot, served: Served | None) -> ConnectionResult:
    """A connection of a client that reports none, from its server's account."""
    if served is None:
        phase: str | None = "connect"
        if slot.refuses:
            missing, why = "refused", "the server refuses every connection"
        elif slot.drops_syn:
            missing, why = "timeout", "the server never answers a handshake (a syn_drop fault)"
        else:
            missing, why = "missing", f"the client made no connection to {slot.server} for this one"
            phase = None
        return ConnectionResult(conn=number, server=slot.server, port=slot.port, bytes=0, intact=False,
                                error=missing, ttfb=math.nan, duration=math.nan, message=why,
                                served=None, phase=phase)
    error: str | None
    message: str | None
    error, message = _ENDINGS[served.how]
    if served.how == "client_closed" and served.fault in ("stall", "blackhole"):
        # Nothing more was coming: the client gave up waiting, as its timeout would.
        error, message = "timeout", f"the client left the silent connection (a {served.fault} fault)"
    received = served.bytes if served.acked is None else served.acked
    intact = None if slot.expected is None or served.acked is None else (
        served.how == "closed" and served.acked == slot.expected and served.fault != "corrupt")
    if error is None and served.fault == "corrupt":
        message = "the server sent it corrupted bytes (a corrupt fault)"
    elif error is None:
        message = (f"the client's kernel acknowledged {received} of {slot.expected} bytes"
                   if intact is False else None)
    return ConnectionResult(conn=number, server=slot.server, port=slot.port, bytes=received,
                            intact=intact, error=error, ttfb=served.ttfb, duration=served.duration,
                            message=message, served=served)
