"""The command line's pictures: run --html, --trace and --timeline, and netsim report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ScenarioWriter, demo_text
from tests.test_cli import SCALE, run_cli


def test_run_writes_the_html_report_and_report_draws_the_same_from_the_json(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --html and `netsim report RESULT.json --html` write the same page, byte for byte."""
    path = write_scenario(demo_text())
    ran, result, later = tmp_path / "ran.html", tmp_path / "result.json", tmp_path / "later.html"
    assert run_cli("run", path, "--time-scale", SCALE, "--html", ran, "--json", result) == 0
    assert run_cli("report", result, "--html", later) == 0
    assert capsys.readouterr().out.endswith(f"wrote {later}\n")
    assert later.read_text() == ran.read_text()
    assert ran.read_text().count('<g class="row"') == 6


def test_run_writes_a_trace(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """run --trace writes Chrome Trace Event JSON with a track per connection of each client model."""
    path = write_scenario(demo_text(clients="select"))
    trace = tmp_path / "trace.json"
    assert run_cli("run", path, "--time-scale", SCALE, "--trace", trace) == 0
    records = json.loads(trace.read_text())["traceEvents"]
    assert sum(record["name"] == "bytes_received" for record in records) == 12
    assert {record["args"]["name"] for record in records if record["name"] == "process_name"} == {
        "servers", "client select"}


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_an_output_that_cannot_encode_the_symbols_gets_ascii_and_the_verdict_stands(
        write_scenario: ScenarioWriter, encoding: str) -> None:
    """Where standard output cannot encode netsim's symbols (LANG=C, PYTHONIOENCODING), a
    passing run exits 0, with ``±`` as ``+/-`` (latin-1 has it) and the timeline drawn in ASCII."""
    path = write_scenario(demo_text(clients="select", expect="expect:\n  select: [elapsed == 4s ± 50%]\n"))
    done = subprocess.run([sys.executable, "-m", "netsim", "run", str(path), "--time-scale", SCALE,
                           "--timeline"], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONIOENCODING": encoding})
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode(encoding)
    assert ("elapsed == 4s +/- 50%" if encoding == "ascii" else "elapsed == 4s ± 50%") in out
    row = next(line for line in out.splitlines() if line.startswith("  #1 a "))
    drawn = row.split()[2]  # the connection from its connect to its EOF
    assert drawn.endswith("]") and set(drawn) <= set("[.-*:]")
    # (A connect slow enough to draw, on a loaded machine, adds its own entry to the legend.)
    legend = r"\[ connect  (\. connecting  )?\* bytes arrived  \] EOF  x error  : ideal end"
    assert re.search(legend, out), out
    assert "?" not in out


def test_report_without_html_prints_the_timeline(write_scenario: ScenarioWriter, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`netsim report RESULT.json` alone prints each client model's timeline."""
    path = write_scenario(demo_text())
    result = tmp_path / "result.json"
    assert run_cli("run", path, "--time-scale", SCALE, "--json", result, "-q") == 0
    capsys.readouterr()
    assert run_cli("report", result) == 0
    out = capsys.readouterr().out
    assert out.startswith("timeline: scenario seconds") and out.count(" eof\n") == 6


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("{not json", "is not a JSON result"),
    ('{"scenario": "x"}', "is not a netsim result: missing the list 'runs'"),
    ('{"traceEvents": []}', "is a trace (as `netsim run --trace` writes, for ui.perfetto.dev), not a result"),
])
def test_report_of_something_that_is_no_result_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       content: str | None, message: str) -> None:
    """A missing file, text that is not JSON, JSON that is not a result, or a trace: exit 2, a
    message saying which, no page."""
    result, page = tmp_path / "result.json", tmp_path / "page.html"
    if content is not None:
        result.write_text(content)
    assert run_cli("report", result, "--html", page) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not page.exists()


def test_report_never_writes_over_its_result(write_scenario: ScenarioWriter, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--html naming the result itself is refused (exit 2), and the result stays as it was."""
    path = write_scenario(demo_text(clients="select"))
    result = tmp_path / "result.json"
    assert run_cli("run", path, "--time-scale", SCALE, "--json", result, "-q") == 0
    before = result.read_text()
    assert run_cli("report", result, "--html", result) == 2
    assert "is the result file itself" in capsys.readouterr().err
    assert result.read_text() == before


@pytest.mark.parametrize("flag", ["--html", "--trace"])
def test_pictures_are_never_written_over_the_scenario(write_scenario: ScenarioWriter, flag: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--html or --trace naming the scenario is refused before anything runs."""
    path = write_scenario(demo_text())
    before = path.read_text()
    assert run_cli("run", path, flag, path) == 2
    assert "is the scenario file itself" in capsys.readouterr().err
    assert path.read_text() == before


def test_the_timeline_is_drawn_when_asked_and_never_with_quiet(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal there is no timeline unless --timeline; -q leaves it out even then."""
    path = write_scenario(demo_text())
    assert run_cli("run", path, "--time-scale", SCALE) == 0
    assert "timeline:" not in capsys.readouterr().out
    assert run_cli("run", path, "--time-scale", SCALE, "--timeline") == 0
    out = capsys.readouterr().out
    assert out.index("client ") < out.index("timeline:") < out.index("expectations")
    assert run_cli("run", path, "--time-scale", SCALE, "--timeline", "-q") == 0
    assert "timeline:" not in capsys.readouterr().out
    assert run_cli("run", path, "--time-scale", SCALE, "--no-timeline") == 0
    assert "timeline:" not in capsys.readouterr().out


def test_a_repeated_runs_trace_has_processes_for_each_run(write_scenario: ScenarioWriter,
                                                          tmp_path: Path) -> None:
    """With --repeat 2 each run has its own servers' and client models' processes, named with its number."""
    path = write_scenario(demo_text(clients="select"))
    trace = tmp_path / "trace.json"
    assert run_cli("run", path, "--time-scale", SCALE, "--repeat", "2", "--trace", trace, "-q") == 0
    records = json.loads(trace.read_text())["traceEvents"]
    assert {record["args"]["name"] for record in records if record["name"] == "process_name"} == {
        "servers (run 1)", "client select (run 1)", "servers (run 2)", "client select (run 2)"}
    assert sum(record["name"] == "bytes_received" for record in records) == 24


def test_a_run_that_did_not_finish_draws_the_timeline_of_what_finished(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --timeline stopped by --timeout after select finished still draws select's timeline, and
    `netsim report` of its JSON says the run did not finish and then draws the same."""
    path = write_scenario(demo_text(clients="select, blocking"))
    result = tmp_path / "result.json"
    assert run_cli("run", path, "--time-scale", "0.1", "--timeout", "1s", "--json", result,
                   "--timeline") == 3  # select: 0.4 s; blocking: 1.2 s at the least
    ran = capsys.readouterr().out
    drawn = ran[ran.index("timeline:"):]
    assert "\n(the run did not finish: what finished before it stopped)\n" in drawn
    assert drawn.count(" eof\n") == 3 and "select" in drawn and "blocking" not in drawn
    assert run_cli("report", result) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("demo: the run did not finish: client 'blocking' did not finish within 1.000s")
    assert "what finished before is drawn below\ntimeline:" in shown
    assert shown[shown.index("timeline:"):] == drawn
