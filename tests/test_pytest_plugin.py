"""The pytest plugin: scenario files collected as tests, one item per client model."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest_plugins = ["pytester"]

# Two servers of two 20 ms lines: blocking needs 80 ms, select 40 ms.
SERVERS = """\
netsim: 1
name: {name}
servers:
  - {{name: a, poem: "1\\n2\\n", delay: 20ms}}
  - {{name: b, poem: "3\\n4\\n", delay: 20ms}}
clients: [blocking, select]
"""
PASSING = SERVERS.format(name="passing") + textwrap.dedent("""\
    expect:
      select:
        - speedup(blocking) >= 1.2
      all:
        - elapsed <= ideal + 1s
        - errors == 0
""")
FAILING = SERVERS.format(name="failing") + textwrap.dedent("""\
    expect:
      select:
        - elapsed < 1ms
      all: [intact == 100%]
""")
UNRELATED = """\
# A CI workflow: YAML, but no scenario, even with a nested `netsim:` key.
on: push
jobs:
  test:
    netsim: 1
    steps: [{run: make}]
"""
# Records each call of run_scenario (the plugin looks it up at run time) in calls.jsonl.
RECORDING = """\
import json
import netsim.runner

_run_scenario = netsim.runner.run_scenario


def recording(scenario, **options):
    with open("calls.jsonl", "a") as log:
        log.write(json.dumps({"scenario": scenario.name, "clients": options.get("clients"),
                              "time_scale": options.get("time_scale"),
                              "free_ports": options.get("free_ports")}) + "\\n")
    return _run_scenario(scenario, **options)


netsim.runner.run_scenario = recording
"""


def calls(pytester: pytest.Pytester) -> list[dict[str, object]]:
    log = pytester.path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_scenario_files_are_collected_and_each_client_is_an_item(pytester: pytest.Pytester) -> None:
    """A passing and a failing scenario give one item per client; other YAML is left alone."""
    pytester.makefile(".yaml", passing=PASSING, failing=FAILING, workflow=UNRELATED)
    pytester.makeconftest(RECORDING)
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "failing.yaml::blocking PASSED*",
        "failing.yaml::select FAILED*",
        "passing.yaml::blocking PASSED*",
        "passing.yaml::select PASSED*",
    ])
    assert "workflow.yaml" not in result.stdout.str()
    recorded = calls(pytester)
    assert sorted(call["scenario"] for call in recorded) == ["failing", "passing"]  # once per file
    assert all(call["free_ports"] is True and call["time_scale"] == 1.0 for call in recorded)


def test_a_failure_shows_the_expectation_the_measurement_the_bound_and_the_line(
    pytester: pytest.Pytester,
) -> None:
    """The report of a failed item names the expectation, what was measured, the bound and file:line."""
    pytester.makefile(".yaml", failing=FAILING)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*_ netsim failing.yaml::select _*",
        "expectation failed: elapsed < 1ms",
        "  measured: *ms",
        "  bound:    < 1ms",
        "  at:       failing.yaml:9",
        "select: 1 of 2 expectations held; elapsed *, ideal 40ms (scenario time, time scale 1)",
        "FAILED failing.yaml::select - expectation failed: elapsed < 1ms",
    ])
    assert "Traceback" not in result.stdout.str() and "netsim/" not in result.stdout.str()


def test_an_invalid_scenario_is_a_collection_error_with_file_line_and_column(
    pytester: pytest.Pytester,
) -> None:
    """Each problem of an invalid scenario shows as file:line:col in a collection error."""
    broken = SERVERS.format(name="broken").replace("delay: 20ms}", "dealy: 20ms}", 1)
    pytester.makefile(".yaml", broken=broken)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR collecting broken.yaml*",
        "broken.yaml:4:31: servers[0]: unknown key 'dealy' (did you mean 'delay'?)",
        "netsim: 1 problem in this scenario",
    ])
    assert "Traceback" not in result.stdout.str()


def test_a_run_that_cannot_be_carried_out_is_an_error_of_its_items(pytester: pytest.Pytester) -> None:
    """A RunError (a timeout, a busy port) errors every item of the file with its message alone."""
    pytester.makefile(".yaml", passing=PASSING)
    pytester.makeconftest("""\
        import netsim.runner
        from netsim import RunTimeoutError


        def timing_out(scenario, **options):
            raise RunTimeoutError("client 'blocking' did not finish within 1.000s (wall time)")


        netsim.runner.run_scenario = timing_out
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "passing.yaml: the run could not be carried out: client 'blocking' did not finish within 1.000s*",
    ])
    assert "Traceback" not in result.stdout.str() and "netsim/" not in result.stdout.str()


def test_a_selected_client_still_runs_the_clients_its_speedup_compares_with(
    pytester: pytest.Pytester,
) -> None:
    """Running only passing.yaml::select asks for select, and speedup(blocking) still gets blocking."""
    pytester.makefile(".yaml", passing=PASSING)
    pytester.makeconftest(RECORDING)
    result = pytester.runpytest_subprocess("passing.yaml::select")
    result.assert_outcomes(passed=1)
    assert [call["clients"] for call in calls(pytester)] == [["select"]]


@pytest.mark.parametrize(("option", "ini", "scale"), [
    (["--netsim-time-scale", "0.5"], None, 0.5),
    ([], "0.25", 0.25),
    (["--netsim-time-scale", "2"], "0.25", 2.0),
])
def test_the_time_scale_comes_from_the_option_or_the_ini_key(
    pytester: pytest.Pytester, option: list[str], ini: str | None, scale: float
) -> None:
    """--netsim-time-scale wins over the ini key netsim_time_scale, which wins over the default 1."""
    pytester.makefile(".yaml", passing=PASSING)
    pytester.makeconftest(RECORDING)
    if ini is not None:
        pytester.makeini(f"[pytest]\nnetsim_time_scale = {ini}\n")
    result = pytester.runpytest_subprocess(*option)
    outcomes = result.parseoutcomes()  # the verdicts at a small scale depend on the machine's load
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2
    assert [call["time_scale"] for call in calls(pytester)] == [scale]


def test_a_bad_time_scale_stops_the_session(pytester: pytest.Pytester) -> None:
    """A time scale that is not a positive number is a usage error before anything runs."""
    pytester.makefile(".yaml", passing=PASSING)
    result = pytester.runpytest_subprocess("--netsim-time-scale", "fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*netsim: the time scale must be a number greater than 0, got 'fast'*"])
