"""netsim.serving(): a scenario's servers for the user's own code, measured from their side."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import netsim
from netsim.clients import ClientModel
from netsim.clients import selectors as netsim_selectors
from tests.conftest import ScenarioWriter
from tests.test_lifetime import alive, descendants

pytest_plugins = ["pytester"]

TEXT = """\
netsim: 1
name: served
servers:
  - {name: a, poem: "1111\\n2222\\n", delay: 20ms}
  # The reset comes a pause after the first line: one at once could reach the client's
  # connect() before it returned, as ECONNRESET from connect() itself.
  - {name: b, poem: "33\\n44\\n", delay: 100ms, fault: {kind: reset, after: 3}}
"""


def read(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        data = b""
        try:
            while chunk := sock.recv(1024):
                data += chunk
        except ConnectionResetError:
            pass
        return data


@pytest.mark.parametrize("given", ["text", "path", "scenario"])
def test_a_scenario_is_served_from_text_a_path_or_a_loaded_one(write_scenario: ScenarioWriter,
                                                               given: str) -> None:
    """Each form of scenario serves its servers on free ports, and the result has what they saw."""
    path = write_scenario(TEXT)
    scenario = {"text": TEXT, "path": str(path), "scenario": netsim.load_scenario(path)}[given]
    with netsim.serving(scenario) as net:
        assert set(net.addresses) == {"a", "b"}
        assert all(port > 0 for _, port in net.addresses.values())
        assert read(net.address("a")) == b"1111\n2222\n"
        assert read(net.address("b")) == b"33\n"
    result = net.result()
    assert [(conn.server, conn.bytes, conn.intact, conn.error) for conn in result.connections] == [
        ("a", 10, True, None), ("b", 3, False, "reset")]
    assert result.check(["errors == 1", "errors.reset == 1", "intact == 50%"]).passed


def test_the_result_inside_the_block_has_the_connections_finished_so_far() -> None:
    """result() within the block fetches what the servers hold at once, not at their next beat."""
    with netsim.serving(TEXT) as net:
        read(net.address("a"))
        assert len(net.result().connections) == 1
        read(net.address("a"))
        assert len(net.result().connections) == 2


def test_the_result_counts_the_machines_steal_while_the_servers_ran() -> None:
    """The result gives the machine's CPUs and the steal time counted from the start of the
    servers: within the block up to now, after it up to their stop."""
    with netsim.serving(TEXT) as net:
        inside = net.result().machine
        assert inside is not None and inside.cpus == os.cpu_count()
    after = net.result().machine
    assert after is not None and after.window >= inside.window
    assert after == net.result().machine  # counted once, when the servers stopped
    if os.path.exists("/proc/stat"):  # a real count on Linux
        assert after.steal >= inside.steal >= 0


def test_the_result_names_the_seed_that_serves_the_same_faults_again() -> None:
    """Without a seed, the servers draw one; the result names it, and serving with it strikes
    the same connections again."""
    text = """\
netsim: 1
name: halves
servers:
  - {name: a, poem: "33\\n44\\n", delay: 20ms, fault: {kind: reset, after: 3, probability: 50%}}
"""

    def struck(seed: int | None) -> tuple[int, list[bool]]:
        with netsim.serving(text, seed=seed) as net:
            for _ in range(24):
                read(net.address("a"))
        result = net.result()
        assert result.seed is not None
        return result.seed, [conn.error is not None for conn in result.connections]

    seed, first = struck(None)
    assert 0 < sum(first) < 24  # a coin per connection, not all or none
    assert struck(seed) == (seed, first)


def test_a_connection_open_when_the_servers_stop_is_cut_by_the_stop() -> None:
    """A client still reading when the block ends was cut by the servers' stop: its error
    is `stopped`, not a timeout of a client netsim does not run."""
    sock = None
    try:
        with netsim.serving(TEXT.replace("delay: 20ms", "delay: 10s")) as net:
            sock = socket.create_connection(net.address("a"), timeout=5)
            assert sock.recv(16) == b"1111\n"  # accepted, and its first line sent
    finally:  # the servers stopped with the connection open
        if sock is not None:
            sock.close()
    (conn,) = net.result().connections
    assert (conn.error, conn.message, conn.bytes) == ("stopped", "still open when the servers stopped", 5)
    assert net.result().check(["errors.timeout == 0", "errors == 1"]).passed


def test_the_servers_stop_whatever_ends_the_block() -> None:
    """An exception in the block stops the server process, which leaves nothing behind."""
    with pytest.raises(ZeroDivisionError), netsim.serving(TEXT) as net:  # noqa: PT012
        children = descendants(os.getpid())
        assert children
        1 / 0  # noqa: B018
    assert not [pid for pid in children if alive(pid)]
    assert net.result().connections == []


def test_the_server_process_maps_no_openssl() -> None:
    """The servers' process (a fresh interpreter) loads no OpenSSL library: asyncio's import
    of ssl would map it, about 4.2 MB of the process's memory, for TLS it never speaks."""
    with netsim.serving(TEXT) as net:
        assert read(net.address("a")) == b"1111\n2222\n"  # serving, after its imports
        (server,) = descendants(os.getpid())
        maps = Path(f"/proc/{server}/maps").read_text()
        cmdline = Path(f"/proc/{server}/cmdline").read_bytes()
    assert b"netsim._fresh_server" in cmdline
    assert "libssl" not in maps and "_ssl." not in maps


def test_the_result_counts_a_proxied_read_once_not_the_proxys_own_connection_too() -> None:
    """A client that reads through a proxy made one connection: the proxy's connection to its
    upstream is the proxy's, not the client's, and its bytes are not counted twice."""
    text = ('netsim: 1\nname: proxied\nservers:\n  - {name: a, poem: "1111\\n2222\\n"}\n'
            "  - {name: p, upstream: a}\n")
    with netsim.serving(text) as net:
        assert read(net.address("p")) == b"1111\n2222\n"
    result = net.result()  # every account is in once the servers have stopped
    assert [(conn.server, conn.bytes) for conn in result.connections] == [("p", 10)]
    assert result.check(["bytes == 10B", "errors == 0"])


def test_the_result_says_what_changed_the_servers_and_when() -> None:
    """Live changes (set, down, up, restore) are in the result, in time order with the
    control as their source, and in its dict (what serve --json writes)."""
    with netsim.serving(TEXT) as net:
        net.set("a", delay="40ms")
        net.down("b")
        net.up("b")
        net.restore("a")
    changes = net.result().changes
    assert [(change.server, change.what.split(",")[0], change.source) for change in changes] == [
        ("a", "delay 40ms", "control"), ("b", "down", "control"), ("b", "up", "control"),
        ("a", "delay 20ms", "control")]
    assert [change.t for change in changes] == sorted(change.t for change in changes)
    assert net.result().to_dict()["changes"][1] == changes[1].to_dict()


def test_async_with_serves_too() -> None:
    """`async with netsim.serving(...)` serves for the block, for asyncio code."""

    async def main() -> bytes:
        async with netsim.serving(TEXT) as net:
            reader, writer = await asyncio.open_connection(*net.address("a"))
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

    assert asyncio.run(main()) == b"1111\n2222\n"


def test_async_with_lets_the_loop_run_while_the_servers_start() -> None:
    """Under asyncio, the loop's other tasks go on while the server process starts (a
    fresh interpreter: a tenth of a second and more); the block begins once it listens."""

    async def main() -> tuple[int, bool]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        async with netsim.serving(TEXT) as net:
            during = ticks - before
            with socket.create_connection(net.address("a")):
                pass
        ticker.cancel()
        return during, net.alive()

    during, alive = asyncio.run(main())
    assert during >= 2  # it ran while the servers started, not only before or after
    assert not alive


def test_async_with_serves_under_trio_too() -> None:
    """On trio's loop, where asyncio's is not running, `async with` serves as well (its
    start and stop hold the loop)."""
    import trio  # the test extras install it (netsim[trio])

    async def main() -> bytes:
        async with netsim.serving(TEXT) as net:
            stream = await trio.open_tcp_stream(*net.address("a"))
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
            await stream.aclose()
            return data

    assert trio.run(main) == b"1111\n2222\n"


def test_async_with_cancelled_while_the_servers_start_leaves_no_process() -> None:
    """A task cancelled while its servers start takes the server process with it."""

    async def main() -> tuple[set[int], bool]:
        async def serve() -> None:
            async with netsim.serving(TEXT):
                raise AssertionError("the block began: the start was not cancelled")

        task = asyncio.create_task(serve())
        await asyncio.sleep(0.02)  # the process is starting: a fresh interpreter takes longer
        starting = descendants(os.getpid())
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return starting, True
        return starting, False

    starting, cancelled = asyncio.run(main())
    assert starting and cancelled
    assert not any(alive(pid) for pid in starting)


def test_a_proxy_connection_its_client_closed_just_before_the_stop_ends_as_closed() -> None:
    """A client that talks through a proxy and closes right before the block ends left no
    connection open: the stop lets the proxy pass the end on, and the account is `closed`,
    neither missing nor `stopped`."""
    import threading

    upstream = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = upstream.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    port = upstream.getsockname()[1]
    text = f"netsim: 1\nname: e\nservers: [{{name: echo, upstream: '127.0.0.1:{port}'}}]\n"
    try:
        for _ in range(5):
            with netsim.serving(text) as net, socket.create_connection(net.address("echo"), 3) as sock:
                sock.sendall(b"ping")
                assert sock.recv(16) == b"ping"
            (conn,) = net.result().connections
            assert (conn.error, conn.served.how if conn.served else None) == (None, "closed")
    finally:
        upstream.close()


def test_the_log_numbers_each_connection_as_the_result_does() -> None:
    """Under an observer (serve --log-json), every event of a connection carries its `conn`,
    the number result() gives it, counted in accept order over every server."""
    from netsim._serving import load
    from netsim.events import ChunkSent, ConnAccepted, ConnEnded

    events: list[object] = []
    net = netsim.Serving(load(TEXT), observer=events.append)
    with net:
        for name in ("a", "b", "a"):
            read(net.address(name))
    numbered = [(type(event).__name__, event.server, event.conn) for event in events
                if isinstance(event, ConnAccepted | ConnEnded | ChunkSent) and event.server == "a"]
    assert {conn for _, _, conn in numbered} == {1, 3}
    assert [(conn.conn, conn.server) for conn in net.result().connections] == [(1, "a"), (2, "b"), (3, "a")]
    assert all(conn is not None for _, _, conn in numbered)


def test_a_serving_serves_once() -> None:
    """A second start of the same Serving is a RunError saying to call serving() again; the
    first servers stay stopped and no second process is left behind."""
    net = netsim.serving(TEXT)
    with net:
        read(net.address("a"))
    with pytest.raises(netsim.RunError, match=r"serves once; call netsim\.serving"):
        net.start()
    with pytest.raises(netsim.RunError, match="serves once"), net:
        pass
    assert not net.alive() and len(net.result().connections) == 1


def test_servers_started_from_a_thread_that_ended_say_why_they_stopped() -> None:
    """The servers end with the thread that started them; a call after that says so."""
    import threading

    started: list[netsim.Serving] = []
    starter = threading.Thread(target=lambda: started.append(netsim.serving(TEXT).start()), name="starter")
    starter.start()
    starter.join()
    (net,) = started
    try:
        deadline = time.monotonic() + 5
        while net.alive() and time.monotonic() < deadline:  # until the process's end is seen
            time.sleep(0.02)
        with pytest.raises(netsim.RunError, match=r"ended with the thread that started it \(starter\)"):
            net.states()
    finally:
        net.stop()


@pytest.mark.parametrize(("given", "says"), [
    ("{netsim: 1, name: x, servers: []}", "looks like scenario text, which is taken as text only "
                                          "with a newline"),
    ("no/such/scenario.yaml", "no such file in the current folder"),
    ("{netsim: 1, name: x, servers: [" + "{name: a, poem: x}, " * 20 + "]}", "looks like scenario text"),
])
def test_a_scenario_that_is_not_there_says_what_was_taken_for_a_path(given: str, says: str) -> None:
    """Text without a newline is taken as a path: a missing one says why, or where it looked."""
    with pytest.raises(netsim.ScenarioError, match=re.escape(says)):
        netsim.serving(given)


def test_the_package_ships_its_types() -> None:
    """netsim is typed for its users' mypy (PEP 561's marker file)."""
    assert (Path(netsim.__file__).parent / "py.typed").is_file()


def test_a_server_that_is_not_there_is_named() -> None:
    """Asking for an unknown server's address names the servers there are."""
    with netsim.serving(TEXT) as net, pytest.raises(KeyError, match="its servers are: a, b"):
        net.address("c")


@pytest.mark.parametrize(("text", "needs"), [
    ("elapsed <= ideal + 1s", "the ideal"), ("overhead < 1s", "the ideal"),
    ("speedup(x) > 1", "speedup"), ("exit_code == 0", "exit_code")])
def test_a_check_over_what_the_servers_cannot_tell_is_refused(text: str, needs: str) -> None:
    """The ideal, speedup and exit_code have no value from the servers' side: such a check
    is a ValueError naming what it needs and what the servers can tell, never a verdict."""
    with netsim.serving(TEXT) as net:
        read(net.address("a"))
    with pytest.raises(ValueError, match=f"needs {needs}, .* the servers can tell elapsed, ttfb.p50"):
        net.result().check(["errors == 0", text])
    assert net.result().check(["errors == 0"]).passed


def test_a_check_is_true_only_when_every_verdict_passed() -> None:
    """`assert result.check([...])` fails on any failed verdict, and its repr names each one
    on one line (what a test report shows); check() takes one expectation as well as a list."""
    with netsim.serving(TEXT) as net:
        read(net.address("a"))
    failed = net.result().check(["errors == 0", "bytes == 3B"])
    assert not failed and not failed.passed
    assert repr(failed) == ("<Checked FAILED: PASS  errors == 0  measured 0  bound == 0; "
                            "FAIL  bytes == 3B  measured 10B  bound == 3B>")
    assert str(failed).splitlines()[1] == "FAIL  bytes == 3B  measured 10B  bound == 3B"
    assert net.result().check(["errors == 0", "bytes == 10B"])
    assert net.result().check("bytes == 10B") and not net.result().check("bytes == 3B")


def test_a_check_can_take_one_servers_connections_and_says_which_failed() -> None:
    """check(server=) judges the connections of one server (or a list); a failed verdict of
    errors lists the connections at fault and why; an unknown server is a KeyError; the
    metrics are only those the servers can tell."""
    with netsim.serving(TEXT) as net:
        assert read(net.address("a")) == b"1111\n2222\n"
        assert read(net.address("b")) == b"33\n"
    result = net.result()
    assert result.check("errors == 0", server="a") and result.check("bytes == 10B", server=["a"])
    assert result.check("errors.reset == 1", server="b")
    checked = result.check(["errors == 0"])
    assert not checked
    assert checked.problems == ["#2 b: reset: the server reset it (a reset fault, or its server went "
                                "down with a reset)"]
    assert str(checked).splitlines()[1] == "  " + checked.problems[0]
    assert result.check("elapsed < 1s").problems == []  # a verdict the connections do not explain
    with pytest.raises(KeyError, match="no server 'zz' in scenario 'served'; its servers are: a, b"):
        result.check("errors == 0", server="zz")
    assert result.only("a").elapsed < result.elapsed
    assert "errors.refused" not in result.metrics() and "ideal" not in result.metrics()


@pytest.mark.parametrize("seed", ["7", 1.5, True])
def test_a_seed_that_is_not_a_whole_number_is_refused(seed: object) -> None:
    """serving(seed=) takes a whole number: a string or a float would draw differently from
    what was written, and the result would report it as given."""
    with pytest.raises(TypeError, match="the seed is a whole number, like 7, not"), \
            netsim.serving(TEXT, seed=seed):  # type: ignore[arg-type]
        pass


def test_a_scenario_given_as_a_mapping_is_served_and_checked_as_a_file_is() -> None:
    """serving() takes a mapping of a scenario's keys, as a test builds one around a port it
    learns at run time; a bad value in it is a ScenarioError naming its key, anything YAML
    cannot hold (or a scenario of another type altogether) a TypeError."""
    scenario = {"netsim": 1, "name": "built", "servers": [{"name": "a", "poem": "hi\n"}]}
    with netsim.serving(scenario) as net:
        assert read(net.address("a")) == b"hi\n"
    with pytest.raises(netsim.ScenarioError, match=r"<scenario mapping>:\d+:\d+: servers\[0\]\.delay: '1q'"):
        netsim.serving({**scenario, "servers": [{"name": "a", "poem": "hi\n", "delay": "1q"}]})
    with pytest.raises(TypeError, match="holds only what YAML can"):
        netsim.serving({**scenario, "name": object()})
    with pytest.raises(TypeError, match="a scenario is a path, YAML text, a mapping of its keys or a "
                                        "loaded Scenario, not int"):
        netsim.serving(5)  # type: ignore[arg-type]


def test_a_result_since_a_mark_holds_only_what_came_after_it() -> None:
    """result(since=now()) holds the connections accepted from the mark on, and the changes:
    one test's share of servers a whole session shares."""
    with netsim.serving(TEXT) as net:
        assert read(net.address("a")) == b"1111\n2222\n"
        mark = net.now()
        assert mark > 0
        t = net.set("a", delay="0")
        assert t >= mark
        assert read(net.address("a")) == b"1111\n2222\n"
        time.sleep(0.05)
        mine = net.result(since=mark)
        every = net.result()
    assert len(every.connections) == 2 and len(mine.connections) == 1
    assert mine.connections[0].start >= mark and mine.check("errors == 0")
    assert [change.what for change in mine.changes] == ["delay 0s"]
    assert mine.elapsed < every.elapsed


def test_free_ports_false_keeps_the_scenarios_own_port() -> None:
    """serving(..., free_ports=False) binds the port the scenario gives, where by default
    every server takes a free one."""
    with socket.socket() as probe:  # a port free a moment ago, for the scenario to name
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = f"netsim: 1\nname: fixed\nservers: [{{name: a, poem: x, port: {port}}}]\n"
    with netsim.serving(text, free_ports=False) as net:
        assert net.address("a") == ("127.0.0.1", port)
    with socket.socket() as holder:  # the port taken: a default serving never asks for it
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with netsim.serving(text) as net:
            assert net.address("a")[1] != port


def test_a_check_of_nothing_or_of_no_string_is_refused() -> None:
    """check([]) is a ValueError (an empty list would pass with nothing judged), and an
    entry that is not a string a TypeError naming it, not an AttributeError from within."""
    with netsim.serving(TEXT) as net:
        read(net.address("a"))
    with pytest.raises(ValueError, match=r"no expectations to check"):
        net.result().check([])
    with pytest.raises(TypeError, match=r"an expectation is a string, like 'errors == 0', not int \(5\)"):
        net.result().check(["errors == 0", 5])  # type: ignore[list-item]
    # An unknown metric is answered with those the servers can tell, not every metric there is.
    with pytest.raises(ValueError, match=r"^unknown metric 'latency'; the servers can tell elapsed, "
                                         r"ttfb\.p50, .*lateness\.max$"):
        net.result().check("latency < 1s")


def test_the_result_reads_short_in_a_failed_assert() -> None:
    """A result's repr is a line, not every connection in full: what pytest shows of it."""
    with netsim.serving(TEXT) as net:
        read(net.address("a"))
    elapsed = net.result().elapsed
    assert repr(net.result()) == f"<ServedResult served connections=1 errors=0 elapsed={elapsed:.3f}s>"


def test_a_change_after_the_block_says_the_servers_stopped_and_bad_arguments_say_what_is_wanted() -> None:
    """After the block, a change says the servers have stopped; a fault given as a word, or
    a time scale as a string, says what is wanted."""
    word = r"fault: expected a mapping of keys to values \(got 'reset'\); fault takes a mapping"
    with netsim.serving(TEXT) as net, pytest.raises(ValueError, match=word):
        net.set("a", fault="reset")
    with pytest.raises(netsim.RunError, match=r"the servers have stopped \(their `with` block has ended"):
        net.set("a", delay="1s")
    with pytest.raises(TypeError, match=r"the time scale must be a number, like 0\.1, not str \('0\.1'\)"):
        netsim.serving(TEXT, time_scale="0.1")  # type: ignore[arg-type]


def test_a_check_of_refusals_is_refused_since_the_servers_never_see_them() -> None:
    """A refused connect never reaches the servers: errors.refused is a ValueError saying so,
    not a count that stays 0 however many the client met."""
    text = "netsim: 1\nname: door\nservers: [{name: a, poem: x, fault: {kind: refuse}}]\n"
    with netsim.serving(text) as net, pytest.raises(ConnectionRefusedError):
        read(net.address("a"))
    with pytest.raises(ValueError, match="a refused connection never reaches the servers"):
        net.result().check("errors.refused == 1")
    assert net.result().check("errors == 0")  # what the servers accepted: nothing


def test_serve_reads_stdin_and_writes_what_the_servers_saw(tmp_path: Path) -> None:
    """`netsim serve - --json PATH`: the scenario comes from stdin; on Ctrl-C it exits 130 and the
    JSON holds every connection, and the seed that serves them again."""
    result = tmp_path / "served.json"
    serve = subprocess.Popen([sys.executable, "-m", "netsim", "serve", "-", "--json", str(result),
                              "--seed", "41"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdin is not None and serve.stdout is not None
        serve.stdin.write(TEXT)
        serve.stdin.close()
        addresses = {}
        for line in serve.stdout:
            if line.startswith("listening"):
                _, name, address = line.split()
                host, _, port = address.rpartition(":")
                addresses[name] = (host, int(port))
            if line.strip() == "ready":
                break
        assert read(addresses["a"]) == b"1111\n2222\n"
        serve.send_signal(signal.SIGINT)
        serve.wait(15)
        assert serve.stderr is not None
        errors = serve.stderr.read()
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 130, errors
    served = json.loads(result.read_text())
    assert served["scenario"] == "served"
    assert [(conn["server"], conn["bytes"], conn["intact"])
            for conn in served["connections"]] == [("a", 10, True)]
    assert served["machine"]["cpus"] == os.cpu_count()
    assert served["seed"] == 41


def test_the_plugin_leaves_a_serve_only_scenario_alone(pytester: pytest.Pytester) -> None:
    """A scenario file without clients (meant for serving) is not collected as a test."""
    pytester.makefile(".yaml", served=TEXT)
    result = pytester.runpytest_subprocess("-q", "served.yaml")
    result.stdout.fnmatch_lines(["*no tests ran*"])


def test_serving_keeps_poem_files_in_the_scenarios_folder_unless_allowed(tmp_path: Path) -> None:
    """serving() refuses a poem file beside the scenario's folder, and serves it with allow_paths."""
    (tmp_path / "secret.txt").write_text("1111\n")
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios" / "reader.yaml"
    path.write_text("netsim: 1\nname: reader\nservers: [{name: a, poem_file: ../secret.txt}]\n")
    with pytest.raises(netsim.ScenarioError, match=r"reader.yaml:3:32: .*outside the scenario's folder"):
        netsim.serving(path)
    with pytest.raises(netsim.ScenarioError, match=r"is 5B, more than the 4B"):
        netsim.serving(path, allow_paths=True, max_poem_bytes=4)
    with netsim.serving(path, allow_paths=True) as net:
        assert read(net.address("a")) == b"1111\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process names are set with Linux's prctl")
def test_the_processes_of_a_run_go_by_their_roles(tmp_path: Path) -> None:
    """top, ps and the kernel's traces show the server process as netsim-server and a
    client model's as netsim-client, not as one more "python"."""
    path = tmp_path / "one.yaml"
    path.write_text('netsim: 1\nname: one\nservers: [{name: a, poem: "1\\n"}]\n')
    with netsim.serving(path):
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in descendants(os.getpid())}
    assert "netsim-server" in names

    seen = tmp_path / "client-name"

    def naming(targets: Any, recorder: Any) -> None:
        seen.write_text(Path("/proc/self/comm").read_text().strip())
        netsim_selectors.run(targets, recorder)

    model = ClientModel("selectors", "reads its own name", True, naming)
    path.write_text(path.read_text() + "clients: [{model: selectors}]\n")
    netsim.run_scenario(netsim.load_scenario(path), time_scale=0.01, models={"selectors": model})
    assert seen.read_text() == "netsim-client"


FORWARDING = """\
netsim: 1
name: forwarding
servers: [{name: p, upstream: "10.1.2.3:80"}]
"""


def test_serving_a_proxy_to_another_machine_needs_allow_external(netsim_servers: Any) -> None:
    """serving() and the fixture refuse an upstream outside loopback unless allow_external is given."""
    for serve in (netsim.serving, netsim_servers):
        with pytest.raises(netsim.UsageError, match=r"'p' forwards to 10\.1\.2\.3:80, outside loopback"):
            serve(FORWARDING)
    with netsim.serving(FORWARDING, allow_external=True) as net:
        assert set(net.addresses) == {"p"}
    assert set(netsim_servers(FORWARDING, allow_external=True).addresses) == {"p"}


def test_a_stop_that_comes_as_soon_as_the_servers_are_listening_still_reports_it() -> None:
    """A SIGTERM sent the moment `serve` says ready (here: raised from the listening callback
    itself) still stops the servers through on_stopped, which prints the fidelity and
    writes --json; before, it could land between the two and skip it."""
    from netsim._serving import load, serve_scenario

    heard: list[str] = []

    def listening(addresses: list[tuple[str, str, int]]) -> None:
        heard.append(f"listening {len(addresses)}")
        raise KeyboardInterrupt

    def stopped(net: netsim.Serving) -> None:
        heard.append(f"stopped {sorted(net.addresses)}")

    with pytest.raises(KeyboardInterrupt):
        serve_scenario(load(TEXT), free_ports=True, on_listening=listening, on_stopped=stopped)
    assert heard == ["listening 2", "stopped ['a', 'b']"]
