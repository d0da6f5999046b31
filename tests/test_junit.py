"""JUnit XML from `netsim run --junit`: a test case per expectation, failures with their numbers."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netsim.junit import junit_error_xml, junit_xml
from netsim.repeat import tally
from netsim.results import ScenarioResult
from tests.conftest import ScenarioWriter, demo_text
from tests.test_cli import SCALE, run_cli
from tests.test_repeat import fake_results, fake_run

MIXED = """\
    expect:
      blocking:
        - elapsed == 12s ± 50%
      select:
        - elapsed < 2s
        - speedup(blocking) >= 1.5
      all: [errors == 0]
"""


def cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(case.get("classname", ""), case.get("name", "")): case for case in root.iter("testcase")}


def test_each_expectation_is_a_test_case_and_a_failure_carries_the_numbers(
    write_scenario: ScenarioWriter, tmp_path: Path
) -> None:
    """--junit writes one case per expectation; a failed one has the measured value and the bound."""
    path = write_scenario(demo_text(expect=MIXED))
    report = tmp_path / "junit.xml"
    assert run_cli("run", path, "--time-scale", SCALE, "--junit", report, "-q") == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "0")
    assert [suite.get("name") for suite in root.iter("testsuite")] == ["demo.blocking", "demo.select"]
    found = cases(root)
    assert set(found) == {
        ("demo.blocking", "elapsed == 12s ± 50%"), ("demo.blocking", "errors == 0"),
        ("demo.select", "elapsed < 2s"), ("demo.select", "speedup(blocking) >= 1.5"),
        ("demo.select", "errors == 0"),
    }
    failed = found[("demo.select", "elapsed < 2s")]
    failure = failed.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith("measured 4.") and message.endswith("bound < 2.000s")
    assert "elapsed < 2s" in (failure.text or "")
    assert (failed.get("file"), failed.get("line")) == (str(path), "12")
    assert found[("demo.select", "errors == 0")].get("line") == "14"
    assert found[("demo.blocking", "elapsed == 12s ± 50%")].find("failure") is None


def test_a_programs_suite_carries_its_ending_troubled_connections_and_output(
    write_scenario: ScenarioWriter, tmp_path: Path
) -> None:
    """A `command` client's suite has the program's ending, the connections that went wrong
    and its stdout in <system-out>, its stderr in <system-err>: what a CI page shows."""
    path = write_scenario("""\
netsim: 1
name: graded
servers: [{name: a, poem: "1\\n"}]
clients:
  - {model: command, name: eve, run: [sh, -c, "echo hello; echo oops >&2; exit 2"]}
""")
    report = tmp_path / "junit.xml"
    assert run_cli("run", path, "--junit", report, "-q") == 1
    (suite,) = ET.parse(report).getroot().iter("testsuite")
    out, err = suite.find("system-out"), suite.find("system-err")
    assert out is not None and err is not None
    assert (out.text or "").splitlines() == [
        'program: sh -c "echo hello; echo oops >&2; exit 2"', "ended: exit 2, its stderr ends",
        "connections:", "  #1 a: missing: the client made no connection to a for this one",
        "stdout:", "hello"]
    assert err.text == "oops\n"


def test_a_programs_control_characters_leave_the_report_well_formed(
    write_scenario: ScenarioWriter, tmp_path: Path
) -> None:
    """What XML cannot hold (a colour code, a NUL, a bell) in a program's output is written as
    its escape, so that a passing run's report still parses, as pytest's does."""
    program = 'import sys; print("\\x1b[32mOK\\x1b[0m \\x00\\x07"); sys.stderr.write("\\x01\\x0b")'
    path = write_scenario(f"""\
netsim: 1
name: colour
servers: [{{name: a, poem: "1\\n"}}]
clients:
  - {{model: command, name: tty, run: [{sys.executable}, -c, '{program}']}}
""")
    report = tmp_path / "junit.xml"
    assert run_cli("run", path, "--junit", report, "-q") == 0
    (suite,) = ET.parse(report).getroot().iter("testsuite")  # parses
    out, err = suite.find("system-out"), suite.find("system-err")
    assert out is not None and (out.text or "").endswith("stdout:\n\\x1b[32mOK\\x1b[0m \\x00\\x07\n")
    assert err is not None and err.text == "\\x01\\x0b"


def test_repeats_report_how_often_an_expectation_held() -> None:
    """With repeats a failure says in how many runs it held, what it needed, and the spread."""
    root = ET.fromstring(junit_xml(tally(fake_results([4.0, 4.5, 4.6], "elapsed <= 4.2s in 50% of runs"))))
    failure = root.find(".//failure")
    assert failure is not None
    assert failure.get("message") == ("held in 1 of 3 runs (needs 50%); measured min 4.000s, "
                                      "median 4.500s, max 4.600s, bound <= 4.200s")
    properties = {prop.get("name"): prop.get("value") for prop in root.iter("property")}
    assert properties["runs"] == "3" and properties["time_scale"] == "1"


def test_a_run_that_cannot_be_carried_out_leaves_an_error_case(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timeout exits 3, and the JUnit file holds one case in error with the message."""
    path = write_scenario(demo_text(clients="blocking"))
    report = tmp_path / "junit.xml"
    assert run_cli("run", path, "--time-scale", "0.1", "--timeout", "100ms", "--junit", report) == 3
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("errors"), root.get("failures")) == ("1", "1", "0")
    error = root.find(".//error")
    assert error is not None and "did not finish within" in error.get("message", "")
    assert "did not finish within" in capsys.readouterr().err


def test_an_invalid_scenario_leaves_an_error_case_not_an_earlier_report(
    write_scenario: ScenarioWriter, tmp_path: Path
) -> None:
    """An invalid scenario exits 2 with nothing run, and its JUnit file says why (one case in
    error, the problem with its line), where an earlier run's passing report stood; a file
    there that is no XML report is left alone."""
    path = write_scenario(demo_text(clients="blocking").replace("delay:", "dealy:", 1))
    report = tmp_path / "junit.xml"
    report.write_text('<?xml version="1.0"?><testsuites tests="2" failures="0"/>')
    assert run_cli("run", path, "--junit", report) == 2
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("errors"), root.get("failures")) == ("1", "1", "0")
    error = root.find(".//error")
    assert error is not None and "the scenario is invalid" in error.get("message", "")
    assert "unknown key 'dealy' (did you mean 'delay'?)" in error.get("message", "")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert run_cli("run", path, "--junit", notes) == 2
    assert notes.read_text() == "mine"


@pytest.mark.parametrize("path", ["baselines/demo.json", "/ci/cache/other-name.json"])
def test_the_baseline_case_keeps_its_name_wherever_the_baseline_lies(path: str) -> None:
    """The overhead regression's test case is named by its bound alone, so that a CI's history
    of it survives the baseline file moving; a failure names the file in its message."""
    from netsim.baseline import Baseline, ClientBaseline, compare

    before = Baseline("demo", 1.0, {"select": ClientBaseline(ideal=4.0, elapsed=4.0)})
    now = Baseline("demo", 1.0, {"select": ClientBaseline(ideal=4.0, elapsed=6.0)})
    report = compare(before, now, max_regression=0.10, path=path)
    root = ET.fromstring(junit_xml(tally(fake_results([6.0], "errors == 0")), baseline=report))
    (case,) = [case for case in root.iter("testcase") if "regression" in (case.get("name") or "")]
    assert case.get("name") == "overhead regression <= 10% of ideal"
    failure = case.find("failure")
    assert failure is not None and f"in the baseline ({path})" in failure.get("message", "")


def test_the_error_report_is_well_formed_with_any_message() -> None:
    """Markup in a message is escaped, not interpreted."""
    root = ET.fromstring(junit_error_xml("demo", "port <10000> & more"))
    error = root.find(".//error")
    assert error is not None and error.get("message") == "port <10000> & more"


def test_each_client_carries_its_own_warnings_and_the_runs_in_its_failures_and_system_err() -> None:
    """A client's warnings (and those on the whole run) are in the text of each of its failures,
    which GitLab shows, and in its suite's <system-err>, which Jenkins shows on every case's
    page; another client's are in neither."""
    busy = "select: the servers sent chunks up to 12ms late (p99, wall time): this machine was too busy"
    other = "select.v2: it took 1s, 50% less than its ideal 2s"
    runs = [fake_run("select", 4.5, "elapsed <= 4.2s"), fake_run("select.v2", 1.0, "elapsed <= 4.2s")]
    scale = "time scale 0.0009 is below 0.001: try --time-scale 0.001 or more"
    root = ET.fromstring(junit_xml(ScenarioResult("demo", 0.0009, runs, [busy, other]), notices=[scale]))
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    failure = suites["demo.select"].find(".//failure")
    assert failure is not None
    assert (failure.text or "").endswith(f"bound: <= 4.200s\nwarning: {scale}\nwarning: {busy}\n")
    assert suites["demo.select"].findtext("system-err") == f"warning: {scale}\nwarning: {busy}\n"
    # A passed client keeps its warnings too, where Jenkins shows them.
    assert suites["demo.select.v2"].find(".//failure") is None
    assert suites["demo.select.v2"].findtext("system-err") == f"warning: {scale}\nwarning: {other}\n"


def test_repeated_runs_give_each_client_its_own_warnings_only() -> None:
    """Under --repeat a warning begins with the runs it came from ("run 2 of 3: prog: ..."):
    it still goes to its own client's suite alone."""
    from netsim.junit import _warnings_of

    warnings = ["run 2 of 3: prog: without `output:`, `intact` judges ...",
                "every one of 3 runs: blk: the servers sent chunks late",
                "runs 1 and 3 of 3: time scale 0.0009 is below 0.001"]
    assert _warnings_of("blk", ["blk", "prog"], warnings) == warnings[1:]
    assert _warnings_of("prog", ["blk", "prog"], warnings) == [warnings[0], warnings[2]]


def test_a_runs_warnings_reach_the_junit_report_of_netsim_run(
    write_scenario: ScenarioWriter, tmp_path: Path
) -> None:
    """netsim run --junit puts the warning it prints on a tiny time scale beside each failure
    and in the suite's <system-err>, before a program's stderr."""
    path = write_scenario("""\
netsim: 1
name: graded
servers: [{name: a, poem: "1\\n"}]
clients:
  - {model: command, name: eve, run: [sh, -c, "echo oops >&2; exit 2"]}
""")
    report = tmp_path / "junit.xml"
    assert run_cli("run", path, "--time-scale", "0.0009", "--junit", report, "-q") == 1
    (suite,) = ET.parse(report).getroot().iter("testsuite")
    failure = suite.find(".//failure")
    assert failure is not None
    warning = "warning: time scale 0.0009 is below 0.001: "
    assert warning in (failure.text or "")
    err = suite.findtext("system-err") or ""
    assert err.startswith(warning) and err.endswith("--time-scale 0.001 or more\nstderr:\noops\n")


def test_an_expectation_under_a_client_and_under_all_is_one_test_case(
    write_scenario: ScenarioWriter, tmp_path: Path
) -> None:
    """An expectation written for a client and restated under `all` is judged once: one test
    case at the client's line, never two of one name, which a CI server would merge."""
    path = write_scenario("""\
netsim: 1
name: restated
servers: [{name: a, poem: "1\\n"}]
clients: [blocking]
expect:
  blocking: [errors == 0]
  all: [intact == 100%, errors == 0]
""")
    report = tmp_path / "junit.xml"
    assert run_cli("run", path, "--junit", report, "-q") == 0
    found = [(case.get("name"), case.get("line")) for case in ET.parse(report).iter("testcase")]
    assert found == [("errors == 0", "6"), ("intact == 100%", "7")]
