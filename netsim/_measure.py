"""Turn the events of one client model's run into its measured results."""

from __future__ import annotations

import array
import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from netsim.events import (
    CONNECTION_EVENTS,
    SERVER_STATE_EVENTS,
    BytesReceived,
    ChunkSent,
    ClientFinished,
    ClientStarted,
    ConditionsChanged,
    ConnectionEvent,
    ConnEnded,
    ConnEstablished,
    ConnFailed,
    ConnsReset,
    ConnStarted,
    EofReceived,
    Event,
    EventBatch,
    HandshakesAnswered,
    HandshakesHeld,
    Observer,
    ProgramExited,
    ServerCameUp,
    ServerWentDown,
)
from netsim.results import (
    ACTIVITY_SLICES,
    KEPT_CONNECTIONS,
    KEPT_POINTS,
    Activity,
    ConnectionResult,
    ExtraConnection,
    Lateness,
    Served,
    ServerChange,
    lateness_of,
)

# What a server's changes are while a client model runs (a result's `changes`).
Change = ConditionsChanged | ServerWentDown | ServerCameUp | ConnsReset | HandshakesHeld | HandshakesAnswered


class Correlator:
    """Tags server events with the client and connection they belong to.

    A server knows a connection by its peer's port; the client reports its local port
    once connected. Server events that arrive before that are held back until then
    (or until the run ends), so every event the observer sees is complete.

    Without an observer, nobody needs the events before the run ends, and the batches are
    kept as they came (``take``) and unpacked then: at ten thousand connections, taking
    in a detailed run's events as they come keeps a third of a core busy, one the
    servers and the client need while the run lasts.
    """

    def __init__(self, client: str | None, observer: Observer | None) -> None:
        self.client = client  # None: no client to tag with (netsim serve): deliver at once
        self.events: list[Event] = []
        self._observer = observer
        self._conns: dict[tuple[str, int], int] = {}
        self._held: dict[tuple[str, int], list[ConnectionEvent]] = {}  # by (server, peer port)
        self.lateness = array.array("d")  # every chunk's, in wall seconds, as the servers sent it
        self._kept: list[EventBatch] = []  # batches not yet unpacked (no observer)

    def __repr__(self) -> str:
        return f"<Correlator client={self.client!r} events={len(self.events)} held={len(self._held)}>"

    def take(self, batch: EventBatch) -> None:
        """A batch from a child: its events now if an observer is waiting for them, else at the end."""
        if self._observer is None:
            self._kept.append(batch)
        else:
            self.add(batch.events())

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
        for kept in self._kept:
            self.add(kept.events())
        self._kept.clear()
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
    activity: Activity | None = None  # the run in time slices
    started: float = math.nan  # when the client model began, in seconds since the run began
    changes: tuple[ServerChange, ...] = ()  # of its servers, while it ran
    # Accounts at its targets that none of its connections was matched to: a program's
    # beyond its targets (each target judged by its fullest), or an instrumented model's
    # that it never reported (with bytes).
    left_over: int = 0
    extra: tuple[ExtraConnection, ...] = ()  # a program's, as their servers saw them (in part)


Point = TypeVar("Point")


@dataclass
class _Conn:
    start: float = math.nan
    connected: float = math.nan
    first_byte: float = math.nan
    end: float = math.nan
    bytes: int = 0
    intact: bool | None = False
    error: str | None = None
    message: str | None = None
    phase: str | None = None
    ended: bool = False
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # in the run's wall seconds
    arrival_count: int = 0
    emissions: list[tuple[float, int, float]] = field(default_factory=list)
    emission_count: int = 0


def _spread(points: list[Point], most: int) -> list[Point]:
    """``most`` of ``points`` at most, spread evenly over all of them, the first and the last
    among them: a picture of a long connection still shows it busy to its end."""
    if len(points) <= most:
        return points
    if most < 2:
        return points[:most]
    last = len(points) - 1
    return [points[round(index * last / (most - 1))] for index in range(most)]


def measure(events: Sequence[Event], lateness: Sequence[float], slots: Sequence[Slot], time_scale: float,
            *, instrumented: bool = True, ideals: Sequence[tuple[float, float]] = ()) -> Measured:
    """Measure a run from its events: each connection from the client's side when the model
    reports its connections (``instrumented``), else from the servers' accounts alone; the
    servers' side is attached to each connection either way (``served``).

    Each connection also gets its course (start, end, arrivals and its server's emissions,
    the points bounded by KEPT_POINTS and KEPT_CONNECTIONS), and the run its Activity.
    ``ideals`` gives each connection's ideal start and end, in the order of ``slots``.
    A program that netsim had to end at its timeout leaves timeouts: its connections that
    closed once netsim began to end it.
    """
    started = finished = math.nan
    program: ProgramExited | None = None
    ended: list[ConnEnded] = []
    sent: list[ChunkSent] = []
    arrivals: list[tuple[float, int]] = []  # every one of the run, for its Activity
    conns = {number: _Conn() for number in range(1, len(slots) + 1)}
    keep = KEPT_POINTS if len(slots) <= KEPT_CONNECTIONS else 0
    changes: list[Change] = []
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
            case ChunkSent():
                sent.append(event)
            case (ConditionsChanged() | ServerWentDown() | ServerCameUp() | ConnsReset() | HandshakesHeld()
                  | HandshakesAnswered()):
                changes.append(event)
            case ConnStarted():
                conns[event.conn].start = event.t
            case ConnEstablished():
                conns[event.conn].connected = event.t
            case BytesReceived():
                conn = conns[event.conn]
                if math.isnan(conn.first_byte):
                    conn.first_byte = event.t
                conn.arrival_count += 1
                if keep:
                    conn.arrivals.append((event.t, event.bytes))
                arrivals.append((event.t, event.bytes))
            case EofReceived() | ConnFailed():
                conn = conns[event.conn]
                if not conn.ended:
                    conn.ended = True
                    conn.end = event.t
                    conn.bytes = event.bytes
                    conn.intact = event.intact
                    if isinstance(event, ConnFailed):
                        conn.error, conn.message, conn.phase = event.error, event.message, event.phase
    if program is not None:  # a program's run ends at its exit, not when its leftovers were cleared
        finished = program.t
    ended = clients_own(ended)  # a client's connections, told from the proxies' own upstream ones
    served = _match(ended, slots, instrumented)
    by_port = {(event.server, event.peer_port): number for number, event in served.items()}
    for chunk in sent:
        number = chunk.conn if instrumented else by_port.get((chunk.server, chunk.peer_port))
        if number is not None and number in conns:
            conn = conns[number]
            conn.emission_count += 1
            if keep:
                conn.emissions.append((chunk.t, chunk.bytes, chunk.lateness))

    def since(t: float) -> float:  # the run's wall clock to scenario seconds since the model started
        return (t - started) / time_scale

    results = []
    for number, conn in conns.items():
        slot = slots[number - 1]
        account = served.get(number)
        seen = None if account is None else _served(account, started, time_scale)
        ideal_start, ideal_end = ideals[number - 1] if ideals else (math.nan, math.nan)
        course: dict[str, Any] = {
            "ideal_start": ideal_start, "ideal_end": ideal_end,
            "arrivals": tuple((since(t), size) for t, size in _spread(conn.arrivals, keep)),
            "arrival_count": conn.arrival_count,
            "emissions": tuple((since(t), size, late / time_scale)
                               for t, size, late in _spread(conn.emissions, keep)),
            "emission_count": conn.emission_count,
        }
        if not instrumented:
            cut = (program is not None and program.stopped is not None and account is not None
                   and account.ended >= program.stopped)
            results.append(_from_the_server(number, slot, seen, cut=cut, **course))
            continue
        if not conn.ended:  # the model returned without finishing this connection
            conn.error, conn.message, conn.end = "error", "the client model never finished it", finished
        results.append(ConnectionResult(
            conn=number, server=slot.server, port=slot.port, bytes=conn.bytes, intact=conn.intact,
            error=conn.error, ttfb=(conn.first_byte - conn.start) / time_scale,
            duration=(conn.end - conn.start) / time_scale, message=conn.message, served=seen,
            start=since(conn.start), connected=since(conn.connected), end=since(conn.end),
            phase=conn.phase, **course))
    summary = lateness_of(lateness, time_scale)
    activity = activity_of(results, [(since(t), size) for t, size in arrivals],
                           [(since(chunk.t), chunk.lateness / time_scale) for chunk in sent],
                           span=since(finished))
    beyond = [] if instrumented else _beyond_targets(ended, slots, served)
    extra = tuple(ExtraConnection(event.server, _served(event, started, time_scale))
                  for event in beyond[:KEPT_CONNECTIONS])
    return Measured(finished - started, results, summary, summary.p99 * time_scale, program, activity,
                    started, server_changes(changes, started, time_scale),
                    _unreported(ended, slots) if instrumented else len(beyond), extra)


def server_changes(events: Sequence[Event], started: float, time_scale: float) -> tuple[ServerChange, ...]:
    """The servers' changes among ``events``, their times in scenario seconds since ``started``.

    A server's first state is no change: handshakes held from the start (``syn_drop``,
    ``handshake_delay``) are logged once the servers are ready, before any client starts.
    """
    changed: set[str] = set()  # the servers that have changed so far
    changes = []
    for event in events:
        if not isinstance(event, Change):
            continue
        first = event.server not in changed
        changed.add(event.server)
        if first and isinstance(event, HandshakesHeld):
            continue
        changes.append(ServerChange((event.t - started) / time_scale, event.server, *change_of(event)))
    return tuple(changes)


def change_of(event: Change) -> tuple[str, str]:
    """What a server's change was, in a few words, and what made it (a phase, the control API)."""
    match event:
        case ConditionsChanged():
            said = ", ".join(f"{key} {_written(value)}" for key, value in event.changes.items())
            return said or "no change", event.source
        case ServerWentDown():
            return "down" + (f", {event.reset} reset" if event.reset else ""), event.source
        case ServerCameUp():
            return ("up" if event.error is None else f"not up: {event.error}"), event.source
        case ConnsReset():
            return f"{event.count} reset", event.source
        case HandshakesHeld():
            return "handshakes held", ""
        case HandshakesAnswered():
            return "handshakes answered", ""


def _written(value: object) -> str:
    """A condition's value as a scenario would write it: ``500ms``, ``true``, ``{kind: reset}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_written(item)}" for key, item in value.items()) + "}"
    return str(value)


def activity_of(connections: Sequence[ConnectionResult], arrivals: Sequence[tuple[float, int]],
                emissions: Sequence[tuple[float, float]], *, span: float,
                slices: int = ACTIVITY_SLICES) -> Activity | None:
    """A run in ``slices`` equal slices of time, from 0 to its last end (``span`` at least):
    the connections open in each, the arrivals (t, bytes) and the emissions (t, lateness).
    None when the run has no length to cut (scenario seconds throughout)."""
    ends = [conn.end for conn in connections if not math.isnan(conn.end)]
    span = max([span, *ends]) if not math.isnan(span) else max(ends, default=math.nan)
    if not span > 0:
        return None
    width = span / slices

    def slot(t: float) -> int:
        return min(max(int(t / width), 0), slices - 1)

    change = [0] * (slices + 1)  # +1 where a connection opens, -1 after the slice it ends in
    for conn in connections:
        if math.isnan(conn.start):
            continue
        change[slot(conn.start)] += 1
        change[(slot(conn.end) if not math.isnan(conn.end) else slices - 1) + 1] -= 1
    open_ = list(itertools.accumulate(change[:slices]))
    counts, sizes = [0] * slices, [0] * slices
    for t, size in arrivals:
        index = slot(t)
        counts[index] += 1
        sizes[index] += size
    sent, latest = [0] * slices, [math.nan] * slices
    for t, late in emissions:
        index = slot(t)
        sent[index] += 1
        if not late <= latest[index]:  # also replaces the NaN of a slice's first emission
            latest[index] = late
    return Activity(width, tuple(open_), tuple(counts), tuple(sizes), tuple(sent), tuple(latest))


def served_connections(ended: Sequence[ConnEnded], slots: Sequence[Slot],
                       time_scale: float) -> list[ConnectionResult]:
    """Connections measured from their servers' accounts alone, one per slot, in order; times
    count from the servers' start, as the log's ``t`` and the control API's do. Served for
    a client outside netsim, a connection still open when the servers stopped was cut by
    their stop, not by a client's timeout."""
    return [_from_the_server(number, slot, _served(event, 0.0, time_scale), serving=True)
            for number, (event, slot) in enumerate(zip(ended, slots, strict=True), start=1)]


def clients_own(ended: Sequence[ConnEnded]) -> list[ConnEnded]:
    """The accounts of connections that clients made: those a proxy made to a server of the
    run, for a client's connection to the proxy, are left out (the proxy's account names
    them: its upstream and the local port it connected from), and a proxy's account takes
    the fault of the one upstream of it that cut or corrupted what it forwarded."""
    forwarded = {(event.upstream, event.upstream_port) for event in ended if event.upstream_port is not None}
    if not forwarded:
        return list(ended)
    by_peer: dict[tuple[str | None, int | None], ConnEnded] = {
        (event.server, event.peer_port): event for event in ended}

    def cut_before(event: ConnEnded, seen: int = 0) -> str | None:
        """The fault that cut or corrupted what a proxy got from its upstream, along its
        chain (a proxy passes on faithfully what it gets: its own account cannot tell)."""
        inner = by_peer.get((event.upstream, event.upstream_port))
        if inner is None or seen > len(ended):
            return None
        return inner.fault or cut_before(inner, seen + 1)

    own = []
    for event in ended:
        if (event.server, event.peer_port) in forwarded:
            continue
        if event.acked is None and event.fault is None and (fault := cut_before(event)) is not None:
            event = dataclasses.replace(event, fault=fault)
        own.append(event)
    return own


def _unreported(ended: Sequence[ConnEnded], slots: Sequence[Slot]) -> int:
    """How many connections to its targets an instrumented model carried bytes over and
    never reported by its port (connected(local_port)): the servers accounted for them,
    and no connection of the model's is theirs. (One the client gave up before its
    handshake was answered carried nothing.)"""
    targets = {slot.server for slot in slots}
    return sum(1 for event in ended if event.conn is None and event.server in targets
               and (event.acked if event.acked is not None else event.bytes) > 0)


def _beyond_targets(ended: Sequence[ConnEnded], slots: Sequence[Slot],
                    served: Mapping[int, ConnEnded]) -> list[ConnEnded]:
    """A program's connections to its targets' servers beyond its targets, those no target
    was matched to (``ended``: the clients' own, ``clients_own``), in the order they were
    accepted."""
    targets = {slot.server for slot in slots}
    matched = {id(event) for event in served.values()}
    return sorted((event for event in ended if event.server in targets and id(event) not in matched),
                  key=lambda event: event.accepted)


def _match(ended: Sequence[ConnEnded], slots: Sequence[Slot], instrumented: bool) -> dict[int, ConnEnded]:
    """Each connection's account by connection number.

    The runner has matched an instrumented model's connections by port already (``conn``);
    a program's are taken to be made in its order of targets: a server's first accepted
    connection is the first connection to it, and so on. A program that made more
    connections to a server than it has targets there (one that checks a port first, or
    reads twice) is judged by those that carried the most, in the order they came: a
    probe that carried nothing is not taken for its reading.
    """
    if instrumented:
        return {event.conn: event for event in ended if event.conn is not None}
    waiting: dict[str, list[int]] = {}
    for number, slot in enumerate(slots, start=1):
        waiting.setdefault(slot.server, []).append(number)
    accounts: dict[str, list[ConnEnded]] = {}
    for event in ended:
        accounts.setdefault(event.server, []).append(event)
    matched = {}
    for server, events in accounts.items():
        numbers = waiting.get(server, [])
        fullest = sorted(events, key=lambda event: (-(event.bytes if event.acked is None else event.acked),
                                                    event.index))[:len(numbers)]
        for number, event in zip(numbers, sorted(fullest, key=lambda event: event.index), strict=False):
            matched[number] = event
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
    # errors.reset counts resets that came to the client: one it sent is its own leaving.
    "client_reset": ("error", "the client reset it (it closed with bytes unread)"),
    "client_closed": ("error", "the client closed it before the server's end"),
    # A proxy's: bytes of its upstream's were still to come (held by the proxy's conditions,
    # or not yet sent), as a poem server's client_closed before its end.
    "client_closed_early": ("error", "the client closed it before its upstream's end: bytes its upstream "
                                     "sent came after it had gone"),
    "error": ("error", "the connection failed"),
    "stopped": ("timeout", "still open when the client's run ended"),
    # Not counted by errors.reset, which is for the resets a scenario means to send.
    "upstream_failed": ("error", "the proxy could not reach its upstream (or lost it), and reset the "
                                 "connection (the log's upstream_failed or upstream_lost says why)"),
}


def _from_the_server(number: int, slot: Slot, served: Served | None, *, cut: bool = False,
                     serving: bool = False, **course: Any) -> ConnectionResult:
    """A connection of a client that reports none, from its server's account; ``cut``: it
    ended when netsim ended the client's program at its timeout; ``serving``: the servers
    were serving a client outside netsim (``serving()``, ``netsim serve``), so they stopped
    on their own account, not at the end of a client's run; ``course``: the fields of its
    course that the account does not give."""
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
                                served=None, phase=phase, **course)
    error: str | None
    message: str | None
    error, message = _ENDINGS[served.how]
    proxy = served.acked is None  # (a poem server's account gives what the client's kernel acked)
    if proxy and served.how == "reset":
        message = "the proxy reset it (a reset fault, or its server went down with a reset)"
    if serving and served.how == "stopped":
        error, message = "stopped", "still open when the servers stopped"
    if served.how == "client_closed" and served.fault in ("stall", "blackhole"):
        # Nothing more was coming: the client gave up waiting, as its timeout would.
        error, message = "timeout", f"the client left the silent connection (a {served.fault} fault)"
    elif cut and served.how in ("client_closed", "client_reset", "client_closed_early"):
        error, message = "timeout", "still open when netsim ended the program at its timeout"
    elif served.how == "client_closed" and served.fault is None and proxy:
        # It had every byte it had been sent (a close with bytes unread would have been a
        # reset, bytes coming after it client_closed_early): a client done with a service, say an
        # HTTP client with its whole answer, leaves before its upstream.
        error, message = None, "the client closed it first, with every byte its upstream had sent"
    elif served.how == "client_closed" and served.fault is None and served.acked == slot.expected:
        # It had every byte (a close with bytes unread would have been a reset): a client that
        # knows where the poem ends need not wait out the server's last pause.
        error, message = None, "the client closed it with the whole poem, before the server's end"
    received = served.bytes if served.acked is None else served.acked
    if served.how in ("client_closed", "client_reset") and error == "error":
        # How far it read tells which part of the client gave up: after a first recv, or near the end.
        whole = "" if slot.expected is None else f" of {slot.expected}"
        message = f"{message}, after {received}{whole} bytes"
    if proxy:
        # A proxy knows no poem, but whether the client had all its upstream sent, as sent: the
        # fault a proxy's account names is one that cut, stopped or corrupted the stream.
        intact: bool | None = (error is None and served.how in ("closed", "client_closed")
                               and served.fault is None)
    else:
        intact = None if slot.expected is None else (
            served.how in ("closed", "client_closed") and served.acked == slot.expected
            and served.fault != "corrupt")
    if error is None and served.fault == "corrupt":
        message = ("its bytes came corrupted (a corrupt fault, the proxy's or one upstream of it)" if proxy
                   else "the server sent it corrupted bytes (a corrupt fault)")
    elif error is None and intact is False and proxy:
        message = f"cut after {received} bytes (a {served.fault} fault, the proxy's or one upstream of it)"
    elif error is None and intact is False:
        message = f"the client's kernel acknowledged {received} of {slot.expected} bytes"
    elif error is None and served.how == "closed":
        message = None
    return ConnectionResult(conn=number, server=slot.server, port=slot.port, bytes=received,
                            intact=intact, error=error, ttfb=served.ttfb, duration=served.duration,
                            message=message, served=served, start=served.accepted,
                            connected=served.accepted, end=served.accepted + served.duration, **course)
