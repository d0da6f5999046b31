"""What one c10k run found, and how the benchmark shows it: a table per workload and
size, then the goals of every netsim design and netsim against each other netsim tree.

Kept apart from c10k.py, which starts and measures the processes: this module only
reads ``Run`` records, so the report can be read (and changed) without the plumbing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

# Issue 5's goals for netsim on the plain workload (seconds).
GOAL_P99 = {1000: 0.3e-3, 10000: 2e-3}
GOAL_MAX = 10e-3
# The engine issue's item 9, at 10,000 connections: peak RSS (issue 5 allowed 64 MiB),
# and the jittered workload's time to first byte, p99.
GOAL_RSS = {10000: 32 * 2**20}  # 32 MiB
GOAL_JITTER_TTFB = {10000: 5e-3}


@dataclass
class Run:
    """One design at one size and workload: what its server and its client reported."""

    design: str
    workload: str
    connections: int
    repeat: int = 1
    source: str | None = None  # netsim designs: the tree they ran from
    status: str = "ok"  # ok | collapsed | failed: why
    chunks: int | None = None
    lateness: dict[str, float | None] = field(default_factory=dict)  # p50, p99, max (s)
    client_error: dict[str, float | None] = field(default_factory=dict)  # p50, p99, max (s); null with jitter
    first_byte: dict[str, float | None] = field(default_factory=dict)  # connect to first byte (s)
    gaps: dict[str, float | None] = field(default_factory=dict)  # between line arrivals: min, p50, max (s)
    intact: int | None = None
    errors: int | None = None
    unfinished: int | None = None
    timed_out: bool = False
    elapsed: float | None = None  # s, the client's first connect to its last EOF
    cpu: float | None = None  # s, server utime + stime from ready to the client's end
    cpu_per_1k_chunks: float | None = None  # s, cpu / (chunks / 1000)
    peak_rss: int | None = None  # bytes, server VmHWM
    steal: float | None = None  # s, the hypervisor's steal time over the same span, all CPUs
    measured: str | None = None  # the command line of the process measured
    client_cpu: float | None = None  # s, the load client's utime + stime
    connect_lag: dict[str, float | None] = field(default_factory=dict)  # client behind its ramp (s)
    notes: list[str] = field(default_factory=list)


# -- report


def ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "n/a"
    value = seconds * 1e3
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"


def number(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value / scale:.{digits}f}"


def table(runs: list[Run], repeats: int) -> str:
    labels = [run.design if repeats == 1 else f"{run.design} ({run.repeat}/{repeats})" for run in runs]
    width = max(len("design"), *(len(text) for text in labels))
    header = (f"{'design':<{width}}  {'lateness p50':>12} {'p99':>7} {'max':>7}  "
              f"{'client p99':>10} {'max':>7}  {'ttfb p50':>8} {'p99':>7}  {'intact':>13}  "
              f"{'rss MB':>6}  {'cpu s':>5}  {'cpu s/1k chunks':>15}  {'elapsed s':>9}  {'steal s':>7}  "
              f"status")
    rows = [header, "-" * len(header)]
    for text, run in zip(labels, runs, strict=True):
        intact = "n/a" if run.intact is None else f"{run.intact:,}/{run.connections:,}"
        rows.append(
            f"{text:<{width}}  {ms(run.lateness.get('p50')):>12} {ms(run.lateness.get('p99')):>7} "
            f"{ms(run.lateness.get('max')):>7}  {ms(run.client_error.get('p99')):>10} "
            f"{ms(run.client_error.get('max')):>7}  {ms(run.first_byte.get('p50')):>8} "
            f"{ms(run.first_byte.get('p99')):>7}  {intact:>13}  {number(run.peak_rss, 2**20, 1):>6}  "
            f"{number(run.cpu):>5}  {number(run.cpu_per_1k_chunks):>15}  {number(run.elapsed):>9}  "
            f"{number(run.steal):>7}  {run.status}"
        )
        rows.extend(f"{'':<{width}}  note: {note}" for note in run.notes)
    return "\n".join(rows)


def spread(runs: list[Run], value: Callable[[Run], float | None], show: Callable[[float], str]) -> str:
    """The range of ``value`` over ``runs``, shown as ``low-high`` (n/a where a run has none)."""
    values = [v for v in map(value, runs) if v is not None]
    if not values:
        return "n/a"
    low, high = show(min(values)), show(max(values))
    shown = low if low == high else f"{low}-{high}"
    return shown if len(values) == len(runs) else f"{shown} (n/a in {len(runs) - len(values)})"


def worst(runs: list[Run], value: Callable[[Run], float | None]) -> float | None:
    """The largest ``value`` over ``runs``; None when any run has none (it cannot be judged)."""
    values = [value(run) for run in runs]
    return None if not values or None in values else max(v for v in values if v is not None)


def middle(runs: list[Run], value: Callable[[Run], float | None]) -> float | None:
    """The median ``value`` over ``runs``; None when any run has none."""
    values = [value(run) for run in runs]
    return None if not values or None in values else statistics.median(v for v in values if v is not None)


def verdict(value: float | None, bound: float | None) -> str:
    return "n/a " if value is None or bound is None else ("met " if value <= bound else "MISS")


def goals(runs: list[Run], workload: str, n: int, *, jittered: bool) -> list[str]:
    """For each netsim design (a run with a ``source``): the goals of issue 5 and of the
    engine issue (item 9) at this workload and size, judged on the worst of its runs;
    then ``netsim`` against each ``netsim@NAME`` (no worse, on the worst of each)."""
    by_design: dict[str, list[Run]] = {}
    for run in runs:
        if run.source is not None:
            by_design.setdefault(run.design, []).append(run)
    lines = []

    def p99(run: Run) -> float | None:
        return run.lateness.get("p99")

    def late_max(run: Run) -> float | None:
        return run.lateness.get("max")

    def ttfb(run: Run) -> float | None:
        return run.first_byte.get("p99")

    def rss(run: Run) -> float | None:
        return run.peak_rss

    def per_1k(run: Run) -> float | None:
        return run.cpu_per_1k_chunks

    for design, its in by_design.items():
        of = f"over {len(its)} runs" if len(its) > 1 else "one run"
        lines.append(f"goals, {design} at N = {n:,}, {workload} ({of}; p99, max and RSS: the worst):")
        if not jittered:
            if n in GOAL_P99:
                value = worst(its, p99)
                lines.append(f"  {verdict(value, GOAL_P99[n])} p99 lateness {spread(its, p99, ms)} ms "
                             f"<= {ms(GOAL_P99[n])} ms (issue 5)")
            value = worst(its, late_max)
            lines.append(f"  {verdict(value, GOAL_MAX)} max lateness {spread(its, late_max, ms)} ms "
                         f"<= {ms(GOAL_MAX)} ms (issue 5)")
        broken = sum(1 for run in its if run.intact != n)
        lines.append(f"  {'met ' if not broken else 'MISS'} every poem intact"
                     + (f" (not in {broken} of {len(its)} runs)" if broken else ""))
        if n in GOAL_RSS:
            lines.append(f"  {verdict(worst(its, rss), GOAL_RSS[n])} peak RSS "
                         f"{spread(its, rss, lambda b: f'{b / 2**20:.1f}')} MB <= "
                         f"{GOAL_RSS[n] / 2**20:.0f} MB (engine issue)")
        if jittered and n in GOAL_JITTER_TTFB:
            lines.append(f"  {verdict(worst(its, ttfb), GOAL_JITTER_TTFB[n])} ttfb p99 "
                         f"{spread(its, ttfb, ms)} ms <= {ms(GOAL_JITTER_TTFB[n])} ms (engine issue)")
    if "netsim" in by_design:
        after = by_design["netsim"]
        for design, before in by_design.items():
            if design == "netsim":
                continue
            caution = "" if min(len(after), len(before)) > 1 else "; one run each is noise: --repeat 3"
            lines.append(f"netsim against {design} at N = {n:,}, {workload} "
                         f"(no worse: on the worst run of each, and on the median run{caution}):")
            measures = [("p99 lateness", p99), ("max lateness", late_max)]
            if jittered:
                measures.append(("ttfb p99", ttfb))
            for name, measure in measures:
                mid_after, mid_before = middle(after, measure), middle(before, measure)
                worse = verdict(worst(after, measure), worst(before, measure))
                lines.append(f"  {worse} {name}, worst: netsim "
                             f"{spread(after, measure, ms)} ms, {design} {spread(before, measure, ms)} ms")
                lines.append(f"  {verdict(mid_after, mid_before)} {name}, median: netsim {ms(mid_after)} ms, "
                             f"{design} {ms(mid_before)} ms")
            lines.append(f"  cpu s per 1,000 chunks: netsim {spread(after, per_1k, '{:.2f}'.format)}, "
                         f"{design} {spread(before, per_1k, '{:.2f}'.format)}")
    return lines
