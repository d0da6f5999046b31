"""Every client model keeps the contract of netsim.testing.check_client_model, and the
suite itself fails a model that breaks it."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable, Sequence

import pytest

from netsim.clients import ClientModel, ModelLimitError, Recorder, Target, get_model, model_names
from netsim.clients import blocking as blocking_module
from netsim.clients import selectors as selectors_module
from netsim.testing import ConformanceError, check_client_model

# Every installed model that runs as it is; `command` runs a scenario's program instead.
CONTRACTED = [name for name in model_names() if get_model(name).configure is None]


@pytest.mark.parametrize("name", CONTRACTED)
def test_the_model_keeps_the_contract(name: str) -> None:
    """The installed client model passes every check of the conformance suite."""
    check_client_model(get_model(name))


def _one_by_one(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:
        blocking_module.fetch(target, recorder)


def test_a_model_that_claims_to_overlap_but_does_not_fails_on_timing() -> None:
    """A model that says it is concurrent yet reads one server after another fails the timing check."""
    impostor = ClientModel(name="impostor", summary="blocking, claiming to be concurrent", concurrent=True,
                           run=_one_by_one)
    with pytest.raises(ConformanceError) as failure:
        check_client_model(impostor)
    conformance = failure.value.conformance
    assert [check.name.split(":")[0] for check in conformance.checks if not check.passed] == [
        "timing", "handshake"]
    assert "the longest server's time" in str(failure.value)


def _connect_and_wait(target: Target) -> socket.socket:
    """start_connecting as netsim's select and selectors models did before 2026-12-03:
    the whole handshake waited for in connect(), the loop and every other connection with it."""
    sock = socket.create_connection(target.address, timeout=target.timeout)
    sock.setblocking(False)
    return sock


def test_a_model_that_waits_in_connect_fails_on_handshakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent model that overlaps its reads but not its handshakes (the selectors
    model, waiting in connect()) keeps every clause but the handshake one, which says what
    it should have done. (The model runs in a process forked from this one: it inherits
    the patch.)"""
    monkeypatch.setattr(selectors_module, "start_connecting", _connect_and_wait)
    waits = dataclasses.replace(selectors_module.MODEL, name="waits")
    with pytest.raises(ConformanceError) as failure:
        check_client_model(waits)
    failed = [check for check in failure.value.conformance.checks if not check.passed]
    assert [check.name.split(":")[0] for check in failed] == ["handshake"]
    assert "a concurrent model waits for a handshake while it reads the others" in str(failure.value)


def _misreporting(port_of: Callable[[Target], int]) -> Callable[[Sequence[Target], Recorder], None]:
    """A model's run that reads each target in turn but reports ``port_of(target)`` as its
    own port, where the contract wants the client's (``sock.getsockname()[1]``)."""

    def run(targets: Sequence[Target], recorder: Recorder) -> None:
        for target in targets:
            conn = recorder.open(target)
            try:
                with socket.create_connection(target.address, timeout=target.timeout) as sock:
                    conn.connected(port_of(target))
                    while data := sock.recv(65536):
                        conn.received(data)
                    conn.eof()
            except OSError as error:
                conn.failed(error)

    return run


def test_a_model_that_hides_its_port_fails_on_events() -> None:
    """A model that reports port 0 instead of its own fails the events clause, naming the ports."""
    model = ClientModel(name="portless", summary="reports no port", concurrent=False,
                        run=_misreporting(lambda _target: 0))
    with pytest.raises(ConformanceError, match=r"connected\(local_port\) gave \[0, 0, 0\]"):
        check_client_model(model)


def _slow_to_give_up(targets: Sequence[Target], recorder: Recorder) -> None:
    time.sleep(0.5)
    _one_by_one(targets, recorder)


def _crashes_after_connecting(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:
        recorder.open(target)
        raise RuntimeError("a bug after the first open")


def _never_calls_eof(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:
        conn = recorder.open(target)
        with socket.create_connection(target.address, timeout=target.timeout) as sock:
            conn.connected(sock.getsockname()[1])
            while data := sock.recv(65536):
                conn.received(data)


def test_a_crash_is_named_with_where_it_happened_and_missing_calls_by_their_names() -> None:
    """A model that crashes fails each check with the line it crashed at; one that forgets
    eof() is told which calls it made, by the names of the recorder's calls."""
    crashing = ClientModel(name="crashing", summary="raises", concurrent=False, run=_crashes_after_connecting)
    with pytest.raises(ConformanceError) as failure:
        check_client_model(crashing)
    assert "RuntimeError: a bug after the first open (at " in str(failure.value)
    assert ", in _crashes_after_connecting: raise RuntimeError(\"a bug after the first open\"))" in str(
        failure.value)
    forgetful = ClientModel(name="forgetful", summary="no eof()", concurrent=False, run=_never_calls_eof)
    calls = r"recorder\.open\(target\), connected\(local_port\), received\(data\)(, received\(data\))*"
    with pytest.raises(ConformanceError, match=rf"made the calls {calls}; expected .* then eof\(\)"):
        check_client_model(forgetful)


def _holds_two(targets: Sequence[Target], recorder: Recorder) -> None:
    if len(targets) > 2:
        raise ModelLimitError(f"holds 2 connections, asked for {len(targets)}")
    get_model("blocking").run(targets, recorder)


def test_a_model_that_meets_a_limit_of_its_own_is_told_to_declare_it() -> None:
    """A model that raises ModelLimitError mid-run fails the checks that open more, and is
    told to declare its limit (the suite then checks it within that many)."""
    pair = ClientModel(name="pair", summary="two at most", concurrent=False, run=_holds_two)
    with pytest.raises(ConformanceError, match=r"holds 2 connections, asked for 3\. A model that holds only "
                                               r"so many connections says so, ClientModel\(limit=N"):
        check_client_model(pair)
    check_client_model(dataclasses.replace(pair, limit=2, limit_reason="two at most"))


def test_a_model_that_dawdles_with_nothing_to_do_fails() -> None:
    """A model that takes half a second before its first connection fails the 'returns at once' clause."""
    model = dataclasses.replace(get_model("blocking"), name="dawdler", run=_slow_to_give_up)
    with pytest.raises(ConformanceError) as failure:
        check_client_model(model)
    failed = [check.name.split(":")[0] for check in failure.value.conformance.checks if not check.passed]
    assert "nothing to wait for" in failed


@pytest.mark.parametrize("limit", [1, 2])
def test_a_model_holding_few_connections_is_checked_within_its_limit(limit: int) -> None:
    """A model with a limit below what a check opens (six for the faults) is checked with as
    many connections as it holds, and passes."""
    model = dataclasses.replace(get_model("threads"), name=f"pool-of-{limit}", limit=limit,
                                limit_reason=f"a pool of {limit}")
    conformance = check_client_model(model)
    assert conformance.passed and len(conformance.checks) == 6


def test_a_model_reporting_a_port_no_server_saw_fails_on_timing() -> None:
    """A model that reports the server's port as its own passes every other clause, but the
    servers' account of its connections is lost, and the timing clause says why."""
    model = ClientModel(name="misported", summary="the server's port", concurrent=False,
                        run=_misreporting(lambda target: target.port))  # the server's port
    with pytest.raises(ConformanceError) as failure:
        check_client_model(model)
    failed = [check.name.split(":")[0] for check in failure.value.conformance.checks if not check.passed]
    assert failed == ["timing"]
    assert "the server saw no connection from the port it reported" in str(failure.value)


def test_something_other_than_a_model_is_a_type_error() -> None:
    """check_client_model of a function (the model's run, say) says what it takes."""
    with pytest.raises(TypeError, match=r"takes a netsim\.clients\.ClientModel, not function"):
        check_client_model(_one_by_one)  # type: ignore[arg-type]


def test_a_model_whose_name_no_scenario_can_use_is_refused_before_any_run() -> None:
    """A name with a space or a colon could never be named by a scenario: a ValueError saying
    what a name may hold, not a YAML error from inside the suite."""
    model = dataclasses.replace(get_model("blocking"), name="my pooled: v2")
    with pytest.raises(ValueError, match=r"'my pooled: v2' is no name a scenario can use: ASCII letters"):
        check_client_model(model)


def _ignoring_timeouts(targets: Sequence[Target], recorder: Recorder) -> None:
    for target in targets:
        conn = recorder.open(target)
        try:
            with socket.create_connection(target.address, timeout=None) as sock:  # target.timeout unused
                conn.connected(sock.getsockname()[1])
                while data := sock.recv(65536):
                    conn.received(data)
            conn.eof()
        except OSError as error:
            conn.failed(error)


def test_a_model_that_ignores_its_targets_timeout_is_told_which_connections_it_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that waits on a silent connection for ever fails the faults clause with the
    connection it kept open and what it should have done, not advice to allow longer."""
    from netsim import testing

    monkeypatch.setattr(testing, "RUN_TIMEOUT", 2.0)
    model = ClientModel(name="patient", summary="never gives up", concurrent=False, run=_ignoring_timeouts)
    with pytest.raises(ConformanceError) as failure:
        check_client_model(model)
    faults = next(check for check in failure.value.conformance.checks if check.name.startswith("faults"))
    (problem,) = faults.problems
    assert problem.startswith("did not finish within 2s")
    assert "the servers still held connections open: 1 to stall" in problem
    assert "gives up a connect, or a wait for the next byte, itself" in problem
    assert "--timeout" not in str(failure.value)
