"""Run a scenario: fresh servers for each client model, the run, its measurements.

Each client model gets servers of its own, started before it and stopped after it,
so that no model's connections queue behind another's. Events of both child
processes are stamped on the one monotonic clock of the run (seconds since
``run_scenario`` began) and reach the ``observer`` as they arrive.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import fnmatch
import math
import random
import resource
import time
import typing
from collections.abc import Callable, Collection, Mapping, Sequence

from netsim import _placeholders, _plugins
from netsim._errors import ClientCrashError, LimitReachedError, RunError, RunTimeoutError, UsageError
from netsim._machine import Machine, StealClock
from netsim._measure import Correlator, Slot, measure
from netsim._processes import (
    FRESH_SERVERS_FROM,
    STOP_TIMEOUT,
    ClientProcess,
    ServerProcess,
    wait_for,
)
from netsim._units import format_duration
from netsim.clients import ClientModel, ClientOptions, Target, get_model
from netsim.clients.command import holds_poem
from netsim.conditions import Conditions, changes_of
from netsim.engine import PhasePlan, ServerPlan
from netsim.events import (
    ClientMessage,
    ClientStarted,
    Crashed,
    EventBatch,
    Finished,
    LatenessBatch,
    LimitReached,
    Observer,
    ReportStates,
    ServerMessage,
    ServerStates,
    Stopped,
)
from netsim.expectations import Expectation, evaluate, parse_expectation
from netsim.ideal import elapsed_of, ideal_timeline, syn_times
from netsim.results import ConnectionResult, Program, RunResult, ScenarioResult, not_printed, percentile
from netsim.scenario import COMMAND, Client, Phase, Scenario, Server, chain_of, needed_servers, server_at

# A run may take this multiple of its ideal wall time, plus the margin, before it is
# stopped: generous, because a loaded machine is slow, but never a hang.
TIMEOUT_FACTOR = 3.0
TIMEOUT_MARGIN = 10.0  # seconds
# How long a run stopped at its timeout waits for the servers to say what they hold open.
STATES_TIMEOUT = 1.0  # seconds
# How long a client process whose pipe closed early may take to be reaped, so that what
# ended it (a signal, an exit code) can be said.
REAP_TIMEOUT = 1.0  # seconds

Answer = typing.TypeVar("Answer", Stopped, ServerStates)

# Descriptors a process needs besides its connections: listeners, pipes, stdio, imports.
DESCRIPTOR_MARGIN = 64

# A run whose ideal is unknown (a proxy to an outside service) is stopped after this.
UNKNOWN_IDEAL_TIMEOUT = 60.0  # seconds

# Added to twice the longest expected silence to make a connection's default timeout.
DEFAULT_TIMEOUT_MARGIN = 1.0  # scenario seconds

# Above this p99 lateness (wall seconds) the servers could not keep their schedule:
# the machine was too busy for timing expectations to mean much.
LATENESS_WARNING = 0.005  # 5 ms

# Steal time (netsim._machine) above this share of the machine's CPU time over a run is
# named beside a failed timing expectation: the hypervisor then takes 20 ms of every
# second of two CPUs, in stretches of milliseconds as long as the bounds the c10k
# scenario sets on lateness. It is where steal becomes worth naming, not where runs
# start to fail (c10k runs passed with up to 2.6%: docs/performance.md). Below
# STEAL_NOTED it is not worth a word anywhere.
STEAL_WARNING = 0.01  # 1%
STEAL_NOTED = 0.002  # 0.2%
# The kernel counts steal in clock ticks (10 ms here), so a tick or two in a short run
# says little: less than this is never named.
STEAL_FLOOR = 0.03  # seconds
# The kinds of metric that time tells: a CPU taken away moves them.
TIMED = ("duration", "factor")
# A program's first connection this much later than the ideal's (scenario seconds) is
# named beside a failed timing expectation (see _start_up).
START_UP_NOTED = 0.05  # seconds

# Phases count from when the servers were ready, a process's start (a few milliseconds
# of wall time) before the client model starts; when that is this much of the scenario
# (scenario seconds, at a small time scale), a run with phases that failed an expectation
# (any: a phase moved changes what happens, not only when) warns that they came that much
# sooner in the client's run than the scenario says.
PHASES_LAG_NOTED = 0.05  # seconds

# A run this much shorter than its ideal, the least time a client of its kind can take,
# was not the client the ideal describes (a program's `concurrent:` wrong, say): a
# warning says so. Scheduling never makes a run shorter; a client that gives up sooner
# than the ideal (a `retry` that starts before the ideal's first try) by a few percent.
BELOW_IDEAL = 0.2  # 20%

# Below this time scale a run's own overhead (a millisecond or so of wall time per
# client model) becomes a second or more of scenario time, and timer resolution (tens
# of microseconds) a noticeable share of every pause: the figures stop meaning much.
TIME_SCALE_FLOOR = 0.001

LEFT_REALTIME = ("the server process used up its real-time budget (CPU time without a pause) and "
                 "ran at normal priority for the rest of the run, where other tasks can hold it back")


def run_scenario(
    scenario: Scenario,
    *,
    clients: Sequence[str] | None = None,
    time_scale: float = 1.0,
    observer: Observer | None = None,
    timeout: float | None = None,
    free_ports: bool = False,
    allow_external: bool = False,
    on_run: Callable[[RunResult], None] | None = None,
    seed: int | None = None,
    models: Mapping[str, ClientModel] | None = None,
    detail: bool | None = None,
    on_client: Callable[[str, float, int], None] | None = None,
) -> ScenarioResult:
    """Run the scenario's client models (or those named) and check its expectations.

    ``clients`` runs only those named, and the clients their ``speedup()`` compares
    against, whose own expectations are then not judged.
    ``time_scale`` multiplies every duration of the scenario; results are reported in
    scenario time. ``timeout`` (wall seconds) stops a client model that runs longer;
    by default it is derived from the model's ideal time. ``free_ports`` binds every
    server to any free port instead of its fixed one. ``on_run`` is called with each
    client model's result as soon as it is measured (before expectations are checked).
    ``seed`` fixes jitter and faults; by default the scenario's ``seed``, or a fresh one
    (reported in the result, so that the run can be repeated exactly). ``models`` runs
    these models for the names they are given under, instead of the installed ones (a
    model under test, not yet registered). ``detail`` records every arrival and emission
    (default: when there is an ``observer``), which timelines and traces need; without it
    the children send only what the measurements need. ``on_client(label, ideal,
    connections)`` is called as each client model's servers are about to start.

    Raises UsageError for a request the scenario cannot meet (an unknown client or
    model, a non-loopback host without ``allow_external``), RunError when the run cannot
    be carried out (a busy port, a timeout, a crashed client model).
    """
    check_request(scenario, time_scale, allow_external, free_ports=free_ports)
    if not scenario.clients:
        raise UsageError(f"scenario {scenario.name!r} has no clients to run; serve its servers for "
                         f"a client of your own with `netsim serve` or netsim.serving()")
    selected = select_clients(scenario, clients)
    chosen = {client.label: _model(client.model, models) for client in selected}
    for client in selected:
        _check_limits(scenario, client, chosen[client.label])
    seed = seed_for(scenario, seed)
    t0 = time.monotonic()
    runs = []
    for client in selected:
        run = _run_client(scenario, client, chosen[client.label], t0=t0, time_scale=time_scale,
                          observer=observer, timeout=timeout, free_ports=free_ports, seed=seed,
                          detail=observer is not None if detail is None else detail, on_client=on_client)
        if on_run is not None:
            on_run(run)
        runs.append(run)
    elapsed_of = {run.client: run.elapsed for run in runs}
    # A client that ran only for a named one's speedup() is measured, not judged.
    named = set(named_clients(scenario, clients)) if clients else {client.label for client in selected}
    judged = [judge(scenario, run, elapsed_of) if run.client in named else run for run in runs]
    warnings = unread_warnings(scenario, [client.label for client in selected if client.label in named])
    warnings += [warning for run in judged for warning in fidelity_warnings(run)]
    return ScenarioResult(scenario.name, time_scale, judged, warnings, seed)


def time_scale_warnings(time_scale: float, option: str = "--time-scale") -> list[str]:
    """A warning when the time scale is too small for the figures to mean much; ``option``
    is the flag that sets it where the warning is read (the pytest plugin's is another)."""
    if time_scale >= TIME_SCALE_FLOOR:
        return []
    return [f"time scale {time_scale:g} is below {TIME_SCALE_FLOOR:g}: a millisecond of the "
            f"machine's own overhead becomes {1e-3 / time_scale:.3g} s of scenario time, so the "
            f"timings will say more about the machine than about the clients; try "
            f"{option} {TIME_SCALE_FLOOR:g} or more"]


# What the servers' account of a connection tells of a program: what its kernel acknowledged.
_ACKNOWLEDGED = ("intact", "bytes")


def unread_warnings(scenario: Scenario, labels: Collection[str] | None = None) -> list[str]:
    """A warning for each ``command`` client (of ``labels``, or every one) without ``output:``
    whose ``intact`` or ``bytes`` expectations would pass a program that never read: from the
    servers' side they judge what its kernel acknowledged, which a socket's receive buffer
    does whether or not the program reads it."""
    return [warning for _, warning in unread_findings(scenario, labels)]


def unread_findings(scenario: Scenario, labels: Collection[str] | None = None) -> list[tuple[int, str]]:
    """``unread_warnings``, each with the place of its client in ``scenario.clients``."""
    warnings = []
    for place, client in enumerate(scenario.clients):
        if client.model != COMMAND or client.output is not None or (labels is not None
                                                                   and client.label not in labels):
            continue
        metrics = {expectation.metric for expectation in scenario.expectations_for(client.label)}
        named = [metric for metric in _ACKNOWLEDGED if metric in metrics]
        if named:
            said = " and ".join(f"`{metric}`" for metric in named)
            warnings.append((place,
                f"{client.label}: without `output:`, {said} judge{'s' * (len(named) == 1)} what its "
                f"program's kernel acknowledged, not what the program read: one that connects and "
                f"never reads passes {'them' if len(named) > 1 else 'it'}; add `output: poems` (or "
                f"`output: lines`) to judge what it printed"))
    return warnings


def fidelity_warnings(run: RunResult) -> list[str]:
    """What the run says of the machine's part in its timings (servers that fell behind
    their schedule, the hypervisor's steal beside failed timing expectations, a server
    that left real time, a program's start) and of what it could not measure (a model's
    connections it did not report)."""
    warnings = []
    taken = steal_taken(run.machine)
    missed = _missed_by(run)
    timing_failed = bool(missed)
    # Scenario seconds of the run in a wall second: what the machine took counts as much.
    scale = run.elapsed / run.wall_elapsed if run.wall_elapsed > 0 and run.elapsed > 0 else 1.0
    if run.lateness_wall_p99 > LATENESS_WARNING:
        late = format_duration(run.lateness_wall_p99)
        warnings.append(f"{run.client}: the servers sent chunks up to {late} late (p99, wall time)"
                        f"{', and ' + taken if taken else ''}: this machine was too busy to keep the "
                        f"schedule, so the timings of this run say more about the machine than about "
                        f"the client")
    elif (taken and run.machine is not None and run.machine.steal_share >= STEAL_WARNING
          and min(missed, default=math.inf) <= run.machine.steal * scale):
        warnings.append(f"{run.client}: {taken}: a server sends nothing while its CPU is taken, so a "
                        f"timing expectation that failed in this run may have failed for the machine, "
                        f"not the client; run it again, or on a quieter machine, before blaming the client")
    if run.server_left_realtime:
        warnings.append(f"{run.client}: {LEFT_REALTIME}")
    if run.unreported_connections:
        count = run.unreported_connections
        warnings.append(f"{run.client}: the servers served {count} connection{'s' * (count > 1)} to its "
                        f"targets that the model did not report (a model reports every connection it "
                        f"makes, with its own port: connected(local_port)); this run measured "
                        f"{'them' if count > 1 else 'it'} nowhere")
    below = 1 - run.elapsed / run.ideal if run.ideal > 0 and math.isfinite(run.ideal) else math.nan
    if below > BELOW_IDEAL and not any(conn.error for conn in run.connections):
        kind = ("is `concurrent:` right for its program? `concurrent: false` adds its connections' "
                "times up" if run.program is not None else
                "does the model say rightly whether its connections overlap (concurrent)?")
        warnings.append(f"{run.client}: it took {format_duration(run.elapsed)}, {below:.0%} less than its "
                        f"ideal {format_duration(run.ideal)}, the least a client of its kind can take: the "
                        f"ideal does not describe this client ({kind})")
    lag = -run.servers_ready
    if lag >= PHASES_LAG_NOTED and not run.passed and any(change.source.startswith("phase")
                                                          for change in run.changes):
        scale = run.wall_elapsed / run.elapsed if run.elapsed > 0 else math.nan
        warnings.append(f"{run.client}: its servers were ready {format_duration(lag)} (scenario time) before "
                        f"it started, and their phases count from then: a process's start "
                        f"({format_duration(lag * scale)} of wall time) is that long at this time scale, "
                        f"so each phase came that much sooner in its run than the scenario says; a larger "
                        f"time scale keeps the phases where the scenario puts them")
    if run.threads_left:
        count = run.threads_left
        warnings.append(f"{run.client}: the model returned with {count} thread{'s' * (count > 1)} of its own "
                        f"still running, which its process did not wait for (a model joins the threads "
                        f"it starts before it returns, or makes them daemons)")
    if timing_failed and run.program is not None:
        warnings += _start_up(run, min(missed))
    return warnings


def _missed_by(run: RunResult) -> list[float]:
    """How far each failed timing expectation of ``run`` missed its bound, in scenario
    seconds of the run's elapsed time (0 where that cannot be said): what the machine took,
    or a program's start, is named beside a failure only if it could account for it."""
    missed = []
    ideal = run.ideal
    for verdict in run.expectations:
        expectation = verdict.expectation
        if verdict.passed or expectation.kind not in TIMED:
            continue
        low, high = expectation.bound(ideal if expectation.uses_ideal else math.nan)
        actual = verdict.actual
        if math.isnan(actual) or math.isnan(low) or math.isnan(high):
            missed.append(0.0)
        elif expectation.kind == "duration":
            missed.append(max(actual - high, low - actual, 0.0))
        elif expectation.op in (">", ">=") and low > 0 and math.isfinite(run.elapsed):
            # speedup(OTHER) = OTHER's elapsed / this one's: it held at an elapsed this much shorter.
            missed.append(max(run.elapsed * (1 - actual / low), 0.0))
        else:
            missed.append(0.0)
    return missed


def _start_up(run: RunResult, missed: float) -> list[str]:
    """A program's start before its first connection, when it makes half or more of a failed
    timing (``missed``: the least a failed one missed by, scenario seconds): time scaling
    shrinks the scenario's waits, never an interpreter's start."""
    lags = [(conn.start - (conn.ideal_start if math.isfinite(conn.ideal_start) else 0.0), conn.start)
            for conn in run.connections if math.isfinite(conn.start)]
    if not lags or run.elapsed <= 0:
        return []
    lag, _ = min(lags, key=lambda pair: pair[1])
    if lag < START_UP_NOTED or lag < missed / 2:
        return []
    scale = run.wall_elapsed / run.elapsed
    return [f"{run.client}: its program made its first connection {format_duration(lag)} later than the "
            f"ideal ({format_duration(lag * scale)} of wall time): its start-up (an interpreter's, its "
            f"imports) counts in elapsed, and time scale {scale:.3g} makes each wall second "
            f"{1 / scale:.3g} scenario seconds; at a larger --time-scale it weighs less"]


def steal_taken(machine: Machine | None) -> str:
    """``the hypervisor took 240ms of ...`` when it took enough to be worth a word, else ""."""
    if machine is None or not (machine.steal >= STEAL_FLOOR and machine.steal_share >= STEAL_NOTED):
        return ""
    cpus = f"{machine.cpus} CPU{'s' if machine.cpus > 1 else ''}"
    return (f"the hypervisor took {format_duration(machine.steal)} of this machine's CPU time "
            f"while it ran (steal time, {machine.steal_share:.1%} of {cpus})")


def judge(scenario: Scenario, run: RunResult, elapsed_of: Mapping[str, float]) -> RunResult:
    """``run`` with a verdict on each of its client's expectations; ``elapsed_of`` gives the
    elapsed time of every client its ``speedup()`` compares with, by label."""
    return dataclasses.replace(run, expectations=[
        evaluate(expectation, run.metrics(), elapsed_of) for expectation in _expectations(scenario, run)])


def _expectations(scenario: Scenario, run: RunResult) -> list[Expectation]:
    """A client's expectations; a program's exit code must be 0 unless they say otherwise."""
    written = scenario.expectations_for(run.client)
    if run.program is not None and not any(expectation.metric == "exit_code" for expectation in written):
        written = [*written, parse_expectation("exit_code == 0")]
    return written


def check_request(scenario: Scenario, time_scale: float, allow_external: bool, *,
                  free_ports: bool = False) -> None:
    """Refuse what the scenario may not do without being asked: a time scale that is not a
    positive number, and, unless ``allow_external``, a server that listens outside loopback
    or a proxy that connects out to another machine; with ``free_ports``, a proxy that
    names the address of a server of the scenario, which will listen elsewhere. Raises
    UsageError.
    """
    if free_ports:
        _check_upstreams_stay(scenario)
    if isinstance(time_scale, bool) or not isinstance(time_scale, int | float):
        raise TypeError(f"the time scale must be a number, like 0.1, not {type(time_scale).__name__} "
                        f"({time_scale!r})")
    if not (time_scale > 0 and math.isfinite(time_scale)):
        raise UsageError(f"the time scale must be a number greater than 0, got {time_scale:g}")
    if allow_external:
        return
    for server in scenario.servers:
        outside = server.reaches_outside()
        if outside is not None:
            raise UsageError(f"server {server.name!r} {outside[1]}; pass --allow-external "
                             f"(allow_external=True in Python) if that is intended")


def _check_upstreams_stay(scenario: Scenario) -> None:
    """Refuse a proxy whose ``upstream: HOST:PORT`` is the port of a server of the scenario:
    on free ports that server listens elsewhere, and the proxy would find nothing there (or
    another program), where ``upstream: NAME`` follows it."""
    stranded = [(proxy, server) for proxy in scenario.servers
                if (server := server_at(proxy, scenario.servers)) is not None and server is not proxy]
    if len(stranded) == 1:
        (proxy, server), = stranded
        raise UsageError(
            f"proxy {proxy.name!r} forwards to {proxy.upstream}, the port of server {server.name!r}, "
            f"which listens on a free port instead: write `upstream: {server.name}` to follow it "
            f"wherever it listens (or keep the scenario's ports: no --free-ports, free_ports=False "
            f"in Python)")
    if stranded:  # every one at once: fixing one should not uncover the next
        each = "; ".join(f"proxy {proxy.name!r} forwards to {proxy.upstream}, the port of server "
                         f"{server.name!r}: write `upstream: {server.name}`" for proxy, server in stranded)
        raise UsageError(
            f"{len(stranded)} proxies forward to the fixed ports of servers that listen on free ports "
            f"instead. {each}. (Or keep the scenario's ports: no --free-ports, free_ports=False in "
            f"Python.)")


def _model(name: str, given: Mapping[str, ClientModel] | None) -> ClientModel:
    if given is not None and name in given:
        return given[name]
    try:
        return get_model(name)
    except LookupError as error:  # unknown, or installed but not importable
        raise UsageError(str(error).strip("'\"")) from None


def _check_limits(scenario: Scenario, client: Client, model: ClientModel) -> None:
    """Refuse, before anything runs, a client that its model or the system cannot hold."""
    count = scenario.connection_count(client)
    beyond = model.beyond_limit(count)
    if beyond is not None:
        raise UsageError(f"client {client.label!r} opens {count} connections, {beyond}")
    ensure_descriptors(count + DESCRIPTOR_MARGIN)


def ensure_descriptors(needed: int) -> None:
    """Raise this process's open-file limit to ``needed`` if it is lower (its children inherit it).

    Raises UsageError, saying how to lift it, when the hard limit is lower still.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise UsageError(
            f"{needed} file descriptors are needed, but this process may open at most {hard} "
            f"(the hard RLIMIT_NOFILE); raise it (`ulimit -Hn {needed}` as root, or "
            f"`nofile` in /etc/security/limits.conf) or use fewer connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def select_clients(scenario: Scenario, names: Sequence[str] | None) -> list[Client]:
    """The clients to run: those named, plus those their speedup() compares against.

    A name with ``*``, ``?`` or ``[...]`` is a pattern, as a shell's (``'student-*'``): every
    client it matches. Raises UsageError for a name that is not a client of the scenario,
    or a pattern that matches none.
    """
    if not names:
        return list(scenario.clients)
    names = named_clients(scenario, names)
    wanted = set(names)
    for name in names:
        wanted.update(exp.other for exp in scenario.expectations_for(name) if exp.other)
    return [client for client in scenario.clients if client.label in wanted]


def named_clients(scenario: Scenario, names: Sequence[str]) -> list[str]:
    """The labels ``names`` stand for, each pattern (``'student-*'``) by every client it
    matches. Raises UsageError for a name that is not a client of the scenario, or a pattern
    that matches none."""
    known = [client.label for client in scenario.clients]
    chosen: list[str] = []
    for name in names:
        if any(char in name for char in "*?["):
            matched = fnmatch.filter(known, name)
            if not matched:
                raise UsageError(f"no client of scenario {scenario.name!r} matches {name!r}; "
                                 f"its clients are: {', '.join(known)}")
            chosen += matched
        elif name not in known:
            parts = [part.strip() for part in name.split(",")]
            if len(parts) > 1 and all(part in known for part in parts):
                each = " ".join(f"--client {part}" for part in parts)
                raise UsageError(f"no client {name!r} in scenario {scenario.name!r}: name one client "
                                 f"per --client ({each})")
            folded = [label for label in known if label.casefold() == name.casefold()]
            close = folded or difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"no client {name!r} in scenario {scenario.name!r}{hint}; "
                             f"its clients are: {', '.join(known)}")
        else:
            chosen.append(name)
    return chosen


def _run_client(
    scenario: Scenario,
    client: Client,
    model: ClientModel,
    *,
    t0: float,
    time_scale: float,
    observer: Observer | None,
    timeout: float | None,
    free_ports: bool,
    seed: int,
    detail: bool,
    on_client: Callable[[str, float, int], None] | None,
) -> RunResult:
    servers = scenario.targets_of(client)
    starts = scenario.start_offsets(client)
    everything = {server.name: server for server in scenario.servers}
    configure = model.configure
    poems = _poems_to_find(scenario, client)
    if configure is not None:  # what it needs for the ideal (a program's timeout comes below)
        model = configure(_options(scenario, client, time_scale, poems, program_timeout=None))
    # A program's own timeouts are its business: the ideal assumes the default's.
    given = client.timeout if model.instrumented else None
    syn = syn_times(time_scale)  # SYN retransmissions keep wall time: in scenario time they scale
    conn_timeout = given if given is not None else default_timeout(
        servers, concurrent=model.concurrent, seed=seed, servers=everything, starts=starts, syn=syn,
        retry=client.retry)
    ideal_course = ideal_timeline(servers, concurrent=model.concurrent, seed=seed, timeout=conn_timeout,
                                  servers=everything, starts=starts, syn=syn, retry=client.retry)
    ideal = elapsed_of(ideal_course)
    plans = plans_of(needed_servers(servers, everything), time_scale=time_scale, seed=seed,
                   free_ports=free_ports)
    program_timeout = None  # wall seconds a client's program may run (None: no program)
    if not model.instrumented and configure is not None:
        # A program is ended at its timeout and judged (its open connections timeouts),
        # never left to stop the run: its client's `timeout` (or --timeout, if shorter),
        # else --timeout, else one from the ideal.
        program_timeout = _program_timeout(client, ideal, time_scale)
        if timeout is not None:
            program_timeout = min(program_timeout, timeout) if client.timeout is not None else timeout
        model = configure(_options(scenario, client, time_scale, poems, program_timeout=program_timeout))
    if program_timeout is not None:  # the program's timeout comes first
        wall_timeout = program_timeout + TIMEOUT_MARGIN
    elif timeout is not None:
        wall_timeout = timeout
    elif math.isfinite(ideal):
        wall_timeout = TIMEOUT_FACTOR * ideal * time_scale + TIMEOUT_MARGIN
    else:  # a proxy to a service outside the scenario: nothing to derive it from
        wall_timeout = UNKNOWN_IDEAL_TIMEOUT
    correlator = Correlator(client.label, observer)
    if on_client is not None:
        on_client(client.label, ideal, len(servers))
    steal = StealClock()
    server_process = ServerProcess.start(plans, t0, detail=detail,
                                         fresh=len(servers) >= FRESH_SERVERS_FROM)
    client_process: ClientProcess | None = None
    grace = 0.0  # on any failure, stop both children at once
    try:
        targets = _targets(servers, server_process.addresses, everything, conn_timeout * time_scale,
                           [start * time_scale for start in starts])
        client_process = ClientProcess.start(model, client.label, targets, t0, detail=detail)
        finished = _follow(client_process, server_process, correlator, _who(client.label, model),
                deadline=time.monotonic() + wall_timeout, wall_timeout=wall_timeout,
                derived=program_timeout is None and timeout is None,
                conn_timeout=conn_timeout * time_scale if model.instrumented else None,
                program=program_timeout is not None)
        usage = _stop_servers(server_process, correlator)
        machine = steal.read()
        grace = STOP_TIMEOUT  # both said they are done: let them exit by themselves
    finally:
        if client_process is not None:
            client_process.close(grace=grace)
        server_process.close(grace=grace)
    events = correlator.finish()
    faults = {server.name: server.fault.kind for server in servers if server.fault is not None}
    slots = [Slot(target.server, target.port, None if target.expected is None else len(target.expected),
                  faults.get(target.server) == "refuse", faults.get(target.server) == "syn_drop")
             for target in targets]
    started = next((event.t for event in events if isinstance(event, ClientStarted)), math.nan)
    if _timed(servers, everything) and math.isfinite(started):
        # The phases began when the servers were ready, a few milliseconds (a fork) before
        # the client did: the ideal client starts then too, to face the same phases.
        ideal_course = ideal_timeline(servers, concurrent=model.concurrent, seed=seed, timeout=conn_timeout,
                                      servers=everything, starts=starts, syn=syn, retry=client.retry,
                                      ready=(server_process.ready - started) / time_scale)
        ideal = elapsed_of(ideal_course)
    measured = measure(events, correlator.lateness, slots, time_scale, instrumented=model.instrumented,
                       ideals=[(conn.start, conn.end) for conn in ideal_course])
    connections = measured.connections
    program = None
    if measured.program is not None:
        program = dataclasses.replace(Program.of(measured.program),
                                      extra_connections=measured.left_over, extra=measured.extra)
        if client.output is not None:
            connections = _check_output(connections, program, client.output, poems)
        if free_ports and client.run is not None and not _placeholders.used(client.run):
            connections = _moved_away(connections, servers)
    # A program that could not be started has no elapsed time: a timing expectation fails.
    elapsed = math.nan if program is not None and not program.started else measured.wall_elapsed / time_scale
    return RunResult(
        client=client.label, model=model.name, elapsed=elapsed, ideal=ideal,
        wall_elapsed=measured.wall_elapsed, connections=connections, lateness=measured.lateness,
        lateness_wall_p99=measured.lateness_wall_p99,
        server_cpu=math.nan if usage is None else usage.cpu_seconds,
        server_max_rss_mb=math.nan if usage is None else usage.max_rss_mb,
        server_left_realtime=usage is not None and usage.left_realtime, program=program,
        activity=measured.activity, detail=detail, changes=measured.changes, machine=machine,
        unreported_connections=measured.left_over if model.instrumented else 0,
        threads_left=finished.threads_left, servers_ready=(server_process.ready - started) / time_scale)


def _options(scenario: Scenario, client: Client, time_scale: float, poems: Mapping[str, tuple[str, ...]], *,
             program_timeout: float | None) -> ClientOptions:
    """What a model configured by its client entry (``command``) is told: ``poems`` to look
    for in its output (``_poems_to_find``); ``program_timeout`` (wall seconds) stands in for
    a client without a ``timeout`` of its own."""
    cycle = len(scenario.servers if client.targets is None else client.targets)
    timeout = program_timeout if program_timeout is not None else (
        client.timeout * time_scale if client.timeout is not None else None)
    return ClientOptions(run=client.run, concurrent=client.concurrent, output=client.output,
                         poems=poems, time_scale=time_scale, timeout=timeout,
                         folder=scenario.folder, cycle=cycle)


def _poems_to_find(scenario: Scenario, client: Client) -> dict[str, tuple[str, ...]]:
    """With ``output:``, each poem server the client reads, with the texts of its poem the
    output may hold (any one will do): as sent, and as written (its lines, if ``newline:
    strip`` sends it without them). A proxy's bytes are its upstream's: not looked for."""
    poems = {}
    for server in scenario.targets_of(client) if client.output is not None else ():
        if server.is_proxy or server.name in poems:
            continue
        texts = {server.text.strip()}
        if client.output == "poems":
            texts.add(server.payload().decode("utf-8", "replace").strip())
            # Printed with \r\n line endings (Windows' habit, a socket protocol's), as
            # `output: lines` takes it: the lines are the same.
            texts |= {text.replace("\r\n", "\n").replace("\n", "\r\n") for text in texts}
        poems[server.name] = tuple(sorted(text for text in texts if text))
    return poems


def _program_timeout(client: Client, ideal: float, time_scale: float) -> float:
    """The wall seconds a program may run: its client's ``timeout``, else from the ideal."""
    if client.timeout is not None:
        return client.timeout * time_scale
    if math.isfinite(ideal):
        return TIMEOUT_FACTOR * ideal * time_scale + TIMEOUT_MARGIN
    return UNKNOWN_IDEAL_TIMEOUT


def _check_output(connections: list[ConnectionResult], program: Program, mode: str,
                  looked_for: Mapping[str, tuple[str, ...]]) -> list[ConnectionResult]:
    """``output:``: a connection whose poem is not in the program's output is not intact
    (``program.printed``: a server's name for each of its poems the whole output held, as the
    client process saw: three connections to one server want three). The connections first
    in order take the poems found. ``looked_for``: the texts of each server's poem."""
    printed = program.printed or ()
    left = collections.Counter(printed)
    instead: dict[str, str] = {}  # by server: what the program printed in its place
    checked = []
    for conn in connections:
        if conn.intact and conn.server in looked_for:
            if left[conn.server]:
                left[conn.server] -= 1
            else:
                if conn.server not in instead:
                    instead[conn.server] = _printed_instead(program, conn.server, mode, looked_for)
                conn = dataclasses.replace(conn, intact=False, message=(
                    f"the program's output does not contain the poem of {conn.server} "
                    f"{_times(printed.count(conn.server))}{not_printed(mode)}{instead[conn.server]}"))
        checked.append(conn)
    return checked


def _printed_instead(program: Program, server: str, mode: str, poems: Mapping[str, tuple[str, ...]]) -> str:
    """What the program printed where ``server``'s poem was wanted, where its kept streams
    tell (``: its stdout is empty``), else "": a poem on its stderr, or for ``output:
    poems``, the poem's lines among others' lines, which ``output: lines`` takes (where
    the poem is nowhere in one piece: else a copy too few is what it lacks)."""
    said = []
    if not program.stdout:
        said.append("its stdout is empty")
    if holds_poem(program.stderr, server, poems, mode):
        said.append("its stderr holds the poem: print it to stdout")
    elif (program.stdout and mode == "poems" and holds_poem(program.stdout, server, poems, "lines")
          and not holds_poem(program.stdout, server, poems, "poems")):
        said.append("its output has the poem's lines, interleaved with others' or labelled: "
                    "`output: lines` takes that")
    return f": {', and '.join(said)}" if said else ""


def _moved_away(connections: list[ConnectionResult], servers: Sequence[Server]) -> list[ConnectionResult]:
    """A program told no port (no placeholder in its ``run``) made no connection to a server
    whose fixed port was moved to a free one (``free_ports``): it may know only the fixed
    port, which netsim cannot tell (``NETSIM_ADDRESSES`` may be what it reads): its missing
    connections say so."""
    fixed = {server.name: server.port for server in servers if server.port}
    if any(conn.error != "missing" for conn in connections):
        return connections  # it reached a server on its free port: it knows them (NETSIM_ADDRESSES)
    return [dataclasses.replace(conn, message=(
        f"{conn.message}: its server listened on a free port ({conn.port}), not the scenario's "
        f"{fixed[conn.server]}, and `run:` has no placeholder: the program may be connecting to the "
        f"scenario's port, where nothing listened; give it {{ports}} (or {{port:{conn.server}}}), or "
        f"run without --free-ports")) if conn.error == "missing" and conn.server in fixed else conn
        for conn in connections]


def _times(found: int) -> str:
    """How many times a poem was found, where it was found but not for every connection."""
    return "" if not found else f"once more (it holds it {'once' if found == 1 else f'{found} times'}) "


def default_timeout(targets: Sequence[Server], *, concurrent: bool, seed: int,
                    servers: dict[str, Server], starts: Sequence[float] | None = None,
                    syn: Sequence[float] | None = None, retry: float | None = None) -> float:
    """A connection's timeout when the scenario sets none (scenario seconds).

    Twice the longest silence of the fault-free ideal timeline, plus a second: long
    enough that no healthy connection ever hits it, short enough that a stalled one
    ends in reasonable time. ``syn``: when a connect's SYNs go (``ideal.syn_times``);
    ``retry``: the client's, so that the timeline is the course the client takes (its
    connections past an outage, not refused in it).
    """
    timeline = ideal_timeline(targets, concurrent=concurrent, seed=seed, servers=servers, faults=False,
                              starts=starts, syn=syn or syn_times(1.0), retry=retry)
    silences = [conn.silence for conn in timeline if math.isfinite(conn.silence)]
    return 2 * max(silences, default=0.0) + DEFAULT_TIMEOUT_MARGIN


def seed_for(scenario: Scenario, seed: int | None) -> int:
    """The seed asked for, else the scenario's, else a fresh one (reported in the result).
    Raises TypeError for a seed that is not a whole number (``"7"`` or 1.5 would draw
    differently from what was written, and the result would report it as given)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"the seed is a whole number, like 7, not {type(seed).__name__} ({seed!r})")
        return seed
    return scenario.seed if scenario.seed is not None else random.SystemRandom().randrange(2**31)


def plans_of(servers: Sequence[Server], *, time_scale: float, seed: int,
           free_ports: bool) -> list[ServerPlan]:
    """What the engine is to do for each server: the scenario's, in wall-clock seconds."""
    return [
        ServerPlan(
            name=server.name,
            host=server.host,
            port=0 if free_ports else server.port,
            chunks=() if server.is_proxy else tuple(server.chunks()),
            conditions=Conditions.of(server).scaled(time_scale),
            serial=server.mode == "serial",
            seed=seed,
            upstream=server.upstream,
            direction=server.direction or "downstream",
            chunking=server.chunk if isinstance(server.chunk, str) else server.chunk.bytes,
            phases=tuple(_phase_plan(phase, time_scale) for phase in server.phases),
        )
        for server in servers
    ]


def _phase_plan(phase: Phase, time_scale: float) -> PhasePlan:
    fields, written = changes_of(phase, time_scale)
    return PhasePlan(phase.at * time_scale, fields, written, phase.is_down, phase.resets)


def _timed(targets: Sequence[Server], servers: dict[str, Server]) -> bool:
    """Does anything the run's servers do depend on when they became ready (a phase, a
    window of unanswered handshakes)?"""
    return any(server.phases or server.handshake_delay for server in needed_servers(targets, servers))


def _who(label: str, model: ClientModel) -> str:
    """How a run's errors name a client: its label, and its model where that says more (a
    label of its own, a model another package provides: whose bug a crash is)."""
    dist = _plugins.provider(model.name)
    origin = f" from {dist}" if dist is not None else ""
    if (label == model.name or not model.instrumented) and not origin:  # (a program is the user's)
        return f"client {label!r}"
    return f"client {label!r} (model {model.name!r}{origin})"


def _ended_early(client: ClientProcess, who: str, *, runs_a_program: bool) -> RunError:
    """What to say of a client process that ended before its model finished: a crash of
    the model unless something killed it (the kernel's OOM killer, a user, or the program
    it ran: it is that program's parent)."""
    code, how = client.ending(REAP_TIMEOUT)
    if how is None:
        return ClientCrashError(f"{who} ended without finishing (exit code {code})")
    if runs_a_program:
        return RunError(f"{who}: netsim's process that runs its program was killed by "
                        f"{how} before the program ended (the program may have done it: that process "
                        f"is its parent)")
    return RunError(f"{who}: its process was killed by {how} before it finished")


def _targets(servers: Sequence[Server], addresses: dict[str, tuple[str, int]],
             everything: dict[str, Server], timeout: float, starts: Sequence[float]) -> list[Target]:
    payloads: dict[str, bytes | None] = {}  # by server: ten thousand targets, few servers
    targets = []
    for number, (server, start_at) in enumerate(zip(servers, starts, strict=True), start=1):
        if server.name not in payloads:
            source = chain_of(server, everything)[-1]
            # A proxy to HOST:PORT at the end: whatever the outside service sends.
            payloads[server.name] = None if source.is_proxy else source.payload()
        expected = payloads[server.name]
        host, port = addresses[server.name]
        targets.append(Target(conn=number, server=server.name, host=host, port=port,
                              expected=expected, timeout=timeout, start_at=start_at))
    return targets


def _follow(client: ClientProcess, servers: ServerProcess, correlator: Correlator, who: str,
            *, deadline: float, wall_timeout: float, derived: bool = False,
            conn_timeout: float | None = None, program: bool = False) -> Finished:
    """Collect both children's events until the client model has finished (its word on
    that is returned). ``derived``:
    the wall timeout was worked out from the ideal, not given; ``conn_timeout``: how long
    the model's connections were to wait for a byte (wall seconds; None: not its to apply);
    ``program``: the model runs the user's program (``command``)."""
    while True:
        if time.monotonic() >= deadline:
            held = _held_open(servers, correlator)
            raise RunTimeoutError(_stopped_at_timeout(who, wall_timeout, held, derived=derived,
                                                      conn_timeout=conn_timeout), tuple(held))
        for child in wait_for([client, servers], deadline):
            message = child.receive()
            if message is None:
                if child is servers:
                    raise RunError("the server process ended unexpectedly during the run")
                raise _ended_early(client, who, runs_a_program=program)
            match message:
                case Finished():
                    return message
                case LimitReached():
                    raise LimitReachedError(f"{who}: {message.message}")
                case Crashed():
                    raise ClientCrashError(f"{who} crashed: {message.message}",
                                           message.traceback)
                case _:
                    _collect(message, correlator)


def _held_open(servers: ServerProcess, correlator: Correlator) -> list[tuple[str, int]]:
    """How many connections each server still holds open, as (server, count), asked of the
    servers themselves: a model that hangs may not have told of them."""
    try:
        servers.send(ReportStates(0))
        states = _answer_of(servers, ServerStates, correlator, STATES_TIMEOUT)
    except (OSError, RunError):  # the server process is gone
        return []
    if states is None:
        return []
    return [(state.name, len(state.connections)) for state in states.servers if state.connections]


def _stopped_at_timeout(who: str, wall_timeout: float, held: Sequence[tuple[str, int]], *,
                        derived: bool, conn_timeout: float | None) -> str:
    """What a run stopped at its wall timeout says: the connections the servers still held
    open and, where the timeout came from the ideal, that the model does not end them itself."""
    text = (f"{who} did not finish within {format_duration(wall_timeout)} (wall time) "
            f"and was stopped")
    if held:
        listed = ", ".join(f"{count} to {server}" for server, count in held)
        text += f"; the servers still held connections open: {listed}"
        if derived and conn_timeout is not None and math.isfinite(conn_timeout):
            return (f"{text}. The time allowed was worked out from the ideal, which has every "
                    f"connection end once it waits {format_duration(conn_timeout)} (its target's "
                    f"timeout) for a byte: a client model gives such a connection up itself "
                    f"(conn.failed(TimeoutError(...))); pass --timeout (timeout= in Python) to allow longer")
    return f"{text}; pass --timeout (timeout= in Python) to allow longer"


def _stop_servers(servers: ServerProcess, correlator: Correlator) -> Stopped | None:
    """Ask the servers to stop, collect the events they still hold, return what they cost
    (None: they did not say in time). Raises RunError if their process ended without its
    account: it ended during the run (its death can reach the runner after the client's
    end), and the run's measurements from the servers' side are not whole."""
    servers.request_stop()
    return _answer_of(servers, Stopped, correlator, STOP_TIMEOUT)


def _answer_of(servers: ServerProcess, kind: type[Answer], correlator: Correlator,
               timeout: float) -> Answer | None:
    """The servers' next message of ``kind``, collecting what comes before it; None if none
    came within ``timeout``. Raises RunError if their process ended first."""
    deadline = time.monotonic() + timeout
    while wait_for([servers], deadline):
        message = servers.receive()
        if message is None:
            raise RunError("the server process ended unexpectedly during the run")
        if isinstance(message, kind):
            return message
        _collect(message, correlator)
    return None




def _collect(message: ServerMessage | ClientMessage, correlator: Correlator) -> None:
    """Keep what a child sent about the run: events, or packed chunk lateness."""
    if isinstance(message, EventBatch):
        correlator.take(message)
    elif isinstance(message, LatenessBatch):
        correlator.lateness.extend(message.values())


def fidelity(lateness: Sequence[float], machine: Machine | None = None) -> str:
    """One line on how well the servers kept their schedule: ``N chunks, lateness p50 ...``,
    and the hypervisor's steal time over ``machine``'s window when there was enough."""
    taken = steal_taken(machine)
    steal = f"; {taken}" if taken else ""
    if not lateness:
        return "no chunks sent" + steal
    values = sorted(lateness)
    p50, p99 = (percentile(values, pct, ordered=True) for pct in (50, 99))
    return (f"{len(values)} chunks, lateness p50 {p50 * 1e3:.3f} ms, "
            f"p99 {p99 * 1e3:.3f} ms, max {values[-1] * 1e3:.3f} ms{steal}")


__all__ = ["check_request", "ensure_descriptors", "fidelity", "judge", "named_clients", "plans_of",
           "run_scenario", "seed_for", "select_clients", "unread_findings", "unread_warnings"]
