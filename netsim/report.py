"""Human-readable output of a run: the table of runs, the verdicts, the summary line;
the same for repeated runs, and the comparison with a baseline."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence

from netsim._units import format_duration, format_size
from netsim.baseline import BaselineReport
from netsim.expectations import Verdict
from netsim.repeat import RepeatResult, Spread
from netsim.results import RunResult, ScenarioResult
from netsim.scenario import Scenario

_COLUMNS = (
    ("client", "<", 12),
    ("elapsed", ">", 9),
    ("ideal", ">", 9),
    ("overhead", ">", 9),
    ("ttfb.p50", ">", 9),
    ("bytes", ">", 8),
    ("errors", ">", 6),
    ("intact", ">", 6),
    ("lateness.p99", ">", 12),
)


def header(scenario: Scenario, clients: int, time_scale: float, repeat: int = 1) -> str:
    lines = [f"netsim: {scenario.name}"]
    if scenario.description.strip():
        lines += textwrap.wrap(scenario.description.strip(), width=88,
                               initial_indent="  ", subsequent_indent="  ")
    servers = len(scenario.servers)
    scale = f", time scale {time_scale:g}" if time_scale != 1 else ""
    runs = f", {repeat} runs each" if repeat > 1 else ""
    lines.append(f"{clients} client model{'s' * (clients != 1)}{runs}, {servers} server"
                 f"{'s' * (servers != 1)}{scale}; times in scenario seconds")
    lines.append("")
    lines.append(_row([name for name, _, _ in _COLUMNS]))
    return "\n".join(lines)


def run_row(run: RunResult) -> str:
    metrics = run.metrics()
    return _row([
        run.client,
        format_duration(run.elapsed),
        format_duration(run.ideal),
        _signed(run.overhead),
        format_duration(metrics["ttfb.p50"]),
        format_size(metrics["bytes"]),
        f"{metrics['errors']:.0f}",
        "n/a" if math.isnan(metrics["intact"]) else f"{metrics['intact']:.0%}",
        format_duration(run.lateness.p99),
    ])


def verdicts(result: ScenarioResult) -> str:
    rows: list[tuple[str, str, Verdict]] = [
        ("PASS" if verdict.passed else "FAIL", run.client, verdict)
        for run in result.runs for verdict in run.expectations
    ]
    if not rows:
        return "no expectations: the scenario has no `expect:` for these clients"
    client_width = max(len(client) for _, client, _ in rows)
    text_width = max(len(verdict.expectation.text) for _, _, verdict in rows)
    lines = ["expectations"]
    for status, client, verdict in rows:
        lines.append(f"  {status}  {client:<{client_width}}  {verdict.expectation.text:<{text_width}}"
                     f"  measured {verdict.actual_text():>9}  bound {verdict.bound}")
    return "\n".join(lines)


def summary(result: ScenarioResult) -> str:
    verdict_list = [verdict for run in result.runs for verdict in run.expectations]
    failed = sum(not verdict.passed for verdict in verdict_list)
    held = len(verdict_list) - failed
    outcome = "FAILED" if failed else "passed"
    return f"{outcome}: {held} of {len(verdict_list)} expectations held ({held} passed, {failed} failed)"


def _row(cells: Sequence[str]) -> str:
    padded = (f"{cell:{align}{width}}" for cell, (_, align, width) in zip(cells, _COLUMNS, strict=True))
    return "  ".join(padded).rstrip()


def _signed(seconds: float) -> str:
    text = format_duration(seconds)
    return text if text.startswith("-") or text == "n/a" else f"+{text}"


# --- repeated runs ----------------------------------------------------------------------


def repeat_table(result: RepeatResult) -> str:
    """Per client: how many runs passed, and the min / median / max of its main metrics."""
    width = max([len(client.client) for client in result.clients] + [6])
    lines = [f"{'client':<{width}}  {'runs passed':>11}  {'elapsed min / median / max':>30}  "
             f"{'overhead min / median / max':>30}  {'lateness.p99 max':>16}"]
    for client in result.clients:
        elapsed = client.metrics["elapsed"]
        overhead = client.metrics["overhead"]
        lines.append(
            f"{client.client:<{width}}  {f'{client.runs_passed} of {client.runs}':>11}  "
            f"{_triple(elapsed, format_duration):>30}  {_triple(overhead, _signed):>30}  "
            f"{format_duration(client.metrics['lateness.p99'].max):>16}")
    return "\n".join(lines)


def repeat_verdicts(result: RepeatResult) -> str:
    rows = [(client.client, tally) for client in result.clients for tally in client.expectations]
    if not rows:
        return "no expectations: the scenario has no `expect:` for these clients"
    client_width = max(len(client) for client, _ in rows)
    text_width = max(len(tally.expectation.text) for _, tally in rows)
    lines = [f"expectations over {result.count} runs"]
    for client, tally in rows:
        shown = tally.expectation.format_measured
        held = f"held {tally.passes} of {tally.runs} (needs {tally.required})"
        lines.append(
            f"  {'PASS' if tally.passed else 'FAIL'}  {client:<{client_width}}  "
            f"{tally.expectation.text:<{text_width}}  {held:<24}  measured "
            f"{shown(tally.actual.min)} .. {shown(tally.actual.max)} (median {shown(tally.actual.median)})"
            f"  bound {tally.bound}")
    return "\n".join(lines)


def repeat_summary(result: RepeatResult) -> str:
    tallies = [tally for client in result.clients for tally in client.expectations]
    failed = sum(not tally.passed for tally in tallies)
    held = len(tallies) - failed
    outcome = "FAILED" if failed else "passed"
    return (f"{outcome}: {held} of {len(tallies)} expectations held in enough of {result.count} runs "
            f"({result.runs_passed} of {result.count} runs passed every expectation)")


def _triple(spread: Spread, shown: Callable[[float], str]) -> str:
    return f"{shown(spread.min)} / {shown(spread.median)} / {shown(spread.max)}"


# --- baselines --------------------------------------------------------------------------


def baseline_lines(report: BaselineReport) -> str:
    """Each client's overhead against the baseline, and the clients not compared."""
    base = report.baseline
    limit = f"{report.max_regression * 100:g}%"
    lines = [f"baseline {report.path} (saved {base.created} by netsim {base.netsim_version}, "
             f"{base.runs} run{'s' * (base.runs != 1)}, time scale {base.time_scale:g})"]
    width = max([len(comparison.client) for comparison in report.comparisons] + [1])
    for comparison in report.comparisons:
        status = "PASS" if comparison.passed else "FAIL"
        verdict = "within" if comparison.passed else "more than"
        lines.append(
            f"  {status}  {comparison.client:<{width}}  overhead {comparison.ratio * 100:+.2f}% of ideal, "
            f"baseline {comparison.baseline_ratio * 100:+.2f}%: regressed "
            f"{comparison.regression * 100:+.2f} points, {verdict} {limit}")
    lines += [f"  skipped {reason}" for reason in report.skipped]
    return "\n".join(lines)


def baseline_summary(report: BaselineReport) -> str:
    regressed = [comparison.client for comparison in report.comparisons if not comparison.passed]
    limit = f"{report.max_regression * 100:g}%"
    if regressed:
        return (f"FAILED: the overhead of {', '.join(regressed)} regressed more than {limit} of "
                f"ideal against baseline {report.path}")
    return (f"passed: no overhead regressed more than {limit} of ideal against baseline {report.path} "
            f"({len(report.comparisons)} client{'s' * (len(report.comparisons) != 1)} compared)")
