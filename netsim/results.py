"""The results of a run, as plain frozen dataclasses that turn into JSON.

Durations are seconds of *scenario* time (wall time divided by the time scale),
except ``wall_elapsed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.expectations import Verdict


@dataclass(frozen=True)
class Served:
    """One connection as its server saw it (times in scenario seconds)."""

    peer: str  # the client's HOST:PORT
    accepted: float  # since the client model started
    ttfb: float  # accept to first byte written; NaN when none was
    duration: float  # accept to the end
    bytes: int  # sent
    acked: int | None  # of those, acknowledged by the client's kernel; None: not known (proxies)
    how: str  # closed | reset | client_closed | client_reset | error | stopped
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "accepted": json_number(self.accepted), "ttfb": json_number(self.ttfb),
                "duration": json_number(self.duration), "bytes": self.bytes, "acked": self.acked,
                "how": self.how, "fault": self.fault}


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
    phase: str | None = None  # where the error came: "connect" (no handshake) or "read"

    def to_dict(self) -> dict[str, Any]:
        return {"conn": self.conn, "server": self.server, "port": self.port, "bytes": self.bytes,
                "intact": self.intact, "error": self.error, "phase": self.phase, "message": self.message,
                "ttfb": json_number(self.ttfb), "duration": json_number(self.duration),
                "served": None if self.served is None else self.served.to_dict()}


@dataclass(frozen=True)
class Lateness:
    """How late the servers emitted their chunks against their schedule."""

    p50: float
    p99: float
    max: float
    count: int  # emissions measured

    def to_dict(self) -> dict[str, Any]:
        return {"p50": json_number(self.p50), "p99": json_number(self.p99), "max": json_number(self.max),
                "count": self.count}


@dataclass(frozen=True)
class Program:
    """What a ``command`` client's program did: how it was run, how it ended, what it wrote."""

    argv: list[str]
    exit_code: int  # negative: ended by that signal; 127: could not be started
    stdout: str  # the first 64 KiB of each stream
    stderr: str
    timed_out: bool = False  # netsim ended it at its timeout

    @classmethod
    def of(cls, event: Any) -> Program:
        """From the ``ProgramExited`` event that reported it."""
        return cls(list(event.argv), event.exit_code, event.stdout, event.stderr, event.timed_out)

    def to_dict(self) -> dict[str, Any]:
        return {"argv": self.argv, "exit_code": self.exit_code, "stdout": self.stdout,
                "stderr": self.stderr, "timed_out": self.timed_out}


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
    program: Program | None = None  # a `command` client's program

    @property
    def overhead(self) -> float:
        return self.elapsed - self.ideal

    @property
    def passed(self) -> bool:
        return all(verdict.passed for verdict in self.expectations)

    def metrics(self) -> dict[str, float]:
        """The values expectations are checked against, keyed by metric name."""
        ttfbs = [conn.ttfb for conn in self.connections if not math.isnan(conn.ttfb)]
        missing = len(ttfbs) < len(self.connections)
        checked = [conn.intact for conn in self.connections if conn.intact is not None]
        return {
            "elapsed": self.elapsed,
            "ideal": self.ideal,
            "overhead": self.overhead,
            "ttfb.p50": math.nan if missing or not ttfbs else percentile(ttfbs, 50),
            "ttfb.max": math.nan if missing or not ttfbs else max(ttfbs),
            "bytes": float(sum(conn.bytes for conn in self.connections)),
            "errors": float(sum(conn.error is not None for conn in self.connections)),
            **{f"errors.{kind}": float(sum(conn.error == kind for conn in self.connections))
               for kind in ("refused", "reset", "timeout")},
            "intact": sum(checked) / len(checked) if checked else math.nan,
            "lateness.p99": self.lateness.p99,
            "lateness.max": self.lateness.max,
            "exit_code": math.nan if self.program is None else float(self.program.exit_code),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "model": self.model,
            "passed": self.passed,
            "elapsed": self.elapsed,
            "ideal": self.ideal,
            "overhead": self.overhead,
            "wall_elapsed": self.wall_elapsed,
            "metrics": {name: json_number(value) for name, value in self.metrics().items()},
            "connections": [conn.to_dict() for conn in self.connections],
            "lateness": self.lateness.to_dict(),
            "server": {"cpu_seconds": json_number(self.server_cpu),
                       "max_rss_mb": json_number(self.server_max_rss_mb)},
            **({"program": self.program.to_dict()} if self.program is not None else {}),
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
        for run in self.runs:
            if run.client == client:
                return run
        raise KeyError(client)

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
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def lateness_of(values: Sequence[float], time_scale: float) -> Lateness:
    """p50, p99 and max of chunk lateness (wall seconds in, scenario seconds out)."""
    scaled = sorted(value / time_scale for value in values)  # once: 100,000 values at scale
    return Lateness(p50=percentile(scaled, 50, ordered=True), p99=percentile(scaled, 99, ordered=True),
                    max=scaled[-1] if scaled else math.nan, count=len(scaled))


def json_number(value: float) -> float | None:
    """JSON has no NaN: a value that could not be measured is null."""
    return None if math.isnan(value) else round(value, 9)
