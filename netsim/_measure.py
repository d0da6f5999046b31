"""Turn the events of one client model's run into its measured results."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from dataclasses import dataclass

from netsim.events import (
    CONNECTION_EVENTS,
    BytesReceived,
    ClientFinished,
    ClientStarted,
    ConnectionEvent,
    ConnEstablished,
    ConnFailed,
    ConnStarted,
    EofReceived,
    Event,
    Observer,
    ServerListening,
)
from netsim.results import ConnectionResult, Lateness, percentile


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
            elif isinstance(event, ServerListening):
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


@dataclass
class _Conn:
    start: float = math.nan
    first_byte: float = math.nan
    end: float = math.nan
    bytes: int = 0
    intact: bool | None = False
    error: str | None = None
    message: str | None = None
    ended: bool = False


def measure(
    events: Sequence[Event], lateness: Sequence[float], ports: dict[str, int], servers: Sequence[str],
    time_scale: float,
) -> tuple[float, list[ConnectionResult], Lateness, float]:
    """Elapsed wall seconds, connections, lateness (scenario time) and p99 lateness (wall)."""
    started = finished = math.nan
    conns = {number: _Conn() for number in range(1, len(servers) + 1)}
    for event in events:
        match event:
            case ClientStarted():
                started = event.t
            case ClientFinished():
                finished = event.t
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
                        conn.error, conn.message = event.error, event.message
    results = []
    for number, conn in conns.items():
        server = servers[number - 1]
        if not conn.ended:  # the model returned without finishing this connection
            conn.error, conn.message, conn.end = "error", "the client model never finished it", finished
        results.append(ConnectionResult(
            conn=number, server=server, port=ports[server], bytes=conn.bytes, intact=conn.intact,
            error=conn.error, ttfb=(conn.first_byte - conn.start) / time_scale,
            duration=(conn.end - conn.start) / time_scale, message=conn.message))
    scaled = sorted(value / time_scale for value in lateness)  # once: 100,000 values at scale
    p99 = percentile(scaled, 99, ordered=True)
    summary = Lateness(p50=percentile(scaled, 50, ordered=True), p99=p99,
                       max=scaled[-1] if scaled else math.nan, count=len(scaled))
    return finished - started, results, summary, p99 * time_scale
