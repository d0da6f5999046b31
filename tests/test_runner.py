"""Whole runs on real servers and real client processes, at a small time scale."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

import netsim
from netsim._machine import Machine
from netsim._processes import STOP_TIMEOUT
from netsim.clients import ClientModel, Recorder, Target, get_model, model_names
from netsim.events import BytesReceived, ChunkSent, Event, ServerListening
from netsim.runner import check_request, select_clients
from tests.conftest import ScenarioWriter, demo_text

MODELS = model_names()[:5]  # netsim's own

SCALE = 0.05  # the 12 s demo takes 0.6 s of wall time
# Wall-clock slack a loaded 2-core machine needs on top of the ideal: process start-up
# is outside the measured time, so this covers connects, wake-ups and scheduling.
SLACK = 0.08  # seconds of wall time


def load_demo(write_scenario: ScenarioWriter, clients: str = ", ".join(MODELS),
              expect: str = "", models: Sequence[str] = ()) -> netsim.Scenario:
    return netsim.load_scenario(write_scenario(demo_text(clients=clients, expect=expect)),
                                client_models=[*model_names(), *models])


@pytest.mark.slow
def test_every_client_model_meets_its_ideal(write_scenario: ScenarioWriter) -> None:
    """Each model takes its ideal time (12 s sequential, 4 s concurrent) within a small overhead."""
    result = netsim.run_scenario(load_demo(write_scenario), time_scale=SCALE)
    assert [run.client for run in result.runs] == MODELS
    for run in result.runs:
        expected = 12.0 if run.client == "blocking" else 4.0
        assert run.ideal == expected
        assert run.elapsed >= expected - 0.01, f"{run.client} finished faster than the servers send"
        assert run.elapsed <= expected + SLACK / SCALE, f"{run.client}: {run.elapsed:.3f}s"
        assert run.wall_elapsed == pytest.approx(run.elapsed * SCALE)
        assert [conn.server for conn in run.connections] == ["a", "b", "c"]
        for conn in run.connections:
            assert (conn.bytes, conn.intact, conn.error) == (16, True, None)
            assert conn.duration == pytest.approx(4.0, abs=SLACK / SCALE)
        assert run.lateness.count == 12
        assert 0 <= run.lateness.p50 <= run.lateness.p99 <= run.lateness.max


def test_blocking_connections_follow_one_another(write_scenario: ScenarioWriter) -> None:
    """The blocking model's connections start in turn, each about one service time after the last."""
    result = netsim.run_scenario(load_demo(write_scenario, "blocking"), time_scale=0.02)
    (run,) = result.runs
    assert run.elapsed == pytest.approx(12.0, abs=SLACK / 0.02)
    assert all(conn.ttfb < 1.0 for conn in run.connections)  # no server made it wait


def test_concurrent_clients_queue_on_a_serial_server(write_scenario: ScenarioWriter) -> None:
    """Three connections to one serial server queue: first bytes at about 0, 1 and 2 service times."""
    path = write_scenario("""\
        netsim: 1
        name: queue
        servers:
          - {name: s, poem: "1\\n2\\n", delay: 1s, mode: serial}
          - {name: open, poem: "1\\n2\\n", delay: 1s, mode: concurrent}
        clients:
          - {model: asyncio, name: queued, targets: [s, s, s]}
          - {model: asyncio, name: together, targets: [open, open, open]}
    """)
    result = netsim.run_scenario(netsim.load_scenario(path), time_scale=SCALE)
    queued, together = result.run("queued"), result.run("together")
    assert queued.ideal == 6.0 and together.ideal == 2.0
    assert queued.elapsed == pytest.approx(6.0, abs=SLACK / SCALE)
    assert together.elapsed == pytest.approx(2.0, abs=SLACK / SCALE)
    ttfbs = sorted(conn.ttfb for conn in queued.connections)
    for ttfb, expected in zip(ttfbs, [0.0, 2.0, 4.0], strict=True):
        assert ttfb == pytest.approx(expected, abs=SLACK / SCALE)


def test_expectations_are_judged_per_client_and_for_all(write_scenario: ScenarioWriter) -> None:
    """Verdicts carry the measured value; a bound that cannot hold fails, the others pass."""
    scenario = load_demo(write_scenario, "blocking, select", expect="""\
        expect:
          blocking:
            - elapsed == 12s ± 25%
          select:
            - speedup(blocking) >= 2
            - elapsed < 1s
          all:
            - intact == 100%
            - errors == 0
    """)
    result = netsim.run_scenario(scenario, time_scale=SCALE)
    verdicts = {(run.client, v.expectation.text): v for run in result.runs for v in run.expectations}
    assert len(verdicts) == 7
    assert verdicts[("select", "elapsed < 1s")].passed is False
    assert verdicts[("select", "elapsed < 1s")].actual == pytest.approx(4.0, abs=SLACK / SCALE)
    assert verdicts[("select", "speedup(blocking) >= 2")].passed
    assert verdicts[("select", "speedup(blocking) >= 2")].actual == pytest.approx(
        result.run("blocking").elapsed / result.run("select").elapsed)
    assert all(v.passed for key, v in verdicts.items() if key != ("select", "elapsed < 1s"))
    assert result.passed is False


def test_a_selected_client_brings_the_clients_its_speedup_needs(write_scenario: ScenarioWriter) -> None:
    """Running only `select` also runs `blocking`, because select's speedup(blocking) compares
    with it; blocking's own expectations are not judged, since it was not asked for."""
    scenario = load_demo(write_scenario, "blocking, select, threads",
                         expect="expect:\n  select: [speedup(blocking) >= 2]\n  blocking: [elapsed < 1ms]\n")
    result = netsim.run_scenario(scenario, clients=["select"], time_scale=0.02)
    assert [run.client for run in result.runs] == ["blocking", "select"]
    assert result.run("blocking").expectations == [] and result.run("blocking").passed


def test_an_unknown_client_name_is_a_usage_error(write_scenario: ScenarioWriter) -> None:
    """Asking for a client the scenario does not have names the clients it has."""
    with pytest.raises(netsim.UsageError, match=r"no client 'nope'.*blocking, select"):
        netsim.run_scenario(load_demo(write_scenario, "blocking, select"), clients=["nope"])


def test_a_mistyped_client_name_is_answered_with_the_one_meant(write_scenario: ScenarioWriter) -> None:
    """`--client selcet` names `select` as the client probably meant."""
    meant = r"no client 'selcet' in scenario '\S+' \(did you mean 'select'\?\)"
    with pytest.raises(netsim.UsageError, match=meant):
        netsim.run_scenario(load_demo(write_scenario, "blocking, select"), clients=["selcet"])


def test_a_client_named_in_another_case_or_with_a_comma_is_answered(write_scenario: ScenarioWriter) -> None:
    """`--client SELECT` names `select`; `--client blocking,select` says to give one per --client."""
    scenario = load_demo(write_scenario, "blocking, select")
    with pytest.raises(netsim.UsageError, match=r"\(did you mean 'select'\?\)"):
        select_clients(scenario, ["SELECT"])
    with pytest.raises(netsim.UsageError, match="name one client per --client "
                                                "\\(--client blocking --client select\\)"):
        select_clients(scenario, ["blocking,select"])


def test_a_client_pattern_selects_every_client_it_matches(write_scenario: ScenarioWriter) -> None:
    """A name with a wildcard selects the clients it matches, as a shell's pattern does (a
    teacher runs `--client 'student-*'`); one that matches none is a usage error."""
    scenario = load_demo(write_scenario, "{model: select, name: s-1}, {model: select, name: s-2}, blocking")
    assert [client.label for client in select_clients(scenario, ["s-*"])] == ["s-1", "s-2"]
    assert [client.label for client in select_clients(scenario, ["blocking", "s-[2]"])] == ["s-2", "blocking"]
    with pytest.raises(netsim.UsageError, match=r"no client of scenario '\S+' matches 'x\*'"):
        select_clients(scenario, ["x*"])


def test_the_clients_a_pattern_selects_are_judged(write_scenario: ScenarioWriter) -> None:
    """A client selected by a pattern is judged as one named outright: a failed expectation
    fails the run."""
    scenario = load_demo(write_scenario, "{model: select, name: s-1}, {model: select, name: s-2}",
                         expect="expect:\n  all: [elapsed < 1ms]\n")
    result = netsim.run_scenario(scenario, clients=["s-*"], time_scale=0.01)
    assert [len(run.expectations) for run in result.runs] == [1, 1]
    assert result.passed is False


def test_events_are_stamped_on_one_clock_and_tagged(write_scenario: ScenarioWriter) -> None:
    """Server and client events share one clock and carry server, client and conn fields."""
    events: list[Event] = []
    netsim.run_scenario(load_demo(write_scenario, "select"), time_scale=0.02, observer=events.append)
    names = {event.name for event in events}
    assert {"server_listening", "client_started", "conn_started", "conn_established", "conn_accepted",
            "chunk_sent", "bytes_received", "eof_received", "conn_closed", "client_finished"} <= names
    for event in events:
        assert event.client == "select"
        if not isinstance(event, ServerListening) and event.name not in ("client_started", "client_finished"):
            assert getattr(event, "conn", None) in (1, 2, 3)
            assert getattr(event, "server", None) in ("a", "b", "c")
    chunks = [event for event in events if isinstance(event, ChunkSent)]
    for chunk in chunks:
        assert 0 <= chunk.t - chunk.scheduled < 0.05
    received = [event for event in events if isinstance(event, BytesReceived)]
    # The first byte of each connection is received after the server sent it, on the same clock.
    for chunk in (chunk for chunk in chunks if chunk.index == 0):
        assert chunk.t <= min(event.t for event in received if event.conn == chunk.conn)


def test_a_run_past_its_timeout_is_stopped(write_scenario: ScenarioWriter) -> None:
    """A client model still running at the timeout is stopped and reported; nothing is left running."""
    scenario = load_demo(write_scenario, "blocking")
    started = time.monotonic()
    with pytest.raises(netsim.RunTimeoutError, match="did not finish within 200ms"):
        netsim.run_scenario(scenario, time_scale=0.1, timeout=0.2)  # ideal: 1.2 s of wall time
    assert time.monotonic() - started < 5


def _without_timeouts(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:
        conn = recorder.open(target)
        with socket.create_connection(target.address, timeout=None) as sock:  # target.timeout ignored
            conn.connected(sock.getsockname()[1])
            while data := sock.recv(65536):
                conn.received(data)
        conn.eof()


def test_a_model_that_ignores_its_targets_timeout_is_told_so(write_scenario: ScenarioWriter,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped at the time worked out from the ideal, with a connection still open that its
    target's timeout should have ended, the message says where the servers still held one
    open (asked of them: a hung model tells nothing) and what the model should have done,
    not only that --timeout allows longer."""
    from netsim import runner

    monkeypatch.setattr(runner, "TIMEOUT_MARGIN", 0.5)  # 3 x 0.2 s + 0.5 s, not + 10 s
    patient = ClientModel("patient", "waits for ever", False, _without_timeouts)
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: patient
        servers: [{name: hole, poem: "1\\n", fault: {kind: blackhole}}]
        clients: [{model: patient, timeout: 200ms}]
    """), client_models=["patient"])
    with pytest.raises(netsim.RunTimeoutError) as stopped:
        netsim.run_scenario(scenario, models={"patient": patient})
    message = str(stopped.value)
    assert "the servers still held connections open: 1 to hole" in message
    assert "waits 200ms (its target's timeout) for a byte: a client model gives such a connection up itself" \
        in message


def _probing_first(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:  # a look at each server first, of which it tells nothing
        with socket.create_connection(target.address) as probe:
            probe.recv(1)
    _misported(targets, recorder)


def _misported(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:
        conn = recorder.open(target)
        with socket.create_connection(target.address) as sock:
            conn.connected(target.port)  # the server's port, not its own
            while data := sock.recv(65536):
                conn.received(data)
        conn.eof()


@pytest.mark.parametrize(("run", "unreported"), [(_probing_first, 4), (_misported, 2)])
def test_connections_a_model_did_not_report_are_counted_and_warned_of(
        write_scenario: ScenarioWriter, run: Any, unreported: int) -> None:
    """Connections that carried bytes and that the model never reported by its port (made
    on the side, or reported under the server's port) are counted, with a warning, where
    the run said nothing of them."""
    model = ClientModel("sloppy", "reports badly", False, run)
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: sloppy
        servers: [{name: a, poem: "1\\n"}, {name: b, poem: "2\\n"}]
        clients: [sloppy]
    """), client_models=["sloppy"])
    result = netsim.run_scenario(scenario, time_scale=0.1, models={"sloppy": model})
    assert result.runs[0].unreported_connections == unreported
    (warning,) = result.warnings
    assert warning.startswith(f"sloppy: the servers served {unreported} connections to its targets that "
                              f"the model did not report")


def _leaves_a_thread(targets: Sequence[Target], recorder: Recorder) -> None:
    threading.Thread(target=time.sleep, args=(30,), name="forgotten").start()  # not a daemon
    _misported(targets, recorder)


def test_a_model_that_leaves_a_thread_running_ends_at_once_with_a_warning(
        write_scenario: ScenarioWriter) -> None:
    """A model whose run() returns with a thread of its own still running: its process ends
    without waiting for the thread (the runner waited STOP_TIMEOUT), and the run says so."""
    model = ClientModel("leaky", "leaves a thread", False, _leaves_a_thread)
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: leaky
        servers: [{name: a, poem: "1\\n"}]
        clients: [leaky]
    """), client_models=["leaky"])
    started = time.monotonic()
    result = netsim.run_scenario(scenario, time_scale=0.1, models={"leaky": model})
    assert time.monotonic() - started < STOP_TIMEOUT
    assert result.runs[0].threads_left == 1
    assert any(warning.startswith("leaky: the model returned with 1 thread of its own still running")
               for warning in result.warnings)


def test_a_well_behaved_model_leaves_nothing_unreported(write_scenario: ScenarioWriter) -> None:
    """netsim's own models report every connection: nothing unreported, no warning (a
    refused one and one given up before its handshake carried nothing)."""
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: tidy
        servers: [{name: a, poem: "1\\n"}, {name: r, poem: "x\\n", fault: {kind: refuse}},
                  {name: h, poem: "y\\n", handshake_delay: 2s}]
        clients: [{model: selectors, timeout: 300ms}]
    """))
    result = netsim.run_scenario(scenario, time_scale=0.5)
    assert result.runs[0].unreported_connections == 0
    assert not [warning for warning in result.warnings if "did not report" in warning]


def test_a_busy_fixed_port_is_a_run_error(write_scenario: ScenarioWriter) -> None:
    """A scenario whose fixed port is taken fails with PortBusyError naming the server and the port."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = write_scenario(f"""\
            netsim: 1
            name: busy
            servers: [{{name: taken, port: {port}, poem: "x\\n"}}]
            clients: [blocking]
        """)
        with pytest.raises(netsim.PortBusyError, match=f"server 'taken': port {port}"):
            netsim.run_scenario(netsim.load_scenario(path))
        # --free-ports sidesteps the fixed port entirely.
        result = netsim.run_scenario(netsim.load_scenario(path), free_ports=True)
        assert result.runs[0].connections[0].port != port
    finally:
        holder.close()


def test_a_host_outside_loopback_needs_permission(write_scenario: ScenarioWriter) -> None:
    """Binding 0.0.0.0 is refused unless allow_external is given."""
    path = write_scenario("""\
        netsim: 1
        name: wide
        servers: [{name: a, host: 0.0.0.0, poem: "x\\n"}]
        clients: [blocking]
    """)
    with pytest.raises(netsim.UsageError, match="outside loopback"):
        netsim.run_scenario(netsim.load_scenario(path))


def proxy_to(upstream: str) -> netsim.Scenario:
    """A scenario whose one server forwards to ``upstream``."""
    return netsim.load_scenario_text(
        f"netsim: 1\nname: forward\nservers:\n  - {{name: o, poem: 'x\\n'}}\n"
        f"  - {{name: p, upstream: '{upstream}'}}\nclients: [blocking]\n")


@pytest.mark.parametrize("upstream", ["10.1.2.3:80", "0.0.0.0:80", "[2001:db8::1]:443"])
def test_a_proxy_to_another_machine_needs_permission(upstream: str) -> None:
    """A proxy whose upstream is outside loopback is refused, naming the server and the flag."""
    with pytest.raises(netsim.UsageError) as caught:
        netsim.run_scenario(proxy_to(upstream))
    assert str(caught.value) == (f"server 'p' forwards to {upstream}, outside loopback: every client of "
                                 f"the proxy makes netsim connect to another machine; pass "
                                 f"--allow-external (allow_external=True in Python) if that is intended")
    check_request(proxy_to(upstream), 1.0, allow_external=True)


@pytest.mark.parametrize("upstream", ["127.0.0.1:80", "127.8.0.1:80", "localhost:80", "[::1]:80", "o"])
def test_a_proxy_on_this_machine_needs_no_permission(upstream: str) -> None:
    """Loopback upstreams, and a server of the scenario by name, are allowed without the flag."""
    check_request(proxy_to(upstream), 1.0, allow_external=False)


def _crash(targets: Sequence[Target], recorder: Recorder) -> None:
    raise ZeroDivisionError("a bug in a client model")


def _crash_in_a_thread(targets: Sequence[Target], recorder: Recorder) -> None:
    def fetch(target: Target) -> None:
        get_model("blocking").run([target], recorder)
        raise RuntimeError("a bug in a worker thread")

    workers = [threading.Thread(target=fetch, args=(target,)) for target in targets]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_a_model_whose_thread_dies_of_an_exception_crashed(write_scenario: ScenarioWriter) -> None:
    """An exception that kills one of a model's threads is a crash of the model (exit 3's
    ClientCrashError), though run() returned as usual, not a pass with a printed traceback."""
    threaded = ClientModel("threaded", "a thread a connection", True, _crash_in_a_thread)
    scenario = load_demo(write_scenario, "threaded", models=["threaded"])
    crashed = r"RuntimeError: a bug in a worker thread \(in a thread of the model\)"
    with pytest.raises(netsim.ClientCrashError, match=crashed) as caught:
        netsim.run_scenario(scenario, time_scale=0.02, models={"threaded": threaded})
    assert "fetch" in caught.value.detail


def test_a_crashing_client_model_is_reported_not_hidden(
    write_scenario: ScenarioWriter,
) -> None:
    """A model that raises ends the run with ClientCrashError carrying the exception and traceback."""
    crashy = ClientModel("crashy", "raises", True, _crash)
    scenario = load_demo(write_scenario, "crashy", models=["crashy"])
    with pytest.raises(netsim.ClientCrashError, match="ZeroDivisionError: a bug in a client model") as caught:
        netsim.run_scenario(scenario, time_scale=0.02, models={"crashy": crashy})
    assert "_crash" in caught.value.detail


def test_a_crash_of_a_labelled_client_names_its_model(write_scenario: ScenarioWriter) -> None:
    """A client with a label of its own that crashes is named with its model: whose bug it is."""
    crashy = ClientModel("crashy", "raises", True, _crash)
    scenario = load_demo(write_scenario, "{model: crashy, name: mine}", models=["crashy"])
    with pytest.raises(netsim.ClientCrashError, match=r"^client 'mine' \(model 'crashy'\) crashed: "
                                                      r"ZeroDivisionError"):
        netsim.run_scenario(scenario, time_scale=0.02, models={"crashy": crashy})


def test_a_run_well_under_its_ideal_says_the_ideal_does_not_describe_it(
        write_scenario: ScenarioWriter) -> None:
    """A model that overlaps its connections but says it does not takes a third of the ideal
    its claim gives (12 s for the demo), which no client can beat: the run warns, naming the
    claim to check; a model that says it rightly gets no such warning."""
    claims = ClientModel("claims", "overlaps, says it does not", False, get_model("selectors").run)
    scenario = load_demo(write_scenario, "claims, selectors", models=["claims"])
    result = netsim.run_scenario(scenario, time_scale=0.02, models={"claims": claims})
    (warning,) = [warning for warning in result.warnings if "less than its ideal" in warning]
    assert warning.startswith("claims: it took 4.")
    assert "less than its ideal 12.000s, the least a client of its kind can take" in warning
    assert warning.endswith("(does the model say rightly whether its connections overlap (concurrent)?)")


def test_phases_that_a_small_time_scale_moves_in_the_clients_run_are_warned_of(
        write_scenario: ScenarioWriter) -> None:
    """At time scale 0.005 a process's start (a millisecond or more of wall time) is 200 ms
    of the scenario and more: a run with phases that failed an expectation says they came
    that much sooner in the client's run, and when the servers were ready is in its result."""
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: phased
        servers: [{name: a, poem: "1\\n2\\n", delay: 1s, phases: [{at: 1500ms, delay: 500ms}]}]
        clients: [blocking]
        expect: {blocking: [elapsed == 2s ± 5%]}
    """))
    result = netsim.run_scenario(scenario, time_scale=0.005)
    (run,) = result.runs
    assert run.servers_ready <= -0.2 and run.to_dict()["servers_ready"] == pytest.approx(run.servers_ready)
    (warning,) = [warning for warning in result.warnings if "phases count from then" in warning]
    assert warning.startswith("blocking: its servers were ready ")
    assert warning.endswith("a larger time scale keeps the phases where the scenario puts them")


class _AsyncCall:
    """A run that is an object with an async __call__: no check where a model is made sees it."""

    async def __call__(self, targets: Sequence[Target], recorder: Recorder) -> None:
        pass


def test_a_model_whose_run_returns_a_coroutine_crashed_saying_so(write_scenario: ScenarioWriter) -> None:
    """A run that returns an awaitable (nothing ran) is a crash of the model that says what
    to do, not a run whose connections all went missing."""
    waiting = ClientModel("awaiting", "async call", True, _AsyncCall())
    scenario = load_demo(write_scenario, "awaiting", models=["awaiting"])
    with pytest.raises(netsim.ClientCrashError, match=r"TypeError: run returned an awaitable, which netsim "
                                                      r"cannot await: make run a plain function"):
        netsim.run_scenario(scenario, time_scale=0.02, models={"awaiting": waiting})


def test_a_server_process_that_dies_without_its_account_fails_the_run(
        write_scenario: ScenarioWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server process that ends without sending its account (here: at the stop, after the
    client finished, where its end raced the client's) is a run that could not be carried
    out, not a pass with the servers' side missing. (The forked server inherits the patch.)"""
    from netsim import _processes
    from netsim.events import Stopped

    real_send = _processes._send

    def dies_at_the_stop(conn: Any, message: Any) -> None:
        if isinstance(message, Stopped):
            os._exit(1)
        real_send(conn, message)

    monkeypatch.setattr(_processes, "_send", dies_at_the_stop)
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: dies
        servers: [{name: a, poem: "1\\n"}]
        clients: [blocking]
    """))
    with pytest.raises(netsim.RunError, match="the server process ended unexpectedly during the run"):
        netsim.run_scenario(scenario, time_scale=0.1)


def test_a_refused_connection_is_an_error_not_a_crash(write_scenario: ScenarioWriter) -> None:
    """A target nobody listens on ends as error 'refused'; ttfb is not measured, the run goes on."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    real = get_model("select")

    def with_a_dead_target(targets: Sequence[Target], recorder: Recorder) -> None:
        dead = Target(conn=len(targets), server=targets[-1].server, host="127.0.0.1", port=dead_port,
                      expected=targets[-1].expected)
        real.run([*targets[:-1], dead], recorder)

    dying = ClientModel("select", real.summary, True, with_a_dead_target)
    scenario = load_demo(write_scenario, "select", expect="expect:\n  all: [errors == 0]\n")
    result = netsim.run_scenario(scenario, time_scale=0.02, models={"select": dying})
    run = result.runs[0]
    assert [conn.error for conn in run.connections] == [None, None, "refused"]
    assert math.isnan(run.connections[2].ttfb)
    assert run.metrics()["errors"] == 1 and run.metrics()["intact"] == pytest.approx(2 / 3)
    assert (run.metrics()["errors.refused"], run.metrics()["errors.reset"]) == (1, 0)
    assert not result.passed


def test_a_server_that_leaves_real_time_is_flagged(write_scenario: ScenarioWriter,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A real-time server that computes past its budget without a pause falls back to the
    normal policy, and the result says so. (Where real time is refused, there is nothing to
    leave and no warning.) The server process is forked from this one, so it inherits a
    budget of 10 ms and a start that computes for 100 ms before it listens."""
    from netsim import _processes
    from netsim.engine import _priority

    real_open = _processes.open_listeners

    def open_after_computing(plans: Any) -> Any:
        began = time.thread_time()
        while time.thread_time() - began < 0.1:
            pass
        return real_open(plans)

    monkeypatch.setattr(_priority, "REALTIME_BUDGET", 0.01)
    monkeypatch.setattr(_processes, "open_listeners", open_after_computing)
    result = netsim.run_scenario(load_demo(write_scenario, "select"), time_scale=0.02)
    left = [warning for warning in result.warnings if "real-time budget" in warning]
    if _real_time_is_granted():
        assert left == ["select: the server process used up its real-time budget (CPU time without a "
                        "pause) and ran at normal priority for the rest of the run, where other tasks "
                        "can hold it back"]
        assert result.runs[0].server_left_realtime
    else:
        assert left == []
    assert result.passed  # the run itself went on


def _real_time_is_granted() -> bool:
    script = "from netsim.engine import _priority; print(_priority.ask_for_priority().value)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return done.stdout.strip() == "real-time"


def test_a_run_on_a_busy_machine_is_flagged(write_scenario: ScenarioWriter,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """When the servers' p99 lateness exceeds the threshold, the result carries a warning saying so."""
    from netsim import runner

    monkeypatch.setattr(runner, "LATENESS_WARNING", -1.0)  # any lateness at all is "too late"
    result = netsim.run_scenario(load_demo(write_scenario, "select"), time_scale=0.02)
    (warning,) = result.warnings
    assert warning.startswith("select: the servers sent chunks up to") and "too busy" in warning
    monkeypatch.setattr(runner, "LATENESS_WARNING", 10.0)
    assert netsim.run_scenario(load_demo(write_scenario, "select"), time_scale=0.02).warnings == []


class _Taken:
    """Stands in for the hypervisor, which no test can make take CPU time on demand: a
    StealClock whose reading says that ``share`` of the machine's CPU time was taken."""

    share = 0.0
    window = 4.0  # seconds

    def read(self) -> Machine:
        return Machine(cpus=2, steal=self.share * 2 * self.window, window=self.window)


@pytest.mark.parametrize(("share", "window", "expect", "warned"), [
    (0.03, 4.0, "elapsed <= 1s", True),  # a timing expectation failed with 3% taken
    (0.03, 4.0, "elapsed <= 10s", False),  # nothing failed: nothing to explain
    (0.03, 4.0, "bytes <= 1B", False),  # a failure that time does not explain
    (0.005, 4.0, "elapsed <= 1s", False),  # too little taken to matter
    (0.03, 0.25, "elapsed <= 1s", False),  # 15 ms: a tick or two, which says little
    # 48 ms taken: 2.4 s of scenario time at time scale 0.02, short of the 3 s it missed by
    (0.03, 0.8, "elapsed <= 1s", False),
])
def test_steal_time_is_named_beside_a_failed_timing_expectation(
        write_scenario: ScenarioWriter, monkeypatch: pytest.MonkeyPatch,
        share: float, window: float, expect: str, warned: bool) -> None:
    """A run whose timing expectation failed while the hypervisor took over 1% of the
    machine's CPU time (and 30 ms at least), as much as the expectation missed by or more,
    says so, with how much was taken; other runs do not."""
    from netsim import runner

    monkeypatch.setattr(_Taken, "share", share)
    monkeypatch.setattr(_Taken, "window", window)
    monkeypatch.setattr(runner, "StealClock", _Taken)
    monkeypatch.setattr(runner, "LATENESS_WARNING", 10.0)  # a loaded machine's own lateness aside
    scenario = load_demo(write_scenario, "select", expect=f"expect:\n  select: [{expect}]\n")
    result = netsim.run_scenario(scenario, time_scale=0.02)
    assert not result.passed if expect != "elapsed <= 10s" else result.passed
    assert result.runs[0].machine == Machine(cpus=2, steal=share * 2 * window, window=window)
    if warned:
        assert result.warnings == [
            "select: the hypervisor took 240ms of this machine's CPU time while it ran (steal time, "
            "3.0% of 2 CPUs): a server sends nothing while its CPU is taken, so a timing expectation "
            "that failed in this run may have failed for the machine, not the client; run it again, "
            "or on a quieter machine, before blaming the client"]
    else:
        assert result.warnings == []


# A client that connects at once: bash's start is a few milliseconds.
AT_ONCE = "exec 3<>/dev/tcp/127.0.0.1/$0; cat <&3 >/dev/null"
# One that starts a Python interpreter and waits 0.3 s more before it connects.
LATE = ("import socket, sys, time; time.sleep(0.3); "
        "sock = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); "
        "all(iter(lambda: sock.recv(64), b''))")


@pytest.mark.parametrize(("program", "expect", "warned"), [
    ("late", "elapsed <= ideal + 100ms", True),  # 0.3 s of wall time before it connects: 3 s here
    ("late", "elapsed <= ideal + 10s", False),  # nothing failed: nothing to explain
    ("at once", "elapsed <= ideal * 0.5", False),  # failed, but not for a late start
    ("lingering", "elapsed <= ideal + 100ms", False),  # it sits 1 s after reading: its start is a part
])
def test_a_programs_late_first_connection_is_named_beside_a_failed_timing_expectation(
        write_scenario: ScenarioWriter, monkeypatch: pytest.MonkeyPatch, program: str, expect: str,
        warned: bool) -> None:
    """A program whose first connection came well after the ideal's (its start-up, which no
    time scale shrinks) is named beside a failed timing expectation it makes half or more
    of, with the wall time."""
    from netsim import runner

    monkeypatch.setattr(runner, "LATENESS_WARNING", 10.0)  # a loaded machine's own lateness aside
    monkeypatch.setattr(runner, "STEAL_WARNING", 10.0)  # and its hypervisor's
    code = {"late": LATE, "lingering": LATE + "; time.sleep(1.0)"}.get(program)
    run = (f'[{sys.executable}, -c, "{code}", "{{port:a}}"]' if code
           else f'[bash, -c, "{AT_ONCE}", "{{port:a}}"]')
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: late
        servers: [{{name: a, poem: "1\\n2\\n", delay: 1s}}]
        clients: [{{model: command, name: mine, run: {run}}}]
        expect:
          mine: [{expect}]
    """))
    result = netsim.run_scenario(scenario, time_scale=0.1 if program != "at once" else 1.0)
    late = [warning for warning in result.warnings
            if warning.startswith("mine: its program made its first connection ")]
    if warned:
        assert not result.passed
        (warning,) = late
        assert "of wall time): its start-up (an interpreter's, its imports) counts in elapsed, and " \
               "time scale 0.1 makes each wall second 10 scenario seconds" in warning
    else:
        assert late == []


def test_steal_time_is_named_beside_late_servers(write_scenario: ScenarioWriter,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """When the servers fell behind and some CPU time was taken, one warning says both."""
    from netsim import runner

    monkeypatch.setattr(runner, "LATENESS_WARNING", -1.0)
    monkeypatch.setattr(_Taken, "share", 0.005)
    monkeypatch.setattr(runner, "StealClock", _Taken)
    (warning,) = netsim.run_scenario(load_demo(write_scenario, "select"), time_scale=0.02).warnings
    assert ", and the hypervisor took 40ms of this machine's CPU time while it ran (steal time, 0.5% of " \
           "2 CPUs): this machine was too busy" in warning


def test_a_run_records_the_machine_it_ran_on(write_scenario: ScenarioWriter) -> None:
    """Each run's result (and its JSON) gives the machine's CPUs and the steal time counted
    over the run, which on Linux is a real count."""
    result = netsim.run_scenario(load_demo(write_scenario, "select"), time_scale=0.02)
    machine = result.runs[0].machine
    assert machine is not None and machine.cpus == os.cpu_count()
    assert machine.window >= result.runs[0].wall_elapsed
    data = result.runs[0].to_dict()["machine"]
    assert data["cpus"] == os.cpu_count()
    if os.path.exists("/proc/stat"):
        assert data["steal_seconds"] >= 0


def test_the_fidelity_line_names_the_steal_when_there_was_enough() -> None:
    """`netsim serve`'s closing line adds the hypervisor's steal time when it is worth a word."""
    from netsim.runner import fidelity

    lateness = [0.0001, 0.0002, 0.0004]
    assert fidelity(lateness) == "3 chunks, lateness p50 0.200 ms, p99 0.396 ms, max 0.400 ms"
    assert fidelity(lateness, Machine(cpus=2, steal=0.02, window=100.0)) == fidelity(lateness)
    assert fidelity(lateness, Machine(cpus=2, steal=0.5, window=100.0)) == (
        "3 chunks, lateness p50 0.200 ms, p99 0.396 ms, max 0.400 ms; the hypervisor took 500ms of "
        "this machine's CPU time while it ran (steal time, 0.2% of 2 CPUs)")
    assert fidelity([], Machine(cpus=2, steal=math.nan, window=1.0)) == "no chunks sent"


def test_a_quiet_models_events_reach_the_runner_while_it_waits() -> None:
    """A blocking model that waits out a server's pause is still heard of: its first read
    reaches the runner (a live log, the progress line) during the pause, not with the read
    after it."""
    text = """
netsim: 1
name: pause
servers: [{name: a, poem: "1\\n2\\n", delay: 1s}]
clients: [blocking]
"""
    heard: list[float] = []

    def observe(event: Event) -> None:
        if isinstance(event, BytesReceived):
            heard.append(time.monotonic())

    netsim.run_scenario(netsim.load_scenario_text(text), observer=observe, detail=True, time_scale=0.5)
    first, second = heard
    assert second - first >= 0.25  # the pause is 0.5 s of wall time; the first came well within it
