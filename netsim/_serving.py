"""Servers for the user's own code and tests: ``netsim.serving(scenario)``.

::

    with netsim.serving("scenarios/faults.yaml", time_scale=0.1) as net:
        host, port = net.address("flaky")
        ...                                   # your client, against the server
    result = net.result()                     # every connection, as the servers saw it
    assert result.check(["errors == 0", "ttfb.max <= 2s"]).passed

The servers run in a process of their own (a fresh interpreter, so that a test process
with threads is never forked), on free ports, with the time scale and seed asked for;
they stop when the block ends, however it ends. ``async with`` works the same way; under
asyncio the loop goes on while the servers start and stop.

Every connection is measured from the servers' side, as a ``command`` client's are:
what was sent and what the client's kernel acknowledged, time to first byte, how it
ended. ``result()`` works inside the block (the connections finished so far) and after
it (all of them), and ``check()`` judges it with the grammar of ``netsim run``.

Inside the block a test can change the servers as its client runs (``net.set``,
``net.down``, ``net.up``, ``net.reset``, ``net.states``): each is a message to the
server process, answered once the change has taken effect there. ``netsim serve
--control`` offers the same over HTTP (``_control_api.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import ipaddress
import itertools
import math
import os
import re
import threading
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from netsim import _schema
from netsim._control_api import ControlServer
from netsim._errors import PortBusyError, Problem, RunError, ScenarioError, UsageError
from netsim._loader import explain
from netsim._machine import Machine, StealClock
from netsim._measure import Slot, clients_own, served_connections, server_changes
from netsim._poem_files import DEFAULT_MAX_POEM_BYTES
from netsim._processes import START_TIMEOUT, STOP_TIMEOUT, ServerProcess, wait_for
from netsim._units import format_address
from netsim.conditions import CONDITION_KEYS, Conditions, changes_of
from netsim.engine import BACKLOG
from netsim.events import (
    BringUp,
    ChangeConditions,
    ConnAccepted,
    ConnEnded,
    ControlDone,
    ControlMessage,
    Event,
    EventBatch,
    Flushed,
    LatenessBatch,
    Observer,
    ReportStates,
    ResetConnections,
    ServerState,
    ServerStates,
    Stopped,
    TakeDown,
)
from netsim.expectations import METRICS, Expectation, Verdict, evaluate, parse_expectation
from netsim.results import (
    ConnectionResult,
    Lateness,
    RunResult,
    ServerChange,
    connections_failed,
    lateness_of,
    troubled_lines,
)
from netsim.runner import DESCRIPTOR_MARGIN, check_request, ensure_descriptors, plans_of, seed_for
from netsim.scenario import ConditionChanges, Scenario, Server

# The metrics of `netsim run` that the servers' account of their connections cannot tell.
_UNTOLD = ("ideal", "overhead", "speedup", "exit_code", "extra_connections")
# A connection refused, or whose handshake went unanswered, never reaches the servers.
_UNSEEN = "errors.refused"
_TOLD = [name for name in METRICS if name not in _UNTOLD and name != _UNSEEN]

# How often the collector looks for a stop request between messages.
POLL = 0.1  # seconds


@dataclass(frozen=True)
class Checked:
    """The verdicts of ``ServedResult.check``: true when every one passed, so that
    ``assert result.check([...])`` fails a test on any failed verdict; str() lists them
    a line each, as ``netsim run`` does, and repr() on one line, for a test's report."""

    verdicts: list[Verdict]
    # Why, where a verdict of intact, errors or bytes failed: a line per connection at fault.
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(verdict.passed for verdict in self.verdicts)

    def __bool__(self) -> bool:
        return self.passed

    def lines(self) -> list[str]:
        return [*(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.expectation.text}  "
                  f"measured {verdict.actual_text()}  bound {verdict.bound}" for verdict in self.verdicts),
                *(f"  {line}" for line in self.problems)]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<Checked {'passed' if self.passed else 'FAILED'}: {'; '.join(self.lines())}>"


@dataclass(frozen=True)
class ServedResult:
    """What the servers of a ``serving()`` block saw, connection by connection.

    Times are in scenario seconds since the servers started (the log's ``t``). ``elapsed``
    runs from the first accept to the end of the last connection: how long the servers
    were busy with their clients.
    """

    scenario: str
    time_scale: float
    connections: list[ConnectionResult]  # in the order they were accepted
    lateness: Lateness
    elapsed: float
    machine: Machine | None = None  # its CPUs and their steal time while the servers ran
    seed: int | None = None  # what drew the jitter and the faults: the same seed serves them again
    # What changed the servers while they served (phases, the control API), in time order.
    changes: tuple[ServerChange, ...] = ()
    servers: tuple[str, ...] = ()  # the scenario's servers, by name

    def __repr__(self) -> str:
        # The fields would be every connection in full: a failed assert in a test shows this.
        errors = sum(conn.error is not None for conn in self.connections)
        return (f"<ServedResult {self.scenario} connections={len(self.connections)} errors={errors} "
                f"elapsed={self.elapsed:.3f}s>")

    def metrics(self) -> dict[str, float]:
        """The values ``check`` judges: those of ``netsim run`` that the servers can tell."""
        as_run = RunResult(client="served", model="", elapsed=self.elapsed, ideal=math.nan,
                           wall_elapsed=self.elapsed * self.time_scale, connections=self.connections,
                           lateness=self.lateness, lateness_wall_p99=math.nan)
        # Not those it cannot (errors.refused would read 0, whatever was refused).
        return {name: value for name, value in as_run.metrics().items() if name in _TOLD}

    def check(self, expectations: str | Sequence[str], *,
              server: str | Sequence[str] | None = None) -> Checked:
        """Judge expectations written as in a scenario (``errors == 0``, ``ttfb.max <= 1s``):
        one, or a list of them, over every connection, or those of ``server`` (a name, or a
        list of names). The result is true when every one passed; where a verdict of
        ``intact``, ``errors`` or ``bytes`` failed, it lists the connections at fault and why.

        Raises ValueError for one that does not parse, for one that needs what only a run of
        ``netsim run`` has (``ideal``, ``overhead``, ``speedup(OTHER)``, ``exit_code``), and
        for ``errors.refused``: the servers cannot tell it, so it could never mean anything.
        ``errors`` counts the connections the servers accepted: one refused, or whose
        handshake went unanswered (``syn_drop``, a server down), never reached them. Raises
        KeyError for a ``server`` the scenario does not have.
        """
        if server is not None:
            return self.only(server).check(expectations)
        texts = [expectations] if isinstance(expectations, str) else list(expectations)
        if not texts:
            raise ValueError("no expectations to check: give one or more, like check(['errors == 0']); "
                             "an empty list would pass with nothing judged")
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"an expectation is a string, like 'errors == 0', not {type(text).__name__} "
                                f"({text!r})")
        parsed = [_parsed(text) for text in texts]
        for expectation in parsed:
            if expectation.metric in _UNTOLD or expectation.uses_ideal:
                needs = "the ideal" if expectation.uses_ideal or expectation.metric in (
                    "ideal", "overhead") else f"{expectation.metric}"
                raise ValueError(f"{expectation.text!r} needs {needs}, which a client model's run of "
                                 f"`netsim run` has and the servers' account does not; the servers "
                                 f"can tell {', '.join(_TOLD)}")
            if expectation.metric == _UNSEEN:
                raise ValueError(f"{expectation.text!r}: a refused connection never reaches the servers, "
                                 f"so their account cannot count it; count refusals in the client "
                                 f"(errors here are of connections the servers accepted)")
        metrics = self.metrics()
        verdicts = [evaluate(expectation, metrics, {}) for expectation in parsed]
        return Checked(verdicts, troubled_lines(self.connections) if connections_failed(verdicts) else [])

    def only(self, server: str | Sequence[str]) -> ServedResult:
        """The connections of ``server`` alone (a name, or a list of names), and ``elapsed``
        over them (``lateness`` stays that of every server: chunks are not told apart by
        server). Raises KeyError for a server the scenario does not have."""
        names = [server] if isinstance(server, str) else list(server)
        for name in names:
            if name not in self.servers:
                raise KeyError(f"no server {name!r} in scenario {self.scenario!r}; its servers are: "
                               f"{', '.join(self.servers)}")
        connections = [conn for conn in self.connections if conn.server in names]
        return dataclasses.replace(self, connections=connections, elapsed=_busy(connections))

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "time_scale": self.time_scale, "elapsed": self.elapsed,
                "connections": [conn.to_dict() for conn in self.connections],
                "lateness": self.lateness.to_dict(), "seed": self.seed,
                "changes": [change.to_dict() for change in self.changes],
                **({"machine": self.machine.to_dict()} if self.machine is not None else {})}


def _parsed(text: str) -> Expectation:
    """``text`` parsed, an unknown metric answered with those the servers can tell."""
    try:
        return parse_expectation(text)
    except ValueError as error:
        unknown = re.match(r"unknown metric '([^']*)'", str(error))
        if unknown is None:
            raise
        close = difflib.get_close_matches(unknown[1], _TOLD, n=2)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"unknown metric {unknown[1]!r}{hint}; the servers can tell "
                         f"{', '.join(_TOLD)}") from None


class Serving:
    """A scenario's servers, running; see ``serving()``."""

    def __init__(self, scenario: Scenario, *, time_scale: float = 1.0, seed: int | None = None,
                 observer: Observer | None = None, free_ports: bool = True,
                 allow_external: bool = False, on_warning: Callable[[str], None] | None = None) -> None:
        check_request(scenario, time_scale, allow_external, free_ports=free_ports)
        self.scenario = scenario
        self.time_scale = time_scale
        self.seed = seed_for(scenario, seed)
        self._observer = observer
        # Told once per proxy that its upstream could not be reached: what `serve` prints
        # without -v, where a client only saw resets.
        self._on_warning = on_warning
        self._unreachable: set[str] = set()
        self._plans = plans_of(scenario.servers, time_scale=time_scale, seed=self.seed,
                               free_ports=free_ports)
        self._process: ServerProcess | None = None
        self._collector: threading.Thread | None = None
        self._starter: threading.Thread | None = None  # the servers end when it does
        self._stopping = threading.Event()
        self._flushed = threading.Event()
        self._lock = threading.Lock()
        self._ended: list[ConnEnded] = []
        self._changes: list[ServerChange] = []
        # For the log (with an observer): each connection's number, by (server, its port).
        self._numbers: dict[tuple[str, int], int] = {}
        self._accepted = itertools.count(1)
        self._lateness: list[float] = []
        self._failure: str | None = None
        self._steal: StealClock | None = None  # from the start
        self._machine: Machine | None = None  # read when the servers stopped
        # The server process used up its real-time budget (engine._priority).
        self.left_realtime = False
        # Live control: each request is numbered; the collector files its answer here.
        self._requests = itertools.count(1)
        self._answers: dict[int, ControlDone | ServerStates] = {}
        self._answered = threading.Condition(self._lock)
        self.t0 = math.nan  # when the servers started, on time.monotonic()'s clock

    def __repr__(self) -> str:
        state = "serving" if self._process is not None and not self._stopping.is_set() else "stopped"
        return f"<Serving {self.scenario.name} {state} connections={len(self._ended)}>"

    # Starting and stopping.

    def start(self) -> Serving:
        """Start the servers; return once every one accepts connections.

        Raises PortBusyError or ServerStartError when a server cannot listen, and RunError
        when this Serving has been started before (each serves once: call ``serving()``
        again for another block).
        """
        self._spawn().listening(START_TIMEOUT)
        return self._serve()

    def _spawn(self) -> ServerProcess:
        if self._process is not None:
            raise RunError(f"the servers of {self.scenario.name!r} were started already: a Serving "
                           f"serves once; call netsim.serving() again for another block")
        ensure_descriptors(BACKLOG + DESCRIPTOR_MARGIN)
        # Started from the caller's thread, which must outlive the servers: the kernel ends
        # a child when the thread that started it ends (PR_SET_PDEATHSIG).
        self._starter = threading.current_thread()
        self.t0 = time.monotonic()
        self._steal = StealClock()
        self._process = ServerProcess.spawn(self._plans, self.t0, detail=self._observer is not None,
                                            fresh=True)
        return self._process

    def _serve(self) -> Serving:
        """The servers listen: keep what they report from now on."""
        self._collector = threading.Thread(target=self._collect, name="netsim-serving", daemon=True)
        self._collector.start()
        return self

    def stop(self) -> None:
        """Stop the servers (safe to call twice); their accounts of every connection are kept."""
        process = self._process
        if process is None or self._stopping.is_set():
            return
        self._stopping.set()
        try:
            process.request_stop()
            if self._collector is not None:
                self._collector.join(STOP_TIMEOUT + POLL)
        finally:
            process.close(grace=STOP_TIMEOUT)

    def alive(self) -> bool:
        """Are the servers still serving (not stopped, and their process not dead)?"""
        return self._failure is None and not self._stopping.is_set() and (
            self._collector is not None and self._collector.is_alive())

    @property
    def failure(self) -> str | None:
        """Why the servers ended on their own (their process died, say); None while they
        serve, and after a stop that was asked for."""
        return self._failure

    @property
    def machine(self) -> Machine | None:
        """The machine's CPUs and the steal time taken from them since the servers started
        (until they stopped); None before they start."""
        if self._machine is not None or self._steal is None:
            return self._machine
        return self._steal.read()

    @property
    def wall_lateness(self) -> list[float]:
        """Every chunk's lateness so far, in wall seconds (for the fidelity line)."""
        with self._lock:
            return list(self._lateness)

    def _collect(self) -> None:
        """Keep what the servers report, until they have stopped (or died)."""
        process = self._process
        assert process is not None
        while True:
            if not wait_for([process], time.monotonic() + POLL):
                continue
            message = process.receive()
            if message is None:
                if not self._stopping.is_set():
                    self._failure = "the server process ended unexpectedly" + _how_it_ended(process)
                    if self._starter is not None and not self._starter.is_alive():
                        self._failure = (f"the server process ended with the thread that started it "
                                         f"({self._starter.name}): servers stop when that thread "
                                         f"ends, so start them from one that outlives their use")
                    with self._answered:  # a request waiting for its answer gets none
                        self._answered.notify_all()
                return
            if isinstance(message, EventBatch):
                self._keep(message.events())
            elif isinstance(message, LatenessBatch):
                with self._lock:
                    self._lateness.extend(message.values())
            elif isinstance(message, Flushed):
                self._flushed.set()
            elif isinstance(message, ControlDone | ServerStates):
                with self._answered:
                    self._answers[message.request] = message
                    self._answered.notify_all()
            elif isinstance(message, Stopped):
                self.left_realtime = message.left_realtime
                if self._steal is not None:
                    self._machine = self._steal.read()
                return

    def _keep(self, events: Sequence[Event]) -> None:
        with self._lock:
            ended = [event for event in events if isinstance(event, ConnEnded)]
            self._ended += ended
            self._changes += server_changes(events, 0.0, self.time_scale)
        if self._on_warning is not None:
            for account in ended:
                if account.how == "upstream_failed" and account.server not in self._unreachable:
                    self._unreachable.add(account.server)
                    upstream = self.scenario.server(account.server).upstream
                    self._on_warning(f"proxy {account.server!r} could not reach its upstream {upstream} (or "
                                     f"lost it), and reset its client's connection; so it does with every "
                                     f"client until the upstream answers (-v shows each, with why)")
        if self._observer is not None:
            numbers = self._numbers
            for event in events:
                # Each connection's events carry its number, in accept order over every
                # server: the number result() gives it (conn).
                if isinstance(event, ConnAccepted):
                    numbers[(event.server, event.peer_port)] = next(self._accepted)
                port = getattr(event, "peer_port", None)
                if port is not None and getattr(event, "conn", 0) is None:
                    event.conn = numbers.get((event.server, port))  # type: ignore[union-attr]
                if isinstance(event, ConnEnded):  # its last event: a long serve holds no more
                    numbers.pop((event.server, event.peer_port), None)
                self._observer(event)

    def __enter__(self) -> Serving:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Serving:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another async library's loop (trio's): the start holds it
            return self.start()
        # Started from the loop's thread (the servers end when the thread that started them
        # does); the loop goes on while the server process starts.
        process = self._spawn()
        listening: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not listening.done():
                listening.set_result(None)

        fd = process.conn.fileno()
        loop.add_reader(fd, readable)
        try:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listening, START_TIMEOUT)
            finally:
                loop.remove_reader(fd)
        except BaseException:  # cancelled while the servers started
            process.close()
            raise
        process.listening(0.0)  # raises, closing the process, if they did not start
        return self._serve()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # another async library's loop: the stop holds it
            self.stop()
            return
        await asyncio.to_thread(self.stop)  # any thread may stop them

    # What the servers are, and what they saw.

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """Every server's ``(host, port)`` by name."""
        if self._process is None:
            raise RunError("the servers are not started: use `with netsim.serving(...) as net:`")
        return dict(self._process.addresses)

    def address(self, name: str) -> tuple[str, int]:
        """The ``(host, port)`` of the server called ``name``; KeyError names the servers."""
        addresses = self.addresses
        if name not in addresses:
            raise KeyError(f"no server {name!r} in scenario {self.scenario.name!r}; its servers "
                           f"are: {', '.join(addresses)}")
        return addresses[name]

    # Live control.

    def set(self, name: str, /, **conditions: Any) -> float:
        """Change the conditions of the server ``name`` from now on, with keys written as in a
        scenario: ``net.set("a", delay="500ms", fault={"kind": "reset", "after": 10})``.

        Open connections feel it from their next byte on. Returns when it took effect: the
        ``t`` of the log (scenario seconds since the servers started). Raises KeyError for an unknown
        server, ValueError (naming the key) for a key or value a scenario would refuse.
        """
        server = self._server(name)
        changes = _changes(conditions)
        problem = server.change_problem(changes)
        if problem is not None:
            raise ValueError(problem)
        fields, written = changes_of(changes, self.time_scale)
        return self._done(self._ask(lambda request: ChangeConditions(request, name, fields, written)))

    def down(self, name: str, *, reset: bool = False) -> float:
        """Take the server ``name`` down: connects are refused until ``up``; with ``reset``, its
        open connections are reset too. Returns when it took effect (as ``set``). Raises
        TypeError for a ``reset`` that is not a bool (``"yes"`` would be taken for true)."""
        return self.take_down(name, reset=reset)[0]

    def take_down(self, name: str, *, reset: bool = False) -> tuple[float, int]:
        """As ``down``, and how many open connections it reset (0 without ``reset``)."""
        self._server(name)
        if not isinstance(reset, bool):
            raise TypeError(f"reset takes True or False, not {reset!r}")
        answer = self._ask(lambda request: TakeDown(request, name, reset))
        assert isinstance(answer, ControlDone)
        return self._done(answer), answer.count

    def up(self, name: str) -> float:
        """Bring the server ``name`` back up on its port. Returns when it took effect (as
        ``set``); raises PortBusyError if another program took the port meanwhile."""
        self._server(name)
        return self._done(self._ask(lambda request: BringUp(request, name)), PortBusyError)

    def reset(self, name: str) -> int:
        """Reset every connection the server ``name`` has open; how many there were."""
        return self.take_reset(name)[1]

    def take_reset(self, name: str) -> tuple[float, int]:
        """As ``reset``, and when it took effect (as ``set``)."""
        self._server(name)
        answer = self._ask(lambda request: ResetConnections(request, name))
        assert isinstance(answer, ControlDone)
        return self._done(answer), answer.count

    def restore(self, name: str) -> float:
        """Give the server ``name`` back the conditions its scenario gives it (its phases
        aside): every ``set`` undone, as removing a toxic does. It stays down if it is
        down (``up`` brings it back). Returns when it took effect (as ``set``)."""
        self._server(name)
        own = next(plan for plan in self._plans if plan.name == name).conditions  # wall seconds
        # The fields as they are, not through their written form, which rounds (12.5% to 12%).
        fields = dataclasses.asdict(own)
        written = own.scaled(1 / self.time_scale).described(every=True)
        # The log and `changes` say what the restore changed back, not every key it sets.
        now = next(state for state in self.states() if state["name"] == name)["conditions"]
        # (Keys a server cannot take, a poem server's latency, are not in its state.)
        changed = {key: value for key, value in written.items() if key in now and now[key] != value}
        return self._done(self._ask(lambda request: ChangeConditions(request, name, fields, changed)))

    def restore_all(self) -> float:
        """Every server back up, with the conditions its scenario entry gives it: every change
        undone and every server that was taken down brought back (toxiproxy's reset). A test's
        setup calls it so that an earlier test's changes do not reach it. Phases still to
        come still come. Returns when the last server took effect (as ``set``); raises
        PortBusyError if another program took a port while its server was down."""
        t = 0.0  # (a scenario has a server at least)
        for state in self.states():
            if not state["up"]:
                self.up(state["name"])
            t = self.restore(state["name"])
        return t

    def states(self) -> list[dict[str, Any]]:
        """Every server as it is now: up or down, whether it answers handshakes, its conditions
        as a scenario writes them (every key it can take: ``latency`` for proxies only), and its
        open connections (``accepted``: the ``t`` of the log)."""
        answer = self._ask(ReportStates)
        assert isinstance(answer, ServerStates)
        return [self._state(state) for state in answer.servers]

    def _server(self, name: str) -> Server:
        if self._process is None:
            raise RunError("the servers are not started: use `with netsim.serving(...) as net:`")
        try:
            return self.scenario.server(name)
        except KeyError:
            raise KeyError(f"no server {name!r} in scenario {self.scenario.name!r}; its servers "
                           f"are: {', '.join(server.name for server in self.scenario.servers)}") from None

    def _ask(self, request: Callable[[int], ControlMessage]) -> ControlDone | ServerStates:
        """Send a request and wait for its answer. Raises RunError if none comes."""
        process = self._process
        if process is None or not self.alive():
            stopped = "the servers have stopped (their `with` block has ended, or stop() was called)"
            raise RunError(self._failure or (stopped if self._stopping.is_set()
                                             else "the servers are not serving"))
        number = next(self._requests)
        process.send(request(number))
        with self._answered:
            if not self._answered.wait_for(lambda: number in self._answers or self._failure is not None,
                                           STOP_TIMEOUT):
                raise RunError(f"the servers did not answer within {STOP_TIMEOUT:g}s")
            if number not in self._answers:
                raise RunError(self._failure)
            return self._answers.pop(number)

    def _done(self, answer: ControlDone | ServerStates, error: type[RunError] = RunError) -> float:
        """When a change took effect, in scenario seconds since the servers started (the log's
        ``t``); raises ``error`` with what the servers said if it did not take effect."""
        assert isinstance(answer, ControlDone)
        if answer.error is not None:
            raise error(answer.error)
        return answer.t / self.time_scale  # the servers answer in wall seconds

    def _state(self, state: ServerState) -> dict[str, Any]:
        conditions = Conditions(**state.conditions).scaled(1 / self.time_scale)
        server = self.scenario.server(state.name)
        proxy = ({"upstream": server.upstream, "direction": server.direction or "downstream"}
                 if server.upstream is not None else {})
        shown = conditions.described(every=True)
        if server.upstream is None:
            del shown["latency"]  # a proxy's condition: a poem server cannot take one
        return {"name": state.name, "host": state.host, "port": state.port, "up": state.up, **proxy,
                "handshakes": state.handshakes, "conditions": shown,
                # `accepted` on the log's clock, as `t` of a change: scenario seconds
                "connections": [{"index": index, "peer_port": peer_port, "bytes": sent,
                                 "accepted": accepted / self.time_scale}
                                for index, peer_port, sent, accepted in state.connections]}

    def now(self) -> float:
        """The present on the log's clock (scenario seconds since the servers started), as the
        changes answer it: a mark for ``result(since=...)``."""
        return (time.monotonic() - self.t0) / self.time_scale

    def result(self, *, since: float | None = None) -> ServedResult:
        """Every connection the servers have finished with (all of them, once stopped); with
        ``since`` (the log's clock: ``now()``, or the time a change returned), those accepted
        from then on, and the changes from then on: one test's share of servers that serve
        several (``lateness`` stays the whole of it: chunks are not told apart by test).

        Raises RunError when the server process died on its own (``accounts()`` gives what
        it reported until then).
        """
        if self._failure is not None:
            raise RunError(self._failure)
        return self.accounts(since=since)

    def accounts(self, *, since: float | None = None) -> ServedResult:
        """As ``result()``, whether or not the server process died on its own: what it
        reported until then (a connection it had open is missing)."""
        if self.alive() and self._process is not None:  # fetch what the servers hold right now
            self._flushed.clear()
            self._process.request_flush()
            self._flushed.wait(STOP_TIMEOUT)
        with self._lock:
            ended = clients_own(sorted(self._ended, key=lambda event: event.accepted))
            lateness = list(self._lateness)
            changes = tuple(sorted(self._changes, key=lambda change: change.t))
        payloads = {server.name: None if server.is_proxy else len(server.payload())
                    for server in self.scenario.servers}
        ports = {name: port for name, (_, port) in (self._process.addresses.items()
                                                      if self._process is not None else ())}
        slots = [Slot(event.server, ports.get(event.server, event.peer_port), payloads.get(event.server))
                 for event in ended]
        connections = served_connections(ended, slots, self.time_scale)
        if since is not None:
            connections = [conn for conn in connections if conn.start >= since]
            changes = tuple(change for change in changes if change.t >= since)
        return ServedResult(self.scenario.name, self.time_scale, connections,
                            lateness_of(lateness, self.time_scale), _busy(connections), self.machine,
                            self.seed, changes,
                            tuple(server.name for server in self.scenario.servers))


def _busy(connections: Sequence[ConnectionResult]) -> float:
    """How long the servers were busy with ``connections`` (in accept order): from the
    first accept to the end of the last."""
    if not connections:
        return 0.0
    return max(conn.start + conn.duration for conn in connections) - connections[0].start


def _how_it_ended(process: ServerProcess) -> str:
    """``: killed by SIGKILL`` (from outside: the OOM killer, a user), ``with exit code N``,
    or nothing, if it has not been reaped yet."""
    code, killer = process.ending(STOP_TIMEOUT)
    if killer is not None:
        return f": killed by {killer}"
    return "" if code is None else f" (with exit code {code})"


def serve_scenario(
    scenario: Scenario,
    *,
    time_scale: float = 1.0,
    on_listening: Callable[[list[tuple[str, str, int]]], None] | None = None,
    on_stopped: Callable[[Serving], None] | None = None,
    observer: Observer | None = None,
    free_ports: bool = False,
    allow_external: bool = False,
    seed: int | None = None,
    control: tuple[str, int] | None = None,
    control_log: Callable[[str], None] | None = None,
    on_control: Callable[[tuple[str, int]], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> None:
    """Serve the scenario's servers until interrupted (KeyboardInterrupt), then stop them.

    ``on_listening([(name, host, port), ...])`` is called once every server accepts
    connections; events go to ``observer`` as they come; ``on_stopped(serving)`` is called
    once they have stopped, before the interrupt goes on, with what they saw
    (``serving.result()``, ``serving.wall_lateness``). With ``control`` (HOST, PORT), the
    live control API answers there from before ``on_listening`` on, ``on_control`` is given
    its address (the port it took, for a port 0), and ``control_log`` hears where, and
    every request it answers. Raises UsageError (a control address
    outside loopback without ``allow_external`` too), PortBusyError or ServerStartError,
    and RunError if the server process dies.
    """
    if control is not None and not allow_external and not _is_loopback(control[0]):
        where = format_address(*control)
        if not _is_address(control[0]):
            raise UsageError(f"--control {where}: {control[0]!r} is not an address netsim can tell is "
                             f"this machine's loopback; give 127.0.0.1 (or ::1), or pass "
                             f"--allow-external to listen wherever that name leads")
        raise UsageError(f"--control {where} is outside loopback: anyone who can "
                         f"reach it could change the servers; pass --allow-external if that is intended")
    net = Serving(scenario, time_scale=time_scale, seed=seed, observer=observer, free_ports=free_ports,
                  allow_external=allow_external, on_warning=on_warning)
    with net, contextlib.ExitStack() as stack:
        if control is not None:
            api = stack.enter_context(ControlServer(net, *control, log=control_log))
            if control_log is not None:
                control_log(f"control API on http://{format_address(*api.address)}")
            if on_control is not None:
                on_control(api.address)
        try:
            # Inside the try: a stop that comes as soon as "ready" is out (a script that
            # waits for it, then sends SIGTERM) still gets on_stopped.
            if on_listening is not None:
                on_listening([(name, host, port) for name, (host, port) in net.addresses.items()])
            while net.alive():
                time.sleep(POLL)
        finally:
            stack.close()  # no change is asked of servers that are stopping
            try:
                net.stop()
            finally:
                if on_stopped is not None:
                    on_stopped(net)
    raise RunError("the server process ended unexpectedly")


def _is_address(host: str) -> bool:
    return _ip_address(host) is not None


def _is_loopback(host: str) -> bool:
    address = _ip_address(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address (brackets around IPv6 allowed); None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def serving(scenario: str | Path | Scenario | Mapping[str, Any], *, time_scale: float = 1.0,
            seed: int | None = None,
            allow_external: bool = False, allow_paths: bool = False,
            max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES, free_ports: bool = True) -> Serving:
    """Serve a scenario's servers on free ports for a client of your own; a context manager.

    ``scenario`` is a path to a scenario file, the text of one (YAML with a newline in
    it), a mapping of its keys (``{"netsim": 1, "name": ..., "servers": [...]}``: what a
    test builds with a port it learns at run time, a proxy's upstream), or a loaded
    ``Scenario``; it needs no ``clients:``. Use it as ``with`` or
    ``async with``: the servers start on entry and stop on exit, whatever happens, and
    also when the thread that started them ends (so that they never outlive it). A
    Serving serves once. ``allow_external`` lets servers listen, and proxies connect, outside loopback;
    ``allow_paths`` and ``max_poem_bytes`` are as for ``load_scenario``. ``free_ports=False``
    binds the ports the scenario gives (``port: 10000``; 0 still takes any free one), for a
    client that can only be pointed at fixed ports; tests running side by side then clash.

    Raises ScenarioError for a scenario that does not load (TypeError for one of another
    type), UsageError for a request it
    cannot meet (a time scale of 0, a host outside loopback), and on entry PortBusyError
    or ServerStartError when a server cannot start.
    """
    return Serving(load(scenario, allow_paths=allow_paths, max_poem_bytes=max_poem_bytes),
                   time_scale=time_scale, seed=seed, allow_external=allow_external, free_ports=free_ports)


def load(scenario: str | Path | Scenario | Mapping[str, Any], *, allow_paths: bool = False,
         max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES) -> Scenario:
    """A scenario from a path, YAML text or a mapping of its keys (its poem files relative
    to the current folder), or as it is. Raises ScenarioError, and TypeError for anything
    else."""
    from netsim._loader import load_scenario, load_scenario_text

    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        # As the YAML it stands for, so that it is checked as a file is (a problem's line is
        # that of this text, and its path, servers[0].delay, says where).
        import yaml

        try:
            text = yaml.safe_dump(dict(scenario), sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as error:
            raise TypeError(f"a scenario given as a mapping holds only what YAML can (str, int, float, "
                            f"bool, None, lists and mappings of them): {error}") from None
        return load_scenario_text(text, filename="<scenario mapping>", allow_paths=allow_paths,
                                  max_poem_bytes=max_poem_bytes)
    if not isinstance(scenario, str | os.PathLike):
        raise TypeError(f"a scenario is a path, YAML text, a mapping of its keys or a loaded Scenario, "
                        f"not {type(scenario).__name__}")
    if isinstance(scenario, str) and "\n" in scenario:
        return load_scenario_text(scenario, filename="<scenario text>", allow_paths=allow_paths,
                                  max_poem_bytes=max_poem_bytes)
    path = Path(scenario)
    try:
        there = path.exists()
    except OSError:  # a name too long to be a file's: text, most likely
        there = False
    if not there:
        text = str(scenario).lstrip()
        if text.startswith("{") or ": " in text:
            message = ("no such file; this looks like scenario text, which is taken as text only "
                       "with a newline in it")
        elif not path.is_absolute():
            message = f"no such file in the current folder ({Path.cwd()})"
        else:
            message = "no such file"
        raise ScenarioError([Problem(str(scenario), 1, 1, "", message)])
    return load_scenario(scenario, allow_paths=allow_paths, max_poem_bytes=max_poem_bytes)


def _keys_within(path: Sequence[str]) -> list[str]:
    """The keys of the mapping at ``path`` in a change (``["fault"]``: a fault's keys)."""
    from pydantic import BaseModel

    model: type[BaseModel] = ConditionChanges
    for key in path:
        field = model.model_fields.get(key)
        kinds = [*typing.get_args(field.annotation), field.annotation] if field is not None else []
        nested = [kind for kind in kinds if isinstance(kind, type) and issubclass(kind, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return [field.alias or name for name, field in model.model_fields.items()]


def _changes(conditions: dict[str, Any]) -> ConditionChanges:
    """Condition keys as a scenario writes them, checked as a phase's are. Raises ValueError
    naming the key at fault (and the key probably meant)."""
    from pydantic import ValidationError

    if not conditions:
        raise ValueError(f"nothing to change: give condition keys ({', '.join(CONDITION_KEYS)})")
    try:
        return ConditionChanges.model_validate(conditions)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            *within, last = (str(part) for part in first["loc"])
            allowed = _keys_within(within) if within else list(CONDITION_KEYS)
            close = difflib.get_close_matches(last, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            takes = f"`{'.'.join(within)}` takes" if within else "a change takes"
            raise ValueError(f"unknown key {key!r}{hint}; {takes} {', '.join(allowed)}") from None
        message = explain(first)
        hint = _schema.hint("Phase", str(first["loc"][0])) if " like " not in message else ""
        raise ValueError(f"{key}: {message}" + (f"; {hint}" if hint else "")) from None


__all__ = ["Checked", "ServedResult", "Serving", "load", "serve_scenario", "serving"]
