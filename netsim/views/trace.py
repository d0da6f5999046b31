"""A run in the Chrome Trace Event format (JSON), which ui.perfetto.dev and
chrome://tracing open as they are.

The layout: a process per client model and one for its servers (``servers``), each
with a track per connection. A client's connection track has a span for the whole
connection and, inside it, one for the handshake (``connecting``), written after the
span that holds it (chrome://tracing nests spans that start together in the order it
reads them); an instant for each arrival of bytes and for its end. A server's
connection track has a span from accept to end (``served``) and an instant for each
chunk sent. Each change of a server (a phase, a live change, an outage) is a line
across the servers' process, named with the server and the change (``a: delay
100ms``), its kind in ``cat``. Counters add up the bytes each client model received and
each set of servers sent. With ``--repeat``, each run has processes of its own.

A run that did not finish (``stopped``) ends every connection and client model still
open then with a span to that moment, its ``ending`` ``stopped``.

Times (``ts``, ``dur``) are scenario microseconds since the run began; the ``scheduled``
and ``lateness`` args are scenario seconds. An arrival's ``scheduled`` is when its
server was due to send the last byte it brought, and its ``lateness`` how long after
that it arrived: the delay a reader of the trace wants to see.

The trace is built from the typed events (netsim.events) that the runner gives its
observer, so it needs a run with detail: the session asks for it with ``--trace``.
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from netsim._measure import Change, change_of
from netsim.events import (
    SERVER_STATE_EVENTS,
    BytesReceived,
    ChunkSent,
    ClientFinished,
    ClientStarted,
    ConnAccepted,
    ConnEnded,
    ConnEstablished,
    ConnFailed,
    ConnStarted,
    EofReceived,
    Event,
    ServerListening,
)

Record = dict[str, Any]  # one trace event, as JSON will write it

COUNTER_STEP = 1000.0  # µs of scenario time between two samples of a counter

# Events that are a connection's ends or spans, drawn as such; the rest become instants.
_SPANNED = (ConnStarted, ConnEstablished, ConnAccepted, ConnEnded, ClientStarted, ClientFinished)


class TraceRecorder:
    """An observer that keeps a run's events, and turns them into a trace as it goes.

    Each client model's events become records (JSON text) once its run is over
    (``finish_client``), so that a run of ten thousand connections holds the trace's text,
    not its events and their dicts as well.
    """

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._pending: list[Event] = []  # the events of the client model under way
        self._lines: list[str] = []  # every record so far, as JSON
        self._pids = _Pids()
        self._servers: _Servers | None = None  # the process of this run's servers, once it has one
        self._suffix = ""
        # When the run began on this process's monotonic clock, at the latest: an event's
        # time counts from then, and it arrives a moment after it happened.
        self._began = math.inf
        self._stopped: float | None = None  # when the run stopped before it finished (run seconds)

    def __repr__(self) -> str:
        return f"<TraceRecorder records={len(self._lines)} pending={len(self._pending)}>"

    def __call__(self, event: Event) -> None:
        self._pending.append(event)
        self._began = min(self._began, time.monotonic() - event.t)

    def next_run(self, number: int, count: int) -> None:
        """The events from here on are of repeat ``number`` of ``count``."""
        self.finish_client()
        self._suffix = f" (run {number})" if count > 1 else ""
        self._servers = None
        self._began = math.inf  # each run's clock starts at 0

    def stopped(self) -> None:
        """The run stopped now, before it finished: what was still open ends here."""
        if math.isfinite(self._began):
            self._stopped = time.monotonic() - self._began

    def finish_client(self) -> None:
        """Turn the events so far (a client model's whole run) into records."""
        if not self._pending:
            return
        events = sorted(self._pending, key=lambda event: event.t)
        self._pending = []
        pids = self._pids
        if self._servers is None:
            self._servers = _Servers(pids.process(f"servers{self._suffix}"))
            pids.thread(self._servers.pid, 0, "listeners")
        by_client: dict[str | None, list[Event]] = defaultdict(list)
        for event in events:
            by_client[getattr(event, "client", None)].append(event)
        records: list[Record] = []
        for client, theirs in by_client.items():
            label = client if client is not None else "unmatched"
            pid = pids.process(f"client {label}{self._suffix}")
            records += _Run(theirs, self.time_scale, pid, self._servers, pids, self._stopped).records()
        meta, pids.records = pids.records, []
        self._lines += [json.dumps(record, separators=(",", ":")) for record in meta + records]

    def text(self, *, scenario: str) -> str:
        """The whole trace: the JSON object Perfetto reads, one record a line (so that two
        traces diff line by line)."""
        self.finish_client()
        head = json.dumps({
            "displayTimeUnit": "ms",
            "otherData": {"scenario": scenario, "time_scale": self.time_scale,
                          "times": "scenario time since the run began: ts and dur in microseconds, "
                                   "scheduled and lateness in seconds"},
        })[:-1]
        records = ",\n".join(self._lines)
        return f'{head}, "traceEvents": [\n{records}\n]}}\n'


class _Pids:
    """Process and thread ids, handed out in order, with their names as metadata records."""

    def __init__(self) -> None:
        self.next_pid = 1
        self.records: list[Record] = []

    def process(self, name: str) -> int:
        pid = self.next_pid
        self.next_pid += 1
        self.records.append(_meta("process_name", pid, 0, name=name))
        self.records.append(_meta("process_sort_index", pid, 0, sort_index=pid))
        return pid

    def thread(self, pid: int, tid: int, name: str) -> None:
        self.records.append(_meta("thread_name", pid, tid, name=name))
        self.records.append(_meta("thread_sort_index", pid, tid, sort_index=tid))


def _meta(kind: str, pid: int, tid: int, **args: Any) -> Record:
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": args}


class _Servers:
    """The process of a run's servers: a track per connection of any client model."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tids: dict[tuple[str, str, int | str], int] = {}  # by (client, server, conn or port)
        self.sent = 0  # bytes, for the counter


class _Run:
    """The records of one client model's run: its connections, and its servers' side of them."""

    def __init__(self, events: list[Event], time_scale: float, client_pid: int, servers: _Servers,
                 pids: _Pids, stopped: float | None = None) -> None:
        self.events = events
        self.stopped = stopped  # when the run stopped before it finished (run seconds)
        self.scale = time_scale
        self.client_pid = client_pid
        self.servers = servers
        self.pids = pids
        self.client = next((str(event.client) for event in events if getattr(event, "client", None)), "?")
        # Per connection: where each chunk its server sent ends (bytes so far), and when it was due.
        self.schedule: dict[int, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))

    def ts(self, t: float) -> float:
        return round(t / self.scale * 1e6, 3)

    def seconds(self, t: float) -> float:
        return round(t / self.scale, 9)

    def records(self) -> list[Record]:
        for event in self.events:
            if isinstance(event, ChunkSent) and event.conn is not None:
                ends, due = self.schedule[event.conn]
                ends.append((ends[-1] if ends else 0) + event.bytes)
                due.append(event.scheduled)
        self.pids.thread(self.client_pid, 0, "client model")
        return list(self._client()) + list(self._servers())

    # --- the client's side ------------------------------------------------------------------

    def _client(self) -> Iterator[Record]:
        pid = self.client_pid
        opened: dict[int, ConnStarted] = {}
        connecting: dict[int, Record] = {}  # each handshake's span, written after the one holding it
        received: dict[int, int] = defaultdict(int)
        total = 0
        counted = _Counter(pid, "bytes received")
        started: ClientStarted | None = None
        for event in self.events:
            match event:
                case ClientStarted():
                    started = event
                case ClientFinished() if started is not None:
                    yield self._span(pid, 0, started.model, started.t, event.t,
                                     connections=started.connections)
                case ConnStarted():
                    opened[event.conn] = event
                    self.pids.thread(pid, event.conn, f"#{event.conn} → {event.server}")
                case ConnEstablished():
                    start = opened.get(event.conn)
                    if start is not None:
                        connecting[event.conn] = self._span(pid, event.conn, "connecting", start.t, event.t,
                                                            local_port=event.local_port)
                case BytesReceived():
                    received[event.conn] += event.bytes
                    total += event.bytes
                    yield self._instant(pid, event.conn, "bytes_received", event.t, bytes=event.bytes,
                                        **self._due(event.conn, received[event.conn], event.t))
                    yield from counted.sample(self.ts(event.t), total)
                case EofReceived() | ConnFailed():
                    start = opened.pop(event.conn, None)
                    if start is not None:
                        how = event.error if isinstance(event, ConnFailed) else "eof"
                        yield self._span(pid, event.conn, f"{start.server}: {how}", start.t, event.t,
                                         server=start.server, port=start.port, bytes=event.bytes,
                                         ending=how, intact=event.intact)
                    if event.conn in connecting:
                        yield connecting.pop(event.conn)
                    yield self._instant(pid, event.conn, event.name, event.t,
                                        **_args(event, skip=("t", "client", "server", "conn")))
        if self.stopped is not None:  # what was open when the run stopped ends there
            if started is not None and not any(isinstance(event, ClientFinished) for event in self.events):
                yield self._span(pid, 0, started.model, started.t, self.stopped,
                                 connections=started.connections, ending="stopped")
            for conn, start in opened.items():
                yield self._span(pid, conn, f"{start.server}: open when the run stopped", start.t,
                                 self.stopped, server=start.server, port=start.port, bytes=received[conn],
                                 ending="stopped")
        yield from connecting.values()
        yield from counted.last()

    def _due(self, conn: int, received: int, t: float) -> dict[str, float]:
        """When the last byte of an arrival was due at its server, and how late it arrived."""
        ends, due = self.schedule.get(conn, ([], []))
        index = bisect.bisect_left(ends, received)
        if index >= len(due):
            return {}
        return {"scheduled": self.seconds(due[index]), "lateness": self.seconds(t - due[index])}

    # --- the servers' side ------------------------------------------------------------------

    def _servers(self) -> Iterator[Record]:
        pid = self.servers.pid
        counted = _Counter(pid, "bytes sent")
        accepted: dict[int, ConnAccepted] = {}  # by track, until they end
        for event in self.events:
            match event:
                case ConnAccepted():
                    accepted[self._server_tid(event.server, event.conn, event.peer_port)] = event
                case ServerListening():
                    yield self._instant(pid, 0, event.name, event.t,
                                        **_args(event, skip=("t", "client")))
                case ConnEnded():
                    tid = self._server_tid(event.server, event.conn, event.peer_port)
                    accepted.pop(tid, None)
                    yield self._span(pid, tid, "served", event.accepted, event.ended, how=event.how,
                                     bytes=event.bytes, acked=event.acked, fault=event.fault,
                                     peer=f"{event.peer_host}:{event.peer_port}")
                case ChunkSent():
                    tid = self._server_tid(event.server, event.conn, event.peer_port)
                    self.servers.sent += event.bytes
                    yield self._instant(pid, tid, event.name, event.t, bytes=event.bytes,
                                        scheduled=self.seconds(event.scheduled),
                                        lateness=self.seconds(event.lateness), index=event.index,
                                        held=event.held)
                    yield from counted.sample(self.ts(event.t), self.servers.sent)
                case _ if isinstance(event, Change):
                    # A phase, a live change, an outage: a line across the servers' process.
                    what, _ = change_of(event)
                    yield self._marker(pid, f"{event.server}: {what}", event.name, event.t,
                                       **_args(event, skip=("t", "client")))
                case _ if isinstance(event, SERVER_STATE_EVENTS):
                    continue  # (none but those above)
                case _ if isinstance(event, _SPANNED) or not hasattr(event, "peer_port"):
                    continue
                case _:
                    tid = self._server_tid(getattr(event, "server", "?"), getattr(event, "conn", None),
                                           getattr(event, "peer_port", 0))
                    yield self._instant(pid, tid, event.name, event.t,
                                        **_args(event, skip=("t", "client", "server", "conn", "peer_port")))
        if self.stopped is not None:
            for tid, event in accepted.items():
                yield self._span(pid, tid, "served (open when the run stopped)", event.t, self.stopped,
                                 how="stopped", fault=event.fault, peer=f"port {event.peer_port}")
        yield from counted.last()

    def _server_tid(self, server: str, conn: int | None, peer_port: int) -> int:
        tids = self.servers.tids
        key = (self.client, server, conn if conn is not None else f"port {peer_port}")
        tid = tids.get(key)
        if tid is None:
            tid = tids[key] = len(tids) + 1
            who = f"#{conn}" if conn is not None else f"port {peer_port}"
            self.pids.thread(self.servers.pid, tid, f"{server} ← {self.client} {who}")
        return tid

    # --- records ------------------------------------------------------------------------------

    def _span(self, pid: int, tid: int, name: str, start: float, end: float, **args: Any) -> Record:
        return {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": self.ts(start),
                "dur": max(self.ts(end) - self.ts(start), 0.0), "args": args}

    def _instant(self, pid: int, tid: int, name: str, t: float, **args: Any) -> Record:
        """A moment on its thread's track."""
        return {"ph": "i", "s": "t", "name": name, "pid": pid, "tid": tid, "ts": self.ts(t), "args": args}

    def _marker(self, pid: int, name: str, kind: str, t: float, **args: Any) -> Record:
        """A moment drawn across the whole of its process, its ``kind`` in ``cat`` and args."""
        return {"ph": "i", "s": "p", "name": name, "cat": kind, "pid": pid, "tid": 0, "ts": self.ts(t),
                "args": {"kind": kind, **args}}


class _Counter:
    """A counter's samples, at most one per COUNTER_STEP: ten thousand connections would
    otherwise add a sample for every one of their arrivals, which no picture can show."""

    def __init__(self, pid: int, name: str) -> None:
        self.pid = pid
        self.name = name
        self.shown = -math.inf  # when the last sample was written (µs)
        self.held: tuple[float, int] | None = None  # a sample not written yet

    def sample(self, ts: float, value: int) -> Iterator[Record]:
        if ts - self.shown >= COUNTER_STEP:
            self.shown, self.held = ts, None
            yield self._record(ts, value)
        else:
            self.held = (ts, value)

    def last(self) -> Iterator[Record]:
        """The last value, if it was held back: a counter ends where the run did."""
        if self.held is not None:
            yield self._record(*self.held)
            self.held = None

    def _record(self, ts: float, value: int) -> Record:
        return {"ph": "C", "name": self.name, "pid": self.pid, "tid": 0, "ts": ts, "args": {"bytes": value}}


def _args(event: Event, *, skip: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in event.fields().items() if key not in skip and key != "event"}
