"""A run in the Chrome Trace Event format (JSON), which ui.perfetto.dev and
chrome://tracing open as they are.

The layout: a process per client model and one for its servers (``servers``), each
with a track per connection. A client's connection track has a span for the whole
connection and, inside it, one for the handshake (``connecting``); an instant for each
arrival of bytes and for its end. A server's connection track has a span from accept
to end (``served``) and an instant for each chunk sent. Counters add up the bytes each
client model received and each set of servers sent. With ``--repeat``, each run has
processes of its own.

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
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from netsim.events import (
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

# Events that are a connection's ends or spans, drawn as such; the rest become instants.
_SPANNED = (ConnStarted, ConnEstablished, ConnAccepted, ConnEnded, ClientStarted, ClientFinished)


class TraceRecorder:
    """An observer that keeps a run's events, and turns them into a trace once it is over."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self.runs: list[list[Event]] = [[]]  # the events of each repeat, as they arrived

    def __repr__(self) -> str:
        return f"<TraceRecorder runs={len(self.runs)} events={sum(map(len, self.runs))}>"

    def __call__(self, event: Event) -> None:
        self.runs[-1].append(event)

    def next_run(self) -> None:
        """The events from here on are of the next repeat."""
        if self.runs[-1]:
            self.runs.append([])

    def trace(self, *, scenario: str) -> dict[str, Any]:
        """The whole trace, as the JSON object Perfetto reads."""
        records: list[Record] = []
        pids = _Pids()
        for number, events in enumerate(self.runs, start=1):
            suffix = f" (run {number})" if len(self.runs) > 1 else ""
            records += _run_records(sorted(events, key=lambda event: event.t), self.time_scale, pids, suffix)
        return {
            "traceEvents": records,
            "displayTimeUnit": "ms",
            "otherData": {"scenario": scenario, "time_scale": self.time_scale,
                          "times": "scenario time since the run began: ts and dur in microseconds, "
                                   "scheduled and lateness in seconds"},
        }

    def text(self, *, scenario: str) -> str:
        # One record a line: a diff of two traces reads, and the file stays compact.
        trace = self.trace(scenario=scenario)
        records = ",\n".join(json.dumps(record, separators=(",", ":")) for record in trace.pop("traceEvents"))
        head = json.dumps(trace)[:-1]
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


def _run_records(events: list[Event], time_scale: float, pids: _Pids, suffix: str) -> list[Record]:
    """The records of one run: its events in time order, per client model."""
    by_client: dict[str | None, list[Event]] = defaultdict(list)
    for event in events:
        by_client[getattr(event, "client", None)].append(event)
    servers = _Servers(pids.process(f"servers{suffix}"))
    pids.thread(servers.pid, 0, "listeners")
    records: list[Record] = []
    for client, theirs in by_client.items():
        label = client if client is not None else "unmatched"
        records += _Run(theirs, time_scale, pids.process(f"client {label}{suffix}"), servers, pids).records()
    return _flush(pids, records)


def _flush(pids: _Pids, records: list[Record]) -> list[Record]:
    """The metadata handed out so far, then ``records``."""
    meta, pids.records = pids.records, []
    return meta + records


class _Servers:
    """The process of a run's servers: a track per connection of any client model."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tids: dict[tuple[str, str, int | str], int] = {}  # by (client, server, conn or port)
        self.sent = 0  # bytes, for the counter


class _Run:
    """The records of one client model's run: its connections, and its servers' side of them."""

    def __init__(self, events: list[Event], time_scale: float, client_pid: int, servers: _Servers,
                 pids: _Pids) -> None:
        self.events = events
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
        established: dict[int, float] = {}
        received: dict[int, int] = defaultdict(int)
        total = 0
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
                    established[event.conn] = event.t
                    if event.conn in opened:
                        yield self._span(pid, event.conn, "connecting", opened[event.conn].t, event.t,
                                         local_port=event.local_port)
                case BytesReceived():
                    received[event.conn] += event.bytes
                    total += event.bytes
                    yield self._instant(pid, event.conn, "bytes_received", event.t, bytes=event.bytes,
                                        **self._due(event.conn, received[event.conn], event.t))
                    yield {"ph": "C", "name": "bytes received", "pid": pid, "tid": 0, "ts": self.ts(event.t),
                           "args": {"bytes": total}}
                case EofReceived() | ConnFailed():
                    start = opened.get(event.conn)
                    if start is not None:
                        how = event.error if isinstance(event, ConnFailed) else "eof"
                        yield self._span(pid, event.conn, f"{start.server}: {how}", start.t, event.t,
                                         server=start.server, port=start.port, bytes=event.bytes,
                                         ending=how, intact=event.intact)
                    yield self._instant(pid, event.conn, event.name, event.t,
                                        **_args(event, skip=("t", "client", "server", "conn")))

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
        for event in self.events:
            match event:
                case ServerListening():
                    yield self._instant(pid, 0, event.name, event.t,
                                        **_args(event, skip=("t", "client")))
                case ConnEnded():
                    tid = self._server_tid(event.server, event.conn, event.peer_port)
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
                    yield {"ph": "C", "name": "bytes sent", "pid": pid, "tid": 0, "ts": self.ts(event.t),
                           "args": {"bytes": self.servers.sent}}
                case _ if isinstance(event, _SPANNED) or not hasattr(event, "peer_port"):
                    continue
                case _:
                    tid = self._server_tid(getattr(event, "server", "?"), getattr(event, "conn", None),
                                           getattr(event, "peer_port", 0))
                    yield self._instant(pid, tid, event.name, event.t,
                                        **_args(event, skip=("t", "client", "server", "conn", "peer_port")))

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
        return {"ph": "i", "s": "t", "name": name, "pid": pid, "tid": tid, "ts": self.ts(t), "args": args}


def _args(event: Event, *, skip: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in event.fields().items() if key not in skip and key != "event"}
