"""What a run would take with zero overhead, derived from the scenario itself.

The model is a small simulation of the scenario's timeline, not a table of constants:

* a connection to a server is served on the server's schedule (``conditions.py``): its
  pauses (with the run's seeded jitter), ``initial_delay``, ``rate``, ``accept_delay``,
  ``close_delay`` and ``slice``, and the fault the seed gives it, if any: the very
  timeline the server plans (``conditions.plan_timeline``);
* a server's phases change its conditions at their ``at`` (counted from the client's
  start, when its servers are ready): an open connection's course is planned anew from
  where it stands (``conditions.replan``), as the server does; a server that is down
  refuses connects, and one that goes down with ``reset`` ends its open connections
  (those waiting their turn at a serial server too);
* a connect meets the server's listener as it is then: refused (down, ``refuse``),
  answered, or held (``syn_drop``, ``handshake_delay``), in which case the client's
  kernel sends its SYN again 1 s, 3 s, 7 s... later (wall seconds: these do not scale
  with the time scale) until one is answered or the client's timeout passes;
* a sequential client (``concurrent=False``) opens its next connection when the
  previous one has ended, so its times add up;
* a concurrent client opens every connection at once, so its times overlap;
* a serial server serves one connection at a time, in the order they arrived, so
  connections to it queue; a concurrent server serves them all at once;
* a client gives a connection up after ``timeout`` without a byte (connecting, queueing
  and stalls included): that is how a stalled or blackholed connection ends;
* a client that ``retry``-s tries a refused connect again that much later; the time its
  refused tries took is no silence: the timeout counts from the try that got in;
* a proxy whose upstream is a server of the scenario passes that server's schedule
  through its own conditions (those of the moment each piece reaches it, its fault
  included); one whose upstream is outside the scenario has no ideal (NaN).

Times are in scenario seconds (before any time scale).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from netsim.conditions import (
    CUTTING_FAULTS,
    Conditions,
    Streams,
    StreamSchedule,
    Timeline,
    cut,
    fault_of,
    pause_stream,
    plan_timeline,
    replan,
    slice_sizes,
)
from netsim.scenario import Server

# When Linux sends a connection's SYN, in wall seconds after connect(), by default: at
# once, then after a retransmission timeout of 1 s that doubles each time
# (net.ipv4.tcp_syn_retries = 6); after the last, it gives up (ETIMEDOUT). Linux 6.5 and
# later first retransmit net.ipv4.tcp_syn_linear_timeouts times (4 by default) 1 s apart:
# 0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, giving up at 131 s. syn_times() reads the
# machine's settings: client and servers share its kernel on loopback.
SYN_TIMES = (0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0)
SYN_GIVE_UP = 127.0  # wall seconds
SYN_RTO = 1.0  # seconds: TCP_TIMEOUT_INIT, the first retransmission timeout
SYN_RTO_MAX = 120.0  # seconds: TCP_RTO_MAX

# A client that retries a refused connect stops after this many tries in the model: a
# server that never comes back would otherwise keep it trying for ever.
MAX_RETRIES = 10_000


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
    phase: str | None = None  # "connect": it failed before the handshake completed

    @property
    def ttfb(self) -> float:
        return self.first_byte - self.start

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class _Service:
    """What a server does with one connection from the moment it accepts it."""

    arrivals: list[tuple[float, bytes | memoryview]]  # when each piece of data goes out, and the piece
    end: float | None  # when the server ends the connection; None: it never does
    outcome: str | None


@dataclass(frozen=True)
class _Era:
    """A stretch of a server's life, from ``begins`` until the next era: its conditions,
    whether it is down, until when handshakes go unanswered, and how many times its
    conditions have changed (the generation of the draws of a course planned anew)."""

    begins: float
    conditions: Conditions
    down: bool
    held_until: float
    generation: int
    resets: bool = False  # it began by going down with a reset
    changed: bool = False  # it began with a change of conditions


def _eras(server: Server, faults: bool, ready: float) -> list[_Era]:
    """The server's life, phase by phase (the first era from the start), the servers ready
    at ``ready``."""
    conditions = Conditions.of(server)
    if not faults:
        conditions = conditions.without_fault()
    eras = [_Era(-math.inf, conditions, False, ready + conditions.handshake_delay, 0)]
    for phase in server.phases:
        last = eras[-1]
        changed = conditions.changed(phase)
        if not faults:
            changed = changed.without_fault()
        keys = phase.model_fields_set - {"at", "down"}
        held_until = last.held_until
        if "handshake_delay" in keys:  # held from the phase on for that long (0: not at all)
            held_until = ready + phase.at + changed.handshake_delay
        conditions = changed
        eras.append(_Era(ready + phase.at, changed, phase.is_down, held_until,
                         last.generation + bool(keys), phase.resets, bool(keys)))
    return eras


def _era_at(eras: Sequence[_Era], when: float) -> _Era:
    """The era under way at ``when`` (one that begins at ``when`` is under way)."""
    current = eras[0]
    for era in eras[1:]:
        if era.begins > when:
            break
        current = era
    return current


def _gate_at(eras: Sequence[_Era], when: float) -> str:
    """What a SYN meets at ``when``: ``refused``, ``held`` or ``answered``."""
    era = _era_at(eras, when)
    if era.down or era.conditions.fault == "refuse":
        return "refused"
    if era.conditions.fault == "syn_drop" or when < era.held_until:
        return "held"
    return "answered"


def syn_times(time_scale: float, *, retries: int | None = None,
              linear: int | None = None) -> tuple[float, ...]:
    """When a connect's SYNs go, the moment its kernel gives up last, in scenario seconds
    at ``time_scale``: Linux's schedule for ``retries`` (tcp_syn_retries) and ``linear``
    (tcp_syn_linear_timeouts), read from this machine's settings where not given."""
    if retries is None:
        retries = _sysctl("tcp_syn_retries", 6)
    if linear is None:
        linear = _sysctl("tcp_syn_linear_timeouts", 0)  # older kernels have none
    times = [0.0]
    timeout = SYN_RTO
    for sent in range(1, retries + linear + 2):  # every retransmission, then the give-up
        times.append(times[-1] + timeout)
        # After its n-th retransmission the timeout stays at 1 s while n <= linear, and
        # doubles from then on (tcp_retransmit_timer).
        timeout = SYN_RTO if sent <= linear else min(timeout * 2, SYN_RTO_MAX)
    return tuple(when / time_scale for when in times)


def _sysctl(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/net/ipv4/{name}", encoding="ascii") as setting:
            return int(setting.read())
    except (OSError, ValueError):
        return default


def service_time(server: Server) -> float:
    """How long a fault-free poem server takes over one connection once it has accepted it."""
    conditions = Conditions.of(server)
    timeline = plan_timeline(server.chunks(), conditions, pauses=pause_stream(0, server.name, 1),
                             streams=Streams(0, server.name, 1))
    return conditions.accept_delay + timeline.end


def ideal_timeline(
    targets: Sequence[Server],
    *,
    concurrent: bool,
    seed: int = 0,
    timeout: float = math.inf,
    servers: Mapping[str, Server] | None = None,
    faults: bool = True,
    starts: Sequence[float] | None = None,
    syn: Sequence[float] | None = None,
    retry: float | None = None,
    ready: float = 0.0,
) -> list[IdealConnection]:
    """The ideal course of each connection, in the targets' order.

    ``servers`` resolves a proxy's upstream by name; ``faults=False`` ignores faults
    (used to derive a default timeout from the fault-free schedule); ``starts`` gives
    each connection's earliest start (a ramp), 0 by default; ``syn`` when a connect's
    SYNs go, the last when it gives up (``syn_times``, by default at time scale 1: they
    keep wall time, so they depend on the time scale);
    ``retry``, how long a client waits to connect again after a refusal; ``ready``, when
    the servers became ready (their phases count from then), 0 being the client's start.
    """
    by_name = dict(servers or {})
    by_name.update({server.name: server for server in targets})
    eras = {name: _eras(server, faults, ready) for name, server in by_name.items()}
    if syn is None:
        syn = syn_times(1.0)
    accepted: Counter[str] = Counter()  # connections each server has accepted so far
    free_at: dict[str, float] = {}  # when each serial server can accept its next connection
    # The serial servers whose last connection ended by the client's own timeout: the next
    # one waits until the server sees that close, strictly after, so its own timeout
    # falling at the same moment comes first.
    freed_by_timeout: set[str] = set()
    timeline: list[IdealConnection] = []
    clock = 0.0
    for position, server in enumerate(targets):
        earliest = starts[position] if starts is not None else 0.0
        connect = earliest if concurrent else max(clock, earliest)
        tried, answered, failed = _connect(server.name, eras[server.name], connect, timeout, syn, retry)
        if failed is not None:
            timeline.append(failed)
            clock = failed.end
            continue
        served = max(answered, free_at.get(server.name, 0.0)) if server.mode == "serial" else answered
        # A client waiting its turn at a serial server is reset with the open ones by a down
        # with reset, before the server ever takes it.
        reset = next((era.begins for era in eras[server.name]
                      if era.resets and answered < era.begins <= served), None)
        if reset is not None:
            conn = _as_seen_by_client(server.name, connect, _Service([], reset, "reset"), timeout,
                                      since=tried)
            timeline.append(conn)
            clock = conn.end
            continue
        accepted[server.name] += 1
        service = _serve(server, eras, by_name, seed, accepted, served)
        queued = served > answered and server.name in freed_by_timeout
        conn = _as_seen_by_client(server.name, connect, service, timeout, since=tried, tie_times_out=queued)
        if server.mode == "serial":
            free_at[server.name] = max(served, conn.end)
            if conn.outcome == "timeout" and conn.end >= served:
                freed_by_timeout.add(server.name)
            else:
                freed_by_timeout.discard(server.name)
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


def _connect(name: str, eras: Sequence[_Era], connect: float, timeout: float, syn: Sequence[float],
             retry: float | None) -> tuple[float, float, IdealConnection | None]:
    """When the try that got in began and when its handshake completed, for a connect made
    at ``connect``; or, instead, how the connection fails: refused (after the retries the
    client makes), or timed out while its SYNs went unanswered. ``timeout`` bounds each
    try's wait."""
    attempt = connect
    for _ in range(MAX_RETRIES):
        for sent in syn[:-1]:
            if sent > timeout:
                break
            when = attempt + sent
            meets = _gate_at(eras, when)
            if meets == "answered":
                return attempt, when, None
            if meets == "refused":
                # Tried again only while a later phase may still bring the server back.
                if retry is None or when >= eras[-1].begins:
                    return attempt, when, IdealConnection(name, connect, math.nan, when, "refused",
                                                          phase="connect")
                # Rounded to the nanosecond: adding 0.3 s ten times to 3 s gives 5.999...,
                # which would miss a server back at 6 s by one whole retry.
                attempt = round(when + retry, 9)
                break
        else:  # the last SYN went unanswered: the client's kernel gives up at last
            sent = syn[-1]
        if meets != "refused":  # held to the end: the client's timeout, or its kernel's
            end = attempt + min(timeout, sent)
            return attempt, end, IdealConnection(name, connect, math.nan, end, "timeout",
                                                 silence=end - attempt, phase="connect")
    return attempt, attempt, IdealConnection(name, connect, math.nan, attempt, "refused", phase="connect")


def _as_seen_by_client(name: str, connect: float, service: _Service, timeout: float, *, since: float,
                       tie_times_out: bool = False) -> IdealConnection:
    """Apply the client's timeout to the server's course: a long enough silence ends it,
    counted from ``since``, when the try that got in began (a retrying client's refused
    tries before it were no wait for a byte: it was busy trying). ``tie_times_out``: a
    first byte due just as the timeout passes comes after it."""
    last = since
    silence = 0.0
    received = 0
    first = math.nan
    for when, data in service.arrivals:
        gap = when - last
        if gap > timeout or (tie_times_out and math.isnan(first) and gap >= timeout):
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


def _serve(server: Server, eras: Mapping[str, Sequence[_Era]], servers: Mapping[str, Server], seed: int,
           accepted: Counter[str], start: float) -> _Service:
    index = accepted[server.name]
    if server.upstream is None:
        return _serve_poem(server, eras[server.name], seed, index, start)
    upstream = servers.get(server.upstream)
    if upstream is None:  # a service outside the scenario: its timing is unknown
        return _Service([], math.nan, None)
    return _serve_proxy(server, eras, upstream, servers, seed, accepted, start)


def _serve_poem(server: Server, eras: Sequence[_Era], seed: int, index: int, served: float) -> _Service:
    """A poem connection accepted at ``served``: the server's plan, planned anew at each
    change of its conditions while it is open, as the server does."""
    conditions = _era_at(eras, served).conditions
    chunks = server.chunks()
    fault = fault_of(conditions, seed, server.name, index)
    start = served + conditions.accept_delay
    timeline = plan_timeline(chunks, conditions, fault=fault, pauses=pause_stream(seed, server.name, index),
                             streams=Streams(seed, server.name, index))
    arrivals: list[tuple[float, bytes | memoryview]] = []
    done = 0
    for later in eras:
        when = later.begins
        if when <= served:
            continue
        # What is due before the change goes before it (the server accepted the
        # connection after the servers were ready, so at a tie the change comes first).
        while done < len(timeline.pieces) and start + timeline.offsets[done] < when:
            arrivals.append((start + timeline.offsets[done], timeline.pieces[done]))
            done += 1
        ending = done == len(timeline.pieces) and start + timeline.end < when
        silent = timeline.fault == "blackhole" or (ending and timeline.fault == "stall")
        if ending and not silent:
            break  # closed (or reset) before the change
        if later.resets:
            return _Service(arrivals, when, "reset")
        if later.changed:
            fault = fault_of(later.conditions, seed, server.name, index)
            if silent and fault in ("stall", "blackhole"):
                continue  # silent still; else the silence is over, and its poem goes on
            timeline = replan(chunks, timeline, done, conditions, later.conditions, fault=fault,
                              streams=Streams(seed, server.name, index, later.generation),
                              now=when - start, accepted=served - start)
            conditions = later.conditions
            done = 0
    arrivals += [(start + timeline.offsets[number], timeline.pieces[number])
                 for number in range(done, len(timeline.pieces))]
    return _ending(timeline, arrivals, start)


def _ending(timeline: Timeline, arrivals: list[tuple[float, bytes | memoryview]], start: float) -> _Service:
    """How a poem connection's course ends: a stall or a blackhole never does, a reset ends
    in the error, a close (the fault's or the schedule's) cleanly."""
    if timeline.fault in ("stall", "blackhole"):
        return _Service(arrivals, None, None)
    return _Service(arrivals, start + timeline.end, "reset" if timeline.fault == "reset" else None)


def _serve_proxy(proxy: Server, eras: Mapping[str, Sequence[_Era]], upstream: Server,
                 servers: Mapping[str, Server], seed: int, accepted: Counter[str], start: float) -> _Service:
    """A proxied connection: its accept_delay that of its accept, each piece it forwards
    paced by the conditions of the moment it arrives, and its fault the one of the moment
    too, as the proxy does: a fault a change brings in counts the bytes already forwarded,
    or the time since the accept (``_later_fault``)."""
    own = eras[proxy.name]
    accept_era = _era_at(own, start)
    conditions = accept_era.conditions
    index = accepted[proxy.name]
    fault = fault_of(conditions, seed, proxy.name, index)
    resets = [era.begins for era in own if era.resets and era.begins > start]
    # Where its silence (a blackhole, a stall that struck) ends: by a change that takes it
    # away, the proxy ends the connection (what its upstream sent meanwhile was dropped).
    def hushed(arrivals: list[tuple[float, bytes | memoryview]], since: float) -> _Service:
        ends = _silence_ends(own, since, start, seed, proxy.name, index)
        return _Service(arrivals, None, None) if ends is None else _Service(arrivals, *ends)

    if fault == "blackhole":
        return _cut_by_reset(hushed([], start), resets)
    limit, limiting, silent = _later_fault(own, start, fault, conditions, seed, proxy.name, index)
    connected = start + conditions.accept_delay
    if _gate_at(eras[upstream.name], connected) == "refused":  # the proxy resets the client
        return _Service([], connected, "reset")
    accepted[upstream.name] += 1
    source = _serve(upstream, eras, servers, seed, accepted, connected)
    if (proxy.direction or "downstream") == "upstream":
        # Downstream passes straight through; the proxy's fault counts the client's bytes,
        # and a client model sends none, so it never strikes (but by the clock).
        if silent is not None and (source.end is None or math.isnan(source.end) or silent < source.end):
            source = hushed([arrival for arrival in source.arrivals if arrival[0] < silent], silent)
        return _cut_by_reset(_cut_by_limit(source, limit, limiting, hushed), resets)
    counted = fault in CUTTING_FAULTS and conditions.fault_at is None
    schedule = StreamSchedule(conditions, pause_stream(seed, proxy.name, index), connected,
                              fault_after=conditions.fault_after if counted else None)
    slices = Streams(seed, proxy.name, index).slices
    chunking = proxy.chunk if isinstance(proxy.chunk, str) else proxy.chunk.bytes
    forwarded = bytearray()
    changes = [era for era in own if era.begins > start and era.changed]

    def change_fault(era: _Era) -> None:
        """A change's fault from its moment on: a limit in bytes cuts what is still queued
        past it, or else a piece to come (as ``Shaper.limit`` does); a cut decided stays."""
        nonlocal fault
        if schedule.fault_at is not None:
            return
        fault = fault_of(era.conditions, seed, proxy.name, index)
        counted = fault in CUTTING_FAULTS and era.conditions.fault_at is None
        schedule.limit(era.conditions.fault_after if counted else None)
        if counted:
            queued = next((number for number, emission in enumerate(schedule.emissions)
                           if emission.due >= era.begins), len(schedule.emissions))
            sent = sum(emission.size for emission in itertools.islice(schedule.emissions, queued))
            dropped = schedule.cut_queued(era.conditions.fault_after, sent, queued)
            if dropped:
                del forwarded[len(forwarded) - dropped:]

    for when, data in source.arrivals:
        if silent is not None and when >= silent:
            break
        while changes and changes[0].begins <= when:
            change_fault(changes.pop(0))
        schedule.conditions = _era_at(own, when).conditions
        for piece in cut(bytes(data), chunking):
            sizes = slice_sizes(len(piece), schedule.conditions, slices)
            position = 0
            for number, size in enumerate(sizes):
                taken = schedule.add(size, when, begins=number == 0, ends=number == len(sizes) - 1)
                forwarded += piece[position:position + taken]
                position += size
                if taken < size:
                    break
    for era in changes:  # those after the last piece: they may still cut what is queued
        if silent is None or era.begins < silent:
            change_fault(era)
    arrivals = _pieces(schedule, bytes(forwarded))
    # A blackhole brought in: nothing more goes, and the proxy never closes; unless a cut
    # came first (decided by a piece before it), or the connection ended before it.
    if silent is not None and schedule.fault_at is None and (
            source.end is None or math.isnan(source.end) or silent < schedule.close_time(source.end)):
        service = hushed([arrival for arrival in arrivals if arrival[0] < silent], silent)
        return _cut_by_reset(service, resets)
    if schedule.fault_at is not None:
        service = _struck(fault, arrivals, schedule.fault_at, hushed)
    elif source.end is None or math.isnan(source.end):
        service = _Service(arrivals, source.end, source.outcome)
    elif source.outcome == "reset":  # the proxy passes the upstream's reset on at once
        service = _Service([a for a in arrivals if a[0] <= source.end], source.end, "reset")
    else:
        schedule.conditions = _era_at(own, source.end).conditions
        service = _Service(arrivals, schedule.close_time(source.end), None)
    return _cut_by_reset(_cut_by_limit(service, limit, limiting, hushed), resets)


# A proxied connection gone silent at a moment, as it ends (``_serve_proxy``'s hushed).
_Hushed = Callable[[list[tuple[float, bytes | memoryview]], float], _Service]


def _silence_ends(own: Sequence[_Era], since: float, accepted: float, seed: int, name: str,
                  index: int) -> tuple[float, str | None] | None:
    """When, and how, a proxied connection silent from ``since`` ends: at the first change
    after that whose fault is no silence, closed (reset, for a reset), or at the moment of
    a reset or close with a time limit that it brings in; None if no change does."""
    for era in own:
        if era.begins <= since or not era.changed:
            continue
        fault = fault_of(era.conditions, seed, name, index)
        if fault in ("stall", "blackhole"):
            continue
        when = era.begins
        if fault in CUTTING_FAULTS and era.conditions.fault_at is not None:
            when = max(accepted + era.conditions.fault_at, era.begins)
        return when, "reset" if fault == "reset" else None
    return None


def _later_fault(own: Sequence[_Era], start: float, fault: str | None, conditions: Conditions, seed: int,
                 name: str, index: int) -> tuple[float | None, str | None, float | None]:
    """A proxied connection's time limit (a fault ``at`` a time after its accept) with that
    fault, and when it goes silent (a ``blackhole`` brought in), as the changes after its
    accept leave them: a change sets its own fault's limit anew (or none), unless the
    limit in force has struck by then."""
    def limit_of(fault: str | None, conditions: Conditions, since: float) -> float | None:
        if fault in CUTTING_FAULTS and conditions.fault_at is not None:
            return max(start + conditions.fault_at, since)
        return None

    limit = limit_of(fault, conditions, start)
    for era in own:
        if era.begins <= start or not era.changed:
            continue
        if limit is not None and limit <= era.begins:
            break  # it has struck
        fault = fault_of(era.conditions, seed, name, index)
        if fault == "blackhole":
            return None, None, era.begins
        limit = limit_of(fault, era.conditions, era.begins)
    return limit, fault, None


def _cut_by_limit(service: _Service, limit: float | None, fault: str | None, hushed: _Hushed) -> _Service:
    """The service, cut by a fault's time limit if it comes while the connection is open."""
    if limit is None or (service.end is not None and not math.isnan(service.end) and service.end <= limit):
        return service
    return _struck(fault, [arrival for arrival in service.arrivals if arrival[0] < limit], limit, hushed)


def _cut_by_reset(service: _Service, resets: Sequence[float]) -> _Service:
    """The service, ended by the first reset (a phase down with reset) while it is open."""
    for when in resets:
        if service.end is None or math.isnan(service.end) or when < service.end:
            return _Service([arrival for arrival in service.arrivals if arrival[0] < when], when, "reset")
    return service


def _struck(fault: str | None, arrivals: list[tuple[float, bytes | memoryview]], fault_at: float,
            hushed: _Hushed) -> _Service:
    """How a connection ends once its fault has struck: a stall when a change takes it away
    (``hushed``; never, if none does), a reset in the error, a close cleanly."""
    if fault == "stall":
        return hushed(arrivals, fault_at)
    return _Service(arrivals, fault_at, "reset" if fault == "reset" else None)


def _pieces(schedule: StreamSchedule, payload: bytes) -> list[tuple[float, bytes | memoryview]]:
    pieces: list[tuple[float, bytes | memoryview]] = []
    offset = 0
    for emission in schedule.emissions:
        pieces.append((emission.due, payload[offset:offset + emission.size]))
        offset += emission.size
    return pieces
