"""The library side of `netsim run`: checks before the run, progress, outputs, and errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netsim._errors import RunTimeoutError, UsageError
from netsim.outcome import Outcome
from netsim.results import RunResult
from netsim.runner import time_scale_warnings
from netsim.session import Outputs, Plan, check_outputs, run_session
from tests.conftest import ScenarioWriter, demo_text

SCALE = 0.02


class Recorder:
    """A Progress that remembers what it heard, in order."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def warn(self, message: str) -> None:
        self.heard.append(f"warn {message}")

    def started(self, plan: Plan) -> None:
        self.heard.append(f"started {plan.scenario.name} x{plan.repeat}")

    def repeat_started(self, number: int) -> None:
        self.heard.append(f"repeat {number}")

    def client_started(self, client: str, ideal: float, connections: int) -> None:
        self.heard.append(f"client {client} {ideal:g}s x{connections}")

    def measured(self, run: RunResult) -> None:
        self.heard.append(f"measured {run.client}")

    def unfinished(self, seed: int | None) -> None:
        self.heard.append(f"unfinished {seed}")


def test_a_session_reports_its_progress_and_returns_the_outcome(write_scenario: ScenarioWriter) -> None:
    """Progress hears the start, each repeat, each client's start (its ideal and connections) and
    its run, in order; the outcome tallies them."""
    path = write_scenario(demo_text(expect="expect:\n  all: [errors == 0]\n"))
    progress = Recorder()
    outcome = run_session(path, repeat=2, time_scale=SCALE, progress=progress)
    one_run = ["client blocking 12s x3", "measured blocking", "client select 4s x3", "measured select"]
    assert progress.heard == ["started demo x2", "repeat 1", *one_run, "repeat 2", *one_run]
    assert outcome.passed and outcome.result.count == 2 and outcome.baseline is None
    assert outcome.to_dict()["repeat"]["count"] == 2


def test_repeated_runs_with_a_fixed_seed_are_warned_that_they_draw_alike(
        write_scenario: ScenarioWriter) -> None:
    """Repeats of a scenario that draws (jitter, a share of faults) under a fixed seed draw the
    same in every run: a warning says so, and how to draw anew; without a seed, or with nothing
    drawn, none."""
    jittered = demo_text(clients="select", delay="20ms").replace("delay: 20ms", "delay: 20ms, jitter: 5ms", 1)
    progress = Recorder()
    run_session(write_scenario(jittered), repeat=2, time_scale=SCALE, seed=3, progress=progress)
    (warned,) = [line for line in progress.heard if line.startswith("warn ")]
    assert warned.startswith("warn --seed 3 draws the same jitter and faults of a in each of the 2 runs")
    for text, seed in ((jittered, None), (demo_text(clients="select", delay="20ms"), 3)):
        progress = Recorder()
        run_session(write_scenario(text), repeat=2, time_scale=SCALE, seed=seed, progress=progress)
        assert not [line for line in progress.heard if line.startswith("warn ")]


def test_events_of_repeated_runs_carry_their_run_number(write_scenario: ScenarioWriter,
                                                        tmp_path: Path) -> None:
    """With repeats, every line of the event log says which run it belongs to."""
    log = tmp_path / "events.jsonl"
    run_session(write_scenario(demo_text(clients="select")), repeat=2, time_scale=SCALE,
                outputs=Outputs(log_json=log))
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert {event["repeat"] for event in events} == {1, 2}
    assert [event["repeat"] for event in events if event["event"] == "client_started"] == [1, 2]


def test_a_run_that_cannot_be_carried_out_leaves_its_junit_and_raises(write_scenario: ScenarioWriter,
                                                                      tmp_path: Path) -> None:
    """A timeout raises RunTimeoutError after writing a JUnit report with the error in it."""
    junit = tmp_path / "junit.xml"
    with pytest.raises(RunTimeoutError):
        run_session(write_scenario(demo_text(clients="blocking")), time_scale=0.1, timeout=0.1,
                    outputs=Outputs(junit=junit))
    error = ET.parse(junit).getroot().find(".//error")
    assert error is not None and "did not finish within" in error.get("message", "")


def test_a_run_that_cannot_be_carried_out_leaves_its_trace_up_to_where_it_stopped(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A timeout still writes --trace, with what the client did before it was stopped."""
    trace = tmp_path / "trace.json"
    with pytest.raises(RunTimeoutError):
        run_session(write_scenario(demo_text(clients="blocking")), time_scale=0.1, timeout=0.5,
                    outputs=Outputs(trace=trace))
    records = json.loads(trace.read_text())["traceEvents"]
    names = {record["args"]["name"] for record in records if record.get("name") == "process_name"}
    assert "client blocking" in names
    assert any(record.get("ph") == "X" and record.get("pid") != 1 for record in records)


def test_flag_mistakes_are_found_before_anything_runs(write_scenario: ScenarioWriter) -> None:
    """--max-regression without --baseline is a UsageError before the progress hears of a start."""
    progress = Recorder()
    with pytest.raises(UsageError, match="--max-regression needs --baseline"):
        run_session(write_scenario(demo_text()), max_regression=0.1, progress=progress)
    assert progress.heard == []


def test_two_outputs_may_share_a_special_file_but_not_a_regular_one(tmp_path: Path) -> None:
    """/dev/null may take every output; one regular file may take only one."""
    scenario = tmp_path / "s.yaml"
    check_outputs(scenario, {"--json": Path("/dev/null"), "--junit": Path("/dev/null")})
    with pytest.raises(UsageError, match="--json and --junit both name"):
        check_outputs(scenario, {"--json": tmp_path / "r", "--junit": tmp_path / "r"})


def test_time_scales_below_the_floor_are_warned_about() -> None:
    """0.001 and up pass quietly; below, one warning naming the scale and what it does to the figures."""
    assert time_scale_warnings(0.001) == [] and time_scale_warnings(1.0) == []
    [warning] = time_scale_warnings(1e-9)
    assert warning.startswith("time scale 1e-09 is below 0.001") and "1e+06 s of scenario time" in warning


def test_a_scenario_from_a_pipe_is_read_once_and_its_result_quotes_it(write_scenario: ScenarioWriter,
                                                                     tmp_path: Path) -> None:
    """`netsim run <(make-scenario)` names a pipe, which gives its text once: the run loads
    that text and its result quotes the same (a second read would wait for a writer forever)."""
    import os
    import threading

    text = demo_text(clients="select", expect="expect:\n  all: [errors == 0]\n")
    fifo = tmp_path / "scenario.yaml"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("w") as pipe:
            pipe.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    outcomes: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcomes.append(run_session(fifo, time_scale=SCALE)),
                              daemon=True)
    runner.start()
    runner.join(timeout=30)
    if runner.is_alive():  # let the stuck read go, so that the suite does not hang
        with fifo.open("w"):
            pass
        runner.join(timeout=10)
        pytest.fail("the run read its scenario's pipe a second time, and waited for a writer")
    (outcome,) = outcomes
    assert outcome.passed and outcome.to_dict()["source"]["text"] == text


class Raising(Recorder):
    """A Progress through which an exception arrives as the second client model starts."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def client_started(self, client: str, ideal: float, connections: int) -> None:
        super().client_started(client, ideal, connections)
        if client == "select":
            raise self.error


@pytest.mark.parametrize(("error", "why"), [
    (KeyboardInterrupt(), "stopped before it finished (Ctrl-C)"),
    (RuntimeError("boom"), "unexpected RuntimeError: boom (a bug in netsim)"),
])
def test_a_run_stopped_or_broken_replaces_earlier_results(write_scenario: ScenarioWriter, tmp_path: Path,
                                                          error: BaseException, why: str) -> None:
    """Ctrl-C, or a bug, leaves in --json a result that did not pass and says why, with the
    client models measured before (not judged), and in --junit an error, not what an
    earlier run left there."""
    out, junit = tmp_path / "result.json", tmp_path / "junit.xml"
    out.write_text('{"scenario": "demo", "passed": true, "runs": []}\n')
    junit.write_text("<testsuites/>\n")
    with pytest.raises(type(error)):
        run_session(write_scenario(demo_text()), time_scale=SCALE, progress=Raising(error),
                    outputs=Outputs(json=out, junit=junit))
    data = json.loads(out.read_text())
    assert (data["passed"], data["error"]) == (False, why)
    assert [(run["client"], run["passed"]) for run in data["runs"]] == [("blocking", None)]
    assert why in junit.read_text()


def test_a_request_refused_as_the_run_starts_is_reported_as_such(write_scenario: ScenarioWriter,
                                                                 tmp_path: Path) -> None:
    """A UsageError from the runner (a scenario without clients) leaves in --json that nothing
    was run and why, not an unexpected error, and goes on to the caller."""
    out = tmp_path / "result.json"
    path = write_scenario('netsim: 1\nname: none\nservers: [{name: a, poem: "x\\n"}]\nclients: []\n')
    with pytest.raises(UsageError, match="has no clients to run"):
        run_session(path, time_scale=SCALE, outputs=Outputs(json=out))
    error = json.loads(out.read_text())["error"]
    assert error.startswith("nothing was run: scenario 'none' has no clients to run")
