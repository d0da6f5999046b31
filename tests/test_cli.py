"""The command line: exit codes, output, result files and signals."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from netsim.cli import build_parser, main
from netsim.clients import model_names
from tests.conftest import ScenarioWriter, demo_text
from tests.test_files import reading_fifo

SCALE = "0.02"  # the 12 s demo takes a quarter of a second

PASSING = """\
    expect:
      blocking: [elapsed == 12s ± 50%]
      select: [speedup(blocking) >= 1.5]
      all: [intact == 100%, errors == 0]
"""


def run_cli(*args: object) -> int:
    """Run the command in this process and return its exit code, as a shell would see it."""
    try:
        return main([str(arg) for arg in args])
    except SystemExit as exited:  # argparse exits on its own for bad flags, --help, --version
        return int(exited.code or 0)


def test_a_passing_scenario_exits_0_with_a_table_and_verdicts(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every expectation held: exit 0, one table row per client, every verdict with its measurement."""
    path = write_scenario(demo_text(expect=PASSING))
    assert run_cli("run", path, "--time-scale", SCALE) == 0
    out = capsys.readouterr().out
    assert "client" in out and "elapsed" in out and "ideal" in out and "overhead" in out
    assert out.count("PASS") == 6 and "FAIL" not in out
    assert "PASS  select    speedup(blocking) >= 1.5  measured" in out
    assert out.rstrip().endswith("passed: 6 of 6 expectations held (6 passed, 0 failed)")
    assert "a program's ttfb" not in out  # no program ran: the models' ttfb need no note


def test_a_failing_expectation_exits_1(write_scenario: ScenarioWriter,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """An expectation that does not hold: exit 1, and its verdict shows the measured value and bound."""
    path = write_scenario(demo_text(clients="select", expect="expect:\n  select: [elapsed < 2s]\n"))
    assert run_cli("run", path, "--time-scale", SCALE) == 1
    out = capsys.readouterr().out
    assert "FAIL  select  elapsed < 2s  measured" in out and "bound < 2.000s" in out
    assert "FAILED: 0 of 1 expectations held" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-scale", "0"], "must be a finite number greater than 0, got 0"),
        (["--time-scale", "inf"], "must be a finite number greater than 0, got inf"),
        (["--time-scale", "fast"], "is not a number"),
        (["--client", "nobody"], "no client 'nobody'"),
        (["--timeout", "soon"], "is not a duration"),
    ],
)
def test_a_bad_command_line_exits_2(write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str],
                                    args: list[str], message: str) -> None:
    """Flags that make no sense are refused with exit 2 and a message naming the problem."""
    path = write_scenario(demo_text())
    assert run_cli("run", path, *args) == 2
    assert message in capsys.readouterr().err


def test_an_invalid_scenario_exits_2_with_every_problem(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid file is not run: exit 2, each problem as file:line:col, no traceback."""
    path = write_scenario("""\
        netsim: 1
        name: broken
        servers:
          - {name: a, poem: "x\\n", dealy: 1s}
        clients: [blocking, selekt]
    """)
    assert run_cli("run", path) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:28: servers[0]: unknown key 'dealy' (did you mean 'delay'?)" in err
    assert f"{path}:5:21: clients[1].model: unknown client model 'selekt' (did you mean 'select'?)" in err
    assert "2 problems; nothing was run" in err
    assert "Traceback" not in err


def test_a_busy_port_exits_3(write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """A fixed port held by another program: exit 3, a message naming server and port, and --free-ports."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = write_scenario(f"netsim: 1\nname: busy\nservers: [{{name: a, port: {port}, poem: \"x\\n\"}}]\n"
                              f"clients: [blocking]\n")
        assert run_cli("run", path) == 3
        out, err = capsys.readouterr()
        assert f"server 'a': port {port} on 127.0.0.1 is already in use" in err
        assert "hint: or pass --free-ports" in err
        assert "netsim: busy" in out and "elapsed" not in out  # no empty table above the error
    finally:
        holder.close()


def test_a_timeout_exits_3(write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """A client model past --timeout is stopped: exit 3."""
    path = write_scenario(demo_text(clients="blocking"))
    assert run_cli("run", path, "--time-scale", "0.1", "--timeout", "100ms") == 3
    assert "did not finish within" in capsys.readouterr().err


def test_a_run_that_did_not_finish_replaces_an_earlier_json_result(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After exit 3, --json holds a result that did not pass and says why, not what an earlier
    run left there; `netsim report` of it says so and draws it."""
    path = write_scenario(demo_text(clients="blocking"))
    out, page = tmp_path / "result.json", tmp_path / "report.html"
    out.write_text('{"scenario": "demo", "passed": true, "runs": []}\n')
    assert run_cli("run", path, "--time-scale", "0.1", "--timeout", "100ms", "--json", out) == 3
    data = json.loads(out.read_text())
    assert data["passed"] is False and data["runs"] == []
    assert data["error"].startswith("client 'blocking' did not finish within 100ms")
    capsys.readouterr()
    assert run_cli("report", out) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"{data['scenario']}: the run did not finish: client 'blocking'")
    assert run_cli("report", out, "--html", page) == 0
    assert "the run did not finish" in page.read_text()


def test_a_run_that_did_not_finish_keeps_the_client_models_it_measured(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A timeout in the second client model leaves the first one's measurements in --json
    (not judged: `passed` null), and --html draws them under a banner saying why the run is
    not whole, as `netsim report` of that JSON does."""
    path = write_scenario(demo_text(clients="select, blocking"))
    out, page = tmp_path / "result.json", tmp_path / "report.html"
    assert run_cli("run", path, "--time-scale", "0.1", "--timeout", "1s", "--json", out,
                   "--html", page) == 3  # select: 0.4 s; blocking: 1.2 s at the least
    assert "--html" not in capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["passed"] is False and [run["client"] for run in data["runs"]] == ["select"]
    (select,) = data["runs"]
    assert select["passed"] is None and select["expectations"] == [] and len(select["connections"]) == 3
    drawn = page.read_text()
    assert "the run did not finish" in drawn and 'data-client="select"' in drawn
    assert run_cli("report", out, "--html", tmp_path / "again.html") == 0
    assert (tmp_path / "again.html").read_text() == drawn


def test_a_run_that_did_not_finish_keeps_its_seed_and_source(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run stopped by --timeout has in --json the seed it drew and the scenario's source, as a
    finished run has; the terminal names the seed, as under a failed run, and --html shows the
    scenario's description."""
    text = ('netsim: 1\nname: stalls\ndescription: Every connection stalls after two lines.\n'
            'servers: [{name: a, poem: "1\\n2\\n3\\n", delay: 200ms, jitter: 100ms,\n'
            '           fault: {kind: stall, after: 4B}}]\nclients: [{model: select, timeout: 10s}]\n')
    path = write_scenario(text)
    out, page = tmp_path / "result.json", tmp_path / "report.html"
    assert run_cli("run", path, "--time-scale", "0.1", "--timeout", "300ms", "--json", out,
                   "--html", page) == 3
    data = json.loads(out.read_text())
    assert data["error"].startswith("client 'select' did not finish within 300ms")
    assert isinstance(data["seed"], int)
    assert data["source"] == {"file": str(path), "text": text,
                              "description": "Every connection stalls after two lines."}
    said = f"seed {data['seed']}: --seed {data['seed']} draws the jitter and faults of that run again"
    assert capsys.readouterr().out.splitlines()[-1] == said
    assert "Every connection stalls after two lines." in page.read_text()
    seeded = write_scenario(text.replace("name: stalls\n", "name: stalls\nseed: 3\n"), "seeded.yaml")
    assert run_cli("run", seeded, "--time-scale", "0.1", "--timeout", "300ms", "--json", out) == 3
    assert json.loads(out.read_text())["seed"] == 3
    assert "draws the jitter" not in capsys.readouterr().out  # the scenario's own seed: no word


def test_json_result_has_the_documented_keys(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """--json writes the keys DESIGN.md promises, durations in scenario time."""
    path = write_scenario(demo_text(expect=PASSING))
    out = tmp_path / "result.json"
    assert run_cli("run", path, "--time-scale", SCALE, "--json", out, "-q") == 0
    result = json.loads(out.read_text())
    assert {"scenario", "time_scale", "passed", "runs"} <= result.keys()
    assert "repeat" not in result  # a single run writes no spread of one
    assert (result["scenario"], result["time_scale"], result["passed"]) == ("demo", 0.02, True)
    blocking = result["runs"][0]
    keys = {"client", "elapsed", "ideal", "wall_elapsed", "connections", "lateness", "expectations"}
    assert keys <= blocking.keys()
    assert blocking["client"] == "blocking" and blocking["ideal"] == 12.0
    assert blocking["wall_elapsed"] == pytest.approx(blocking["elapsed"] * 0.02)
    conn = blocking["connections"][0]
    assert {"server", "port", "bytes", "intact", "error", "ttfb", "duration"} <= conn.keys()
    assert (conn["server"], conn["bytes"], conn["intact"], conn["error"]) == ("a", 16, True, None)
    assert {"p50", "p99", "max"} <= blocking["lateness"].keys()
    verdict = blocking["expectations"][0]
    assert verdict["text"] == "elapsed == 12s ± 50%" and verdict["passed"] is True
    assert verdict["actual"] == pytest.approx(blocking["elapsed"])


def test_log_json_has_one_event_per_line(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """--log-json writes JSON lines with event, t, server, client and conn."""
    path = write_scenario(demo_text(clients="select"))
    log = tmp_path / "events.jsonl"
    assert run_cli("run", path, "--time-scale", SCALE, "--log-json", log, "-q") == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    sent = [event for event in events if event["event"] == "chunk_sent"]
    assert len(sent) == 12
    assert {"t", "server", "client", "conn", "scheduled", "lateness"} <= sent[0].keys()
    assert {event["event"] for event in events} >= {"conn_accepted", "bytes_received", "eof_received"}


def test_results_are_never_written_over_the_scenario(write_scenario: ScenarioWriter,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--json naming the scenario file is refused (exit 2) and the scenario is left as it was."""
    path = write_scenario(demo_text(clients="select"))
    before = path.read_text()
    assert run_cli("run", path, "--json", path) == 2
    assert "is the scenario file itself" in capsys.readouterr().err
    assert path.read_text() == before


@pytest.mark.parametrize("flag", ["--json", "--html", "--log-json"])
def test_results_are_never_written_over_a_file_the_scenario_uses(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        flag: str) -> None:
    """An output naming a program a client runs, or a poem file, is refused (exit 2) and
    the file is left as it was: a student's submission is not overwritten by its grade."""
    (tmp_path / "alice.py").write_text("print('hi')\n")
    (tmp_path / "poem.txt").write_text("1111\n")
    path = write_scenario(f"""\
netsim: 1
name: class
servers: [{{name: a, poem_file: poem.txt}}]
clients: [{{model: command, name: alice, run: [{sys.executable}, alice.py, "{{ports}}"]}}]
""")
    for used, says in (("alice.py", "is a file client 'alice' runs (alice.py)"),
                       ("poem.txt", "is the poem file of server 'a'")):
        assert run_cli("run", path, flag, str(tmp_path / used)) == 2
        assert says in capsys.readouterr().err
    assert (tmp_path / "alice.py").read_text() == "print('hi')\n"
    assert (tmp_path / "poem.txt").read_text() == "1111\n"


def test_quiet_prints_only_verdicts_and_verbose_adds_events(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    """-q leaves out the table; -v prints the live event log on stderr."""
    path = write_scenario(demo_text(clients="select", expect="expect:\n  all: [errors == 0]\n"))
    assert run_cli("run", path, "--time-scale", SCALE, "-q") == 0
    quiet = capsys.readouterr()
    assert "elapsed" not in quiet.out and quiet.out.startswith("expectations")
    assert run_cli("run", path, "--time-scale", SCALE, "-v") == 0
    verbose = capsys.readouterr()
    assert "chunk_sent" in verbose.err and "select/a#1" in verbose.err


def test_a_failed_run_whose_draws_netsim_chose_names_the_seed(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """A failed run of a jittered scenario without a seed of its own names the seed it drew,
    so that --seed repeats it; with the scenario's own seed, or nothing drawn, no word."""
    jittered = ('netsim: 1\nname: jit\nservers: [{name: a, poem: "1\\n2\\n", delay: 100ms, jitter: 50ms}]\n'
                "clients: [select]\nexpect: {select: [elapsed < 100ms]}\n")
    assert run_cli("run", write_scenario(jittered), "--time-scale", "0.1", "-q") == 1
    lines = capsys.readouterr().out.splitlines()
    said = r"seed (\d+): --seed \1 draws the jitter and faults of that failed run again"
    assert re.fullmatch(said, lines[-2]) is not None and lines[-1].startswith("FAILED:")
    seeded = jittered.replace("name: jit\n", "name: jit\nseed: 3\n")
    for text in (seeded, jittered.replace(", jitter: 50ms", "")):
        assert run_cli("run", write_scenario(text), "--time-scale", "0.1", "-q") == 1
        assert "draws the jitter" not in capsys.readouterr().out


def test_clients_lists_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    """`netsim clients` prints one line per model, with its name first."""
    assert run_cli("clients") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == model_names()
    assert model_names()[:5] == ["blocking", "select", "selectors", "asyncio", "threads"]


def test_every_commands_help_fits_an_80_column_terminal_but_its_examples(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Descriptions and epilogs are filled to the terminal's width, as the options' help is
    (one ran to 233 columns); only an example command, kept whole, may be longer."""
    monkeypatch.setenv("COLUMNS", "80")
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ["", *subcommands]:
        assert run_cli(*([name] if name else []), "--help") == 0
        wide = [line for line in capsys.readouterr().out.splitlines()
                if len(line) > 80 and not line.startswith("  netsim ")]
        assert wide == [], name


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand's --help text ends with an example of that command."""
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "serve", "validate", "new", "schema", "clients"} <= set(subcommands)
    for name in subcommands:
        assert run_cli(name, "--help") == 0
        text = capsys.readouterr().out.rstrip().splitlines()
        assert "example:" in text, name
        examples = text[text.index("example:") + 1:]
        assert examples and all(line.startswith(f"  netsim {name}") for line in examples), name


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_and_option_has_help_text() -> None:
    """Each command, and each option and argument of the parser and of every command, says what it is for."""
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    described = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, command in subcommands().items():
        assert described.get(name), f"netsim {name}"
        for action in [*parser._actions, *command._actions]:
            assert action.help and action.help != argparse.SUPPRESS, f"netsim {name} {action.dest}"


@pytest.mark.parametrize("command", ["run", "serve"])
def test_run_and_serve_share_their_scenario_options(command: str) -> None:
    """run and serve take the same scenario, time scale, seed, port, log and -v options, with one
    help; only --json says what each command writes."""
    args = build_parser().parse_args([command, "s.yaml", "--time-scale", "0.5", "--seed", "7", "--free-ports",
                                      "--allow-external", "--log-json", "e.jsonl", "-v"])
    assert (args.scenario, args.time_scale, args.seed, args.free_ports, args.allow_external,
            args.log_json, args.verbose) == ("s.yaml", 0.5, 7, True, True, Path("e.jsonl"), True)
    run, serve = subcommands()["run"], subcommands()["serve"]
    serve_only = {"help", "control"}
    shared = {action.dest: action.help for action in serve._actions if action.dest not in serve_only}
    helps = {action.dest: action.help for action in run._actions if action.dest in shared}
    assert {dest: help for dest, help in helps.items() if dest != "json"} == {
        dest: help for dest, help in shared.items() if dest != "json"}
    assert (helps["json"], shared["json"]) == ("write the whole result as JSON",
                                               "write what the servers saw of every connection as JSON, "
                                               "once they stop")


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    from netsim import __version__

    assert run_cli("--version") == 0
    assert capsys.readouterr().out.strip() == f"netsim {__version__}"


def _group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def netsim_process(*args: object) -> Iterator[subprocess.Popen[str]]:
    """`python -m netsim ARGS` in a session of its own, so that a test can send it Ctrl-C as
    a terminal does; it and its children are killed if still running at the end."""
    process = subprocess.Popen([sys.executable, "-m", "netsim", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        yield process
    finally:
        if not _group_is_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        if process.returncode is None:
            process.communicate()


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_everything_it_started(write_scenario: ScenarioWriter) -> None:
    """Ctrl-C during a run exits 130 and leaves no server or client process behind."""
    path = write_scenario(demo_text(clients="blocking"))
    with netsim_process("run", path, "-v") as process:
        assert process.stderr is not None
        for line in process.stderr:  # wait until data flows: servers and client are up
            if "bytes_received" in line:
                break
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        assert process.wait(timeout=15) == 130
        deadline = time.monotonic() + 5
        while not _group_is_gone(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_is_gone(process.pid), "a child of netsim outlived it"


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_sighup_stops_the_run_as_sigterm_does(write_scenario: ScenarioWriter, tmp_path: Path,
                                              stop: signal.Signals, code: int) -> None:
    """SIGHUP to the run's process group (its terminal closed) ends the run as SIGTERM does:
    every process it started stopped, its reports written saying so, exit 128 + the signal."""
    path = write_scenario(demo_text(clients="blocking"))
    out, junit = tmp_path / "result.json", tmp_path / "junit.xml"
    with netsim_process("run", path, "--time-scale", "0.5", "--json", out, "--junit", junit, "-v") as process:
        assert process.stderr is not None
        for line in process.stderr:  # wait until data flows: servers and client are up
            if "bytes_received" in line:
                break
        os.killpg(process.pid, stop)  # as a terminal that closes does, to the whole group
        assert process.wait(timeout=15) == code
        assert f"netsim: stopped by {stop.name}; every server and client" in process.stderr.read()
        assert _wait_gone(process.pid), "a child of netsim outlived it"
    data = json.loads(out.read_text())
    assert data["passed"] is False and data["error"] == f"stopped before it finished ({stop.name})"
    assert f"stopped before it finished ({stop.name})" in junit.read_text()


def _run_until_its_terminal_closes(path: str, out: Path,
                                   stderr: IO[str] | None = None) -> subprocess.Popen[bytes]:
    """``netsim run`` of the demo with two clients on a terminal (a pty; ``stderr`` elsewhere
    if given), whose terminal closes as soon as the first client's row is shown."""
    import pty
    import select

    main, tty = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "netsim", "run", path, "--json", str(out)],
                               stdin=tty, stdout=tty, stderr=tty if stderr is None else stderr,
                               start_new_session=True)
    os.close(tty)
    try:
        shown = b""
        deadline = time.monotonic() + 20
        while b"\nselect " not in shown and time.monotonic() < deadline:  # select's row: it finished
            if select.select([main], [], [], 0.1)[0]:
                shown += os.read(main, 4096)
    finally:
        os.close(main)  # the terminal is gone; blocking has 2.4 s to go
    return process


def test_a_terminal_that_closes_mid_run_leaves_the_run_to_finish(write_scenario: ScenarioWriter,
                                                                  tmp_path: Path) -> None:
    """A terminal that closes mid-run, with no SIGHUP after it (a pty netsim does not hold as
    its controlling terminal): what it would have shown is dropped and the run finishes, its
    exit code and JSON saying how it went. It exited 3, calling EIO from its progress bar
    a bug in netsim, or 'cannot write to standard output' where only stdout was the terminal."""
    path = write_scenario(demo_text(clients="select, blocking", delay="200ms"))  # 0.8 s, then 2.4 s
    for stderr_on_terminal in (True, False):
        out = tmp_path / f"result-{stderr_on_terminal}.json"
        with (tmp_path / "stderr.txt").open("w") as log:
            process = _run_until_its_terminal_closes(path, out, None if stderr_on_terminal else log)
        assert process.wait(timeout=30) == 0
        data = json.loads(out.read_text())
        assert "error" not in data and [run["client"] for run in data["runs"]] == ["select", "blocking"]


def test_sighup_from_a_terminal_that_closed_exits_129_with_the_reports(write_scenario: ScenarioWriter,
                                                                         tmp_path: Path) -> None:
    """A terminal that closes mid-run, then SIGHUP: the timeline of what finished cannot be
    drawn on it, nor the message printed, and the run still exits 129 with its JSON written,
    not 1 or 3 from the failed writes."""
    path = write_scenario(demo_text(clients="select, blocking", delay="200ms"))  # 0.8 s, then 2.4 s
    out = tmp_path / "result.json"
    process = _run_until_its_terminal_closes(path, out)
    time.sleep(0.1)
    os.kill(process.pid, signal.SIGHUP)
    assert process.wait(timeout=20) == 129
    assert json.loads(out.read_text())["error"] == "stopped before it finished (SIGHUP)"
    assert _wait_gone(process.pid)


@pytest.mark.parametrize("control", [False, True])
def test_serve_stopped_by_sigterm_to_its_group_writes_what_it_saw(write_scenario: ScenarioWriter,
                                                                  tmp_path: Path, control: bool) -> None:
    """SIGTERM to serve's whole process group (a CI job's timeout, systemd) reaches its server
    process too, which dies of it: serve still exits 143 and writes its --json, with the
    control API or without."""
    path = write_scenario(demo_text(delay="10ms"))
    out = tmp_path / "served.json"
    extra = ["--control", "127.0.0.1:0"] if control else []
    with netsim_process("serve", path, "--json", out, *extra) as process:
        assert process.stdout is not None
        while process.stdout.readline().strip() != "ready":
            pass
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 143
    assert json.loads(out.read_text())["scenario"] == "demo"


@pytest.mark.slow
def test_serve_prints_its_addresses_serves_and_stops_on_ctrl_c(write_scenario: ScenarioWriter) -> None:
    """`netsim serve` prints `listening NAME HOST:PORT` lines and `ready`, serves, exits 130 on Ctrl-C."""
    path = write_scenario(demo_text(delay="10ms"))
    with netsim_process("serve", path) as process:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(4)]
        assert lines[3] == "ready"
        addresses = {}
        for line in lines[:3]:
            word, name, address = line.split()
            host, port = address.rsplit(":", 1)
            assert word == "listening" and host == "127.0.0.1"
            addresses[name] = int(port)
        assert sorted(addresses) == ["a", "b", "c"]
        with socket.create_connection(("127.0.0.1", addresses["b"]), timeout=5) as client:
            received = b""
            while data := client.recv(1024):
                received += data
        assert received == b"1111222233334444"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=10) == 130
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", addresses["b"]), timeout=5).close()


# --- validate, new, schema ------------------------------------------------------------


BROKEN = """\
    netsim: 1
    name: broken
    servers:
      - {poem: "x\\n", dealy: 1s}
    clients: [blocking]
"""


def test_validate_reports_every_file_and_ends_with_a_summary(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every problem of every file, each with file:line:col and a hint where one helps; exit 2."""
    good = write_scenario(demo_text(), "good.yaml")
    broken = write_scenario(BROKEN, "broken.yaml")
    empty = write_scenario("", "empty.yaml")
    assert run_cli("validate", good, broken, empty) == 2
    out, err = capsys.readouterr()
    assert f"{good}: ok" in out
    assert f"{broken}:4:5: servers[0]: missing required key 'name'\n" \
           f"    hint: add it: name takes a string, like `name: a`" in err
    assert f"{broken}:4:19: servers[0]: unknown key 'dealy' (did you mean 'delay'?)" in err
    assert f"{empty}:1:1: the file is empty" in err
    assert err.rstrip().endswith("netsim: 3 files checked: 1 valid, 2 invalid with 3 problems")


def test_validate_of_valid_files_exits_0(write_scenario: ScenarioWriter,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """All files valid: exit 0 and a one-line summary on stdout."""
    path = write_scenario(demo_text())
    assert run_cli("validate", path) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "netsim: 1 file checked, all valid"


def test_validate_reads_a_scenario_from_standard_input(write_scenario: ScenarioWriter,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`netsim validate -` checks the scenario on standard input, as `run -` runs it."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(demo_text().replace("delay:", "dealy:", 1)))
    assert run_cli("validate", "-") == 2
    assert "<stdin>:" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(demo_text()))
    assert run_cli("validate", "-") == 0
    assert capsys.readouterr().out.splitlines() == ["<stdin>: ok", "netsim: 1 file checked, all valid"]


@pytest.mark.parametrize(("client", "limit"), [("select", 1000), ("threads", 2000)])
def test_validate_reports_a_client_past_its_models_limit_as_run_would(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str], client: str, limit: int
) -> None:
    """More connections than the model holds is a problem at the client's `connections`, for
    validate and run alike (exit 2, nothing run)."""
    entry = f"{{model: {client}, connections: "
    path = write_scenario(demo_text(clients=f"{entry}{limit // 3 + 1}}}"))  # to each of 3 servers
    assert run_cli("validate", path) == 2
    column = len("clients: [") + len(entry) + 1
    problem = (f"{path}:7:{column}: clients[0].connections: client {client!r} opens {3 * (limit // 3 + 1)} "
               f"connections, more than the {client} model's limit of {limit}: ")
    assert problem in capsys.readouterr().err
    assert run_cli("run", path) == 2
    assert problem in capsys.readouterr().err


def test_validate_refuses_a_server_outside_loopback_unless_allow_external(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host outside loopback is a problem at its line with the flag to pass, as run refuses it;
    with --allow-external, as on run, it is valid."""
    path = write_scenario(demo_text().replace("name: a,", "name: a, host: 0.0.0.0,", 1))
    assert run_cli("validate", path) == 2
    err = capsys.readouterr().err
    assert ("servers[0].host: server 'a' binds 0.0.0.0, outside loopback: other machines could connect "
            "to it; `netsim run` and `netsim serve` refuse it without --allow-external\n"
            "    hint: pass --allow-external (to `netsim validate` too) if that is intended") in err
    assert run_cli("validate", "--allow-external", path) == 0


def test_new_writes_a_starter_that_validates_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`netsim new` writes a commented scenario with a modeline and a schema beside it; it runs green."""
    path = tmp_path / "first try.yaml"
    assert run_cli("new", path) == 0
    text = path.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./netsim.schema.json"
    assert "name: first-try" in text and text.count("#") > 20
    from netsim._schema import schema_text

    assert (tmp_path / "netsim.schema.json").read_text() == schema_text()
    assert run_cli("validate", path) == 0
    capsys.readouterr()
    assert run_cli("run", path, "--time-scale", "0.5") == 0
    assert "passed: 7 of 7 expectations held" in capsys.readouterr().out


def test_new_never_overwrites_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing file is left as it was: exit 2 and a message that says so."""
    path = tmp_path / "mine.yaml"
    path.write_text("my own work\n")
    assert run_cli("new", path) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == "my own work\n"
    assert not (tmp_path / "netsim.schema.json").exists()


def test_new_points_at_the_nearest_schema_or_the_one_given(tmp_path: Path) -> None:
    """With a netsim.schema.json above, the modeline names it relatively; --schema is taken as given."""
    (tmp_path / "netsim.schema.json").write_text("{}")
    (tmp_path / "scenarios").mkdir()
    assert run_cli("new", tmp_path / "scenarios" / "a.yaml") == 0
    first = (tmp_path / "scenarios" / "a.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../netsim.schema.json"
    assert not (tmp_path / "scenarios" / "netsim.schema.json").exists()
    url = "https://example.org/netsim.schema.json"
    assert run_cli("new", tmp_path / "b.yaml", "--schema", url) == 0
    assert (tmp_path / "b.yaml").read_text().splitlines()[0] == f"# yaml-language-server: $schema={url}"


@pytest.mark.parametrize(("name", "message"), [("notes.txt", "ends in .yaml"),
                                               ("missing/a.yaml", "is not a folder")])
def test_new_refuses_a_path_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          name: str, message: str) -> None:
    """A file that is not YAML, or a folder that does not exist: exit 2 and why."""
    assert run_cli("new", tmp_path / name) == 2
    assert message in capsys.readouterr().err


def test_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`netsim schema` prints JSON equal to netsim.schema.json at the repository root."""
    assert run_cli("schema") == 0
    out = capsys.readouterr().out
    committed = Path(__file__).resolve().parent.parent / "netsim.schema.json"
    assert out == committed.read_text(encoding="utf-8")
    assert json.loads(out)["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_schema_markdown_prints_the_key_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """`netsim schema --markdown` prints the reference of every key: docs/scenarios.md's tables, titled."""
    from netsim._schema import reference_markdown

    assert run_cli("schema", "--markdown") == 0
    out = capsys.readouterr().out
    assert out.startswith("# The netsim scenario format, version 1: every key\n")
    assert out.endswith(reference_markdown())
    docs = (Path(__file__).resolve().parent.parent / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert reference_markdown() in docs
    for key in ("`poem_file`", "`upstream`", "`connections`", "`expect`", "`probability`"):
        assert f"| {key} |" in out, key


def test_the_starter_points_at_a_reference_a_pip_user_has(tmp_path: Path) -> None:
    """`netsim new` names `netsim schema --markdown` for the key reference, not a file of the repository."""
    assert run_cli("new", tmp_path / "mine.yaml") == 0
    text = (tmp_path / "mine.yaml").read_text(encoding="utf-8")
    assert "`netsim schema --markdown` describes every key" in text
    assert "docs/" not in text


# --- what a scenario may read and reach ----------------------------------------------------


READER = """\
    netsim: 1
    name: reader
    servers: [{name: a, poem_file: ../secret.txt}]
    clients: [blocking]
    expect: {all: [intact == 100%]}
"""


@pytest.fixture
def reader(tmp_path: Path) -> Path:
    """A scenario in scenarios/ whose poem file is beside that folder."""
    (tmp_path / "secret.txt").write_text("1111\n")
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios" / "reader.yaml"
    path.write_text(textwrap.dedent(READER))
    return path


@pytest.mark.parametrize("command", ["validate", "run", "serve"])
def test_a_poem_file_outside_the_folder_exits_2_and_names_the_flag(
    reader: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate, run and serve refuse the file with file:line:col and the flag that allows it."""
    assert run_cli(command, reader) == 2
    err = capsys.readouterr().err
    assert (f"{reader}:3:32: servers[0].poem_file: poem_file '../secret.txt' is outside the "
            f"scenario's folder") in err
    assert "unless --allow-paths is given\n    hint: move the file into the scenario's folder" in err
    assert "Traceback" not in err


def test_allow_paths_and_max_poem_size_let_validate_and_run_read_it(
    reader: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--allow-paths reads the file, --max-poem-size bounds it, on validate and run alike."""
    assert run_cli("validate", reader, "--allow-paths") == 0
    assert run_cli("validate", reader, "--allow-paths", "--max-poem-size", "4B") == 2
    err = capsys.readouterr().err
    assert "is 5B, more than the 4B a poem may have: pass --max-poem-size 1MB or more" in err
    assert run_cli("run", reader, "--allow-paths", "--max-poem-size", "1KiB", "-q") == 0
    assert "PASS  blocking  intact == 100%" in capsys.readouterr().out


@pytest.mark.parametrize("size", ["0", "-1KB", "lots"])
def test_a_max_poem_size_that_is_not_a_positive_size_exits_2(
    reader: Path, size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-poem-size takes a size above zero, in netsim's units."""
    assert run_cli("validate", reader, "--max-poem-size", size) == 2
    assert "argument --max-poem-size" in capsys.readouterr().err


def test_serve_refuses_a_proxy_to_another_machine_without_allow_external(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    """`netsim serve` with an upstream outside loopback exits 2, naming the server and --allow-external."""
    path = write_scenario("""\
        netsim: 1
        name: forwarding
        servers: [{name: db, upstream: "10.1.2.3:5432"}]
    """)
    assert run_cli("serve", path) == 2
    out, err = capsys.readouterr()
    assert "netsim: error: server 'db' forwards to 10.1.2.3:5432, outside loopback" in err
    assert "pass --allow-external (allow_external=True in Python) if that is intended" in err
    assert "listening" not in out


# --- repeats and baselines --------------------------------------------------------------


def test_repeat_reports_the_spread_and_how_often_each_expectation_held(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--repeat 3 runs each client three times and prints min/median/max and pass counts."""
    expect = "expect:\n  select: [elapsed < 2s in 50% of runs]\n  all: [errors == 0]\n"
    path = write_scenario(demo_text(expect=expect))
    out_json = tmp_path / "result.json"
    assert run_cli("run", path, "--time-scale", SCALE, "--repeat", "3", "--json", out_json) == 1
    out = capsys.readouterr().out
    assert "run 3 of 3" in out and "elapsed min / median / max" in out
    assert "expectations over 3 runs" in out
    assert "FAIL  select    elapsed < 2s in 50% of runs  held 0 of 3 (needs 50%)" in out
    assert "PASS  blocking  errors == 0                  held 3 of 3 (needs all)" in out
    assert out.rstrip().endswith("FAILED: 2 of 3 expectations held in enough of 3 runs "
                                 "(0 of 3 runs passed every expectation)")
    data = json.loads(out_json.read_text())
    assert data["passed"] is False and data["repeat"]["count"] == 3
    assert len(data["runs"]) == 2 and len(data["repeat"]["results"]) == 3


def test_repeat_needs_a_positive_count(write_scenario: ScenarioWriter,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--repeat 0 is refused with exit 2."""
    assert run_cli("run", write_scenario(demo_text()), "--repeat", "0") == 2
    assert "must be 1 or more" in capsys.readouterr().err


def test_a_baseline_is_saved_and_a_regression_beyond_the_bound_exits_1(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--save-baseline writes the ratios; --baseline fails each client whose ratio grew past the bound."""
    path = write_scenario(demo_text(expect="expect:\n  all: [errors == 0]\n"))
    base = tmp_path / "base.json"
    assert run_cli("run", path, "--time-scale", "0.05", "--save-baseline", base, "-q") == 0
    saved = json.loads(base.read_text())
    assert saved["scenario"] == "demo" and set(saved["clients"]) == {"blocking", "select"}
    assert run_cli("run", path, "--time-scale", "0.05", "--baseline", base, "--max-regression", "100%") == 0
    capsys.readouterr()
    # Doctored so that the verdicts do not hang on this machine's load: a baseline in which
    # select ran 50% faster than its ideal (today it regressed 50 points or more), stated as
    # its ratio alone, and blocking 50% slower (today it improved), stated both ways.
    del saved["clients"]["select"]["elapsed"]
    saved["clients"]["select"]["overhead_ratio"] = -0.5
    saved["clients"]["blocking"]["elapsed"] = saved["clients"]["blocking"]["ideal"] * 1.5
    saved["clients"]["blocking"]["overhead_ratio"] = 0.5
    base.write_text(json.dumps(saved))
    out_json = tmp_path / "result.json"
    code = run_cli("run", path, "--time-scale", "0.05", "--baseline", base, "--max-regression", "10%",
                   "--json", out_json)
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  select    overhead +" in out and "baseline -50.00%: regressed 5" in out
    assert "PASS  blocking  overhead +" in out and "baseline +50.00%: improved " in out
    assert out.rstrip().endswith(f"FAILED: the overhead of select regressed more than 10 points of the "
                                 f"ideal against baseline {base}")
    data = json.loads(out_json.read_text())
    assert data["passed"] is False and data["baseline"]["passed"] is False
    assert [client["passed"] for client in data["baseline"]["clients"]] == [True, False]


def test_a_failed_run_saves_no_baseline_and_the_one_it_checked_against_stays(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --baseline and --save-baseline naming one file, a run that regressed leaves the
    file as it was (else the regression would be the next run's reference), and says so."""
    path = write_scenario(demo_text(clients="select"))
    base = tmp_path / "base.json"
    assert run_cli("run", path, "--time-scale", "0.05", "--save-baseline", base, "-q") == 0
    saved = json.loads(base.read_text())
    del saved["clients"]["select"]["elapsed"]
    saved["clients"]["select"]["overhead_ratio"] = -0.5  # a baseline no run meets
    base.write_text(json.dumps(saved))
    before = base.read_text()
    capsys.readouterr()
    assert run_cli("run", path, "--time-scale", "0.05", "--baseline", base, "--save-baseline", base,
                   "-q") == 1
    assert base.read_text() == before
    assert (f"warning: --save-baseline {base} not written: the run failed (an expectation, or the "
            f"baseline check); a baseline is saved from a run that passed") in capsys.readouterr().err


def test_a_baseline_that_compares_nothing_or_another_scenario_says_so(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A baseline none of whose clients ran does not read as a pass, and a client whose ideal
    moved since the baseline was saved (the scenario changed) is noted beside its line."""
    path = write_scenario(demo_text(delay="2s", clients="select"))
    base = tmp_path / "base.json"
    assert run_cli("run", path, "--time-scale", "0.025", "--save-baseline", base, "-q") == 0
    saved = json.loads(base.read_text())
    saved["clients"]["other"] = saved["clients"].pop("select")
    base.write_text(json.dumps(saved))
    capsys.readouterr()
    assert run_cli("run", path, "--time-scale", "0.025", "--baseline", base, "--max-regression", "100%") == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"nothing compared against baseline {base}: none of this run's clients is "
                                 f"in it with a ratio to compare (save a new one with --save-baseline)")
    saved["clients"]["select"] = saved["clients"].pop("other")
    base.write_text(json.dumps(saved))
    write_scenario(demo_text(delay="1s", clients="select"))
    assert run_cli("run", path, "--time-scale", "0.025", "--baseline", base, "--max-regression", "100%") == 0
    out = capsys.readouterr().out
    assert "  note    select: its ideal is 4.000s against 8.000s in the baseline: the scenario changed" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--max-regression", "10%"], "--max-regression needs --baseline"),
    (["--baseline", "nothing.json"], "does not exist"),
    (["--max-regression", "10"], "not a percentage"),
    (["--json", "same.json", "--junit", "same.json"], "--json and --junit both name"),
])
def test_baseline_and_output_mistakes_exit_2(write_scenario: ScenarioWriter,
                                             capsys: pytest.CaptureFixture[str],
                                             args: list[str], message: str) -> None:
    """Inconsistent baseline flags, a missing baseline or two outputs in one file: exit 2, nothing run."""
    assert run_cli("run", write_scenario(demo_text()), *args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--client", "nosuch"], "no client 'nosuch' in scenario 'demo'"),
    (["--baseline", "base.json"], "baseline base.json was made at time scale 0.5, this run is at 0.02"),
])
def test_a_command_line_refused_once_the_scenario_loaded_replaces_earlier_reports(
        write_scenario: ScenarioWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    """Exit 2 for an unknown client or a baseline that does not fit leaves in --junit an error
    and in --json a result that did not pass, saying why, as an invalid scenario's --junit does:
    an earlier run's reports never stand in for this one."""
    from netsim.baseline import FORMAT, FORMAT_VERSION

    monkeypatch.chdir(tmp_path)
    Path("base.json").write_text(json.dumps({
        "format": FORMAT, "version": FORMAT_VERSION, "scenario": "demo", "time_scale": 0.5, "runs": 1,
        "netsim_version": "0", "created": "2024-01-01T00:00:00+00:00", "clients": {}}))
    Path("old.json").write_text('{"scenario": "demo", "passed": true, "runs": []}\n')
    Path("old.xml").write_text('<?xml version="1.0"?><testsuites/>\n')
    path = write_scenario(demo_text())
    assert run_cli("run", path, "--time-scale", SCALE, *args, "--json", "old.json", "--junit", "old.xml") == 2
    assert message in capsys.readouterr().err
    data = json.loads(Path("old.json").read_text())
    assert data["passed"] is False and data["runs"] == [] and message in data["error"]
    assert data["error"].startswith("nothing was run: ") and data["source"]["file"] == str(path)
    assert 'errors="1"' in Path("old.xml").read_text() and message in Path("old.xml").read_text()


def test_save_baseline_never_writes_over_the_scenario(write_scenario: ScenarioWriter,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--save-baseline naming the scenario file is refused and the file stays as it was."""
    path = write_scenario(demo_text())
    before = path.read_text()
    assert run_cli("run", path, "--save-baseline", path) == 2
    assert "is the scenario file itself" in capsys.readouterr().err
    assert path.read_text() == before


def test_seed_fixes_the_jittered_schedule(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """--seed N gives the same chunk schedule on two runs, and is reported in the JSON."""
    path = write_scenario("""\
        netsim: 1
        name: jitter
        servers: [{name: s, poem: "a\\nb\\nc\\nd\\n", delay: 100ms, jitter: 90ms}]
        clients: [select]
    """)

    def schedule(seed: str, name: str) -> list[float]:
        log, result = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
        assert run_cli("run", path, "--time-scale", "0.1", "--seed", seed, "-q",
                       "--log-json", log, "--json", result) == 0
        assert json.loads(result.read_text())["seed"] == int(seed)
        events = [json.loads(line) for line in log.read_text().splitlines()]
        accepted = next(e["t"] for e in events if e["event"] == "conn_accepted")
        return [round(e["scheduled"] - accepted, 6) for e in events if e["event"] == "chunk_sent"]

    first, again, other = schedule("42", "one"), schedule("42", "two"), schedule("43", "three")
    assert first == pytest.approx(again, abs=2e-6)  # the log keeps microseconds
    assert other != pytest.approx(first, abs=2e-6)


@pytest.mark.slow
def test_serve_reports_its_fidelity_when_stopped(write_scenario: ScenarioWriter) -> None:
    """On Ctrl-C, `netsim serve` prints how late its chunks went before `stopped`."""
    path = write_scenario(demo_text(delay="10ms"))
    with netsim_process("serve", path, "--free-ports") as process:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(4)]
        port = int(lines[0].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            while client.recv(1024):
                pass
        os.killpg(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=10)
        assert process.returncode == 130
        fidelity, stopped = out.strip().splitlines()[-2:]
        assert fidelity.startswith("fidelity: 4 chunks, lateness p50 ") and " ms, max " in fidelity
        assert stopped == "stopped"


@pytest.mark.slow
def test_serve_verbose_logs_each_event_once_as_it_happens(write_scenario: ScenarioWriter) -> None:
    """`netsim serve -v` prints the servers' events live on stderr, each once."""
    path = write_scenario(demo_text(delay="10ms"))
    with netsim_process("serve", path, "--free-ports", "-v") as process:
        assert process.stdout is not None and process.stderr is not None
        port = int(process.stdout.readline().strip().rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            while client.recv(1024):
                pass
        seen = []
        for line in process.stderr:  # live: the events come before the server is stopped
            seen.append(line)
            if "conn_closed" in line:
                break
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=10)
        assert sum("chunk_sent" in line for line in seen) == 4
        assert sum("conn_accepted" in line for line in seen) == 1


# --- crashes, signals and outputs ---------------------------------------------------------


def test_an_unexpected_error_exits_3_and_says_it_is_a_bug(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash is never exit 1: exit 3, a message calling it a bug, and the traceback only with -v."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("netsim.runner.run_scenario", broken)
    path = write_scenario(demo_text(clients="select"))
    assert run_cli("run", path) == 3
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("netsim: error: unexpected ZeroDivisionError: boom (a bug in netsim, ")
    assert "not a failed expectation" in line and "-v shows the traceback" in line
    assert run_cli("run", path, "-v") == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_unexpected_error_of_a_command_without_v_exits_3(
    write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`netsim validate` hitting a bug exits 3 too, without pointing at a -v it does not have."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the loader broke")

    monkeypatch.setattr("netsim._loader.load_scenario_and_text", broken)
    assert run_cli("validate", write_scenario(demo_text())) == 3
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: the loader broke" in err and "-v" not in err


@pytest.mark.parametrize("flag", ["--json", "--junit", "--save-baseline", "--log-json"])
def test_an_output_that_cannot_be_written_is_refused_before_the_run(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """An output in a folder that does not exist: exit 2 and why, before anything runs."""
    path = write_scenario(demo_text(clients="select"))
    target = tmp_path / "missing" / "out"
    assert run_cli("run", path, flag, target) == 2
    out, err = capsys.readouterr()
    assert f"cannot write {flag} {target}: its folder {target.parent} does not exist" in err
    assert out == ""  # nothing ran: not even the title


def test_every_output_that_cannot_be_written_is_named_at_once(
    write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several outputs that cannot be written are all named in the one message (exit 2), so
    that a CI job is fixed in one go, not one flag a run."""
    path = write_scenario(demo_text(clients="select"))
    json_out, junit_out = tmp_path / "a" / "r.json", tmp_path / "b" / "r.xml"
    assert run_cli("run", path, "--json", json_out, "--junit", junit_out, "--html", path) == 2
    err = capsys.readouterr().err
    assert f"cannot write --json {json_out}: its folder {json_out.parent} does not exist" in err
    assert f"cannot write --junit {junit_out}: its folder {junit_out.parent} does not exist" in err
    assert f"--html {path} is the scenario file itself" in err


@pytest.mark.parametrize("flag", ["--json", "--log-json"])
def test_an_output_on_a_full_disk_exits_3(write_scenario: ScenarioWriter,
                                          capsys: pytest.CaptureFixture[str], flag: str) -> None:
    """A result or log that the disk refuses (/dev/full) is exit 3 and a message, never exit 0 or 1."""
    path = write_scenario(demo_text(clients="select", expect="expect:\n  all: [errors == 0]\n"))
    assert run_cli("run", path, "--time-scale", SCALE, flag, "/dev/full", "-q") == 3
    err = capsys.readouterr().err
    assert f"netsim: error: cannot write {flag} /dev/full: No space left on device" in err
    assert "Traceback" not in err


def test_an_output_that_cannot_be_written_at_the_end_comes_after_the_verdicts(
        write_scenario: ScenarioWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """When the folder of the outputs is gone by the end of the run, the table and verdicts are
    printed all the same, then the error, exit 3; a baseline not written is not said saved."""
    path = write_scenario("""\
netsim: 1
name: late
servers: [{name: a, poem: "1\\n2\\n", delay: 100ms}]
clients:
  - select
  - {model: command, name: remover, run: [rmdir, late]}
expect:
  select: [errors == 0]
""")
    (tmp_path / "late").mkdir()
    monkeypatch.chdir(tmp_path)  # where the program runs: the scenario's folder
    assert run_cli("run", path, "--time-scale", SCALE, "--json", "late/r.json", "--save-baseline",
                   "late/base.json", "--no-timeline") == 3
    out, err = capsys.readouterr()
    assert "\nselect " in out and re.search(r"PASS  select +errors == 0", out)
    assert out.rstrip().endswith("passed: 2 of 2 expectations held (2 passed, 0 failed)")
    assert err.splitlines()[-1] == ("netsim: error: cannot write --json late/r.json: No such file or "
                                    "directory; cannot write --save-baseline late/base.json: No such "
                                    "file or directory")
    assert "saved baseline" not in err


def test_a_log_cut_short_by_a_full_disk_ends_on_a_whole_line(write_scenario: ScenarioWriter,
                                                             tmp_path: Path) -> None:
    """When the log runs out of room mid-run: exit 3, and every line left in it is whole JSON."""
    path = write_scenario(demo_text(clients="select"))
    log = tmp_path / "events.jsonl"

    def small_files() -> None:  # in the child: files stop growing at 3000 bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    done = subprocess.run([sys.executable, "-m", "netsim", "run", str(path), "--time-scale", SCALE,
                           "--log-json", str(log)], capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files)
    assert done.returncode == 3
    assert f"cannot write --log-json {log}: File too large" in done.stderr
    text = log.read_text()
    assert 0 < len(text) <= 3000 and text.endswith("\n")
    assert all(json.loads(line)["event"] for line in text.splitlines())


def test_special_files_are_written_as_they_are(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """--json into a FIFO goes through it; --json and --junit to /dev/null leave it a device."""
    path = write_scenario(demo_text(clients="select"))
    fifo = tmp_path / "result.fifo"
    with reading_fifo(fifo) as received:
        assert run_cli("run", path, "--time-scale", SCALE, "--json", fifo, "-q") == 0
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(received[0])["scenario"] == "demo"
    # Only now that a FIFO is known to be written in place: /dev/null, twice over.
    assert run_cli("run", path, "--time-scale", SCALE, "--json", "/dev/null", "--junit", "/dev/null",
                   "-q") == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize(("flag", "marker"), [("--json", '"scenario": "demo"'), ("--junit", "<testsuites"),
                                            ("--save-baseline", '"format": "netsim-baseline"')])
def test_a_symlink_to_stdout_writes_the_output_there(write_scenario: ScenarioWriter, tmp_path: Path,
                                                     flag: str, marker: str) -> None:
    """An output through a symlink to /proc/self/fd/1 is printed, and the link stays a link."""
    path = write_scenario(demo_text(clients="select"))
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    done = subprocess.run([sys.executable, "-m", "netsim", "run", str(path), "--time-scale", SCALE,
                           flag, str(link), "-q"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


def test_a_closed_stdout_does_not_change_the_verdict(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """`netsim run ... | head -1`: the run goes on, exits with its verdict and writes its files."""
    path = write_scenario(demo_text(expect="expect:\n  select: [elapsed < 1ms]\n"))
    result = tmp_path / "result.json"
    with netsim_process("run", path, "--time-scale", SCALE, "--json", result) as process:
        assert process.stdout is not None
        process.stdout.readline()
        process.stdout.close()  # as head does once it has its line
        assert process.wait(timeout=60) == 1
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()
    assert json.loads(result.read_text())["passed"] is False


@pytest.mark.parametrize("closed", [1, 2])
def test_a_stream_closed_from_the_start_drops_its_output_and_keeps_the_verdict(
        write_scenario: ScenarioWriter, tmp_path: Path, closed: int) -> None:
    """`netsim run ... >&-` (or `2>&-`): what would go there is dropped, the exit code is the
    verdict's, --json is written, and nothing is printed to the other stream in its stead."""
    path = write_scenario(demo_text(expect="expect:\n  select: [elapsed < 1ms]\n"))
    result = tmp_path / "result.json"
    # A time scale so small that a warning goes to stderr, and the verdicts to stdout.
    done = subprocess.run([sys.executable, "-m", "netsim", "run", path, "--time-scale", "0.0005",
                           "--json", result, "--client", "select"],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: os.close(closed))  # as the shell's `>&-` does
    assert done.returncode == 1
    assert json.loads(result.read_text())["passed"] is False
    left_open = done.stderr if closed == 1 else done.stdout
    assert "Traceback" not in left_open and "unexpected" not in left_open
    assert ("warning: time scale" in left_open) == (closed == 1)
    assert ("FAIL  select" in left_open) == (closed == 2)
    validated = subprocess.run([sys.executable, "-m", "netsim", "validate", path], capture_output=True,
                               text=True, timeout=60, preexec_fn=lambda: os.close(closed))
    assert validated.returncode == 0 and "Traceback" not in validated.stdout + validated.stderr


def test_a_closed_stdin_reads_as_an_empty_scenario(write_scenario: ScenarioWriter) -> None:
    """`netsim run - <&-`: a standard input closed before netsim started reads as empty (exit
    2, the empty file said so), not a crash; and a run of a file goes on with it closed."""
    done = subprocess.run([sys.executable, "-m", "netsim", "run", "-"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert done.returncode == 2 and "<stdin>:1:1: the file is empty" in done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr
    path = write_scenario(demo_text(clients="select", delay="10ms"))
    ran = subprocess.run([sys.executable, "-m", "netsim", "run", path, "-q"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert ran.returncode == 0, ran.stderr


def test_a_full_stdout_is_exit_3_with_a_message_not_a_bug(tmp_path: Path) -> None:
    """Standard output on a full device (/dev/full) cannot be written: exit 3, saying so,
    with no traceback and no "bug in netsim"."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "netsim", "clients"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr == "netsim: error: cannot write to standard output: No space left on device\n"


def test_a_tiny_time_scale_warns_and_keeps_figures_short(write_scenario: ScenarioWriter,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A time scale of 1e-300 runs with a warning, and no printed figure is hundreds of digits long."""
    path = write_scenario(demo_text(clients="select", expect="expect:\n  select: [elapsed <= 5s]\n"))
    run_cli("run", path, "--time-scale", "1e-300")
    out, err = capsys.readouterr()
    assert "warning: time scale 1e-300 is below 0.001" in err
    assert max(len(word) for word in out.split()) < 20


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.1])
def test_ctrl_c_while_netsim_starts_exits_130(tmp_path: Path, delay: float) -> None:
    """Ctrl-C while the scenario loads or its servers start: exit 130, one line on stderr, nothing left."""
    scenario = tmp_path / "scenario.yaml"
    os.mkfifo(scenario)  # netsim opens it once its imports are done: then the clock starts
    with netsim_process("run", scenario, "--time-scale", "0.1") as process:
        with open(scenario, "w", encoding="utf-8") as writer:
            writer.write(demo_text(clients="select"))
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 130, err
        assert err.splitlines() == ["netsim: interrupted; every server and client netsim started has stopped"]
        assert _group_is_gone(process.pid) or _wait_gone(process.pid)


@pytest.mark.slow
def test_serve_stopped_by_sigterm_exits_143(write_scenario: ScenarioWriter) -> None:
    """SIGTERM stops `netsim serve` as Ctrl-C does, with its fidelity and `stopped`, and exit 143."""
    path = write_scenario(demo_text(delay="10ms"))
    with netsim_process("serve", path, "--free-ports") as process:
        assert process.stdout is not None
        assert [process.stdout.readline().strip() for _ in range(4)][3] == "ready"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 143
        assert out.splitlines()[-1] == "stopped" and "stopped by SIGTERM" in err
        assert _wait_gone(process.pid), "a server process outlived netsim serve"


def _wait_gone(pgid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not _group_is_gone(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("flag", ["--json", "--log-json", "--junit", "--html", "--trace"])
def test_dash_is_not_taken_for_a_file_named_dash(write_scenario: ScenarioWriter, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], flag: str) -> None:
    """`-` as an output (standard input, for a scenario) is refused with exit 2 before the run,
    rather than written as a file named '-'."""
    path = write_scenario(demo_text(clients="select"))
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", path, "--time-scale", SCALE, flag, "-") == 2
    assert f"{flag} -: netsim writes {flag} to a file, not to standard output" in capsys.readouterr().err
    assert not (tmp_path / "-").exists()


# A program that checks its server is up (a connection it closes at once), then reads.
PROBE = ("import socket, sys; address = ('127.0.0.1', int(sys.argv[1])); "
         "socket.create_connection(address).close(); sock = socket.create_connection(address); "
         "all(iter(lambda: sock.recv(64), b''))")


def test_a_program_that_leaves_processes_running_is_named_and_a_long_error_keeps_its_end(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """A program that exited with processes of its own still running is listed with how many
    netsim ended, though it exited 0, and so is one that made more connections than its
    targets; a stderr line too long for the terminal is cut in its middle, so that the end
    of the message stays."""
    path = write_scenario(f"""\
netsim: 1
name: leftovers
servers: [{{name: a, poem: "1\\n"}}]
clients:
  - {{model: command, name: leaves, run: [sh, -c, "sleep 30 & sleep 30 & exit 0"]}}
  - {{model: command, name: long,
     run: [sh, -c, "echo 'cannot open /{'d' * 120}/x.py: No such file' >&2; exit 2"]}}
  - {{model: command, name: probe, run: [{sys.executable}, -c, "{PROBE}", "{{port:a}}"]}}
""")
    assert run_cli("run", path, "--free-ports", "--no-timeline") == 1
    out = capsys.readouterr().out
    shown = out[out.index("\nprograms\n") + 1:].splitlines()
    assert shown[:5] == [
        "programs",
        "  leaves  exit 0, leaving 2 processes running, which netsim ended, nothing on its stderr",
        "  long    exit 2, its stderr ends:",
        f"          | cannot open /{'d' * 27} ... {'d' * 36}/x.py: No such file",
        "  probe   exit 0, 1 connection more than its targets (each judged by its fullest), "
        "nothing on its stderr",
    ]


def test_a_failed_expectation_on_connections_lists_which_failed_and_why(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """Under the verdicts, a client whose `intact`, `errors` or `bytes` expectation failed
    has its failed connections listed with why; one whose expectations held is not listed."""
    path = write_scenario("""\
netsim: 1
name: graded
servers: [{name: a, poem: "1\\n"}, {name: b, poem: "2\\n"}]
clients:
  - {model: command, name: lazy, run: ["true"]}
  - blocking
expect:
  all: [intact == 100%]
""")
    assert run_cli("run", path, "--free-ports", "--no-timeline") == 1
    out = capsys.readouterr().out
    assert ("(a program's ttfb is taken at its servers, from their accept to their first byte sent;\n"
            " netsim's models take theirs from their connect to their first read)") in out
    shown = out[out.index("\nconnections\n") + 1:].splitlines()
    assert shown[:4] == [
        "connections",
        "  lazy  #1 a: missing: the client made no connection to a for this one",
        "        #2 b: missing: the client made no connection to b for this one",
        "FAILED: 2 of 3 expectations held (2 passed, 1 failed)",
    ]


def test_a_programs_escape_sequences_reach_the_terminal_as_text(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """What a program writes to its stderr is shown under the verdicts, and in the -v log,
    with its escape sequences (a window title, a colour, a bell) as text, not acted on."""
    path = write_scenario(r"""
netsim: 1
name: escapes
servers: [{name: a, poem: "1\n"}]
clients:
  - {model: command, name: rude,
     run: [PYTHON, -c, 'import sys; sys.stderr.write("title \x1b]0;pwned\x07 red \x1b[31mX\n"); sys.exit(1)']}
""".replace("PYTHON", sys.executable))
    assert run_cli("run", path, "--free-ports", "--no-timeline", "-v") == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err and "\x07" not in captured.out + captured.err
    assert r"| title \x1b]0;pwned\x07 red \x1b[31mX" in captured.out  # under the verdicts
    logged = [line for line in captured.err.splitlines() if "program_output" in line]
    assert logged and logged[0].endswith(r"line=title \x1b]0;pwned\x07 red \x1b[31mX")


def test_a_failed_program_is_explained_under_the_verdicts(write_scenario: ScenarioWriter,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Under the verdicts, each `command` client whose program failed says how (not started,
    ended at its timeout, or its exit code) with the end of its stderr, and so does one that
    exited 0 but failed an expectation on its connections; one that exited 0, or with the
    code its expectation asks for, and failed nothing else, is not listed."""
    path = write_scenario("""\
netsim: 1
name: programs
servers: [{name: a, poem: "1\\n"}]
clients:
  - {model: command, name: missing, run: [./no-such-program]}
  - {model: command, name: slow, run: [sleep, "5"], timeout: 200ms}
  - {model: command, name: fails,
     run: [sh, -c, "echo one >&2; echo two >&2; echo three >&2; echo four >&2; exit 4"]}
  - {model: command, name: fine, run: ["true"]}
  - {model: command, name: expected, run: [sh, -c, "echo fine >&2; exit 3"]}
  - {model: command, name: gives-up, run: [sh, -c, "echo timeout on {port:a} >&2"]}
expect:
  expected: [exit_code == 3]
  gives-up: [errors == 0]
""")
    assert run_cli("run", path, "--free-ports", "--time-scale", "0.5", "--no-timeline") == 3  # (missing)
    out = capsys.readouterr().out
    shown = out[out.index("\nprograms\n") + 1:].splitlines()
    assert shown[:8] == [
        "programs",
        "  missing   could not be started (exit 127):",
        "            | netsim: cannot run './no-such-program': No such file or directory",
        "  slow      ended by netsim at its timeout: exit -15 (SIGTERM), nothing on its stderr",
        "  fails     exit 4, its stderr ends:",
        "            | two",
        "            | three",
        "            | four",
    ]
    # One that exits 0 shows its stderr too where an expectation on its connections failed.
    assert shown[8] == "  gives-up  exit 0, its stderr ends:"
    assert shown[9].startswith("            | timeout on ")
    assert shown[10] == "connections"


def test_validate_warns_of_intact_judged_without_output(write_scenario: ScenarioWriter,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid scenario whose command client has an `intact` expectation and no `output:` is
    valid (exit 0), with a warning that `intact` then judges what the program's kernel took in."""
    path = write_scenario("""\
        netsim: 1
        name: unread
        servers: [{name: a, poem: "x\\n"}]
        clients: [{model: command, name: student, run: [./client, "{ports}"]}]
        expect:
          student: [intact == 100%]
    """)
    assert run_cli("validate", path) == 0
    err = capsys.readouterr().err
    # At the client's entry, file:line:col as a problem is (line 4, column 11 of the file).
    assert (f"{path}:4:11: warning: student: without `output:`, `intact` judges what its program's "
            f"kernel acknowledged, not what the program read") in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(Path(path).read_text()))
    assert run_cli("validate", "-") == 0
    assert "<stdin>:4:11: warning: student: without `output:`" in capsys.readouterr().err


@pytest.mark.parametrize(("expect", "code"), [("", 3), ("expect: {missing: [exit_code == 127]}", 0)])
def test_a_program_netsim_cannot_start_is_a_run_not_carried_out(
        write_scenario: ScenarioWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        expect: str, code: int) -> None:
    """A command client whose program is not there could not be run (exit 3, not a failed
    expectation), said after every client's verdicts, with the path and where it was looked
    up, in the JSON's warnings too; the other clients still run and are judged. An
    expectation on its exit code judges it instead."""
    path = write_scenario(f"""\
netsim: 1
name: class
servers: [{{name: a, poem: "1\\n"}}]
clients:
  - {{model: command, name: missing, run: [./nonexistent-client]}}
  - {{model: command, name: present, run: ["true"]}}
{expect}
""")
    result, junit = tmp_path / "result.json", tmp_path / "junit.xml"
    assert run_cli("run", path, "--free-ports", "--no-timeline", "--json", result, "--junit", junit) == code
    out, err = capsys.readouterr()
    said = (f"client 'missing': netsim could not start its program (cannot run './nonexistent-client': "
            f"No such file or directory; looked up in {tmp_path.resolve()}): its run could not be carried "
            f"out; an expectation `exit_code == 127` would judge that instead")
    assert "PASS  present  exit_code == 0" in out
    errors = ET.fromstring(junit.read_text()).get("errors")
    data = json.loads(result.read_text())
    if code == 3:
        assert f"netsim: error: {said}" in err.splitlines()
        assert said in data["warnings"] and data["not_carried_out"] == [said]
        assert errors == "1"  # a case in error, as a run not carried out leaves: not a failure
    else:
        assert "netsim: error" not in err and "PASS  missing  exit_code == 127" in out
        assert "not_carried_out" not in data and errors == "0"
