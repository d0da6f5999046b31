"""The command model: the user's own program, run against the servers and measured from their side."""

from __future__ import annotations

import json
import math
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import netsim
from netsim import events as netsim_events
from netsim.clients import command
from tests.conftest import ScenarioWriter
from tests.test_lifetime import alive

PYTHON = sys.executable
POEM = "1111\\n2222\\n3333\\n4444\\n"  # four lines of 5 bytes, as YAML writes them
# A Python program's start and the loop around it, on a loaded two-core machine (wall s).
START = 0.6


def three_servers(client: str) -> str:
    """Three servers, four lines with 100 ms after each, and one client entry."""
    lines = ["netsim: 1", "name: graded", "servers:"]
    lines += [f'  - {{name: {name}, poem: "{POEM}", delay: 100ms}}' for name in "abc"]
    return "\n".join([*lines, f"clients: [{client}]", ""])


def write_program(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return name


OVERLAPPING = """\
import asyncio, sys
async def fetch(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
    poem = await reader.read()
    writer.close()
    return poem.decode()
async def main():
    for poem in await asyncio.gather(*(fetch(port) for port in sys.argv[1:])):
        print(poem)
asyncio.run(main())
"""

IN_TURN = """\
import socket, sys
for port in sys.argv[1:]:
    with socket.create_connection(("127.0.0.1", int(port))) as sock:
        poem = b""
        while data := sock.recv(1024):
            poem += data
    print(poem.decode())
"""


def run(write_scenario: ScenarioWriter, text: str, *, time_scale: float = 1.0) -> netsim.RunResult:
    (result,) = netsim.run_scenario(netsim.load_scenario(write_scenario(text)), time_scale=time_scale).runs
    return result


def test_a_program_that_overlaps_takes_one_servers_time(write_scenario: ScenarioWriter,
                                                        tmp_path: Path) -> None:
    """An asyncio program against three 400 ms servers takes about 400 ms, plus its own start,
    and every connection is measured intact from the servers' side."""
    program = write_program(tmp_path, "client.py", OVERLAPPING)
    result = run(write_scenario, three_servers(
        f'{{model: command, run: [{PYTHON}, {program}, "{{ports}}"], output: poems}}'))
    assert result.ideal == pytest.approx(0.4)
    assert 0.4 <= result.elapsed <= 0.4 + START
    assert result.program is not None and result.program.exit_code == 0
    assert [(conn.server, conn.bytes, conn.intact, conn.error) for conn in result.connections] == [
        ("a", 20, True, None), ("b", 20, True, None), ("c", 20, True, None)]
    for conn in result.connections:
        assert conn.served is not None and conn.served.how == "closed" and conn.served.acked == 20
        assert conn.ttfb < 0.05 and conn.duration == pytest.approx(0.4, abs=0.05)
    assert result.passed


def test_a_program_that_waits_in_turn_takes_the_sum(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A blocking program declared sequential takes the servers' summed time, its ideal."""
    program = write_program(tmp_path, "client.py", IN_TURN)
    result = run(write_scenario, three_servers(
        f'{{model: command, run: "{PYTHON} {program} {{ports}}", concurrent: false}}'))
    assert result.ideal == pytest.approx(1.2)
    assert 1.2 <= result.elapsed <= 1.2 + START
    assert all(conn.intact for conn in result.connections)


def test_placeholders_and_the_environment_name_the_servers(write_scenario: ScenarioWriter) -> None:
    """{ports}, {addresses}, {port:NAME}, {host} and NETSIM_ADDRESSES reach the program."""
    show = "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['NETSIM_ADDRESSES']]))"
    result = run(write_scenario, f"""\
        netsim: 1
        name: shown
        servers:
          - {{name: a, poem: "x\\n"}}
          - {{name: b, poem: "y\\n"}}
        clients:
          - model: command
            run: [{PYTHON}, -c, "{show}", "{{ports}}", "{{addresses}}", "--b={{port:b}}", "{{host}}",
                  "{{{{x}}}}"]
        expect:
          command: [errors == 2]
    """)
    assert result.program is not None
    argv, environment = json.loads(result.program.stdout)
    a, b = (conn.port for conn in result.connections)
    assert argv == [str(a), str(b), f"127.0.0.1:{a}", f"127.0.0.1:{b}", f"--b={b}", "127.0.0.1", "{x}"]
    assert environment == f"127.0.0.1:{a} 127.0.0.1:{b}"
    # It connected to nothing: both connections are missing, and the scenario expected that.
    assert [(conn.error, conn.bytes, math.isnan(conn.ttfb)) for conn in result.connections] == [
        ("missing", 0, True), ("missing", 0, True)]
    assert result.passed


def test_a_nonzero_exit_fails_the_run_unless_expected(write_scenario: ScenarioWriter) -> None:
    """exit 3 fails a run with no exit_code expectation (an implicit exit_code == 0), and passes
    one that expects it."""
    text = f"""\
        netsim: 1
        name: exits
        servers: [{{name: a, poem: "x\\n", fault: {{kind: refuse}}}}]
        clients: [{{model: command, run: [{PYTHON}, -c, "import sys; sys.exit(3)"]}}]
        expect:
          command: [errors == 1{{extra}}]
    """
    plain = run(write_scenario, text.replace("{extra}", ""))
    assert not plain.passed
    (implicit,) = [verdict for verdict in plain.expectations if verdict.expectation.text == "exit_code == 0"]
    assert not implicit.passed and implicit.actual == 3
    assert plain.connections[0].error == "refused"
    expected = run(write_scenario, text.replace("{extra}", ", exit_code == 3"))
    assert expected.passed
    assert [verdict.expectation.text for verdict in expected.expectations] == ["errors == 1",
                                                                                "exit_code == 3"]


def test_a_program_past_its_timeout_is_ended_with_its_process_group(write_scenario: ScenarioWriter,
                                                                   tmp_path: Path) -> None:
    """At the client's timeout the program and what it started are ended; the result says so."""
    marker = tmp_path / "child.pid"
    program = write_program(tmp_path, "hang.py", f"""\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(marker)!r}, "w").write(str(child.pid))
time.sleep(60)
""")
    started = time.monotonic()
    result = run(write_scenario, f"""\
        netsim: 1
        name: hangs
        servers: [{{name: a, poem: "x\\n"}}]
        clients: [{{model: command, run: [{PYTHON}, {program}], timeout: 1s}}]
        expect:
          command: [exit_code < 0]
    """)
    assert time.monotonic() - started < 10
    assert result.program is not None and result.program.timed_out
    assert result.program.exit_code < 0  # ended by a signal
    child = int(marker.read_text())
    assert not alive(child)
    assert result.connections[0].error == "missing"


def test_a_connection_open_when_the_program_is_ended_at_its_timeout_is_a_timeout(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program still reading a slow poem at its timeout is ended, and that connection
    counts as a timeout (`errors.timeout`), not as one the program chose to close; one it
    finished before stays whole."""
    program = write_program(tmp_path, "reads.py", IN_TURN)
    result = run(write_scenario, f"""\
        netsim: 1
        name: slow
        servers:
          - {{name: quick, poem: "x\\n"}}
          - {{name: slow, poem: "1\\n2\\n3\\n4\\n", delay: 1s}}
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{port:quick}}", "{{port:slow}}"],
                    timeout: 2.5s}}]
        expect:
          command: [errors.timeout == 1, exit_code < 0]
    """, time_scale=0.5)
    assert result.program is not None and result.program.timed_out
    assert [(conn.server, conn.error) for conn in result.connections] == [
        ("quick", None), ("slow", "timeout")]
    assert result.connections[1].message == "still open when netsim ended the program at its timeout"
    assert result.passed


def test_a_hung_program_without_a_timeout_is_ended_and_judged(
        write_scenario: ScenarioWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program with no `timeout` of its own is ended at one derived from the ideal (three
    times it, plus a margin), and judged by its exit code, not a run that could not be
    carried out. (Its connection got the whole poem before that: it is no timeout.)"""
    from netsim import runner

    monkeypatch.setattr(runner, "TIMEOUT_MARGIN", 0.5)  # seconds, for the test's sake
    program = write_program(tmp_path, "hangs.py", "import socket, sys, time\n"
                            "sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
                            "time.sleep(60)\n")
    result = run(write_scenario, f"""\
        netsim: 1
        name: hangs
        servers: [{{name: a, poem: "1\\n2\\n", delay: 100ms}}]
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{port:a}}"]}}]
    """)
    assert result.program is not None and result.program.timed_out
    assert result.wall_elapsed == pytest.approx(3 * 0.2 + 0.5, abs=0.5)
    assert [(conn.error, conn.intact) for conn in result.connections] == [(None, True)]
    assert not result.passed  # exit_code == 0 is expected of a program by default


def test_what_a_program_leaves_running_is_ended_even_if_it_left_its_group(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program that exits leaving a daemon (double fork, setsid, still holding its stdout)
    and a child in its own group is judged at its exit, not held until the run's limit;
    both are ended and counted, and its output was read to the end."""
    marker = tmp_path / "pids"
    program = write_program(tmp_path, "daemon.py", f"""\
import os, socket, subprocess, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
while sock.recv(1024):
    pass
print("1111")
sys.stdout.flush()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the daemon: another session, stdout still open
        with open({str(marker)!r}, "w") as pids:
            pids.write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(60)
    os._exit(0)
while not os.path.exists({str(marker)!r}):
    time.sleep(0.01)
""")
    started = time.monotonic()
    result = run(write_scenario, f"""\
        netsim: 1
        name: daemons
        servers: [{{name: a, poem: "1111\\n"}}]
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{port:a}}"], timeout: 20s, output: poems}}]
    """)
    assert time.monotonic() - started < 8  # judged at its exit, not at its timeout
    assert result.program is not None and not result.program.timed_out
    assert (result.program.exit_code, result.program.left_running) == (0, 2)
    assert result.passed  # its output held the poem: read to the end
    time.sleep(0.2)
    for pid in map(int, marker.read_text().split()):
        assert not alive(pid)


def test_a_program_that_probes_before_it_reads_is_judged_by_its_reads(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program that opens and closes each port first (to see it is up), then reads each
    poem, is judged by the connections that carried the poems, and its extra connections
    are counted and kept, as their servers saw them, for the pictures: rows after the
    targets', the probes first in time."""
    program = write_program(tmp_path, "probes.py", """\
import socket, sys
for port in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(port))).close()
""" + IN_TURN.split("\n", 1)[1])
    result = run(write_scenario, f"""\
        netsim: 1
        name: probes
        servers: [{{name: a, poem: "{POEM}", delay: 20ms}}, {{name: b, poem: "{POEM}", delay: 20ms}}]
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{ports}}"], output: poems}}]
    """)
    assert [(conn.server, conn.bytes, conn.intact, conn.error) for conn in result.connections] == [
        ("a", 20, True, None), ("b", 20, True, None)]
    assert result.program is not None and result.program.extra_connections == 2
    assert result.passed
    assert result.metrics()["extra_connections"] == 2  # what `extra_connections == 0` judges
    extra = result.program.extra
    assert [connection.server for connection in extra] == ["a", "b"]
    assert all(connection.served.bytes < 20 for connection in extra)  # a line at most: not a poem
    # each probe came before its server's read (the servers accept on their own: only per server)
    assert [connection.served.accepted < conn.start for connection, conn in zip(extra, result.connections,
                                                                                strict=True)] == [True, True]
    from netsim.views._picture import picture_of
    from netsim.views.timeline import render

    text = render(picture_of({"scenario": "probes", "time_scale": 1.0, "runs": [result.to_dict()]}))
    assert "1 connection" not in text and "2 connections and 2 beyond its targets" in text
    rows = [line for line in text.splitlines() if line.startswith(("  #", "  +"))]
    assert [row.split()[:2] for row in rows] == [["#1", "a"], ["#2", "b"], ["+", "a"], ["+", "b"]]
    assert all("beyond its targets, client" in row for row in rows[2:])  # closed, or reset


def test_output_poems_reads_the_whole_output_and_logs_a_bounded_part(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """The poems are looked for in all of the program's output, past the 64 KiB the result
    keeps and across reads; the log takes at most LOG_LINES lines of it, with a note, and
    cuts a long line at LINE_LIMIT."""
    from netsim.clients import command

    program = write_program(tmp_path, "noisy.py", OVERLAPPING.replace(
        "asyncio.run(main())", "sys.stdout.write('debug ' * 40_000 + '\\n' + 'x\\n' * 20_000)\n"
                               "asyncio.run(main())"))
    lines: list[str] = []

    def observe(event: object) -> None:
        if isinstance(event, netsim_events.ProgramOutput) and event.stream == "stdout":
            lines.append(event.line)

    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: noisy
        servers: [{{name: a, poem: "{POEM}", delay: 10ms}}, {{name: b, poem: "5555\\n6666\\n"}}]
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{ports}}"], output: poems}}]
    """))
    (result,) = netsim.run_scenario(scenario, observer=observe).runs
    assert [(conn.server, conn.intact) for conn in result.connections] == [("a", True), ("b", True)]
    assert result.program is not None
    kept = result.program.stdout
    head, _, rest = kept.partition("\n[netsim: ")
    note, _, tail = rest.partition("]\n")
    assert head == ("debug " * 40_000)[:32 * 1024]  # its first half of 64 KiB, then its end
    poems = "1111\n2222\n3333\n4444\n\n5555\n6666\n\n"  # printed last
    left_out = len("debug " * 40_000) + 1 + 2 * 20_000 + len(poems) - 32 * 1024 - len(tail)
    assert note == f"{left_out:,} bytes of its stdout left out here"
    assert tail.endswith("x\n" * 100 + poems) and len(tail) <= 32 * 1024
    assert len(lines[0]) == command.LINE_LIMIT  # the long line, cut
    assert len(lines) == command.LOG_LINES
    assert lines[-1].endswith("[netsim: the log takes no more of its stdout]")


def test_output_poems_beside_a_proxy_looks_only_for_poems_and_counts_no_extra_connections(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """With a proxy among the targets, `output: poems` looks for the poem servers' poems
    only, and the proxy's own upstream connection is not taken for one of the program's."""
    program = write_program(tmp_path, "both.py", OVERLAPPING)
    result = run(write_scenario, f"""\
        netsim: 1
        name: proxied
        servers:
          - {{name: a, poem: "{POEM}", delay: 10ms}}
          - {{name: b, poem: "{POEM}", delay: 10ms}}
          - {{name: p, upstream: b}}
        clients: [{{model: command, targets: [a, p], run: [{PYTHON}, {program}, "{{ports}}"],
                    output: poems}}]
    """)
    # The proxy's connection is judged from the proxy's side: it passed on all its upstream
    # sent, as sent.
    assert [(conn.server, conn.intact) for conn in result.connections] == [("a", True), ("p", True)]
    assert result.program is not None and result.program.extra_connections == 0
    assert result.passed


def test_a_program_reading_a_server_directly_and_through_a_proxy_is_judged_by_its_own_connection(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program that reads a whole poem through a proxy to `a` and leaves its own connection
    to `a` after one line is judged by that connection: the proxy's connection to `a`
    (which carried more) is the proxy's, not the program's, nor one extra."""
    program = write_program(tmp_path, "both_ways.py", """\
import socket, sys
proxied, direct = (int(port) for port in sys.argv[1:])
with socket.create_connection(("127.0.0.1", proxied)) as sock:
    while sock.recv(1024):
        pass
with socket.create_connection(("127.0.0.1", direct)) as sock:
    print(sock.recv(5).decode())  # the first line only: it leaves after it
""")
    result = run(write_scenario, f"""\
        netsim: 1
        name: both-ways
        servers:
          - {{name: a, poem: "{POEM}", delay: 50ms}}
          - {{name: p, upstream: a}}
        clients: [{{model: command, targets: [p, a], run: [{PYTHON}, {program}, "{{ports}}"]}}]
    """)
    proxied, direct = result.connections
    assert (proxied.server, proxied.bytes, proxied.error) == ("p", 20, None)
    assert direct.server == "a" and direct.error == "error" and direct.served is not None
    assert direct.served.how in ("client_closed", "client_reset") and direct.served.bytes < 20
    assert result.program is not None and result.program.extra_connections == 0


def test_output_under_the_kept_limit_is_kept_whole(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """40 KiB of output, read in pieces, is kept as it is: no note that it was cut."""
    program = write_program(tmp_path, "chatty.py", "import sys\nsys.stdout.write('y' * 40_000)\n")
    result = run(write_scenario, f"""\
        netsim: 1
        name: chatty
        servers: [{{name: a, poem: "x\\n", fault: {{kind: refuse}}}}]
        clients: [{{model: command, run: [{PYTHON}, {program}]}}]
    """)
    assert result.program is not None and result.program.stdout == "y" * 40_000


def test_the_runs_timeout_ends_a_program_and_judges_it_and_the_next_client_still_runs(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """Under --timeout (timeout= here), a hung program is ended at it and judged (exit 1's
    ground, not a run that could not be carried out), and the clients after it run."""
    program = write_program(tmp_path, "hangs.py", "import time; time.sleep(60)\n")
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: class
        servers: [{{name: a, poem: "x\\n"}}]
        clients:
          - {{model: command, name: frank, run: [{PYTHON}, {program}]}}
          - {{model: command, name: grace, run: [{PYTHON}, -c, "pass"]}}
    """))
    started = time.monotonic()
    frank, grace = netsim.run_scenario(scenario, timeout=1.5).runs
    assert time.monotonic() - started < 10
    assert frank.program is not None and frank.program.timed_out and not frank.passed
    assert grace.program is not None and grace.program.exit_code == 0


@pytest.mark.parametrize(("program", "code", "why"), [
    ("./no-such-program", 127, "No such file or directory"),
    ("./not-executable.py", 126, "Permission denied"),
])
def test_a_program_that_cannot_start_exits_as_a_shell_says(write_scenario: ScenarioWriter, tmp_path: Path,
                                                           program: str, code: int, why: str) -> None:
    """A program that is not there is reported as exit code 127, one that cannot be run (not
    executable) as 126, as shells report them, with the reason on stderr; it was not started,
    so it has no elapsed time, and a timing expectation fails rather than holds."""
    write_program(tmp_path, "not-executable.py", "print('never')\n")
    result = run(write_scenario, f"""\
        netsim: 1
        name: nothing
        servers: [{{name: a, poem: "x\\n"}}]
        clients: [{{model: command, run: [{program}]}}]
        expect:
          all: [elapsed <= 10s]
    """)
    assert result.program is not None and not result.program.started
    assert result.program.exit_code == code
    assert result.program.stderr == f"netsim: cannot run {program!r}: {why}"
    assert math.isnan(result.elapsed)
    assert [(verdict.expectation.text, verdict.passed) for verdict in result.expectations] == [
        ("elapsed <= 10s", False), ("exit_code == 0", False)]
    saved = result.to_dict()
    assert saved["elapsed"] is None and saved["program"]["started"] is False


def test_the_program_runs_in_the_scenarios_folder(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A relative path in `run` is found from the scenario file's folder, wherever netsim runs."""
    write_program(tmp_path, "where.py", "import os; print(os.getcwd())")
    result = run(write_scenario, f"""\
        netsim: 1
        name: where
        servers: [{{name: a, poem: "x\\n", fault: {{kind: refuse}}}}]
        clients: [{{model: command, run: [{PYTHON}, where.py]}}]
    """)
    assert result.program is not None and result.program.stdout.strip() == str(tmp_path.resolve())


def test_output_poems_wants_every_poem_in_the_output(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """With output: poems, a program that reads every poem but prints none has no intact connection."""
    program = write_program(tmp_path, "quiet.py", OVERLAPPING.replace("print(poem)", "pass"))
    result = run(write_scenario, f"""\
        netsim: 1
        name: quiet
        servers: [{{name: a, poem: "{POEM}", delay: 10ms}}]
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{ports}}"], output: poems}}]
    """)
    (conn,) = result.connections
    assert (conn.bytes, conn.intact, conn.error) == (20, False, None)
    assert conn.message is not None and "does not contain the poem of a" in conn.message


def test_output_poems_wants_a_copy_for_each_connection(write_scenario: ScenarioWriter,
                                                       tmp_path: Path) -> None:
    """Three servers that send one poem: a program that reads all three and prints one copy
    has one intact connection, and the others say the output holds the poem only once."""
    program = write_program(tmp_path, "once.py", OVERLAPPING.replace(
        "    for poem in await asyncio.gather(", "    for poem in (await asyncio.gather(").replace(
        "for port in sys.argv[1:])):", "for port in sys.argv[1:])))[:1]:"))
    result = run(write_scenario, three_servers(
        f'{{model: command, run: [{PYTHON}, {program}, "{{ports}}"], output: poems}}'), time_scale=0.2)
    assert [conn.intact for conn in result.connections] == [True, False, False]
    assert [conn.message for conn in result.connections[1:]] == [
        f"the program's output does not contain the poem of {name} (output: poems)" for name in "bc"]


# Prints each line as it arrives, from whichever server sent it, after a label: "a: 1111".
STREAMING = """\
import selectors, socket, sys
selector = selectors.DefaultSelector()
for name, port in zip("abc", sys.argv[1:]):
    sock = socket.create_connection(("127.0.0.1", int(port)))
    selector.register(sock, selectors.EVENT_READ, [name, b""])
while selector.get_map():
    for key, _ in selector.select():
        data = key.fileobj.recv(1024)
        key.data[1] += data
        *lines, key.data[1] = key.data[1].split(b"\\n")
        for line in lines:
            print(f"{key.data[0]}: {line.decode()}", flush=True)
        if not data:
            selector.unregister(key.fileobj)
"""


@pytest.mark.parametrize(("output", "drop", "intact"), [
    ("lines", None, [True, True, True]),
    ("lines", "c: 3333", [True, True, False]),  # one line of c's poem never printed
    ("poems", None, [False, False, False]),  # no poem in one piece
])
def test_output_lines_takes_each_poems_lines_in_order_among_the_others(
        write_scenario: ScenarioWriter, tmp_path: Path, output: str, drop: str | None,
        intact: list[bool]) -> None:
    """`output: lines` wants each poem's lines in order, each on a line of its own and perhaps
    after a label, with other poems' lines between them; three identical poems need three
    copies of each line. `output: poems` wants each poem in one piece."""
    text = STREAMING if drop is None else STREAMING.replace(
        'print(f"{key.data[0]}: {line.decode()}", flush=True)',
        f'shown = f"{{key.data[0]}}: {{line.decode()}}"\n            '
        f'print(shown if shown != {drop!r} else "", flush=True)')
    program = write_program(tmp_path, "streams.py", text)
    result = run(write_scenario, three_servers(
        f'{{model: command, run: [{PYTHON}, {program}, "{{ports}}"], output: {output}}}'), time_scale=0.2)
    assert [conn.intact for conn in result.connections] == intact
    # Printed as `output: lines` takes it, a poem's lines are said to be there for `output: poems`.
    instead = (": its output has the poem's lines, interleaved with others' or labelled: `output: lines` "
               "takes that") if output == "poems" else ""
    assert [conn.message for conn in result.connections if not conn.intact] == [
        f"the program's output does not contain the poem of {conn.server} (output: {output}){instead}"
        for conn in result.connections if not conn.intact]


def test_a_program_that_leaves_early_is_seen_by_the_server(write_scenario: ScenarioWriter,
                                                          tmp_path: Path) -> None:
    """A program that reads one line and closes is measured as an error with the bytes its
    kernel took, which its message says; one that resets is an error too, not a reset
    (which counts the server's). One that reads the whole poem and closes in the server's
    last pause is intact and no error: it knew where the poem ends."""
    program = write_program(tmp_path, "early.py", """\
import socket, struct, sys
for port, how in zip(sys.argv[1:], ["close", "reset", "whole"]):
    sock = socket.create_connection(("127.0.0.1", int(port)))
    if how == "whole":
        received = b""
        while len(received) < 20:
            received += sock.recv(20 - len(received))
    else:
        sock.recv(5)
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
""")
    result = run(write_scenario, f"""\
        netsim: 1
        name: early
        servers:
          - {{name: a, poem: "{POEM}", delay: 200ms}}
          - {{name: b, poem: "{POEM}", delay: 200ms}}
          - {{name: c, poem: "{POEM}", delay: 200ms}}
        clients: [{{model: command, run: [{PYTHON}, {program}, "{{ports}}"]}}]
    """)
    closed, reset, whole = result.connections
    assert (whole.error, whole.bytes, whole.intact) == (None, 20, True)
    assert whole.served is not None and whole.served.how == "client_closed"
    assert whole.message == "the client closed it with the whole poem, before the server's end"
    assert (closed.error, closed.bytes, closed.intact) == ("error", 5, False)
    assert closed.served is not None and closed.served.how == "client_closed"
    assert closed.message == "the client closed it before the server's end, after 5 of 20 bytes"
    assert (reset.error, reset.message, reset.intact) == (
        "error", "the client reset it (it closed with bytes unread), after 5 of 20 bytes", False)
    assert reset.served is not None and reset.served.how == "client_reset"


def test_netsims_own_models_report_both_sides(write_scenario: ScenarioWriter) -> None:
    """A built-in model's connections carry the servers' account beside the client's own."""
    result = run(write_scenario, f"""\
        netsim: 1
        name: both
        servers: [{{name: a, poem: "{POEM}", delay: 10ms}}]
        clients: [select]
    """)
    (conn,) = result.connections
    assert (conn.bytes, conn.intact) == (20, True)
    assert conn.served is not None
    assert (conn.served.how, conn.served.bytes, conn.served.acked) == ("closed", 20, 20)
    assert conn.served.peer.startswith("127.0.0.1:")
    assert conn.served.ttfb <= conn.ttfb + 0.005  # the server wrote before the client read


@pytest.mark.parametrize(("client", "message"), [
    ("{model: command}", "`model: command` runs your program"),
    ("{model: select, run: [x]}", "`run` applies to `model: command` only"),
    ("{model: command, run: [x, '{port:z}']}", "{port:z} names no server"),
    ("{model: command, run: [x, '{sockets}']}", "unknown placeholder {sockets}"),
    ("{model: command, run: [x, '{adresses}']}", "{adresses} in '{adresses}' (did you mean {addresses}?)"),
    ("{model: command, run: [x, '{port}']}", "{port} needs a server's name, {port:NAME} (NAME one of: b, a)"),
    ("{model: command, run: [x, '{port:aa}']}", "(did you mean {port:a}?); its servers are: b, a"),
    ("{model: command, run: \"x 'unclosed\"}", "cannot split"),
])
def test_a_command_client_is_checked_when_the_scenario_loads(write_scenario: ScenarioWriter,
                                                            client: str, message: str) -> None:
    """Mistakes in a command client's keys are load errors, with the client's line, the
    placeholder probably meant, and the servers in the scenario's order."""
    path = write_scenario(f"""\
        netsim: 1
        name: bad
        servers: [{{name: b, poem: "x\\n"}}, {{name: a, poem: "x\\n"}}]
        clients:
          - {client}
    """)
    with pytest.raises(netsim.ScenarioError) as failure:
        netsim.load_scenario(path)
    (problem,) = failure.value.problems
    assert problem.line == 5 and message in problem.message


def test_the_programs_output_is_logged_line_by_line(write_scenario: ScenarioWriter) -> None:
    """Each line the program writes is an event of the run's log, with its stream."""
    from netsim.events import Event, ProgramExited, ProgramOutput

    events: list[Event] = []
    chatty = "import sys; print('one'); print('two', file=sys.stderr)"
    path = write_scenario(f"""\
        netsim: 1
        name: chatty
        servers: [{{name: a, poem: "x\\n", fault: {{kind: refuse}}}}]
        clients: [{{model: command, run: [{PYTHON}, -c, "{chatty}"]}}]
        expect:
          command: [errors == 1]
    """)
    netsim.run_scenario(netsim.load_scenario(path), observer=events.append)
    lines = [(event.stream, event.line) for event in events if isinstance(event, ProgramOutput)]
    assert sorted(lines) == [("stderr", "two"), ("stdout", "one")]
    (exited,) = [event for event in events if isinstance(event, ProgramExited)]
    assert (exited.exit_code, exited.stdout, exited.stderr) == (0, "one\n", "two\n")


def test_run_reads_a_scenario_from_stdin(tmp_path: Path) -> None:
    """`netsim run -` reads the scenario from standard input and runs it."""
    import subprocess

    scenario = ('netsim: 1\nname: piped\nservers: [{name: a, poem: "x\\n"}]\nclients: [blocking]\n'
                'expect:\n  blocking: [intact == 100%]\n')
    done = subprocess.run([PYTHON, "-m", "netsim", "run", "-", "-q"], input=scenario, text=True,
                          capture_output=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "PASS  blocking  intact == 100%" in done.stdout


def test_a_program_is_judged_on_corruption_and_dropped_handshakes_from_the_servers_side(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program's corrupted connection is not intact; a connect to a server that drops SYNs
    is a timeout while connecting; the program's own time scale comes in its environment."""
    program = write_program(tmp_path, "tries.py", """\
import os, socket, sys
corrupt, dropped = (int(port) for port in sys.argv[1:])
print("scale", os.environ["NETSIM_TIME_SCALE"])
with socket.create_connection(("127.0.0.1", corrupt)) as sock:
    while sock.recv(1024):
        pass
try:
    socket.create_connection(("127.0.0.1", dropped), timeout=0.3)
except TimeoutError:
    print("timed out")
""")
    result = run(write_scenario, f"""\
netsim: 1
name: broken
servers:
  - {{name: corrupt, poem: "{POEM}", fault: {{kind: corrupt, after: 5}}}}
  - {{name: dropped, poem: "{POEM}", fault: {{kind: syn_drop}}}}
clients: [{{model: command, run: [{PYTHON}, {program}, "{{ports}}"]}}]
""", time_scale=0.5)
    corrupted, dropped = result.connections
    assert (corrupted.bytes, corrupted.intact, corrupted.error) == (20, False, None)
    assert "corrupt" in (corrupted.message or "")
    assert (dropped.error, dropped.phase) == ("timeout", "connect")
    assert result.program is not None and result.program.stdout == "scale 0.5\ntimed out\n"


def searched(search: Any, output: bytes, piece: int) -> list[str]:
    """What ``search`` finds in ``output`` fed ``piece`` bytes at a time."""
    for start in range(0, len(output), piece):
        search.feed(output[start:start + piece])
    search.end()
    return sorted(search.found)


@pytest.mark.parametrize("piece", [1, 3, 1000])
@pytest.mark.parametrize(("poems", "wanted", "output", "found"), [
    # three servers with one poem want it three times
    ({"a": ("1111\n2222",), "b": ("1111\n2222",), "c": ("1111\n2222",)}, {"a": 1, "b": 1, "c": 1},
     b"1111\n2222\n", ["a"]),
    ({"a": ("1111\n2222",), "b": ("1111\n2222",), "c": ("1111\n2222",)}, {"a": 1, "b": 1, "c": 1},
     b"1111\n2222\n" * 3, ["a", "b", "c"]),
    # one server read twice wants its poem twice
    ({"a": ("x\ny",)}, {"a": 2}, b"x\ny\n", ["a"]),
    ({"a": ("x\ny",)}, {"a": 2}, b"x\ny\nx\ny\n", ["a", "a"]),
    # a poem inside another's counts apart from it, wherever it stands
    ({"a": ("1111\n2222",), "b": ("2222",)}, {"a": 1, "b": 1}, b"1111\n2222\n", ["a"]),
    ({"a": ("1111\n2222",), "b": ("2222",)}, {"a": 1, "b": 1}, b"1111\n2222\n2222\n", ["a", "b"]),
    ({"a": ("1111\n2222",), "b": ("2222",)}, {"a": 1, "b": 1}, b"2222\n1111\n2222\n", ["a", "b"]),
    # either of a server's texts will do (as sent, or as written)
    ({"a": ("11112222", "1111\n2222")}, {"a": 1}, b"-11112222-", ["a"]),
])
def test_output_poems_wants_one_copy_of_a_poem_a_connection(
        poems: dict[str, tuple[str, ...]], wanted: dict[str, int], output: bytes, found: list[str],
        piece: int) -> None:
    """`output: poems` finds each connection's poem once, no copy counting for two
    connections, and a poem inside another's apart from it, however the output is cut."""
    assert searched(command._PoemSearch(poems, wanted), output, piece) == found


REFRAIN = {"a": ("Roses are red\nViolets are blue\nSugar is sweet",),
           "b": ("Violets are blue\nthe sky is too",)}


@pytest.mark.parametrize("piece", [1, 1000])
@pytest.mark.parametrize(("poems", "wanted", "output", "found"), [
    # a line two poems share, first taken by the one that reads it later
    (REFRAIN, {"a": 1, "b": 1},
     b"a: Roses are red\nb: Violets are blue\nb: the sky is too\na: Violets are blue\na: Sugar is sweet\n",
     ["a", "b"]),
    (REFRAIN, {"a": 1, "b": 1},
     b"Roses are red\nViolets are blue\nViolets are blue\nthe sky is too\nSugar is sweet\n", ["a", "b"]),
    # the shared line printed once serves one poem only
    (REFRAIN, {"a": 1, "b": 1},
     b"Roses are red\nViolets are blue\nthe sky is too\nSugar is sweet\n", ["b"]),
    # one poem three times, other lines between
    ({"a": ("1\n2",)}, {"a": 3}, b"1\n1\nnoise\n2\n1\n2\n2\n", ["a", "a", "a"]),
    ({"a": ("1\n2",)}, {"a": 3}, b"1\n2\n1\n2\n", ["a", "a"]),
])
def test_output_lines_follows_every_way_of_giving_lines_to_poems(
        poems: dict[str, tuple[str, ...]], wanted: dict[str, int], output: bytes, found: list[str],
        piece: int) -> None:
    """`output: lines` finds each connection's lines in order, a line two poems share going
    to whichever makes them whole, and never one line to two poems."""
    assert searched(command._LineSearch(poems, wanted), output, piece) == found


def test_output_lines_holds_a_bounded_number_of_ways() -> None:
    """A program that prints a line many poems share, again and again, keeps the search to
    MAX_WAYS ways at most, and the poems are still found."""
    poems = {name: ("same\n" * 5 + name,) for name in "abcdefgh"}
    search = command._LineSearch(poems, dict.fromkeys(poems, 1))
    search.feed(b"same\n" * 20)  # 8 poems half through their shared lines: thousands of ways
    assert len(search._ways) == command.MAX_WAYS
    search.feed(b"same\n" * 20)
    search.feed(b"".join(f"{name}\n".encode() for name in "abcdefgh"))
    search.end()
    assert sorted(search.found) == list("abcdefgh")


def test_a_program_that_kills_netsims_process_is_not_called_a_bug_of_the_model(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program that kills its parent (netsim's process running it) stops the run (exit 3)
    with what killed that process and who may have done it, not as a crash of the model
    with an unknown exit code; the program goes with it."""
    program = write_program(tmp_path, "parricide.py", "import os, signal, time\n"
                            "os.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(30)\n")
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: parricide
        servers: [{{name: a, poem: "x\\n"}}]
        clients: [{{model: command, name: rude, run: [{PYTHON}, {program}]}}]
    """))
    with pytest.raises(netsim.RunError) as caught:
        netsim.run_scenario(scenario)
    assert not isinstance(caught.value, netsim.ClientCrashError)
    assert str(caught.value) == (
        "client 'rude': netsim's process that runs its program was killed by SIGKILL before the "
        "program ended (the program may have done it: that process is its parent)")
    deadline = time.monotonic() + 5.0
    while running := [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()
                      and program.encode() in _cmdline(entry)]:
        assert time.monotonic() < deadline, f"the program outlived the run: {running}"
        time.sleep(0.05)


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


# Connects to every port, reads nothing, and stays until the poems have ended.
NEVER_READS = """\
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(port))) for port in sys.argv[1:]]
time.sleep(0.5)
"""


def test_intact_without_output_warns_that_it_judges_the_kernel_not_the_program(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program that never reads passes `intact` and `bytes` (its kernel acknowledged every
    byte): without `output:` the run warns that they judge the kernel, and says to add it;
    with `output: poems` it fails, and there is nothing to warn of."""
    program = write_program(tmp_path, "never_reads.py", NEVER_READS)
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: unread
        servers: [{{name: a, poem: "{POEM}", delay: 10ms}}]
        clients:
          - {{model: command, name: blind, run: [{PYTHON}, {program}, "{{ports}}"]}}
          - {{model: command, name: seen, run: [{PYTHON}, {program}, "{{ports}}"], output: poems}}
        expect:
          all: [intact == 100%, bytes == 20B]
    """))
    result = netsim.run_scenario(scenario)
    blind, seen = result.runs
    assert blind.passed and not seen.passed
    assert [warning for warning in result.warnings if "`output:`" in warning] == [
        "blind: without `output:`, `intact` and `bytes` judge what its program's kernel acknowledged, "
        "not what the program read: one that connects and never reads passes them; add `output: poems` "
        "(or `output: lines`) to judge what it printed"]


@pytest.mark.parametrize("piece", [1, 3, 1000])
@pytest.mark.parametrize(("search", "output"), [
    (command._PoemSearch, b"\x1b[1;32m1111\n\x1b[0m2222\x1b[0m\n"),
    (command._LineSearch, b"\x1b[32ma: 1111\x1b[0m\n\x1b[32ma: 2222\x1b[0m\n"),
    (command._LineSearch, b"\x1b[32m[a]\x1b[0m 1111\n\x1b[32m[a]\x1b[0m 2222\n"),
])
def test_output_is_read_without_its_terminal_escapes(search: Any, output: bytes, piece: int) -> None:
    """Colour codes and resets, before a poem's text or after it, are not read by either
    `output:`, however the output is cut (an escape split between two reads too)."""
    assert searched(search({"a": ("1111\n2222",)}, {"a": 1}), output, piece) == ["a"]


# Reads every port's poem to its end, then prints its first argument (escapes as Python's).
READS_THEN_PRINTS = """\
import socket, sys
for port in sys.argv[2:]:
    with socket.create_connection(("127.0.0.1", int(port))) as sock:
        while sock.recv(1024):
            pass
sys.stdout.buffer.write(sys.argv[1].encode().decode("unicode_escape").encode("latin-1"))
"""


@pytest.mark.parametrize("output", ["poems", "lines"])
def test_output_takes_a_poem_printed_with_crlf_line_endings(write_scenario: ScenarioWriter, tmp_path: Path,
                                                            output: str) -> None:
    """A poem printed with \\r\\n line endings is in the output for `output: poems` as for
    `output: lines`."""
    program = write_program(tmp_path, "crlf.py", READS_THEN_PRINTS)
    result = run(write_scenario, f"""\
        netsim: 1
        name: crlf
        servers: [{{name: a, poem: "1111\\n2222\\n", delay: 10ms}}]
        clients:
          - model: command
            run: [{PYTHON}, {program}, '1111\\r\\n2222\\r\\n', "{{ports}}"]
            output: {output}
    """)
    assert [conn.intact for conn in result.connections] == [True]


# Reads every port's poem to its end, then writes its second argument (escapes as Python's)
# to the stream its first names.
READS_THEN_WRITES = """\
import socket, sys
for port in sys.argv[3:]:
    with socket.create_connection(("127.0.0.1", int(port))) as sock:
        while sock.recv(1024):
            pass
stream = sys.stdout if sys.argv[1] == "stdout" else sys.stderr
stream.write(sys.argv[2].encode().decode("unicode_escape"))
"""


@pytest.mark.parametrize(("stream", "printed", "output", "instead"), [
    ("stdout", "", "poems", ": its stdout is empty"),
    ("stderr", "1111\\n2222\\n", "poems",
     ": its stdout is empty, and its stderr holds the poem: print it to stdout"),
    ("stderr", "a: 1111\\na: 2222\\n", "lines",
     ": its stdout is empty, and its stderr holds the poem: print it to stdout"),
    ("stdout", "a: 1111\\nb: xxxx\\na: 2222\\n", "poems",
     ": its output has the poem's lines, interleaved with others' or labelled: `output: lines` takes that"),
    ("stdout", "2222\\n1111\\n", "poems", ""),  # nothing to say but that it is not there
])
def test_a_poem_missing_from_the_output_says_what_was_printed_instead(
        write_scenario: ScenarioWriter, tmp_path: Path, stream: str, printed: str, output: str,
        instead: str) -> None:
    """A poem that `output:` does not find in the program's stdout is said to be missing with
    what stands in its place, where the kept streams tell: an empty stdout, the poem on
    stderr, its lines interleaved (which `output: lines` would take)."""
    program = write_program(tmp_path, "writes.py", READS_THEN_WRITES)
    result = run(write_scenario, f"""\
        netsim: 1
        name: instead
        servers: [{{name: a, poem: "1111\\n2222\\n", delay: 10ms}}]
        clients:
          - model: command
            run: [{PYTHON}, {program}, {stream}, '{printed}', "{{ports}}"]
            output: {output}
    """)
    (conn,) = result.connections
    assert (conn.intact, conn.message) == (
        False, f"the program's output does not contain the poem of a (output: {output}){instead}")


def test_a_program_told_no_port_on_free_ports_is_told_it_may_use_the_fixed_one(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A server with a fixed port moved to a free one (free_ports) and a program whose `run:`
    has no placeholder that made no connection: the missing connection says the program may
    be connecting to the scenario's port, and how to give it the real one. With a
    placeholder, it says nothing of the kind."""
    with socket.socket() as probe:  # a port nothing listens on: the run moves the server off it
        probe.bind(("127.0.0.1", 0))
        fixed = probe.getsockname()[1]
    program = write_program(tmp_path, "hardcoded.py", f"""\
import socket
try:
    socket.create_connection(("127.0.0.1", {fixed}), timeout=2).close()
except OSError as error:
    print(error)
""")
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: fixed
        servers: [{{name: a, port: {fixed}, poem: "x\\n"}}]
        clients:
          - {{model: command, name: hardcoded, run: [{PYTHON}, {program}]}}
          - {{model: command, name: told, run: [{PYTHON}, {program}, "{{ports}}"]}}
    """))
    hardcoded, told = netsim.run_scenario(scenario, free_ports=True).runs
    (conn,) = hardcoded.connections
    assert conn.error == "missing" and conn.port != fixed
    assert conn.message == (
        f"the client made no connection to a for this one: its server listened on a free port "
        f"({conn.port}), not the scenario's {fixed}, and `run:` has no placeholder: the program may be "
        f"connecting to the scenario's port, where nothing listened; give it {{ports}} (or {{port:a}}), "
        f"or run without --free-ports")
    assert [conn.message for conn in told.connections] == ["the client made no connection to a for this one"]


def test_a_program_that_reads_netsim_addresses_gets_no_hint_of_fixed_ports(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program with no placeholder that reached a server on its free port (it reads
    NETSIM_ADDRESSES) knows the free ports: its other missing connection is not blamed on
    the scenario's fixed ones."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        fixed = probe.getsockname()[1]
    program = write_program(tmp_path, "first.py", """import os, socket
host, port = os.environ["NETSIM_ADDRESSES"].split()[0].rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=2) as conn:
    while conn.recv(1024):
        pass
""")
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: fixed
        servers: [{{name: a, port: {fixed}, poem: "x\\n"}}, {{name: b, port: {fixed + 1}, poem: "y\\n"}}]
        clients: [{{model: command, name: env, run: [{PYTHON}, {program}]}}]
    """))
    (run,) = netsim.run_scenario(scenario, free_ports=True).runs
    first, second = run.connections
    assert first.error is None and second.error == "missing"
    assert second.message == "the client made no connection to b for this one"


@pytest.mark.parametrize(("written", "tail"), [
    # a long line, then a short last one: the whole last 32 KiB
    ("'a' * 70_000 + '\\n' + 'b' * 60 + '\\n'", "a" * (32 * 1024 - 62) + "\n" + "b" * 60 + "\n"),
    # short lines: from the first line that begins in it
    ("'a' * 70_000 + '\\n' + ('c' * 99 + '\\n') * 400", ("c" * 99 + "\n") * 327),
])
def test_a_long_outputs_kept_end_is_its_last_32_kib(write_scenario: ScenarioWriter, tmp_path: Path,
                                                   written: str, tail: str) -> None:
    """Past 64 KiB, the result keeps a stream's last 32 KiB, cut to a line's start only where
    one begins near its own: a long last line is not dropped for a tidy start."""
    program = write_program(tmp_path, "long.py", f"import sys\nsys.stdout.write({written})\n")
    result = run(write_scenario, f"""\
        netsim: 1
        name: long
        servers: [{{name: a, poem: "x\\n", fault: {{kind: refuse}}}}]
        clients: [{{model: command, run: [{PYTHON}, {program}]}}]
    """)
    assert result.program is not None
    head, note, kept = result.program.stdout.split("\n", 2)
    assert (head, kept) == ("a" * 32 * 1024, tail)
    assert note.startswith("[netsim: ") and note.endswith(" bytes of its stdout left out here]")
