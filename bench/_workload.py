"""The c10k workload's shared definitions: the poem every server sends, when each line
is due, and how timings are summarised.

Kept here rather than imported from netsim: the baseline servers and the load client
must not load netsim, whose import would count in their memory and tie them to the
thing they measure.
"""

from __future__ import annotations

import math
import random

# Backlog of every baseline listener: room for a second's worth of the largest ramp
# (10,000 connects) to queue while a busy server is not accepting; the kernel caps it
# at net.core.somaxconn (4096 here), as it does netsim's.
BACKLOG = 4096


def poem_lines(lines: int) -> list[bytes]:
    """The poem of the benchmark: ``line 00\\n``, ``line 01\\n``, ... (8 bytes each)."""
    return [f"line {i:02d}\n".encode() for i in range(lines)]


def plain_offsets(lines: int, delay: float) -> tuple[float, ...]:
    """When each line is due, then when the connection closes, in seconds from its accept:
    ``0, delay, 2 * delay, ...`` (``lines + 1`` values)."""
    return tuple(i * delay for i in range(lines + 1))


def jittered_offsets(lines: int, delay: float, jitter: float, seed: int, conn: int) -> tuple[float, ...]:
    """As ``plain_offsets``, but each pause is drawn uniformly from ``delay ± jitter``
    (never below zero), as netsim draws a scenario's ``jitter``.

    ``conn`` is the connection's accept number (1-based): each connection has its own
    stream of draws, seeded by ``seed`` and ``conn`` (a string seed is stable across runs
    and interpreters), so a run can be repeated. netsim seeds its own streams otherwise,
    so the draws are alike in distribution, not equal.
    """
    draws = random.Random(f"c10k/{seed}/{conn}")
    offsets, due = [0.0], 0.0
    for _ in range(lines):
        due += max(0.0, delay + draws.uniform(-jitter, jitter))
        offsets.append(due)
    return tuple(offsets)


def percentile(ordered: list[float], pct: float) -> float:
    """Linear-interpolated percentile of already sorted ``ordered`` (NaN when empty).

    The same interpolation as ``netsim.results.percentile``, so the baselines' figures
    and netsim's own ``fidelity:`` line are computed alike.
    """
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of ``values`` (seconds); None (JSON null) when there are none."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {"p50": percentile(ordered, 50), "p99": percentile(ordered, 99), "max": ordered[-1]}
