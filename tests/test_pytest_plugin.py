"""The pytest plugin: scenario files collected as tests, one item per client model."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

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
# Records each call of run_scenario (the plugin looks it up at run time) in calls.jsonl,
# with the wall time it took.
RECORDING = """\
import json
import time
import netsim.runner

_run_scenario = netsim.runner.run_scenario


def recording(scenario, **options):
    start = time.monotonic()
    result = _run_scenario(scenario, **options)
    with open("calls.jsonl", "a") as log:
        log.write(json.dumps({"scenario": scenario.name, "clients": options.get("clients"),
                              "time_scale": options.get("time_scale"), "seed": options.get("seed"),
                              "free_ports": options.get("free_ports"),
                              "wall": time.monotonic() - start}) + "\\n")
    return result


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
    # Each client once, alone, in its own item; the clients of a file share its seed.
    assert sorted((call["scenario"], call["clients"]) for call in recorded) == [
        ("failing", ["blocking"]), ("failing", ["select"]),
        ("passing", ["blocking"]), ("passing", ["select"])]
    assert all(call["free_ports"] is True and call["time_scale"] == 1.0 for call in recorded)
    for name in ("failing", "passing"):
        assert len({call["seed"] for call in recorded if call["scenario"] == name}) == 1


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


def test_a_failed_item_says_which_connections_went_wrong_and_how_its_program_ended(
    pytester: pytest.Pytester,
) -> None:
    """Under the failed expectations: each troubled connection with why, and the program's
    ending with the end of its stderr, where a student's failure shows."""
    pytester.makefile(".yaml", student=f"""\
netsim: 1
name: student
servers: [{{name: a, poem: "1\\n"}}, {{name: b, poem: "2\\n"}}]
clients:
  - {{model: command, name: eve, run: [{sys.executable}, -c, "import sys; sys.exit('eve forgot b')"]}}
expect:
  eve: [intact == 100%]
""")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "expectation failed: intact == 100%",
        "*",
        "*",
        "*",
        "expectation failed: exit_code == 0",
        "*",
        "*",
        "*",
        "eve: 0 of 2 expectations held*",
        "connections:",
        "  #1 a: missing: the client made no connection to a for this one",
        "  #2 b: missing: the client made no connection to b for this one",
        "program: exit 1, its stderr ends:",
        "         | eve forgot b",
    ])


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


def test_a_scenario_a_run_would_refuse_is_a_collection_error_not_a_failed_run(
    pytester: pytest.Pytester,
) -> None:
    """A client past its model's limit, and a server outside loopback (the plugin's runs never
    allow one), are problems of the file at their line, as `netsim validate` reports them."""
    refused = SERVERS.format(name="refused").replace(
        "delay: 20ms}", "delay: 20ms, host: 0.0.0.0}", 1).replace(
        "[blocking, select]", "[blocking, {model: select, connections: 600}]")
    pytester.makefile(".yaml", refused=refused)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR collecting refused.yaml*",
        "refused.yaml:4:50: servers?0?.host: server 'a' binds 0.0.0.0, outside loopback*",
        "refused.yaml:6:50: clients?1?.connections: client 'select' opens 1200 connections, more than "
        "the select model's limit of 1000*",
        "netsim: 2 problems in this scenario",
    ])
    assert "could not be carried out" not in result.stdout.str()


def test_a_scenario_the_fixture_cannot_load_fails_the_test_with_its_message_alone(
    pytester: pytest.Pytester,
) -> None:
    """netsim_servers given a scenario with a mistake raises the ScenarioError with file:line:col,
    from the test's own line: none of netsim's frames stand between the test and the message."""
    pytester.makepyfile(test_mine="""
        import netsim, pytest

        def test_typo(netsim_servers):
            netsim_servers("netsim: 1\\nname: t\\nservers: [{name: a, poem: x, dealy: 1s}]\\n")

        def test_raises(netsim_servers):
            with pytest.raises(netsim.ScenarioError, match="dealy"):
                netsim_servers("netsim: 1\\nname: t\\nservers: [{name: a, poem: x, dealy: 1s}]\\n")
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "E  *ScenarioError: <scenario text>:3:30: servers?0?: unknown key 'dealy' (did you mean 'delay'?)",
        "test_mine.py:4: ScenarioError",
    ])
    assert "netsim/" not in result.stdout.str()


def test_servers_that_died_during_a_test_are_an_error_of_the_test(pytester: pytest.Pytester) -> None:
    """A test whose servers died (killed from outside, here) is not a pass because it asked
    nothing of them afterwards: the fixture's teardown says they did not serve the whole test,
    and what killed them."""
    pytester.makepyfile(test_mine="""
        import os, signal, time

        def test_quiet(netsim_servers):
            net = netsim_servers("netsim: 1\\nname: t\\nservers: [{name: a, poem: x}]\\n")
            os.kill(net._process.process.pid, signal.SIGKILL)  # as the OOM killer would
            deadline = time.monotonic() + 5
            while net.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_quiet*",
                                 "netsim_servers: the servers did not serve the whole test: the server "
                                 "process ended unexpectedly: killed by SIGKILL*"])


def test_a_scenario_whose_clients_key_is_mistyped_is_an_error_not_skipped(pytester: pytest.Pytester) -> None:
    """A file with the scenario key is collected whatever else it holds: a mistyped `clients`
    is a collection error, and a scenario written as one flow mapping runs, so that neither
    is a test that silently never ran."""
    pytester.makefile(".yaml", typo=PASSING.replace("clients:", "client:"),
                      flow='{netsim: 1, name: flow, servers: [{name: a, poem: "x\\n", delay: 10ms}], '
                           'clients: [select], expect: {select: [elapsed <= 1ms]}}\n')
    result = pytester.runpytest_subprocess("--continue-on-collection-errors")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting typo.yaml*", "*unknown key 'client'*",
                                 "FAILED flow.yaml::select - expectation failed: elapsed <= 1ms"])


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
    """Running only passing.yaml::select runs select, and blocking for speedup(blocking), once each."""
    pytester.makefile(".yaml", passing=PASSING)
    pytester.makeconftest(RECORDING)
    result = pytester.runpytest_subprocess("passing.yaml::select")
    result.assert_outcomes(passed=1)
    assert [call["clients"] for call in calls(pytester)] == [["blocking"], ["select"]]


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
    assert [call["time_scale"] for call in calls(pytester)] == [scale, scale]


def test_a_bad_time_scale_stops_the_session(pytester: pytest.Pytester) -> None:
    """A time scale that is not a positive number is a usage error before anything runs."""
    pytester.makefile(".yaml", passing=PASSING)
    result = pytester.runpytest_subprocess("--netsim-time-scale", "fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*netsim: the time scale must be a number greater than 0, got 'fast'*"])


def test_each_items_junit_time_is_its_own_clients_run(pytester: pytest.Pytester) -> None:
    """In --junitxml, each item's time covers its own client's run, not the whole file's."""
    import xml.etree.ElementTree as ET

    # blocking needs 400 ms, select 200 ms: enough to tell their runs apart on a busy machine.
    slow = SERVERS.format(name="slow").replace("20ms", "100ms")
    pytester.makefile(".yaml", slow=slow)
    pytester.makeconftest(RECORDING)
    result = pytester.runpytest_subprocess("--junitxml=report.xml")
    result.assert_outcomes(passed=2)
    wall = {call["clients"][0]: call["wall"] for call in calls(pytester)}
    cases = {case.get("name"): float(case.get("time", "nan"))
             for case in ET.parse(pytester.path / "report.xml").iter("testcase")}
    assert set(cases) == {"blocking", "select"}
    assert cases["select"] >= wall["select"] >= 0.2
    assert wall["blocking"] <= cases["blocking"] < wall["blocking"] + wall["select"]


# Every third run_scenario call is 10 s late: with three runs per client, one run of each.
LATE_EVERY_THIRD = """\
import dataclasses
import netsim.runner

_run_scenario = netsim.runner.run_scenario
calls = [0]


def late_every_third(scenario, **options):
    result = _run_scenario(scenario, **options)
    calls[0] += 1
    if calls[0] % 3 == 0:
        runs = [dataclasses.replace(run, elapsed=run.elapsed + 10) for run in result.runs]
        result = dataclasses.replace(result, runs=runs)
    return result


netsim.runner.run_scenario = late_every_third
"""
REPEATED = SERVERS.format(name="repeated") + textwrap.dedent("""\
    expect:
      blocking: [elapsed <= ideal + 5s in 60% of runs]
      select: [elapsed <= ideal + 5s]
""")


def test_repeat_passes_an_item_whose_expectations_held_often_enough(pytester: pytest.Pytester) -> None:
    """With --netsim-repeat 3 and one late run each, a 60% pass rate passes and no rate fails."""
    pytester.makefile(".yaml", repeated=REPEATED)
    pytester.makeconftest(LATE_EVERY_THIRD)
    result = pytester.runpytest_subprocess("--netsim-repeat", "3", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "repeated.yaml::blocking PASSED*",
        "repeated.yaml::select FAILED*",
        "expectation failed: elapsed <= ideal + 5s",
        "  held:     in 2 of 3 runs (needs all)",
        "  measured: * (the median of 3 runs; range * .. 10.*s)",
        "  bound:    <= *",
        "  at:       repeated.yaml:9",
        "select: 0 of 1 expectations held in enough of 3 runs (2 runs passed every one); *",
    ])


def test_the_repeat_count_comes_from_the_option_or_the_ini_key(pytester: pytest.Pytester) -> None:
    """The ini key netsim_repeat runs each client that many times; a count below 1 stops the session."""
    pytester.makefile(".yaml", passing=PASSING)
    pytester.makeconftest(RECORDING)
    pytester.makeini("[pytest]\nnetsim_repeat = 2\n")
    result = pytester.runpytest_subprocess()
    assert sum(result.parseoutcomes().get(key, 0) for key in ("passed", "failed")) == 2
    assert sorted(call["clients"][0] for call in calls(pytester)) == ["blocking"] * 2 + ["select"] * 2
    refused = pytester.runpytest_subprocess("--netsim-repeat", "0")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*netsim: the repeat count must be a whole number of 1 or more, got '0'*"])


def baseline(scenario: str, ratios: dict[str, float], time_scale: float = 1.0) -> str:
    """A baseline as one written by hand: each client's ideal and overhead ratio."""
    clients = {label: {"ideal": 0.04, "overhead_ratio": ratio} for label, ratio in ratios.items()}
    return json.dumps({"format": "netsim-baseline", "version": 1, "scenario": scenario,
                       "time_scale": time_scale, "clients": clients})


def test_a_client_whose_overhead_regressed_past_the_baseline_fails(pytester: pytest.Pytester) -> None:
    """--netsim-baseline fails the client whose overhead ratio grew past the bound, and names the file."""
    # blocking's baseline is impossibly fast (half its ideal), select's impossibly slow.
    pytester.makefile(".json", base=baseline("passing", {"blocking": -0.5, "select": 50.0}))
    pytester.makefile(".yaml", passing=PASSING)
    result = pytester.runpytest_subprocess("--netsim-baseline", "base.json", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "passing.yaml::blocking FAILED*",
        "passing.yaml::select PASSED*",
        "overhead regressed: * points of the ideal, more than 10 points",
        "  overhead: +*% of the ideal, baseline -50.00%",
        "  baseline: base.json (saved ? by netsim ?, 1 run, time scale 1)",
        "blocking: 2 of 2 expectations held; *",
    ])
    loose = pytester.runpytest_subprocess("--netsim-baseline", "base.json",
                                          "--netsim-max-regression", "1000%")
    loose.assert_outcomes(passed=2)


def test_a_baseline_folder_gives_each_scenario_its_own_file(pytester: pytest.Pytester) -> None:
    """In a baseline folder, NAME.json is NAME.yaml's; a client it lacks is a warning, not a failure."""
    pytester.makefile(".yaml", passing=PASSING, failing=FAILING)
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "passing.json").write_text(baseline("passing", {"blocking": -0.5}))
    result = pytester.runpytest_subprocess("--netsim-baseline", "baselines", "-v", "-W", "always")
    result.stdout.fnmatch_lines([
        "failing.yaml::blocking PASSED*", "failing.yaml::select FAILED*",
        "passing.yaml::blocking FAILED*", "passing.yaml::select PASSED*",
        "*no baseline for failing.yaml: baselines*failing.json does not exist*",
        "*not compared with baseline baselines*passing.json: select: not in the baseline*",
    ])


def test_a_warning_goes_with_a_failure_and_under_w_error_is_a_failure_without_traceback(
    pytester: pytest.Pytester,
) -> None:
    """A failed item's warnings are in its failure text; -W error fails a passing one with the
    warning's text alone, not pytest's frames."""
    pytester.makefile(".yaml", passing=PASSING, failing=FAILING)
    (pytester.path / "baselines").mkdir()
    result = pytester.runpytest_subprocess("--netsim-baseline", "baselines", "-W", "error::UserWarning")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "*_ netsim failing.yaml::select _*",
        "expectation failed: elapsed < 1ms",
        "*",
        "warning: no baseline for failing.yaml: baselines*failing.json does not exist",
        "*_ netsim passing.yaml::blocking _*",
        "no baseline for passing.yaml: baselines*passing.json does not exist",
        "(a NetsimWarning, which this run's warning filters make an error)",
    ])
    result.stdout.no_fnmatch_line("*warn_explicit*")
    result.stdout.no_fnmatch_line("*nodes.py*")


def test_a_baseline_that_does_not_fit_is_an_error_and_a_bad_option_stops_the_session(
    pytester: pytest.Pytester,
) -> None:
    """A baseline of another time scale errors the file's items; a regression bound needs a baseline."""
    pytester.makefile(".json", base=baseline("passing", {"blocking": 0.0}, time_scale=0.5))
    pytester.makefile(".yaml", passing=PASSING)
    result = pytester.runpytest_subprocess("--netsim-baseline", "base.json")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["passing.yaml: baseline base.json was made at time scale 0.5, *"
                                 "pass --netsim-time-scale 0.5, or save a new baseline*"])
    for options, message in [
        (["--netsim-max-regression", "5%"], "*--netsim-max-regression needs --netsim-baseline PATH*"),
        (["--netsim-baseline", "missing.json"], "*--netsim-baseline: baseline missing.json does not exist*"),
    ]:
        refused = pytester.runpytest_subprocess(*options)
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        refused.stderr.fnmatch_lines([message])


def test_a_poem_file_outside_the_scenarios_folder_is_refused_unless_the_ini_allows_it(
    pytester: pytest.Pytester,
) -> None:
    """A collected scenario cannot read a file beside its folder; netsim_allow_paths = true lets it."""
    (pytester.path / "secret.txt").write_text("1\n2\n")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "reader.yaml").write_text(
        PASSING.replace('poem: "1\\n2\\n"', "poem_file: ../secret.txt"))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "scenarios/reader.yaml:4:26: servers[[]0].poem_file: poem_file '../secret.txt' is outside the "
        "scenario's folder *: a scenario reads files only in its own folder unless --allow-paths is given",
        "    hint: *netsim_allow_paths = true*",
    ])
    pytester.makeini("[pytest]\nnetsim_allow_paths = true\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_the_ini_key_netsim_max_poem_size_bounds_poem_files(pytester: pytest.Pytester) -> None:
    """netsim_max_poem_size refuses a longer poem file at collection; a value that is no size stops pytest."""
    (pytester.path / "poem.txt").write_text("1\n2\n")
    pytester.makefile(".yaml", reader=PASSING.replace('poem: "1\\n2\\n"', "poem_file: poem.txt"))
    pytester.makeini("[pytest]\nnetsim_max_poem_size = 2B\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["reader.yaml:4:26: *'poem.txt' is 4B, more than the 2B a poem may have*"])
    pytester.makeini("[pytest]\nnetsim_max_poem_size = 4B\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=2)
    pytester.makeini("[pytest]\nnetsim_max_poem_size = huge\n")
    refused = pytester.runpytest_subprocess()
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*netsim: netsim_max_poem_size: 'huge' is not a size*"])


def test_collection_looks_only_at_the_head_of_a_yaml_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a YAML file is a scenario is told from its first bytes; the rest is never read."""
    from netsim import pytest_plugin

    monkeypatch.setattr(pytest_plugin, "_MOST_BYTES", 200)
    head = tmp_path / "head.yaml"
    head.write_text(PASSING)
    tail = tmp_path / "tail.yaml"
    tail.write_text("#" * 200 + "\n" + PASSING)
    assert pytest_plugin._is_scenario(head)
    assert not pytest_plugin._is_scenario(tail)


@pytest.mark.parametrize(("text", "collected"), [
    ("\ufeff" + PASSING, True),  # a byte order mark first, as some editors write
    ("--- {netsim: 1, name: flow, servers: [], clients: []}\n", True),
    ("# settings of another tool\nnetsim:\n  time_scale: 0.1\n", False),  # a section, no version
    (UNRELATED, False),
])
def test_a_scenario_is_told_by_its_key_and_version(tmp_path: Path, text: str, collected: bool) -> None:
    """A file is collected when its top level has `netsim:` with a value: a byte order mark
    or a flow mapping after `---` does not hide it; another tool's `netsim:` section is no
    scenario."""
    from netsim import pytest_plugin

    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    assert pytest_plugin._is_scenario(path) is collected


# A program that takes 400 ms to start, as an interpreter with heavy imports may, then
# reads both servers one after the other.
LATE_PROGRAM = """\
import socket, sys, time
time.sleep(0.4)
for port in sys.argv[1:]:
    with socket.create_connection(("127.0.0.1", int(port))) as conn:
        while conn.recv(4096):
            pass
"""


def test_a_failed_timing_gives_the_warnings_that_explain_it_as_netsim_run_does(
    pytester: pytest.Pytester,
) -> None:
    """A program whose start made it miss a timing expectation fails with netsim run's warning
    on its start-up, which can only be given once the expectation is judged."""
    (pytester.path / "late.py").write_text(LATE_PROGRAM)
    pytester.makefile(".yaml", late=SERVERS.format(name="late").replace(
        "clients: [blocking, select]",
        f"clients:\n  - {{model: command, name: eve, concurrent: false,"
        f" run: [{sys.executable}, late.py, '{{port:a}}', '{{port:b}}']}}")
        + "expect:\n  eve: [elapsed <= ideal + 100ms]\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "expectation failed: elapsed <= ideal + 100ms",
        "*",
        "warning: eve: its program made its first connection * later than the ideal (* of wall time): "
        "its start-up (an interpreter's, its imports) counts in elapsed*",
    ])


def test_a_failed_program_without_output_is_warned_that_intact_judges_its_kernel(
    pytester: pytest.Pytester,
) -> None:
    """A `command` client judged on `intact` without `output:` fails with netsim run's warning
    that the servers' side tells what its kernel acknowledged, not what it read."""
    (pytester.path / "late.py").write_text(LATE_PROGRAM)
    pytester.makefile(".yaml", unread=SERVERS.format(name="unread").replace(
        "clients: [blocking, select]",
        f"clients:\n  - {{model: command, name: eve, run: [{sys.executable}, late.py, '{{ports}}']}}")
        + "expect:\n  eve: [intact == 100%, elapsed < 1ms]\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["warning: eve: without `output:`, `intact` judges what its program's "
                                 "kernel acknowledged*"])


def test_a_program_netsim_cannot_start_is_an_error_of_its_item(pytester: pytest.Pytester) -> None:
    """A `command` item whose program is not there is an error (its run could not be carried
    out, as `netsim run` exits 3), not a failed item; with `exit_code == 127` it is judged."""
    pytester.makefile(".yaml", missing=SERVERS.format(name="missing").replace(
        "clients: [blocking, select]",
        "clients:\n  - {model: command, name: gone, run: [./no-such-program]}\n"
        "  - {model: command, name: judged, run: [./no-such-program]}")
        + "expect:\n  judged: [exit_code == 127]\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of netsim missing.yaml::gone*",
                                 "missing.yaml: the run could not be carried out: netsim could not start "
                                 "its program (cannot run './no-such-program'*"])


def test_a_failed_item_at_a_tiny_time_scale_is_warned_of_the_scale(pytester: pytest.Pytester) -> None:
    """Below time scale 0.001 a failed item carries netsim run's warning on the scale, naming
    the plugin's own option."""
    pytester.makefile(".yaml", failing=FAILING)
    result = pytester.runpytest_subprocess("--netsim-time-scale", "0.0009")
    result.stdout.fnmatch_lines([
        "expectation failed: elapsed < 1ms",
        "*",
        "warning: time scale 0.0009 is below 0.001: * try --netsim-time-scale 0.001 or more",
    ])


# Jitter on server a: the seed decides the pauses, so a failure names the seed netsim chose.
JITTERED = FAILING.replace("delay: 20ms}", "delay: 20ms, jitter: 5ms}", 1).replace("failing", "jittered")


def test_a_failed_item_names_the_seed_netsim_chose_and_netsim_seed_draws_it_again(
    pytester: pytest.Pytester,
) -> None:
    """A failed item whose run drew from a seed netsim chose names it, in the terminal and the
    JUnit XML, with the option that draws that run again; --netsim-seed (or the ini key
    netsim_seed) is the seed every run draws from, and anything but a whole number stops pytest."""
    import xml.etree.ElementTree as ET

    pytester.makefile(".yaml", jittered=JITTERED)
    pytester.makeconftest(RECORDING)
    result = pytester.runpytest_subprocess("--junitxml=report.xml")
    result.assert_outcomes(passed=1, failed=1)
    [chosen] = {call["seed"] for call in calls(pytester)}
    line = f"seed {chosen}: --netsim-seed {chosen} draws the jitter and faults of that failed run again"
    result.stdout.fnmatch_lines(["expectation failed: elapsed < 1ms", line])
    cases = ET.parse(pytester.path / "report.xml").iter("testcase")
    failures = [case.findtext("failure") or "" for case in cases]
    assert [line in text for text in failures] == [False, True]

    (pytester.path / "calls.jsonl").unlink()
    again = pytester.runpytest_subprocess("--netsim-seed", str(chosen))
    again.stdout.fnmatch_lines([line])
    assert {call["seed"] for call in calls(pytester)} == {chosen}

    (pytester.path / "calls.jsonl").unlink()
    pytester.makeini("[pytest]\nnetsim_seed = 7\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1, failed=1)
    assert {call["seed"] for call in calls(pytester)} == {7}
    refused = pytester.runpytest_subprocess("--netsim-seed", "1.5")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*netsim: the seed must be a whole number, like 7, got '1.5'*"])


def test_a_run_that_did_not_finish_names_the_seed_it_drew_from(pytester: pytest.Pytester) -> None:
    """A run of a jittered scenario that cannot be carried out says which seed netsim chose for it."""
    pytester.makefile(".yaml", jittered=JITTERED)
    pytester.makeconftest("""\
        import netsim.runner
        from netsim import RunTimeoutError


        def timing_out(scenario, **options):
            raise RunTimeoutError(f"timed out with seed {options['seed']}")


        netsim.runner.run_scenario = timing_out
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    seed = result.stdout.str().split("timed out with seed ")[1].split()[0]
    result.stdout.fnmatch_lines([f"seed {seed}: --netsim-seed {seed} draws the jitter and faults of that run "
                                 f"again"])


def test_junitxml_names_the_class_by_the_scenario_file_without_its_suffix(pytester: pytest.Pytester) -> None:
    """In --junitxml an item's classname is its file's dotted path without `.yaml` (a CI server
    takes the part after the last dot for the class), with --junit-prefix first; node ids and
    -k keep the file name."""
    import xml.etree.ElementTree as ET

    (pytester.path / "scen").mkdir()
    (pytester.path / "scen" / "failing.yaml").write_text(FAILING)
    (pytester.path / "scen" / "three_ports.yml").write_text(PASSING)
    result = pytester.runpytest_subprocess("--junitxml=report.xml", "-v", "-k", "select")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["scen/failing.yaml::select FAILED*", "scen/three_ports.yml::select PASSED*"])
    cases = ET.parse(pytester.path / "report.xml").iter("testcase")
    assert [(case.get("classname"), case.get("name")) for case in cases] == [
        ("scen.failing", "select"), ("scen.three_ports", "select")]
    pytester.runpytest_subprocess("--junitxml=prefixed.xml", "--junit-prefix=ci", "scen/failing.yaml")
    cases = ET.parse(pytester.path / "prefixed.xml").iter("testcase")
    assert [case.get("classname") for case in cases] == ["ci.scen.failing", "ci.scen.failing"]
