"""What ``netsim run`` prints: the live table of runs, the verdicts, the summary, and the
comparison with a baseline.

Every renderer takes a RepeatResult, and a single run is a repeat of one: it reads as
it always has (a table row per client, each verdict with the measured value beside the
bound), and more runs add what only they have: a table of spreads, and how often each
expectation held. Figures keep a readable length at any time scale.
"""

from __future__ import annotations

import math
import re
import signal
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from netsim._units import format_address, format_duration, format_share, format_size, printable
from netsim.baseline import BaselineReport
from netsim.clients.command import CANNOT_RUN, NOT_RUNNABLE, NOT_STARTED
from netsim.expectations import Expectation
from netsim.repeat import ExpectationTally, RepeatResult, Spread
from netsim.results import Program, RunResult, connections_failed, troubled_lines
from netsim.scenario import Scenario

if TYPE_CHECKING:
    from netsim.outcome import Outcome, Plan

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
# The same, as tight as the figures allow, one space apart: for a terminal narrower than
# the table above (96 columns with its 12 of client names), where a row would wrap. The
# demo's table then takes 80 columns.
_TIGHT = (6, 8, 8, 9, 8, 6, 6, 6, 12)

# From here on (scenario seconds, about a day) a duration is shown in scientific
# notation: a tiny time scale divides a run's wall time into figures that, written out
# in full, run to hundreds of digits.
_LONG_DURATION = 1e5
_LONG_PERCENT = 1e6  # likewise for a percentage


class Writer(Protocol):
    """Where a report goes: sys.stdout, or anything with ``write`` and ``flush``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


# --- figures ------------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """A duration as the reports show it: ``12.004s``, ``250ms``, ``80µs``, ``3.2e+07s``."""
    if not math.isnan(seconds) and abs(seconds) >= _LONG_DURATION:
        return f"{seconds:.3g}s"
    return format_duration(seconds)


def measured_text(expectation: Expectation, value: float) -> str:
    """A measured value of the expectation's metric, with its unit, at a readable length."""
    if expectation.kind == "duration":
        return duration_text(value)
    return expectation.format_measured(value)


def percent_text(ratio: float) -> str:
    """A signed share: ``+12.50%``."""
    percent = ratio * 100
    if not math.isnan(percent) and abs(percent) >= _LONG_PERCENT:
        return f"{percent:+.3g}%"
    return f"{percent:+.2f}%"


def change_text(regression: float) -> str:
    """How an overhead ratio moved, in points of the ideal: ``regressed 12.00 points``."""
    points = round(regression * 100, 2)
    if points > 0:
        return f"regressed {_points(points)}"
    if points < 0:
        return f"improved {_points(-points)}"
    return "unchanged"


def _points(points: float) -> str:
    return f"{points:.3g} points" if points >= _LONG_PERCENT else f"{points:.2f} points"


def signed_duration_text(seconds: float) -> str:
    """A duration that may be either side of zero, with its sign: ``+12.5ms``, ``-3ms``."""
    text = duration_text(seconds)
    return text if text.startswith("-") or text == "n/a" else f"+{text}"


# --- while it runs ----------------------------------------------------------------------


def title(scenario: Scenario, clients: int, time_scale: float, repeat: int = 1, *, width: int = 88) -> str:
    """What is about to run: the scenario's name and description (wrapped at ``width``), and
    the run's shape."""
    lines = [f"netsim: {scenario.name}"]
    if scenario.description.strip():
        # (Never at a hyphen: "--time-scale" stays whole.)
        lines += textwrap.wrap(scenario.description.strip(), width=max(width, 40), break_on_hyphens=False,
                               initial_indent="  ", subsequent_indent="  ")
    servers = len(scenario.servers)
    scale = f", time scale {time_scale:g}" if time_scale != 1 else ""
    runs = f", {repeat} runs each" if repeat > 1 else ""
    lines.append(f"{clients} client model{'s' * (clients != 1)}{runs}, {servers} server"
                 f"{'s' * (servers != 1)}{scale}; times in scenario seconds")
    return "\n".join(lines)


def columns(client_width: int = 12, *, tight: bool = False) -> str:
    """The header of the table of runs, its first column ``client_width`` wide (or wider)."""
    return _row([name for name, _, _ in _COLUMNS], client_width, tight=tight)


def table_width(client_width: int, *, tight: bool = False) -> int:
    """How many columns a row of the table takes at most."""
    widths = _TIGHT if tight else tuple(width for _, _, width in _COLUMNS)
    return max(client_width, widths[0]) + sum(widths[1:]) + (1 if tight else 2) * (len(widths) - 1)


def client_width(labels: Sequence[str]) -> int:
    """How wide the table's client column is for these client labels: as wide as the longest."""
    return max([_TIGHT[0], *(len(label) for label in labels)])  # (the wide table keeps 12 at least)


def run_row(run: RunResult, client_width: int = 12, *, tight: bool = False) -> str:
    """One client model's run as a row of the table."""
    metrics = run.metrics()
    return _row([
        run.client,
        duration_text(run.elapsed),
        duration_text(run.ideal),
        signed_duration_text(run.overhead),
        duration_text(metrics["ttfb.p50"]),
        format_size(metrics["bytes"]),
        f"{metrics['errors']:.0f}",
        format_share(metrics["intact"]),
        duration_text(run.lateness.p99),
    ], client_width, tight=tight)


def _row(cells: Sequence[str], client_width: int, *, tight: bool = False) -> str:
    fixed = _TIGHT if tight else tuple(width for _, _, width in _COLUMNS)
    widths = [max(client_width, fixed[0]), *fixed[1:]]
    padded = (f"{cell:{align}{width}}"
              for cell, (_, align, _), width in zip(cells, _COLUMNS, widths, strict=True))
    return (" " if tight else "  ").join(padded).rstrip()


class LiveTable:
    """Prints a run as it goes: its title, then a row for each client model once measured.

    The table's header waits for the first row, so that a run that cannot start (a busy
    port) leaves no empty table above its error. With ``quiet``, only warnings are printed.
    """

    def __init__(self, out: Writer, err: Writer, *, quiet: bool = False, width: int | None = None) -> None:
        self._out = out
        self._err = err
        self._quiet = quiet
        self._columns = width  # of the terminal, where one is known: a narrower one gets a tight table
        self._tight = False
        self._repeat = 1
        self._width = client_width([])  # of the client column: the longest label of the plan
        self._pending: list[str] = []  # what goes above the next row
        self._scenario: Scenario | None = None  # once started

    def __repr__(self) -> str:
        return f"<LiveTable quiet={self._quiet} pending={self._pending!r}>"

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self._err, flush=True)

    def started(self, plan: Plan) -> None:
        self._scenario = plan.scenario
        self._repeat = plan.repeat
        self._width = client_width([client.label for client in plan.clients])
        self._tight = self._columns is not None and table_width(self._width) > self._columns
        self._say(title(plan.scenario, len(plan.clients), plan.time_scale, plan.repeat,
                        width=min(88, self._columns or 88)))
        self._pending = ["", columns(self._width, tight=self._tight)]

    def repeat_started(self, number: int) -> None:
        if self._repeat > 1:
            self._pending.append(f"run {number} of {self._repeat}")

    def client_started(self, client: str, ideal: float, connections: int) -> None:
        pass  # the row comes once the client model is measured

    def measured(self, run: RunResult) -> None:
        self._say(*self._pending, run_row(run, self._width, tight=self._tight))
        self._pending = []

    def unfinished(self, seed: int | None) -> None:
        if self._scenario is None or seed is None:
            return
        line = seeds_line(self._scenario, [seed], "run")
        if line:  # as under a failed run's verdicts, -q or not
            print(line, file=self._out, flush=True)

    def _say(self, *lines: str) -> None:
        if not self._quiet:
            print(*lines, sep="\n", file=self._out, flush=True)


# --- once it is over --------------------------------------------------------------------


def verdicts(result: RepeatResult) -> str:
    """Each expectation's verdict, with the measured value beside the bound.

    Over several runs, each also says how often it held; the measured value is the
    median of the runs, followed by their range where they differ.
    """
    rows = [(client.client, tallied) for client in result.clients for tallied in client.expectations]
    if not rows:
        return "no expectations: the scenario has no `expect:` for these clients"
    repeated = result.count > 1
    held = [f"held {t.passes} of {t.runs} (needs {t.required})" for _, t in rows]
    medians = [measured_text(t.expectation, t.actual.median) for _, t in rows]
    ranges = [_range(tallied) for _, tallied in rows]
    client_width = max(len(client) for client, _ in rows)
    text_width = max(len(tallied.expectation.text) for _, tallied in rows)
    held_width = max(len(text) for text in held)
    median_width = max([9, *(len(text) for text in medians)])
    range_width = max(len(text) for text in ranges)
    lines = [f"expectations over {result.count} runs (measured: the median of the runs)"
             if repeated else "expectations"]
    for (client, tallied), held_text, median, spread in zip(rows, held, medians, ranges, strict=True):
        cells = ["PASS" if tallied.passed else "FAIL", f"{client:<{client_width}}",
                 f"{tallied.expectation.text:<{text_width}}"]
        if repeated:
            cells.append(f"{held_text:<{held_width}}")
        cells.append(f"measured {median:>{median_width}}")
        if range_width:
            cells.append(f"{spread:<{range_width}}")
        cells.append(f"bound {tallied.bound}")
        lines.append("  " + "  ".join(cells))
    return "\n".join(lines)


# How much of a failed program's standard error the terminal shows: its last lines,
# each cut to a line's width (the JSON result keeps 64 KiB of it).
STDERR_LINES = 3
STDERR_WIDTH = 100  # characters


def programs(result: RepeatResult) -> str:
    """Why each ``command`` client's program failed, where one did: it could not be
    started, netsim ended it at its timeout, its exit code failed its expectation, or an
    expectation on its connections failed while it wrote on its stderr; with the end of
    its standard error. Also a program that left processes running, or made
    more connections than its targets. Empty when none did (over repeats: the first failure of
    each client)."""
    return _under_verdicts("programs", result, lambda run: (
        [] if (program := program_to_explain(run)) is None else program_lines("", program)))


def connections(result: RepeatResult) -> str:
    """Which connections failed, under a client whose expectation on them failed (``intact``,
    ``errors``, ``bytes``), and why: a poem missing from a program's output, a connection
    its client closed early. Empty when there is none (over repeats: the first such run of
    each client)."""
    return _under_verdicts("connections", result, lambda run: connection_problems(run)
                           if connections_failed(run.expectations) else [])


def _under_verdicts(title: str, result: RepeatResult, say: Callable[[RunResult], list[str]]) -> str:
    """A section under the verdicts: what ``say`` has to say of each client's first run it
    says anything of, the client named on its first line. Empty when it says nothing."""
    said: dict[str, list[str]] = {}
    for run in (run for scenario in result.results for run in scenario.runs):
        if run.client not in said and (lines := say(run)):
            said[run.client] = lines
    if not said:
        return ""
    width = max(len(client) for client in said)
    out = [title]
    for client, lines in said.items():
        out += [f"  {client if number == 0 else '':<{width}}  {line}" for number, line in enumerate(lines)]
    return "\n".join(out)


def program_to_explain(run: RunResult) -> Program | None:
    """A run's program when there is something to say of how it ended: it could not be
    started, netsim ended it at its timeout, its exit code failed its expectation, it left
    processes running or made more connections than its targets, or it wrote on its stderr
    and an expectation on its connections (``intact``, ``errors``, ``bytes``) failed."""
    program = run.program
    if program is None:
        return None
    exit_failed = any(not verdict.passed and verdict.expectation.metric == "exit_code"
                      for verdict in run.expectations)
    # A program that exits 0 may still have said on its stderr why a connection failed
    # ("timeout on 44115"): under a failed verdict on its connections, that is shown too.
    said_why = program.stderr.strip() and connections_failed(run.expectations)
    if (exit_failed or said_why or program.timed_out or _not_started(program)
            or program.left_running or program.extra_connections):
        return program
    return None


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as a shell would take it back, quoted for reading: an argument with spaces
    or single quotes goes in double quotes where that needs no escapes."""
    import shlex

    shown = []
    for argument in argv:
        quoted = shlex.quote(argument)
        if quoted != argument and not any(char in argument for char in '"$`\\!'):
            quoted = f'"{argument}"'
        shown.append(quoted)
    return " ".join(shown)


def program_lines(lead: str, program: Program) -> list[str]:
    """How ``program`` ended after ``lead``, then the last lines of its stderr below it."""
    tail = [line.strip() for line in program.stderr.strip().splitlines()[-STDERR_LINES:]]
    return [f"{lead}{program_ending(program)}",
            *(f"{'':<{len(lead)}}| {_clip(printable(line), STDERR_WIDTH)}" for line in tail if line)]


def connection_problems(run: RunResult, most: int = 5) -> list[str]:
    """A line for each connection of ``run`` that failed or is not intact (``most`` of them)."""
    return troubled_lines(run.connections, most)


def _clip(line: str, width: int) -> str:
    """``line`` to ``width``: its long paths first cut to their last two parts (``.../bin/
    python3: can't open file '.../class/nosuch.py': ...``), so that the words between them
    stay; then, if it is still too long, cut in its middle: an error's beginning and its end
    (where a message such as "No such file or directory" stands) both stay."""
    if len(line) <= width:
        return line
    line = _PATH.sub(lambda path: _last_parts(path.group(0)), line)
    if len(line) <= width:
        return line
    head = width * 2 // 5
    return f"{line[:head]} ... {line[len(line) - (width - head - 5):]}"


# A path with a folder in it, as a program names one in its error (quoted or not).
_PATH = re.compile(r"/?(?:[^\s/'\"`]+/)+[^\s/'\"`:]*")


def _last_parts(path: str) -> str:
    """``path`` from its last two parts, when it has more."""
    parts = path.rstrip("/").split("/")
    return path if len(parts) <= 3 else ".../" + "/".join(parts[-2:])


def _not_started(program: Program) -> bool:
    # (A result written before `started` was kept says so only in the exit code and stderr.)
    return not program.started or (program.exit_code in (NOT_STARTED, NOT_RUNNABLE)
                                   and program.stderr.startswith(CANNOT_RUN))


def program_ending(program: Program) -> str:
    """How a program ended, in a few words: its exit code and signal, netsim's part."""
    code = program.exit_code
    if _not_started(program):
        return f"could not be started (exit {program.exit_code}):"
    shown = f"exit {code}"
    if code < 0:
        try:
            shown += f" ({signal.Signals(-code).name})"
        except ValueError:
            pass
    if program.extra_connections:
        shown += (f", {program.extra_connections} connection{'s' if program.extra_connections > 1 else ''} "
                  f"more than its targets (each judged by its fullest)")
    if program.left_running:
        shown += (f", leaving {program.left_running} process{'es' if program.left_running > 1 else ''} "
                  f"running, which netsim ended")
    said = ", its stderr ends:" if program.stderr.strip() else ", nothing on its stderr"
    return f"ended by netsim at its timeout: {shown}{said}" if program.timed_out else shown + said


def _range(tallied: ExpectationTally) -> str:
    """``range MIN .. MAX`` of the values measured over the runs; empty when they look alike."""
    low, high = (measured_text(tallied.expectation, value)
                 for value in (tallied.actual.min, tallied.actual.max))
    return "" if low == high else f"range {low} .. {high}"


def summary(result: RepeatResult) -> str:
    """The last line: how many expectations held (in enough of the runs)."""
    tallies = [tallied for client in result.clients for tallied in client.expectations]
    failed = sum(not tallied.passed for tallied in tallies)
    held = len(tallies) - failed
    outcome = "FAILED" if failed else "passed"
    if result.count == 1:
        return f"{outcome}: {held} of {len(tallies)} expectations held ({held} passed, {failed} failed)"
    return (f"{outcome}: {held} of {len(tallies)} expectations held in enough of {result.count} runs "
            f"({result.runs_passed} of {result.count} runs passed every expectation)")


def spread_table(result: RepeatResult) -> str:
    """Per client: how many runs passed, and the min / median / max of its main metrics."""
    width = max([len(client.client) for client in result.clients] + [6])
    lines = [f"{'client':<{width}}  {'runs passed':>11}  {'elapsed min / median / max':>30}  "
             f"{'overhead min / median / max':>30}  {'lateness.p99 max':>16}"]
    for client in result.clients:
        elapsed = client.metrics["elapsed"]
        overhead = client.metrics["overhead"]
        lines.append(
            f"{client.client:<{width}}  {f'{client.runs_passed} of {client.runs}':>11}  "
            f"{_triple(elapsed, duration_text):>30}  {_triple(overhead, signed_duration_text):>30}  "
            f"{duration_text(client.metrics['lateness.p99'].max):>16}")
    return "\n".join(lines)


def _triple(spread: Spread, shown: Callable[[float], str]) -> str:
    return f"{shown(spread.min)} / {shown(spread.median)} / {shown(spread.max)}"


def baseline_lines(report: BaselineReport) -> str:
    """Each client's overhead against the baseline, and the clients not compared."""
    base = report.baseline
    limit = f"{report.max_regression * 100:g} points"  # ratios are shares of the ideal: so is it
    lines = [f"baseline {report.path} (saved {base.created} by netsim {base.netsim_version}, "
             f"{base.runs} run{'s' * (base.runs != 1)}, time scale {base.time_scale:g})"]
    width = max([len(comparison.client) for comparison in report.comparisons] + [1])
    for comparison in report.comparisons:
        status = "PASS" if comparison.passed else "FAIL"
        verdict = "within" if comparison.passed else "more than"
        lines.append(
            f"  {status}  {comparison.client:<{width}}  overhead {percent_text(comparison.ratio)} of "
            f"ideal, baseline {percent_text(comparison.baseline_ratio)}: "
            f"{change_text(comparison.regression)}, {verdict} {limit}")
    lines += [f"  skipped {reason}" for reason in report.skipped]
    lines += [f"  note    {note}" for note in report.notes]
    return "\n".join(lines)


def baseline_summary(report: BaselineReport) -> str:
    regressed = [comparison.client for comparison in report.comparisons if not comparison.passed]
    limit = f"{report.max_regression * 100:g} points"
    if regressed:
        return (f"FAILED: the overhead of {', '.join(regressed)} regressed more than {limit} of the "
                f"ideal against baseline {report.path}")
    if not report.comparisons:  # a guard that guards nothing must not read as a pass
        return (f"nothing compared against baseline {report.path}: none of this run's clients is "
                f"in it with a ratio to compare (save a new one with --save-baseline)")
    # Not "passed": this line comes last, under the expectations' verdict, which may be a failure.
    return (f"baseline held: no overhead regressed more than {limit} of the ideal against {report.path} "
            f"({len(report.comparisons)} client{'s' * (len(report.comparisons) != 1)} compared)")


# Under the table when a program ran: its ttfb is not the client-side figure of the models.
PROGRAM_TTFB = ("(a program's ttfb is taken at its servers, from their accept to their first byte sent;\n"
                " netsim's models take theirs from their connect to their first read)")


def conclude(outcome: Outcome, out: Writer, err: Writer, *, quiet: bool = False, timeline: str = "") -> None:
    """Everything printed once a run is over: spreads, the ``timeline`` (drawn already, if
    any), warnings, verdicts and summaries."""
    result = outcome.result
    if not quiet:
        if any(run.program is not None for scenario in result.results for run in scenario.runs):
            print(PROGRAM_TTFB, file=out)
        print(file=out)
        if result.count > 1:
            print(spread_table(result), end="\n\n", file=out)
        if timeline:
            print(timeline, file=out)
    for warning in result.warnings:
        print(f"warning: {warning}", file=err)
    print(verdicts(result), file=out)
    failed_programs = programs(result)
    if failed_programs:
        print(failed_programs, file=out)
    failed_connections = connections(result)
    if failed_connections:
        print(failed_connections, file=out)
    if outcome.baseline is not None:
        print(baseline_lines(outcome.baseline), file=out)
    seeds = _seeds_to_repeat(outcome)
    if seeds:
        print(seeds, file=out)
    print(summary(result), file=out)
    if outcome.baseline is not None:
        print(baseline_summary(outcome.baseline), file=out)
    if outcome.saved_baseline is not None and not quiet:
        print(f"saved baseline {outcome.saved_baseline}", file=err)
    out.flush()


def _seeds_to_repeat(outcome: Outcome) -> str:
    """Where a failed run's course was drawn from a seed netsim chose: which."""
    failed = [result.seed for result in outcome.result.results
              if not result.passed and result.seed is not None]
    return seeds_line(outcome.plan.scenario, failed, "failed run")


def seeds_line(scenario: Scenario, seeds: Sequence[int], run: str, option: str = "--seed") -> str:
    """Where the course of a ``run`` (a failed one, one that did not finish) was drawn from
    ``seeds`` netsim chose (jitter, a share of faults): which, so that ``option`` (the pytest
    plugin's is another) draws it again. The scenario's own seed needs no word."""
    if not seeds or scenario.seed is not None or not any(server.draws for server in scenario.servers):
        return ""
    listed = ", ".join(str(seed) for seed in dict.fromkeys(seeds))
    return (f"seed{'s' * (len(seeds) > 1)} {listed}: {option} {seeds[0]} draws the jitter and faults of "
            f"{'a' if len(seeds) > 1 else 'that'} {run} again")


class ServeLines:
    """Prints what ``netsim serve`` says: an address per server and ``ready``; its fidelity
    and ``stopped`` once interrupted."""

    def __init__(self, out: Writer, err: Writer) -> None:
        self._out = out
        self._err = err

    def __repr__(self) -> str:
        return f"<ServeLines out={self._out!r}>"

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self._err, flush=True)

    def control(self, address: tuple[str, int]) -> None:
        """Where the control API answers (`--control`), before the servers' lines."""
        print(f"control {format_address(*address)}", file=self._out, flush=True)

    def listening(self, addresses: list[tuple[str, str, int]]) -> None:
        for name, host, port in addresses:
            print(f"listening {name} {format_address(host, port)}", file=self._out)
        print("ready", file=self._out, flush=True)

    def stopped(self, fidelity: str) -> None:
        print(f"fidelity: {fidelity}", "stopped", sep="\n", file=self._out, flush=True)
