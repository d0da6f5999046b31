"""Turn the events of one client model's run into its measured results."""

from __future__ import annotations

import array
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netsim.results import ConnectionResult, Lateness, percentile

Event = dict[str, Any]
Observer = Callable[[Event], None]


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
        self._held: dict[tuple[str, int], list[Event]] = {}  # by (server, peer port)
        self.lateness = array.array("d")  # every chunk's, in wall seconds, as the servers sent it

    def add_lateness(self, packed: bytes) -> None:
        self.lateness.frombytes(packed)

    def add(self, batch: Sequence[Event]) -> None:
        for event in batch:
            if self.client is None:
                self._deliver(event)
                continue
            if "peer_port" in event:
                key = (event["server"], event["peer_port"])
                if key not in self._conns:
                    self._held.setdefault(key, []).append(event)
                    continue
                self._tag(event)
            elif event["event"] == "conn_established":
                key = (event["server"], event["local_port"])
                self._conns[key] = event["conn"]
                self._deliver(event)
                for held in self._held.pop(key, []):
                    self._tag(held)
                    self._deliver(held)
                continue
            self._deliver(event)

    def finish(self) -> list[Event]:
        """Deliver whatever is still held; return every event of the run in time order."""
        for events in self._held.values():
            for event in events:
                self._deliver({**event, "client": self.client, "conn": None})
        self._held.clear()
        self.events.sort(key=lambda event: event["t"])
        return self.events

    def _tag(self, event: Event) -> None:
        event["client"] = self.client
        event["conn"] = self._conns[(event["server"], event["peer_port"])]

    def _deliver(self, event: Event) -> None:
        if self.client is not None:
            event.setdefault("client", self.client)
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
        name = event["event"]
        if name == "client_started":
            started = event["t"]
        elif name == "client_finished":
            finished = event["t"]
        elif name in ("conn_started", "bytes_received", "eof_received", "conn_failed"):
            conn = conns[event["conn"]]
            if name == "conn_started":
                conn.start = event["t"]
            elif name == "bytes_received" and math.isnan(conn.first_byte):
                conn.first_byte = event["t"]
            elif name in ("eof_received", "conn_failed") and not conn.ended:
                conn.ended = True
                conn.end = event["t"]
                conn.bytes = event["bytes"]
                conn.intact = event["intact"]
                conn.error = event.get("error")
                conn.message = event.get("message")
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
