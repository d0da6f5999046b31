"""What a run would take with zero overhead, derived from the scenario itself.

The model is a small simulation of the scenario's timeline, not a table of constants:

* a connection to a server is *served* for ``len(chunks) * delay``: the first byte goes
  out on accept, and the server closes one ``delay`` after its last chunk;
* a sequential client (``concurrent=False``) opens its next connection when the
  previous one has closed, so its times add up;
* a concurrent client opens every connection at once, so its times overlap;
* a serial server serves one connection at a time, in the order they arrived, so
  connections to it queue; a concurrent server serves them all at once.

Times are in scenario seconds (before any time scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netsim.scenario import Server


@dataclass(frozen=True)
class IdealConnection:
    """When one connection would start, see its first byte, and end."""

    server: str
    start: float
    first_byte: float
    end: float

    @property
    def ttfb(self) -> float:
        return self.first_byte - self.start

    @property
    def duration(self) -> float:
        return self.end - self.start


def service_time(server: Server) -> float:
    """How long a server takes over one connection once it has accepted it."""
    return len(server.chunks()) * server.delay


def ideal_timeline(targets: Sequence[Server], *, concurrent: bool) -> list[IdealConnection]:
    """The ideal start, first byte and end of each connection, in the targets' order."""
    free_at: dict[str, float] = {}  # when each serial server can accept its next connection
    timeline: list[IdealConnection] = []
    clock = 0.0
    for server in targets:
        start = 0.0 if concurrent else clock
        served = max(start, free_at.get(server.name, 0.0)) if server.mode == "serial" else start
        end = served + service_time(server)
        if server.mode == "serial":
            free_at[server.name] = end
        timeline.append(IdealConnection(server.name, start, served, end))
        clock = end
    return timeline


def ideal_elapsed(targets: Sequence[Server], *, concurrent: bool) -> float:
    """The ideal time of a whole client run: when its last connection ends."""
    return max((conn.end for conn in ideal_timeline(targets, concurrent=concurrent)), default=0.0)
