"""What a run would take with zero overhead, derived from the scenario itself.

The model is a small simulation of the scenario's timeline, not a table of constants:

* a connection to a server is served on the server's schedule (``conditions.py``): its
  pauses (with the run's seeded jitter), ``initial_delay``, ``rate``, ``accept_delay``
  and ``close_delay``, and the fault the seed gives it, if any;
* a sequential client (``concurrent=False``) opens its next connection when the
  previous one has ended, so its times add up;
* a concurrent client opens every connection at once, so its times overlap;
* a serial server serves one connection at a time, in the order they arrived, so
  connections to it queue; a concurrent server serves them all at once;
* a client gives a connection up after ``timeout`` without a byte (connecting, queueing
  and stalls included): that is how a stalled or blackholed connection ends;
* a proxy whose upstream is a server of the scenario passes that server's schedule
  through its own conditions; one whose upstream is outside the scenario has no ideal
  (NaN).

Times are in scenario seconds (before any time scale).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netsim.conditions import Conditions, StreamSchedule, cut, fault_of, pause_stream
from netsim.scenario import Server


@dataclass(frozen=True)
class IdealConnection:
    """When one connection would start, see its first byte, and end, and how."""

    server: str
    start: float
    first_byte: float  # NaN when no byte would arrive
    end: float
    outcome: str | None = None  # None (clean end), "refused", "reset" or "timeout"
    bytes: int = 0
    silence: float = 0.0  # the longest wait for a byte, connecting included

    @property
    def ttfb(self) -> float:
        return self.first_byte - self.start

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class _Service:
    """What a server does with one connection from the moment it accepts it."""

    arrivals: list[tuple[float, bytes]]  # when each piece of data goes out, and the piece
    end: float | None  # when the server ends the connection; None: it never does
    outcome: str | None


def service_time(server: Server) -> float:
    """How long a fault-free poem server takes over one connection once it has accepted it."""
    service = _serve_poem(server, Conditions.of(server), None, 0, 1, 0.0)
    assert service.end is not None
    return service.end


def ideal_timeline(
    targets: Sequence[Server],
    *,
    concurrent: bool,
    seed: int = 0,
    timeout: float = math.inf,
    servers: Mapping[str, Server] | None = None,
    faults: bool = True,
    starts: Sequence[float] | None = None,
) -> list[IdealConnection]:
    """The ideal course of each connection, in the targets' order.

    ``servers`` resolves a proxy's upstream by name; ``faults=False`` ignores faults
    (used to derive a default timeout from the fault-free schedule); ``starts`` gives
    each connection's earliest start (a ramp), 0 by default.
    """
    by_name = dict(servers or {})
    by_name.update({server.name: server for server in targets})
    accepted: Counter[str] = Counter()  # connections each server has accepted so far
    free_at: dict[str, float] = {}  # when each serial server can accept its next connection
    timeline: list[IdealConnection] = []
    clock = 0.0
    for position, server in enumerate(targets):
        earliest = starts[position] if starts is not None else 0.0
        connect = earliest if concurrent else max(clock, earliest)
        conditions = Conditions.of(server)
        if not faults:
            conditions = conditions.without_fault()
        if conditions.fault == "refuse":
            timeline.append(IdealConnection(server.name, connect, math.nan, connect, "refused"))
            clock = connect
            continue
        served = max(connect, free_at.get(server.name, 0.0)) if server.mode == "serial" else connect
        accepted[server.name] += 1
        service = _serve(server, conditions, by_name, seed, accepted, served, faults)
        conn = _as_seen_by_client(server.name, connect, service, timeout)
        if server.mode == "serial":
            free_at[server.name] = max(served, conn.end)
        timeline.append(conn)
        clock = conn.end
    return timeline


def ideal_elapsed(targets: Sequence[Server], *, concurrent: bool, **options: object) -> float:
    """The ideal time of a whole client run: when its last connection ends (NaN if unknown)."""
    return elapsed_of(ideal_timeline(targets, concurrent=concurrent, **options))  # type: ignore[arg-type]


def elapsed_of(timeline: Sequence[IdealConnection]) -> float:
    """When the last connection of an ideal timeline ends (NaN if any end is unknown)."""
    ends = [conn.end for conn in timeline]
    # max() skips a NaN that is not first, which would hide an unknown connection's time
    if any(math.isnan(end) for end in ends):
        return math.nan
    return max(ends, default=0.0)


def _as_seen_by_client(name: str, connect: float, service: _Service, timeout: float) -> IdealConnection:
    """Apply the client's timeout to the server's course: a long enough silence ends it."""
    last = connect
    silence = 0.0
    received = 0
    first = math.nan
    for when, data in service.arrivals:
        gap = when - last
        if gap > timeout:
            return IdealConnection(name, connect, first, last + timeout, "timeout", received,
                                   max(silence, gap))
        silence = max(silence, gap)
        if math.isnan(first):
            first = when
        received += len(data)
        last = when
    if service.end is None or service.end - last > timeout:
        gap = math.inf if service.end is None else service.end - last
        return IdealConnection(name, connect, first, last + timeout, "timeout", received,
                               max(silence, gap))
    return IdealConnection(name, connect, first, service.end, service.outcome, received,
                           max(silence, service.end - last))


def _serve(server: Server, conditions: Conditions, servers: Mapping[str, Server], seed: int,
           accepted: Counter[str], start: float, faults: bool) -> _Service:
    index = accepted[server.name]
    if server.upstream is None:
        fault = fault_of(conditions, seed, server.name, index)
        return _serve_poem(server, conditions, fault, seed, index, start)
    upstream = servers.get(server.upstream)
    if upstream is None:  # a service outside the scenario: its timing is unknown
        return _Service([], math.nan, None)
    return _serve_proxy(server, conditions, upstream, servers, seed, accepted, start, faults)


def _serve_poem(server: Server, conditions: Conditions, fault: str | None, seed: int, index: int,
                start: float) -> _Service:
    if fault == "blackhole":
        return _Service([], None, None)
    schedule = StreamSchedule(conditions, pause_stream(seed, server.name, index),
                              start + conditions.accept_delay,
                              fault_after=conditions.fault_after if fault else None)
    chunks = server.chunks()
    for chunk in chunks:
        schedule.add(len(chunk), start)
    payload = b"".join(chunks)
    arrivals = _pieces(schedule, payload)
    if schedule.fault_at is not None:
        return _struck(fault, arrivals, schedule.fault_at)
    return _Service(arrivals, schedule.close_time(start), None)


def _serve_proxy(proxy: Server, conditions: Conditions, upstream: Server, servers: Mapping[str, Server],
                 seed: int, accepted: Counter[str], start: float, faults: bool) -> _Service:
    index = accepted[proxy.name]
    fault = fault_of(conditions, seed, proxy.name, index)
    if fault == "blackhole":
        return _Service([], None, None)
    connected = start + conditions.accept_delay
    upstream_conditions = Conditions.of(upstream) if faults else Conditions.of(upstream).without_fault()
    if upstream_conditions.fault == "refuse":  # the proxy's connect fails: it resets the client
        return _Service([], connected, "reset")
    accepted[upstream.name] += 1
    source = _serve(upstream, upstream_conditions, servers, seed, accepted, connected, faults)
    if (proxy.direction or "downstream") == "upstream":
        # Downstream passes straight through; the proxy's fault counts the client's bytes,
        # and a client model sends none, so it never strikes.
        return source
    schedule = StreamSchedule(conditions, pause_stream(seed, proxy.name, index), connected,
                              fault_after=conditions.fault_after if fault else None)
    chunking = proxy.chunk if isinstance(proxy.chunk, str) else proxy.chunk.bytes
    forwarded = bytearray()
    for when, data in source.arrivals:
        for piece in cut(data, chunking):
            forwarded += piece[:schedule.add(len(piece), when)]
    arrivals = _pieces(schedule, bytes(forwarded))
    if schedule.fault_at is not None:
        return _struck(fault, arrivals, schedule.fault_at)
    if source.end is None or math.isnan(source.end):
        return _Service(arrivals, source.end, source.outcome)
    if source.outcome == "reset":  # the proxy passes the upstream's reset on at once
        return _Service([a for a in arrivals if a[0] <= source.end], source.end, "reset")
    return _Service(arrivals, schedule.close_time(source.end), None)


def _struck(fault: str | None, arrivals: list[tuple[float, bytes]], fault_at: float) -> _Service:
    """How a connection ends once its fault has struck: a stall never ends, a reset
    ends in the error, a close ends cleanly."""
    if fault == "stall":
        return _Service(arrivals, None, None)
    return _Service(arrivals, fault_at, "reset" if fault == "reset" else None)


def _pieces(schedule: StreamSchedule, payload: bytes) -> list[tuple[float, bytes]]:
    pieces = []
    offset = 0
    for emission in schedule.emissions:
        pieces.append((emission.due, payload[offset:offset + emission.size]))
        offset += emission.size
    return pieces
