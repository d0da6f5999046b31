"""Human-readable output of a run: the table of runs, the verdicts, the summary line."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from netsim._units import format_duration, format_size
from netsim.expectations import Verdict
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


def header(scenario: Scenario, clients: int, time_scale: float) -> str:
    lines = [f"netsim: {scenario.name}"]
    if scenario.description.strip():
        lines += textwrap.wrap(scenario.description.strip(), width=88,
                               initial_indent="  ", subsequent_indent="  ")
    servers = len(scenario.servers)
    scale = f", time scale {time_scale:g}" if time_scale != 1 else ""
    lines.append(f"{clients} client model{'s' * (clients != 1)}, {servers} server"
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
