"""The results of a run, as plain frozen dataclasses that turn into JSON.

Durations are seconds of *scenario* time (wall time divided by the time scale),
except ``wall_elapsed``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim._machine import Machine
from netsim.expectations import Verdict

# What a result keeps of each connection's course, so that its timeline can be drawn
# later from the JSON alone: every connection's arrivals and its server's emissions, up
# to this many each, in a run of up to KEPT_CONNECTIONS connections. A larger run keeps
# its course as an Activity (per time slice) instead: 10,000 connections of ten lines
# would otherwise be 200,000 points (about 4 MB of JSON) that no picture can show.
KEPT_POINTS = 100
KEPT_CONNECTIONS = 200
ACTIVITY_SLICES = 200  # slices of a run's Activity: finer than any picture of it

def not_printed(mode: str) -> str:
    """How the message of a connection whose poem a `command` client's program did not print
    (``output: MODE``) ends: all its bytes may have arrived, so it is not "cut short"."""
    return f"(output: {mode})"


NOT_PRINTED = tuple(not_printed(mode) for mode in ("poems", "lines"))  # the ends it may have

# Upper bounds of the lateness histogram's bins, in scenario seconds: 1-2-5 steps from
# 10 µs to 10 s, then everything later.
LATENESS_BINS = (*(round(step * 10.0 ** power, 6) for power in range(-5, 1) for step in (1, 2, 5)), 10.0,
                 math.inf)


@dataclass(frozen=True)
class Served:
    """One connection as its server saw it (times in scenario seconds)."""

    peer: str  # the client's HOST:PORT
    accepted: float  # since the client model started
    ttfb: float  # accept to first byte written; NaN when none was
    duration: float  # accept to the end
    bytes: int  # sent
    acked: int | None  # of those, acknowledged by the client's kernel; None: not known (proxies)
    # closed | reset | client_closed | client_reset | client_closed_early | error | stopped | upstream_failed
    how: str
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "accepted": json_number(self.accepted), "ttfb": json_number(self.ttfb),
                "duration": json_number(self.duration), "bytes": self.bytes, "acked": self.acked,
                "how": self.how, "fault": self.fault}


@dataclass(frozen=True)
class ExtraConnection:
    """A connection a program made to a target's server beyond its targets (a port it
    probed first, a second read), as the server saw it: no target is judged by it."""

    server: str
    served: Served

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, **self.served.to_dict()}


@dataclass(frozen=True)
class ConnectionResult:
    """What one connection of a client model saw."""

    conn: int
    server: str
    port: int
    bytes: int
    intact: bool | None  # None: the expected bytes are unknown (a proxy to an outside service)
    error: str | None  # refused | reset | timeout | error, or None
    ttfb: float  # NaN when no byte arrived
    duration: float
    message: str | None = None  # the error as the operating system put it
    served: Served | None = None  # the server's side of it; None: its server never saw it
    # Its course, in scenario seconds since the client model started (NaN: not known).
    start: float = math.nan  # the client began to connect (its server's accept, for a program)
    connected: float = math.nan  # the handshake completed
    end: float = math.nan  # EOF, the error, or its server's end
    ideal_start: float = math.nan  # when the ideal model has it start and end
    ideal_end: float = math.nan
    arrivals: tuple[tuple[float, int], ...] = ()  # (t, bytes) of KEPT_POINTS reads, first to last
    arrival_count: int = 0  # every read that brought bytes, kept or not
    emissions: tuple[tuple[float, int, float], ...] = ()  # (t, bytes, lateness) its server sent
    emission_count: int = 0
    phase: str | None = None  # where the error came: "connect" (no handshake) or "read"

    def to_dict(self) -> dict[str, Any]:
        return {"conn": self.conn, "server": self.server, "port": self.port, "bytes": self.bytes,
                "intact": self.intact, "error": self.error, "phase": self.phase, "message": self.message,
                "ttfb": json_number(self.ttfb), "duration": json_number(self.duration),
                "served": None if self.served is None else self.served.to_dict(),
                "start": json_number(self.start), "connected": json_number(self.connected),
                "end": json_number(self.end), "ideal_start": json_number(self.ideal_start),
                "ideal_end": json_number(self.ideal_end),
                "arrivals": [[json_number(t), size] for t, size in self.arrivals],
                "arrival_count": self.arrival_count,
                "emissions": [[json_number(t), size, json_number(late)] for t, size, late in self.emissions],
                "emission_count": self.emission_count}


@dataclass(frozen=True)
class Lateness:
    """How late the servers emitted their chunks against their schedule."""

    p50: float
    p99: float
    max: float
    count: int  # emissions measured
    histogram: tuple[int, ...] = ()  # emissions per bin of LATENESS_BINS; () when none were measured

    def to_dict(self) -> dict[str, Any]:
        return {"p50": json_number(self.p50), "p99": json_number(self.p99), "max": json_number(self.max),
                "count": self.count,
                "histogram": [[None if math.isinf(upper) else upper, count]
                              for upper, count in zip(LATENESS_BINS, self.histogram, strict=False)]}


@dataclass(frozen=True)
class Activity:
    """A client model's run in equal time slices from its start: what its timeline shows
    when it has too many connections for a row each.

    Each tuple has a value per slice: the connections open during it, the reads that
    brought bytes and those bytes, the chunks its servers sent and the latest of them
    (scenario seconds; NaN for a slice without one).
    """

    slice: float  # scenario seconds per slice
    open: tuple[int, ...]
    arrivals: tuple[int, ...]
    bytes: tuple[int, ...]
    emissions: tuple[int, ...]
    lateness_max: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"slice": json_number(self.slice), "open": list(self.open), "arrivals": list(self.arrivals),
                "bytes": list(self.bytes), "emissions": list(self.emissions),
                "lateness_max": [json_number(value) for value in self.lateness_max]}


@dataclass(frozen=True)
class Program:
    """What a ``command`` client's program did: how it was run, how it ended, what it wrote."""

    argv: list[str]
    exit_code: int  # negative: ended by that signal; 127: not found, 126: could not be run
    stdout: str  # each stream up to 64 KiB, else its first and last 32 KiB
    stderr: str
    timed_out: bool = False  # netsim ended it at its timeout
    left_running: int = 0  # processes it started that outlived it, which netsim ended
    printed: tuple[str, ...] | None = None  # `output:`: a server's name for each poem it printed
    extra_connections: int = 0  # made beyond its targets; each target judged by its fullest
    started: bool = True  # False: it could not be started (not found: 127; not runnable: 126)
    extra: tuple[ExtraConnection, ...] = ()  # those connections (KEPT_CONNECTIONS at most)

    @classmethod
    def of(cls, event: Any) -> Program:
        """From the ``ProgramExited`` event that reported it."""
        return cls(list(event.argv), event.exit_code, event.stdout, event.stderr, event.timed_out,
                   event.left_running, None if event.printed is None else tuple(event.printed),
                   started=event.started)

    def to_dict(self) -> dict[str, Any]:
        return {"argv": self.argv, "started": self.started, "exit_code": self.exit_code,
                "stdout": self.stdout, "stderr": self.stderr, "timed_out": self.timed_out,
                "left_running": self.left_running, "extra_connections": self.extra_connections,
                "extra": [connection.to_dict() for connection in self.extra]}


@dataclass(frozen=True)
class ServerChange:
    """A server changed while a client model ran: its conditions, going down or up, a reset."""

    t: float  # scenario seconds since the client model started (negative: before it did)
    server: str
    what: str  # in a few words: "delay 500ms", "down, 2 reset", "up", "3 reset", "handshakes held"
    source: str  # "phase N" (its N-th phase) or "control"

    def to_dict(self) -> dict[str, Any]:
        return {"t": json_number(self.t), "server": self.server, "what": self.what, "source": self.source}


@dataclass(frozen=True)
class RunResult:
    """One client model's run against fresh servers, and its verdicts."""

    client: str  # the label in the scenario
    model: str
    elapsed: float
    ideal: float
    wall_elapsed: float
    connections: list[ConnectionResult]
    lateness: Lateness
    lateness_wall_p99: float  # the same p99 in wall seconds, for fidelity warnings
    expectations: list[Verdict] = field(default_factory=list)
    server_cpu: float = math.nan  # CPU seconds the server process used over the run
    server_max_rss_mb: float = math.nan  # its peak resident memory
    # It ran real-time and used up its budget of CPU without a pause (engine._priority).
    server_left_realtime: bool = False
    program: Program | None = None  # a `command` client's program
    activity: Activity | None = None  # the run in time slices
    detail: bool = False  # every arrival and emission was recorded (else each connection's first arrival)
    changes: tuple[ServerChange, ...] = ()  # of its servers, in time order
    machine: Machine | None = None  # its CPUs and their steal time over the run
    # Connections to its targets that carried bytes and that the model never reported
    # (made and not told of, or told of under another port): measured by nobody.
    unreported_connections: int = 0
    # Threads of the model still running when its run() returned (not waited for).
    threads_left: int = 0
    # When the servers were ready, where their phases count from: scenario seconds since
    # the model started (below 0: before it, by a process's start; NaN: not known).
    servers_ready: float = math.nan

    @property
    def overhead(self) -> float:
        return self.elapsed - self.ideal

    @property
    def passed(self) -> bool:
        return all(verdict.passed for verdict in self.expectations)

    def metrics(self) -> dict[str, float]:
        """The values expectations are checked against, keyed by metric name."""
        # A connection that got no byte counts as infinitely late: the median can still be
        # told while fewer than half got none, the maximum cannot (n/a).
        ttfbs = sorted(conn.ttfb for conn in self.connections if not math.isnan(conn.ttfb))
        missing = len(ttfbs) < len(self.connections)
        median = percentile([*ttfbs, *[math.inf] * (len(self.connections) - len(ttfbs))], 50, ordered=True)
        checked = [conn.intact for conn in self.connections if conn.intact is not None]
        return {
            "elapsed": self.elapsed,
            "ideal": self.ideal,
            "overhead": self.overhead,
            "ttfb.p50": median if math.isfinite(median) else math.nan,
            "ttfb.max": math.nan if missing or not ttfbs else max(ttfbs),
            "bytes": float(sum(conn.bytes for conn in self.connections)),
            "errors": float(sum(conn.error is not None for conn in self.connections)),
            **{f"errors.{kind}": float(sum(conn.error == kind for conn in self.connections))
               for kind in ("refused", "reset", "timeout")},
            "intact": sum(checked) / len(checked) if checked else math.nan,
            "lateness.p99": self.lateness.p99,
            "lateness.max": self.lateness.max,
            "exit_code": math.nan if self.program is None else float(self.program.exit_code),
            "extra_connections": math.nan if self.program is None else float(self.program.extra_connections),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "model": self.model,
            "passed": self.passed,
            "elapsed": json_number(self.elapsed),  # null: not measured (a program never started)
            "ideal": json_number(self.ideal),
            "overhead": json_number(self.overhead),
            "wall_elapsed": json_number(self.wall_elapsed),
            "metrics": {name: json_number(value) for name, value in self.metrics().items()},
            "connections": [conn.to_dict() for conn in self.connections],
            "lateness": self.lateness.to_dict(),
            "server": {"cpu_seconds": json_number(self.server_cpu),
                       "max_rss_mb": json_number(self.server_max_rss_mb)},
            **({"program": self.program.to_dict()} if self.program is not None else {}),
            "detail": self.detail,
            "activity": None if self.activity is None else self.activity.to_dict(),
            "changes": [change.to_dict() for change in self.changes],
            "servers_ready": json_number(self.servers_ready),
            "threads_left": self.threads_left,
            **({"machine": self.machine.to_dict()} if self.machine is not None else {}),
            "expectations": [
                {"text": verdict.expectation.text, "passed": verdict.passed,
                 "actual": json_number(verdict.actual), "bound": verdict.bound}
                for verdict in self.expectations
            ],
        }


@dataclass(frozen=True)
class ScenarioResult:
    """Every run of a scenario, and whether all expectations held."""

    scenario: str
    time_scale: float
    runs: list[RunResult]
    warnings: list[str] = field(default_factory=list)
    seed: int = 0  # the scenario's, or the one drawn for this run: pass it to repeat the run

    @property
    def passed(self) -> bool:
        return all(run.passed for run in self.runs)

    def run(self, client: str) -> RunResult:
        """The run of the client labelled ``client``; KeyError, naming the labels, if none."""
        for run in self.runs:
            if run.client == client:
                return run
        raise KeyError(f"no run of client {client!r}; the runs are of: "
                       f"{', '.join(run.client for run in self.runs) or 'no client'}")

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "time_scale": self.time_scale, "seed": self.seed,
                "passed": self.passed, "warnings": list(self.warnings),
                "runs": [run.to_dict() for run in self.runs]}


def percentile(values: Sequence[float], pct: float, *, ordered: bool = False) -> float:
    """Linear-interpolated percentile of ``values`` (NaN when empty); ``ordered``: already sorted."""
    if not values:
        return math.nan
    if not ordered:
        values = sorted(values)
    rank = (len(values) - 1) * pct / 100
    low = math.floor(rank)
    if rank == low:  # on a value: itself (an infinite neighbour would make inf * 0)
        return values[low]
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def lateness_of(values: Sequence[float], time_scale: float) -> Lateness:
    """p50, p99 and max of chunk lateness (wall seconds in, scenario seconds out)."""
    scaled = sorted(value / time_scale for value in values)  # once: 100,000 values at scale
    return Lateness(p50=percentile(scaled, 50, ordered=True), p99=percentile(scaled, 99, ordered=True),
                    max=scaled[-1] if scaled else math.nan, count=len(scaled),
                    histogram=histogram(scaled, LATENESS_BINS) if scaled else ())


def histogram(ordered: Sequence[float], bounds: Sequence[float]) -> tuple[int, ...]:
    """How many of the sorted ``ordered`` values fall in each bin: up to and including its
    upper bound, above the bound before it."""
    counts = []
    taken = 0
    for upper in bounds:
        reached = bisect.bisect_right(ordered, upper, lo=taken)
        counts.append(reached - taken)
        taken = reached
    return tuple(counts)


def json_number(value: float) -> float | None:
    """JSON has no NaN: a value that could not be measured is null."""
    return None if math.isnan(value) else round(value, 9)


# The metrics whose failure the connections' own account explains (errors.KIND too).
_ABOUT_CONNECTIONS = frozenset({"intact", "errors", "bytes"})


def connections_failed(verdicts: Iterable[Verdict]) -> bool:
    """Did a verdict that the connections' own account explains fail (``intact``, ``errors``,
    ``bytes``): where the lines of ``troubled_lines`` say why?"""
    return any(not verdict.passed and verdict.expectation.metric.split(".")[0] in _ABOUT_CONNECTIONS
               for verdict in verdicts)


def troubled_lines(connections: Sequence[ConnectionResult], most: int = 5) -> list[str]:
    """A line for each connection that failed or is not intact (``most`` of them): why, as
    the verdicts of ``intact``, ``errors`` and ``bytes`` are explained under them."""
    lines = []
    troubled = [conn for conn in connections if conn.error is not None or not conn.intact]
    for conn in troubled[:most]:
        what = conn.error or "not intact"
        if conn.served is not None and conn.bytes > conn.served.bytes:
            # No network makes bytes: the model counted what it did not receive.
            what += (f" (the client reported {conn.bytes} bytes where its server sent {conn.served.bytes}: "
                     f"it counted bytes it did not receive)")
        lines.append(f"#{conn.conn} {conn.server}: {what}{': ' + conn.message if conn.message else ''}")
    if len(troubled) > most:
        lines.append(f"... and {len(troubled) - most} more")
    return lines
