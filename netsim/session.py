"""What ``netsim run`` and ``netsim serve`` do, from a scenario file to a verdict and its files.

The command line parses its arguments, makes one call here and renders what comes back
(netsim.report); a script can make the same call. :func:`run_session` loads the
scenario, checks every output path before anything runs, runs the client models (a
single run is a repeat of one), compares with a baseline and writes the result files.
:func:`serve_session` serves the scenario until interrupted.

Neither prints: what happens along the way goes to a progress object. Both raise
ScenarioError or UsageError before anything runs (an invalid scenario, a request it
cannot meet, an output that cannot be written), RunError when the run cannot be carried
out (OutputError when a file cannot be written once it is under way: its ``outcome``
holds the verdicts of a run that finished), and let
KeyboardInterrupt through once every process they started has stopped.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from netsim._errors import ClientCrashError, OutputError, RunError, ScenarioError, UsageError
from netsim._files import check_writable, is_special, open_log, write_output
from netsim._poem_files import DEFAULT_MAX_POEM_BYTES
from netsim.baseline import (
    DEFAULT_MAX_REGRESSION,
    Baseline,
    baseline_of,
    check_fits,
    compare,
    load_baseline,
    save_baseline,
)
from netsim.events import Event, Observer
from netsim.junit import junit_error_xml, junit_xml
from netsim.outcome import Outcome, Plan
from netsim.repeat import repeat_scenario
from netsim.results import RunResult
from netsim.scenario import Client, Scenario, needed_servers

if TYPE_CHECKING:
    from netsim.logs import EventLog
    from netsim.views.trace import TraceRecorder

# Why the report of a command that is refused once its scenario has loaded (exit 2) stands
# in the place of an earlier run's.
_NOT_RUN = "nothing was run: "

@dataclass(frozen=True)
class Outputs:
    """The files a run writes besides its report; None where none is asked for."""

    json: Path | None = None
    junit: Path | None = None
    save_baseline: Path | None = None
    log_json: Path | None = None
    html: Path | None = None
    trace: Path | None = None

    def named(self) -> dict[str, Path]:
        """Each output asked for, by the flag that asks for it."""
        flags = {"--json": self.json, "--log-json": self.log_json, "--junit": self.junit,
                 "--save-baseline": self.save_baseline, "--html": self.html, "--trace": self.trace}
        return {flag: path for flag, path in flags.items() if path is not None}

    @property
    def need_detail(self) -> bool:
        """Does one of them need every arrival and emission (not only what the measurements do)?"""
        return any(path is not None for path in (self.json, self.log_json, self.html, self.trace))


class Progress(Protocol):
    """What a caller hears while a run goes on (netsim.report.LiveTable prints it)."""

    def warn(self, message: str) -> None:
        """Something the user should know before the run starts."""

    def started(self, plan: Plan) -> None:
        """Everything checked out: the first client model's servers start next."""

    def repeat_started(self, number: int) -> None:
        """Run ``number`` (1-based) of the repeats begins."""

    def client_started(self, client: str, ideal: float, connections: int) -> None:
        """A client model's servers start next: its label, ideal (scenario seconds), connections."""

    def measured(self, run: RunResult) -> None:
        """A client model has finished and was measured (its expectations not yet checked)."""

    def unfinished(self, seed: int | None) -> None:
        """The run stops before it finished (the error is raised next); ``seed`` drew the
        jitter and faults of the run under way (None if none had started)."""


class ServeProgress(Protocol):
    """What a caller hears while a scenario is served."""

    def warn(self, message: str) -> None:
        """Something the user should know: before the servers start, while they serve (a
        proxy's upstream out of reach), or how they ran once stopped."""

    def listening(self, addresses: list[tuple[str, str, int]]) -> None:
        """Every server accepts connections: ``(name, host, port)`` of each."""

    def stopped(self, fidelity: str) -> None:
        """Serving was interrupted and every server has stopped; how well they kept time."""


def run_session(
    scenario_path: str | Path,
    *,
    repeat: int = 1,
    clients: Sequence[str] | None = None,
    time_scale: float = 1.0,
    seed: int | None = None,
    timeout: float | None = None,
    free_ports: bool = False,
    allow_external: bool = False,
    outputs: Outputs | None = None,
    baseline: Path | None = None,
    max_regression: float | None = None,
    console: TextIO | None = None,
    progress: Progress | None = None,
    allow_paths: bool = False,
    max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES,
    observer: Observer | None = None,
    timeline: bool | None = False,
    on_unfinished: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Run the scenario at ``scenario_path`` ``repeat`` times and write ``outputs``.

    ``clients``, ``time_scale``, ``seed``, ``timeout`` (wall seconds), ``free_ports`` and
    ``allow_external`` are as for :func:`netsim.run_scenario`; ``allow_paths`` and
    ``max_poem_bytes`` as for :func:`netsim.load_scenario`. ``baseline`` is a baseline
    file to compare each client's overhead ratio with, failing a client whose ratio grew
    by more than ``max_regression`` (default 10 points). ``console`` receives the live
    event log. A run that cannot be carried out still writes its ``outputs.junit``, with
    the error in it, before the RunError is raised, and so does one that a UsageError
    refuses once the scenario has loaded (an unknown client, a baseline of another
    scenario), with its JSON and HTML reports. ``observer`` hears every event as it
    arrives (a live display). ``timeline``: the caller draws the timeline (True), does not
    (False), or does for a small run (None, see netsim.views.timeline.wanted); a timeline,
    like ``--json``, ``--html``, ``--trace`` and the event logs, has every arrival and
    emission recorded. A run that does not finish (a RunError, or stopped) gives
    ``on_unfinished`` the JSON result ``--json`` gets, with the client models measured
    before it stopped, before the error goes on. Raises ValueError for ``repeat`` < 1.
    """
    from netsim.runner import select_clients, time_scale_warnings
    from netsim.views.timeline import wanted

    if repeat < 1:
        raise ValueError(f"a scenario runs at least once, got repeat={repeat}")
    outputs = outputs or Outputs()
    progress = progress or _Silent()
    try:
        scenario, source = load_scenario_argument_and_text(scenario_path, allow_paths=allow_paths,
                                                           max_poem_bytes=max_poem_bytes)
    except ScenarioError as error:
        _report_invalid(outputs, scenario_path, error)
        raise
    origin = (str(scenario_path), source)  # for a result: the scenario's file and text
    check_outputs(scenario_path, outputs.named(), scenario)
    try:
        selected = select_clients(scenario, clients)
        reference = _baseline_for(baseline, max_regression, scenario=scenario, time_scale=time_scale)
    except UsageError as error:
        _write_unfinished(outputs, None, scenario, origin, _NOT_RUN + str(error), _NOT_RUN + str(error),
                          time_scale=time_scale)
        raise
    notices = time_scale_warnings(time_scale) + _same_draws(scenario, selected, repeat, seed)
    plan = Plan(scenario, selected, repeat, time_scale)
    detail = outputs.need_detail or console is not None or wanted(timeline, plan.connections)
    tracer = None
    if outputs.trace is not None:
        from netsim.views.trace import TraceRecorder

        tracer = TraceRecorder(time_scale)

    with _event_log(outputs.log_json) as log_file:
        for notice in notices:
            progress.warn(notice)
        progress.started(plan)
        current = [1]  # the repeat under way, for the event log
        seeded: list[int | None] = [None]  # its seed, for a run that does not finish

        log = _observer(console, log_file, (lambda: {"repeat": current[0]}) if repeat > 1 else None,
                        time_scale=time_scale)

        def start(number: int, seed: int) -> None:
            current[0], seeded[0] = number, seed
            if log is not None:
                log.flush()  # the next repeat's clock starts at 0 again
            if tracer is not None:
                tracer.next_run(number, repeat)
            progress.repeat_started(number)

        # What a run that does not finish still reports: each model measured, by its repeat.
        finished: list[tuple[int | None, RunResult]] = []

        def measured(run: RunResult) -> None:
            finished.append((current[0] if repeat > 1 else None, run))
            if log is not None:
                log.flush()  # every event of this client model's run is in: the log catches up
            if tracer is not None:
                tracer.finish_client()
            progress.measured(run)

        try:
            result = repeat_scenario(
                scenario, repeat, on_start=start, observer=_fan_out(log, tracer, observer), detail=detail,
                clients=clients, time_scale=time_scale, timeout=timeout, free_ports=free_ports,
                allow_external=allow_external, seed=seed, on_run=measured,
                on_client=progress.client_started)
        except UsageError as error:  # a request the scenario cannot meet, found as the run starts
            _write_unfinished(outputs, tracer, scenario, origin, _NOT_RUN + str(error), _NOT_RUN + str(error),
                              time_scale=time_scale)
            raise
        except RunError as error:
            message = str(error) + (" (this is a bug in the client model)"
                                    if isinstance(error, ClientCrashError) else "")
            for failure in _write_unfinished(outputs, tracer, scenario, origin, str(error), message,
                                             time_scale=time_scale, runs=finished, seed=seeded[0],
                                             on_unfinished=on_unfinished):
                error.add_note(failure)
            _tell_unfinished(progress, seeded[0])
            raise
        except (KeyboardInterrupt, Exception) as error:  # stopped, or a bug: exit 130/143/129 or 3
            # Best effort: the error is what the user hears of. A signal the caller turned into
            # KeyboardInterrupt names itself (the CLI's SIGTERM and SIGHUP); Ctrl-C does not.
            why = (f"stopped before it finished ({str(error) or 'Ctrl-C'})"
                   if isinstance(error, KeyboardInterrupt)
                   else f"unexpected {type(error).__name__}: {error} (a bug in netsim)")
            _write_unfinished(outputs, tracer, scenario, origin, why, why,
                              time_scale=time_scale, runs=finished, seed=seeded[0],
                              on_unfinished=on_unfinished)
            _tell_unfinished(progress, seeded[0])
            raise
        finally:
            if log is not None:
                log.close()

    comparison = None
    if reference is not None:
        comparison = compare(reference, baseline_of(result, scenario), path=baseline or "",
                             max_regression=DEFAULT_MAX_REGRESSION if max_regression is None
                             else max_regression)
    outcome = Outcome(plan, result, comparison, outputs.save_baseline, notices,
                      source_file=origin[0], source_text=origin[1])
    if outputs.save_baseline is not None and not outcome.passed:
        # A failed run is no baseline: with --baseline and --save-baseline naming one file,
        # a regression would become the next run's reference and pass from then on.
        unsaved = (f"--save-baseline {outputs.save_baseline} not written: the run failed (an "
                   f"expectation{', or the baseline check' if comparison is not None else ''}); a "
                   f"baseline is saved from a run that passed")
        notices.append(unsaved)  # for the JSON result's warnings
        progress.warn(unsaved)
        outputs = replace(outputs, save_baseline=None)
        outcome = replace(outcome, saved_baseline=None)
    _write_outputs(outputs, outcome, str(scenario_path), tracer)
    return outcome


def report_session(result_path: str | Path, *, html: Path | None = None) -> dict[str, Any]:
    """Read the JSON result at ``result_path`` and write its HTML report to ``html``; return
    the result.

    Raises UsageError when the result cannot be read or is not a netsim result, or when
    ``html`` cannot be written or names the result itself (nothing is written then).
    """
    from netsim.views.html import ResultFormatError, html_report

    path = Path(result_path)
    if html is not None:
        _not_standard_output("--html", html)
        if html.resolve() == path.resolve():
            raise UsageError(f"--html {html} is the result file itself: write the report elsewhere")
        try:
            check_writable(html)
        except OSError as error:
            raise UsageError(f"cannot write --html {html}: {error.strerror or error}") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path} is not a JSON result (as `netsim run --json` writes): {error}") from None
    if isinstance(data, dict) and "traceEvents" in data:
        raise UsageError(f"{path} is a trace (as `netsim run --trace` writes, for ui.perfetto.dev), "
                         f"not a result: give the file `netsim run --json` wrote")
    try:
        page = html_report(data)
    except ResultFormatError as error:
        why = str(error).removeprefix("the result: ")
        raise UsageError(f"{path} is not a netsim result: {why}") from None
    if html is not None:
        try:
            write_output(html, page)
        except OSError as error:
            raise OutputError(f"cannot write --html {html}: {error.strerror or error}") from None
    assert isinstance(data, dict)  # html_report accepted it: an object
    return data


def serve_session(
    scenario_path: str | Path,
    *,
    time_scale: float = 1.0,
    seed: int | None = None,
    free_ports: bool = False,
    allow_external: bool = False,
    log_json: Path | None = None,
    json: Path | None = None,
    console: TextIO | None = None,
    progress: ServeProgress | None = None,
    allow_paths: bool = False,
    max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES,
    control: tuple[str, int] | None = None,
    control_log: TextIO | None = None,
) -> None:
    """Serve the scenario at ``scenario_path`` (``-``: standard input) until interrupted
    (KeyboardInterrupt).

    Once the servers have stopped, ``progress.stopped`` hears how well they kept their
    schedule, ``json`` gets what they saw of every connection, and the interrupt goes on
    to the caller. ``log_json`` and ``console`` receive every event. ``allow_paths`` and
    ``max_poem_bytes`` are as for :func:`netsim.load_scenario`. With ``control`` (HOST,
    PORT) the live control API answers there (on loopback unless ``allow_external``), and
    ``control_log`` gets a line for each request it answers.
    """
    from netsim._serving import Serving, serve_scenario
    from netsim.runner import LEFT_REALTIME, fidelity, time_scale_warnings

    progress = progress or _Silent()
    scenario = load_scenario_argument(scenario_path, allow_paths=allow_paths,
                                      max_poem_bytes=max_poem_bytes)
    check_outputs(scenario_path, Outputs(log_json=log_json, json=json).named(), scenario)
    for notice in time_scale_warnings(time_scale):
        progress.warn(notice)
    failed: list[OSError] = []

    def stopped(net: Serving) -> None:
        if net.left_realtime:  # before the closing lines, which end with `stopped`
            progress.warn(LEFT_REALTIME)
        progress.stopped(fidelity(net.wall_lateness, net.machine))
        if json is not None:
            try:
                # What they saw, though they died: a stop signal sent to the whole process
                # group (a CI job's timeout, systemd) reaches the server process too.
                write_output(json, _dumps(net.accounts().to_dict()))
            except OSError as error:
                failed.append(error)

    with _event_log(log_json) as log_file:
        log = _observer(console, log_file, time_scale=time_scale)
        try:
            serve_scenario(scenario, time_scale=time_scale, observer=log,
                           on_listening=progress.listening, on_stopped=stopped, seed=seed,
                           free_ports=free_ports, allow_external=allow_external,
                           control=control, control_log=_line_writer(control_log),
                           on_control=getattr(progress, "control", None), on_warning=progress.warn)
        except KeyboardInterrupt:
            if failed:
                raise OutputError(f"cannot write --json {json}: {failed[0].strerror}") from None
            raise
        finally:
            if log is not None:
                log.close()


def _line_writer(stream: TextIO | None) -> Callable[[str], None] | None:
    """What the control API logs, a line at a time, flushed: a script may be watching."""
    if stream is None:
        return None

    lock = threading.Lock()  # each request is answered in a thread of its own

    def write(line: str) -> None:
        with lock:  # one write a line: two requests' lines never run together
            stream.write(f"control: {line}\n")
            stream.flush()

    return write


def load_scenario_argument(path: str | Path, *, allow_paths: bool = False,
                           max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES,
                           allow_external: bool = True) -> Scenario:
    """The scenario a command names: a file, or ``-`` for standard input (its folder: the
    current one). ``allow_external=False``: a server outside loopback is a problem of the
    file (``netsim validate``), where a run refuses it with the request."""
    return load_scenario_argument_and_text(path, allow_paths=allow_paths, max_poem_bytes=max_poem_bytes,
                                           allow_external=allow_external)[0]


def load_scenario_argument_and_text(path: str | Path, *, allow_paths: bool = False,
                                    max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES,
                                    allow_external: bool = True) -> tuple[Scenario, str]:
    """``load_scenario_argument``, and the text the scenario was loaded from (read once)."""
    import sys

    from netsim._loader import load_scenario_and_text, load_scenario_text

    if str(path) == "-":
        text = sys.stdin.read()
        return load_scenario_text(text, filename="<stdin>", allow_paths=allow_paths,
                                  max_poem_bytes=max_poem_bytes, allow_external=allow_external), text
    return load_scenario_and_text(path, allow_paths=allow_paths, max_poem_bytes=max_poem_bytes,
                                  allow_external=allow_external)


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def check_outputs(scenario_path: str | Path, outputs: Mapping[str, Path],
                  scenario: Scenario | None = None) -> None:
    """Refuse, before anything runs, an output that cannot be written or would destroy something.

    Never over the scenario file or a file it uses (a poem file, a program a client runs),
    never two results into one file (special files such as /dev/null excepted), never a
    folder, and only where a file can be written. Raises UsageError.
    """
    source = Path(scenario_path).resolve()
    used = _files_used(scenario) if scenario is not None else {}
    seen: dict[Path, str] = {}
    problems = []  # every output's, in one message: a CI user fixes them in one go
    for flag, output in outputs.items():
        _not_standard_output(flag, output)
        target = output.resolve()
        if target == source:
            problems.append(f"{flag} {output} is the scenario file itself: write results elsewhere")
        elif target in used:
            problems.append(f"{flag} {output} is {used[target]}: write results elsewhere")
        elif target in seen and not is_special(output):
            problems.append(f"{seen[target]} and {flag} both name {output}: give each its own file")
        else:
            try:
                check_writable(output)
            except OSError as error:
                problems.append(f"cannot write {flag} {output}: {error.strerror or error}")
        seen[target] = flag
    if problems:
        raise UsageError("; ".join(problems))


def _files_used(scenario: Scenario) -> dict[Path, str]:
    """The files the scenario reads or runs, with what each is to it: its poem files, and the
    arguments of its programs that name a file in its folder (a program, a script)."""
    used = {}
    for server in scenario.servers:
        if server.poem_file is not None:
            used[(scenario.folder / server.poem_file).resolve()] = f"the poem file of server {server.name!r}"
    for client in scenario.clients:
        for argument in client.run or ():
            path = scenario.folder / argument
            if "{" not in argument and path.is_file():
                used.setdefault(path.resolve(), f"a file client {client.label!r} runs ({argument})")
    return used


def _not_standard_output(flag: str, output: Path) -> None:
    """Refuse ``-`` as an output: it reads standard input as a scenario, so a user may well
    mean standard output by it, and would find a file named "-" instead."""
    if str(output) == "-":
        raise UsageError(f"{flag} -: netsim writes {flag} to a file, not to standard output; "
                         f"give the file's path")


def _baseline_for(path: Path | None, max_regression: float | None, *, scenario: Scenario,
                  time_scale: float) -> Baseline | None:
    if path is None:
        if max_regression is not None:
            raise UsageError("--max-regression needs --baseline PATH to compare with")
        return None
    reference = load_baseline(path)
    check_fits(reference, scenario=scenario.name, time_scale=time_scale, path=path)
    return reference


@contextlib.contextmanager
def _event_log(path: Path | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    try:
        log_file = open_log(path, label=f"--log-json {path}")
    except OSError as error:
        raise UsageError(f"cannot write --log-json {path}: {error.strerror or error}") from None
    with log_file:
        yield log_file


def _observer(console: TextIO | None, log_file: TextIO | None,
              context: Callable[[], dict[str, Any]] | None = None, *, time_scale: float) -> EventLog | None:
    """The event log's observer; ``context`` adds fields to every line (a repeat's number)."""
    from netsim.logs import make_observer

    return make_observer(console=console, json_file=log_file, context=context, time_scale=time_scale)


def _fan_out(*observers: Observer | None) -> Observer | None:
    """One observer that hands each event to every one given (None when none is)."""
    given = [observer for observer in observers if observer is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def observe(event: Event) -> None:
        for observer in given:
            observer(event)

    return observe


def _write_outputs(outputs: Outputs, outcome: Outcome, scenario_file: str,
                   tracer: TraceRecorder | None = None) -> None:
    """Write --json, --junit, --save-baseline, --html and --trace; every one is tried before
    OutputError is raised, with the ``outcome`` (its baseline not saved, if that failed)."""
    writes: list[tuple[str, Path, Callable[[Path], None]]] = []
    data = outcome.to_dict() if outputs.json is not None or outputs.html is not None else {}
    if outputs.json is not None:
        writes.append(("--json", outputs.json,
                       lambda path: write_output(path, json.dumps(data, indent=2) + "\n")))
    if outputs.html is not None:
        from netsim.views.html import html_report

        writes.append(("--html", outputs.html, lambda path: write_output(path, html_report(data))))
    if outputs.trace is not None and tracer is not None:
        writes.append(("--trace", outputs.trace,
                       lambda path: write_output(path, tracer.text(scenario=outcome.result.scenario))))
    if outputs.junit is not None:
        text = junit_xml(outcome.result, file=scenario_file, baseline=outcome.baseline,
                         notices=outcome.notices, unstarted=outcome.unstarted)
        writes.append(("--junit", outputs.junit, lambda path: write_output(path, text)))
    if outputs.save_baseline is not None:
        writes.append(("--save-baseline", outputs.save_baseline,
                       lambda path: save_baseline(baseline_of(outcome.result, outcome.plan.scenario), path)))
    failures = {}
    for flag, path, write in writes:
        try:
            write(path)
        except OSError as error:
            failures[flag] = f"cannot write {flag} {path}: {error.strerror or error}"
    if failures:
        if "--save-baseline" in failures:
            outcome = replace(outcome, saved_baseline=None)
        raise UnwrittenOutputs("; ".join(failures.values()), outcome)


def _report_invalid(outputs: Outputs, scenario_path: str | Path, error: ScenarioError) -> None:
    """An invalid scenario runs nothing, but its --junit report says why, as pytest's does of a
    collection error: a CI that uploads the file never shows an earlier run's as this one.
    Best effort: the error is what the user hears of."""
    junit = outputs.junit
    if junit is None or str(scenario_path) == "-" or Path(junit).resolve() == Path(scenario_path).resolve():
        return
    from netsim._loader import format_problem

    message = "the scenario is invalid:\n" + "\n".join(map(format_problem, error.problems))
    with contextlib.suppress(OSError):
        # Nothing else a user wrote is written over: the scenario could not say which files are its.
        if Path(junit).is_file():
            with open(junit, "rb") as existing:
                if not existing.read(4096).lstrip().startswith(b"<?xml"):
                    return
        check_writable(junit)
        write_output(junit, junit_error_xml(Path(scenario_path).stem, message, file=str(scenario_path)))


class UnwrittenOutputs(OutputError):
    """Outputs that could not be written after the run finished and was judged: its
    ``outcome``, whose verdicts are still to be told."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


def _same_draws(scenario: Scenario, clients: Sequence[Client], repeat: int, seed: int | None) -> list[str]:
    """A warning when repeated runs would all draw the same jitter and faults: a fixed seed
    (the scenario's, or --seed) draws them alike in every run, so a pass rate (`in 90% of
    runs`) would judge one draw as many times."""
    if repeat < 2 or (seed is None and scenario.seed is None):
        return []
    by_name = {server.name: server for server in scenario.servers}
    drawn = sorted({server.name for client in clients
                    for server in needed_servers(scenario.targets_of(client), by_name) if server.draws})
    if not drawn:
        return []
    given = f"--seed {seed}" if seed is not None else f"the scenario's seed ({scenario.seed})"
    return [f"{given} draws the same jitter and faults of {', '.join(drawn)} in each of the {repeat} runs: "
            f"they repeat one draw, and a pass rate (`in N% of runs`) judges it {repeat} times; leave the "
            f"seed out to draw anew in each run (each failed run's seed is then printed)"]


def _write_unfinished(outputs: Outputs, tracer: TraceRecorder | None, scenario: Scenario,
                      source: tuple[str, str], why: str, junit_message: str, *, time_scale: float,
                      runs: Sequence[tuple[int | None, RunResult]] = (),
                      seed: int | None = None,
                      on_unfinished: Callable[[dict[str, Any]], None] | None = None) -> list[str]:
    """A run that did not finish (it could not be carried out, was stopped, or met a bug)
    still leaves a JUnit report for CI to show, its trace up to where it stopped (what
    happened before a timeout or a crash is what its reader wants to see), and a JSON
    result that says it did not pass and ``why``, with the client models' ``runs`` that
    were measured (not judged), each in place of whatever an earlier run left there.
    That result has the ``seed`` of the run under way and the scenario's ``source`` (its
    file as the command named it, and its text), as a finished run's has. An HTML report
    draws it, as ``netsim report`` would, under a banner saying why it is not whole.
    ``on_unfinished`` is given that result. Returns what could not be written."""
    writes: list[tuple[str, Path, str]] = []
    unfinished = _unfinished(scenario, time_scale, why, runs, source=source, seed=seed)
    if on_unfinished is not None:
        on_unfinished(json.loads(unfinished))
    if outputs.json is not None:
        writes.append(("--json", outputs.json, unfinished))
    if outputs.html is not None:
        from netsim.views.html import html_report

        writes.append(("--html", outputs.html, html_report(json.loads(unfinished))))
    if outputs.junit is not None:
        junit = junit_error_xml(scenario.name, junit_message, file=source[0])
        writes.append(("--junit", outputs.junit, junit))
    if outputs.trace is not None and tracer is not None:
        tracer.stopped()
        writes.append(("--trace", outputs.trace, tracer.text(scenario=scenario.name)))
    failures = []
    for flag, path, text in writes:
        try:
            write_output(path, text)
        except OSError as failure:
            failures.append(f"cannot write {flag} {path}: {failure.strerror or failure}")
    return failures


def _unfinished(scenario: Scenario, time_scale: float, why: str,
                runs: Sequence[tuple[int | None, RunResult]] = (), *, source: tuple[str, str],
                seed: int | None = None) -> str:
    """The JSON result of a run that did not finish: it did not pass, says why, and has the
    runs measured before it stopped, without verdicts (with ``repeat``, the number of the
    run each was measured in); its ``seed`` where one was drawn, and its ``source`` as a
    finished run's result has them."""
    data: dict[str, Any] = {"scenario": scenario.name, "time_scale": time_scale}
    if seed is not None:
        data["seed"] = seed
    data |= {"passed": False, "error": why, "warnings": [f"the run did not finish: {why}"],
             "runs": [{**run.to_dict(), "passed": None, **({"repeat": number} if number else {})}
                      for number, run in runs],  # measured, not judged
             "source": {"file": source[0], "text": source[1], "description": scenario.description}}
    return json.dumps(data, indent=2) + "\n"


def _tell_unfinished(progress: Progress, seed: int | None) -> None:
    try:
        progress.unfinished(seed)
    except (OSError, RunError):  # standard output gone: the error raised next is what matters
        pass


class _Silent:
    """The progress of a caller that asked for none."""

    def warn(self, message: str) -> None:
        pass

    def started(self, plan: Plan) -> None:
        pass

    def repeat_started(self, number: int) -> None:
        pass

    def client_started(self, client: str, ideal: float, connections: int) -> None:
        pass

    def measured(self, run: RunResult) -> None:
        pass

    def unfinished(self, seed: int | None) -> None:
        pass

    def listening(self, addresses: list[tuple[str, str, int]]) -> None:
        pass

    def stopped(self, fidelity: str) -> None:
        pass
