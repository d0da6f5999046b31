"""The contract every client model keeps, as one call: ``check_client_model(model)``.

netsim's own models are tested with it, and so is a third party's before it is
registered in the entry-point group ``netsim.clients``::

    from netsim.testing import check_client_model
    from my_package.netsim_model import MODEL

    def test_my_model_keeps_the_contract():
        check_client_model(MODEL)

It runs the model in the real engine (servers in their own process, real sockets,
real timing) through short scenarios, and checks what a client model must do. The
durations are short but above what a loaded two-core machine adds to them, and every
tolerance is narrower than the value it checks.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netsim._errors import ClientCrashError, LimitReachedError, RunError, RunTimeoutError, UsageError
from netsim._loader import load_scenario_text
from netsim._names import NAME_MAX, NAME_PATTERN, NAME_RULE
from netsim.clients import ClientModel
from netsim.events import BytesReceived, ConnEstablished, ConnStarted, EofReceived, Event
from netsim.results import ConnectionResult, RunResult
from netsim.runner import run_scenario
from netsim.scenario import Scenario

POEM = "1111\\n2222\\n3333\\n4444\\n"  # four chunks of 5 bytes, as YAML writes them
POEM_BYTES = 20
# What a loaded two-core machine may add to a model's run (wall seconds): its process
# start, the handshakes, a late wake-up. Every duration checked below is at least twice
# this, so a model that does not overlap, or waits too long, cannot pass.
SLACK = 0.15  # seconds
RUN_TIMEOUT = 5.0  # wall seconds: a model that hangs fails its check instead


@dataclass(frozen=True)
class Check:
    """One clause of the contract, and how the model did."""

    name: str
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Conformance:
    """Every check of one model."""

    model: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def __str__(self) -> str:
        lines = [f"client model {self.model!r}: {sum(c.passed for c in self.checks)} of "
                 f"{len(self.checks)} checks passed"]
        for check in self.checks:
            lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}")
            lines += [f"        {problem}" for problem in check.problems]
        return "\n".join(lines)


class ConformanceError(AssertionError):
    """A client model broke its contract; ``str()`` lists every check, failed ones with why."""

    def __init__(self, conformance: Conformance) -> None:
        super().__init__(str(conformance))
        self.conformance = conformance


def check_client_model(model: ClientModel) -> Conformance:
    """Check that ``model`` keeps the client-model contract; return every check's outcome.

    The contract, each clause a check:

    1. **Timing.** Against three servers that each send four lines with a pause of
       50 ms after each, a sequential model (``concurrent=False``) takes the sum of
       their times (600 ms), a concurrent one the longest of them (200 ms): never less,
       and at most ``SLACK`` more; every poem arrives intact.
    2. **Events.** Each connection reports, in this order and on a clock that never runs
       back: ``recorder.open(target)`` before connecting, ``connected(local_port)`` with
       the client's own port (its socket's ``getsockname()`` port: the server saw the
       connection come from it, which is how the servers' account of it is found),
       ``received(data)`` for what each read returned, and ``eof()`` when the server
       closed.
    3. **Faults.** Beside a healthy server, each fault ends its connection as it should,
       and the healthy connection is untouched: ``refuse`` fails at once as ``refused``
       with no bytes; ``reset`` after 10 bytes fails as ``reset`` with exactly those 10,
       when the third line was due (200 ms); ``close`` after 10 bytes is no error but not
       intact; ``stall`` after 10 bytes and ``blackhole`` end as ``timeout`` once the
       target's ``timeout`` (300 ms) passes without a byte.
    4. **Handshake.** A ``syn_drop`` server, which never answers a handshake, ends its
       connection as ``timeout`` in the ``connect`` phase at the target's ``timeout``
       (300 ms), with no bytes; a concurrent model reads a healthy server meanwhile (the
       run takes 300 ms), a sequential one after it (500 ms).
    5. **Nothing to wait for.** A model whose only server refuses returns at once,
       rather than waiting on an empty selector or for a connection that never came.
    6. **Ramp.** With five connections spread over a ramp of 200 ms, no connection
       starts before its turn, and a concurrent model starts each on time (within 30 ms).
    7. **Limit.** A model with a ``limit`` is refused, before anything runs, a client
       with more connections than that, with a message naming the limit.

    A model with a ``limit`` below what a check opens at once (six connections for the
    faults, five for the ramp, three for the timing) is checked with as many as it
    holds: the faults a few at a time, beside the healthy server while it holds two.

    Raises ConformanceError, whose message lists every check, when a check fails;
    TypeError for something other than a ClientModel; ValueError for a model whose name
    no scenario could use, or that needs a scenario's options to run (``command``: a
    program is judged by a scenario of its own, not by this contract).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    if not isinstance(model, ClientModel):
        raise TypeError(f"check_client_model() takes a netsim.clients.ClientModel, not "
                        f"{type(model).__name__}")
    if not re.fullmatch(NAME_PATTERN, model.name) or len(model.name) > NAME_MAX:
        raise ValueError(f"client model name {model.name!r} is no name a scenario can use: "
                         f"{NAME_RULE}, at most {NAME_MAX}")
    if model.configure is not None or not model.instrumented:
        raise ValueError(f"client model {model.name!r} runs what a scenario tells it to "
                         f"(it is configured by its client entry): judge it with a scenario")
    checks = tuple(
        Check(name, tuple(_run_check(check, model)))
        for name, check in _CHECKS
    )
    conformance = Conformance(model.name, checks)
    if not conformance.passed:
        raise ConformanceError(conformance)
    return conformance


def _run_check(check: Callable[[ClientModel], list[str]], model: ClientModel) -> list[str]:
    try:
        return check(model)
    except RunTimeoutError as error:  # a hang: that check failed, the others still run
        held = ", ".join(f"{count} to {server}" for server, count in error.held_open)
        return [f"did not finish within {RUN_TIMEOUT:.0f}s (each run here takes well under 1s)"
                + (f"; the servers still held connections open: {held}" if held else "")
                + ". A model gives up a connect, or a wait for the next byte, itself once its "
                  "target's timeout passes (conn.failed(TimeoutError(...)))"]
    except ClientCrashError as error:  # a crash: that check failed, the others still run
        return [f"{error}{_where(error.detail)}"]
    except LimitReachedError as error:
        return [f"the run could not be carried out: {error}. A model that holds only so many "
                f"connections says so, ClientModel(limit=N, limit_reason=...): a client asking for "
                f"more is then refused before it runs, and this suite checks it within that many"]
    except RunError as error:
        return [f"the run could not be carried out: {error}"]


def _where(traceback: str) -> str:
    """`` at FILE:LINE in FUNCTION: CODE``: the innermost frame of a crash's traceback."""
    frames = re.findall(r'^  File "([^"]+)", line (\d+), in (\S+)\n(?:    (.+)\n)?', traceback, re.MULTILINE)
    if not frames:
        return ""
    path, line, function, code = frames[-1]
    return f" (at {path}:{line}, in {function}{': ' + code.strip() if code else ''})"


def _room(model: ClientModel, wanted: int) -> int:
    """How many connections a check opens at once: ``wanted``, or what a model with a
    smaller ``limit`` holds."""
    return wanted if model.limit is None else max(1, min(wanted, model.limit))


def _client(model: ClientModel, options: str = "") -> str:
    """The scenario's client entry for ``model``."""
    return f"{{model: {model.name}{', ' + options if options else ''}}}"


def _scenario(model: ClientModel, servers: Sequence[str], client: str) -> Scenario:
    lines = ["netsim: 1", "name: conformance", "seed: 1", "servers:"]
    lines += [f"  - {server}" for server in servers]
    lines += ["clients:", f"  - {client}"]
    return load_scenario_text("\n".join(lines) + "\n", filename=f"<conformance of {model.name}>",
                              client_models=[model.name])


def _run(model: ClientModel, scenario: Scenario, events: list[Event] | None = None) -> RunResult:
    result = run_scenario(scenario, models={model.name: model}, timeout=RUN_TIMEOUT,
                          observer=None if events is None else events.append)
    return result.runs[0]


def _server(name: str, extra: str = "") -> str:
    return f'{{name: {name}, poem: "{POEM}", delay: 50ms{", " + extra if extra else ""}}}'


def _check_timing(model: ClientModel) -> list[str]:
    count = _room(model, 3)
    scenario = _scenario(model, [_server(name) for name in "abc"[:count]], _client(model))
    events: list[Event] = []
    run = _run(model, scenario, events)
    problems = _intact(run.connections) + _seen_by_the_servers(run.connections)
    expected = 0.2 if model.concurrent else 0.2 * count
    shape = "concurrent: the longest server's time" if model.concurrent else "sequential: the sum"
    if not expected * 0.97 <= run.elapsed <= expected + SLACK:
        problems.append(f"took {run.elapsed:.3f}s against {count} servers of 200 ms; {shape} is "
                        f"{expected:.1f}s (allowed up to {expected + SLACK:.2f}s)")
    return problems + _event_order(events, count)


def _intact(connections: Sequence[ConnectionResult], of: int = POEM_BYTES) -> list[str]:
    return [f"connection {conn.conn} to {conn.server}: {conn.bytes} of {of} bytes, "
            f"intact={conn.intact}, error={conn.error} ({conn.message})"
            for conn in connections if not (conn.intact and conn.error is None)]


def _seen_by_the_servers(connections: Sequence[ConnectionResult]) -> list[str]:
    """A connection whose reported port no server saw a connection from: the servers'
    account of it is lost (its bytes as sent, how it ended, its lateness)."""
    return [f"connection {conn.conn} to {conn.server}: the server saw no connection from the port "
            f"it reported; connected(local_port) must give the socket's own port (getsockname()[1])"
            for conn in connections if conn.served is None]


# What a model called to record each event, as the contract names the calls.
_CALLS = {"conn_started": "recorder.open(target)", "conn_established": "connected(local_port)",
          "bytes_received": "received(data)", "eof_received": "eof()"}


def _event_order(events: Sequence[Event], made: int) -> list[str]:
    problems = []
    by_conn: dict[int, list[ConnStarted | ConnEstablished | BytesReceived | EofReceived]] = {}
    for event in events:
        if isinstance(event, ConnStarted | ConnEstablished | BytesReceived | EofReceived):
            by_conn.setdefault(event.conn, []).append(event)
    ports = []
    for conn, own in sorted(by_conn.items()):
        names = [event.name for event in own]
        if names[:2] != ["conn_started", "conn_established"] or names[-1] != "eof_received" or \
                set(names[2:-1]) != {"bytes_received"}:
            calls = ", ".join(_CALLS[name] for name in names)
            problems.append(f"connection {conn} made the calls {calls}; expected recorder.open(target), "
                            f"connected(local_port) once, received(data) for each read, then eof()")
        times = [event.t for event in own]
        if times != sorted(times):
            problems.append(f"connection {conn}: its events' times run back: {times}")
        ports += [event.local_port for event in own if isinstance(event, ConnEstablished)]
    if len(set(ports)) != len(ports) or not all(port > 0 for port in ports):
        problems.append(f"connected(local_port) gave {ports}: each connection's own port is expected")
    if len(by_conn) != made:
        problems.append(f"{len(by_conn)} connections reported events, {made} were made")
    return problems


def _check_faults(model: ClientModel) -> list[str]:
    kinds = {"refuse": "{kind: refuse}", "reset": "{kind: reset, after: 10}",
             "close": "{kind: close, after: 10}", "stall": "{kind: stall, after: 10}",
             "blackhole": "{kind: blackhole}"}
    # Beside the healthy server, as many faults at a time as the model holds connections.
    room = _room(model, len(kinds) + 1)
    healthy = ["healthy"] if room > 1 else []
    names = list(kinds)
    each = max(1, room - len(healthy))
    problems: list[str] = []
    for start in range(0, len(names), each):
        batch = [*healthy, *names[start:start + each]]
        servers = [_server("healthy")] * bool(healthy) + [
            f'{{name: {kind}, poem: "{POEM}", delay: 100ms, fault: {kinds[kind]}}}'
            for kind in batch if kind != "healthy"]
        run = _run(model, _scenario(model, servers, _client(model, f"targets: [{', '.join(batch)}], "
                                                                   f"timeout: 300ms")))
        by_server = {conn.server: conn for conn in run.connections}
        if healthy:
            problems += [f"the healthy server's connection suffered: {problem}"
                         for problem in _intact([by_server["healthy"]])]
        problems += _faults_ended(by_server)
    return problems


def _faults_ended(by_server: dict[str, ConnectionResult]) -> list[str]:
    """How each faulty server's connection among ``by_server`` ended, against the contract."""
    problems: list[str] = []
    # (error, bytes, intact), and the duration's bounds in seconds
    wanted = {"refuse": (("refused", 0, False), 0.0, SLACK),
              "reset": (("reset", 10, False), 0.2, 0.2 + SLACK),
              "close": ((None, 10, False), 0.2, 0.2 + SLACK),
              "stall": (("timeout", 10, False), 0.4, 0.4 + SLACK),
              "blackhole": (("timeout", 0, False), 0.3, 0.3 + SLACK)}
    for kind, (outcome, shortest, longest) in wanted.items():
        if kind not in by_server:
            continue  # in another batch
        conn = by_server[kind]
        seen = (conn.error, conn.bytes, conn.intact)
        if seen != outcome:
            problems.append(f"{kind}: ended as (error, bytes, intact) = {seen}, expected {outcome} "
                            f"({conn.message})")
        if math.isnan(conn.duration):
            problems.append(f"{kind}: the model never ended this connection (no eof() or failed())")
        elif not shortest * 0.97 <= conn.duration <= longest:
            problems.append(f"{kind}: lasted {conn.duration:.3f}s, expected {shortest:.2f}s to "
                            f"{longest:.2f}s")
    return problems


def _check_handshake(model: ClientModel) -> list[str]:
    beside = _room(model, 2) > 1  # the healthy server beside it, where the model holds two
    servers = ['{name: mute, poem: "x\\n", fault: {kind: syn_drop}}', *[_server("healthy")] * beside]
    run = _run(model, _scenario(model, servers, _client(
        model, f"targets: [{'mute, healthy' if beside else 'mute'}], timeout: 300ms")))
    mute, *others = run.connections
    problems = [f"the healthy server's connection suffered: {problem}" for problem in _intact(others)]
    seen = (mute.error, mute.phase, mute.bytes)
    if seen != ("timeout", "connect", 0):
        problems.append(f"syn_drop: ended as (error, phase, bytes) = {seen}, expected ('timeout', "
                        f"'connect', 0) ({mute.message})")
    if math.isnan(mute.duration):
        problems.append("syn_drop: the model never ended the connection it was connecting: once its "
                        "target's timeout passes, a connect is given up with conn.failed(TimeoutError(...))")
    elif not 0.3 * 0.97 <= mute.duration <= 0.3 + SLACK:
        problems.append(f"syn_drop: gave up after {mute.duration:.3f}s, expected the timeout, 0.30s")
    # Sequential: the handshake's timeout, then the healthy poem; concurrent: the longer.
    expected = 0.3 if model.concurrent or not beside else 0.5
    if not expected * 0.97 <= run.elapsed <= expected + SLACK:
        shape = ("a concurrent model waits for a handshake while it reads the others"
                 if model.concurrent else "a sequential model waits for one, then reads the next")
        problems.append(f"took {run.elapsed:.3f}s, expected {expected:.1f}s: {shape}")
    return problems


def _check_nothing_to_wait_for(model: ClientModel) -> list[str]:
    problems = []
    scenario = _scenario(model, ['{name: gone, poem: "x\\n", fault: {kind: refuse}}'],
                         _client(model, "timeout: 1s"))
    started = time.monotonic()
    run = _run(model, scenario)
    took = time.monotonic() - started
    (conn,) = run.connections
    if conn.error != "refused" or run.elapsed > SLACK:
        problems.append(f"with its only server refusing: error {conn.error}, took {run.elapsed:.3f}s "
                        f"({took:.3f}s with the servers' start); expected 'refused' at once")
    return problems


def _check_ramp(model: ClientModel) -> list[str]:
    count = _room(model, 5)
    scenario = _scenario(model, ['{name: s, poem: "1\\n2\\n", delay: 20ms}'],
                         _client(model, f"connections: {count}, ramp: 200ms"))
    events: list[Event] = []
    run = _run(model, scenario, events)
    problems = _intact(run.connections, of=4)
    started = next(event.t for event in events if event.name == "client_started")
    starts = [event.t - started for event in events if isinstance(event, ConnStarted)]
    step = 0.2 / count
    turns = [index * step for index in range(count)]
    early = [f"#{n + 1} at {start * 1e3:.1f} ms, due {turn * 1e3:.0f} ms"
             for n, (start, turn) in enumerate(zip(starts, turns, strict=False)) if start < turn - 0.002]
    if early:
        problems.append(f"connections started before their turn on the ramp: {', '.join(early)}")
    if model.concurrent:
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        off = [f"{gap * 1e3:.1f} ms" for gap in gaps if not math.isclose(gap, step, abs_tol=0.03)]
        if off:
            problems.append(f"a concurrent model starts each connection on its turn, "
                            f"{step * 1e3:.0f} ms apart; gaps were {off}")
    if len(starts) != count:
        problems.append(f"{len(starts)} connections started, {count} were asked for")
    return problems


def _check_limit(model: ClientModel) -> list[str]:
    if model.limit is None:
        return []
    # Past the limit in Python, not in the text: the loader would refuse it by the limit of
    # the installed model of that name, and the one under test is the runner's to refuse.
    scenario = _scenario(model, ['{name: s, poem: "1\\n"}'], _client(model))
    client = scenario.clients[0].model_copy(update={"connections": model.limit + 1})
    scenario = scenario.model_copy(update={"clients": [client]})
    try:
        _run(model, scenario)
    except UsageError as error:
        if str(model.limit) not in str(error):
            return [f"refused {model.limit + 1} connections without naming its limit: {error}"]
        return []
    return [f"ran {model.limit + 1} connections, more than its limit of {model.limit}"]


_CHECKS: tuple[tuple[str, Callable[[ClientModel], list[str]]], ...] = (
    ("timing: sequential times add up, concurrent ones overlap; events in order", _check_timing),
    ("faults: refuse, reset, close, stall and blackhole end as they should", _check_faults),
    ("handshake: an unanswered one times out, and a concurrent model reads the others meanwhile",
     _check_handshake),
    ("nothing to wait for: a model whose only server refuses returns at once",
     _check_nothing_to_wait_for),
    ("ramp: no connection starts before its turn", _check_ramp),
    ("limit: more connections than the model holds are refused before the run", _check_limit),
)

__all__ = ["Check", "Conformance", "ConformanceError", "check_client_model"]
