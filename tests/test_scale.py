"""The mechanisms that let netsim hold many connections, exercised at small sizes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import netsim
from netsim.clients import ModelLimitError, Recorder, Target, get_model
from netsim.clients.select import FD_SETSIZE
from netsim.events import BytesReceived, Event
from tests.conftest import ScenarioWriter


def many(write_scenario: ScenarioWriter, model: str, connections: int, ramp: str = "0s") -> netsim.Scenario:
    return netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: many
        servers: [{{name: s, poem: "1\\n2\\n", delay: 100ms}}]
        clients: [{{model: {model}, connections: {connections}, ramp: {ramp}}}]
    """))


def test_connections_repeat_the_targets_interleaved(write_scenario: ScenarioWriter) -> None:
    """connections: 3 over targets [a, b] makes six connections, a and b taking turns."""
    scenario = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: pairs
        servers: [{name: a, poem: "x\\n"}, {name: b, poem: "y\\n"}]
        clients: [{model: select, connections: 3, ramp: 600ms}]
    """))
    client = scenario.clients[0]
    assert [server.name for server in scenario.targets_of(client)] == ["a", "b"] * 3
    assert scenario.start_offsets(client) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_select_is_refused_past_its_limit_before_anything_runs(write_scenario: ScenarioWriter) -> None:
    """More connections than select() can watch is a problem of the scenario at its line, and
    a usage error of a run given such a scenario built in Python; both name FD_SETSIZE and
    selectors."""
    with pytest.raises(netsim.ScenarioError, match=r"scenario.yaml:4:40: clients\[0\].connections: client "
                                                   r"'select' opens 1025 connections, .*FD_SETSIZE \(1024\)"):
        many(write_scenario, "select", FD_SETSIZE + 1)
    scenario = many(write_scenario, "select", 1)
    client = scenario.clients[0].model_copy(update={"connections": FD_SETSIZE + 1})
    with pytest.raises(netsim.UsageError, match=r"FD_SETSIZE \(1024\).*selectors"):
        netsim.run_scenario(scenario.model_copy(update={"clients": [client]}))


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    """Open enough sockets that the next one's descriptor is above FD_SETSIZE."""
    fillers = [socket.socket() for _ in range(FD_SETSIZE + 8)]
    try:
        yield
    finally:
        for sock in fillers:
            sock.close()


def test_select_refuses_a_descriptor_above_fd_setsize(high_descriptors: None) -> None:
    """When a socket's descriptor is 1024 or more, the select model stops with a clear limit error."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        target = Target(conn=1, server="s", host="127.0.0.1", port=server.getsockname()[1], expected=b"")
        recorder = Recorder("select", time.monotonic(), lambda batch: None)
        with pytest.raises(ModelLimitError, match="FD_SETSIZE is 1024; use the selectors"):
            get_model("select").run([target], recorder)
    finally:
        server.close()


def test_the_runner_raises_its_descriptor_limit() -> None:
    """ensure_descriptors lifts a low soft RLIMIT_NOFILE up to what is needed, within the hard limit."""
    script = (
        "import resource\n"
        "from netsim.runner import ensure_descriptors\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "ensure_descriptors(1000)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1000"


def test_a_hard_limit_too_low_is_explained() -> None:
    """Past the hard limit, ensure_descriptors says how to raise it instead of failing later."""
    script = (
        "import resource\n"
        "from netsim.runner import ensure_descriptors\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512))\n"
        "try:\n"
        "    ensure_descriptors(1000)\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("UsageError 1000 file descriptors are needed")
    assert "ulimit -Hn 1000" in done.stdout


def test_lean_runs_measure_what_detailed_runs_do(write_scenario: ScenarioWriter) -> None:
    """Without an observer the run sends fewer events, yet measures the same connections and lateness."""
    scenario = many(write_scenario, "selectors", 20)
    lean = netsim.run_scenario(scenario, time_scale=0.2).runs[0]
    events: list[Event] = []
    detailed = netsim.run_scenario(scenario, time_scale=0.2, observer=events.append).runs[0]
    for run in (lean, detailed):
        assert run.lateness.count == 40  # two chunks on each of twenty connections
        assert all(conn.bytes == 4 and conn.intact for conn in run.connections)
        assert all(conn.ttfb < 0.1 for conn in run.connections)
    assert sum(isinstance(event, BytesReceived) for event in events) >= 20


def test_fresh_server_processes_serve_like_forked_ones(write_scenario: ScenarioWriter,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run big enough for a fresh (spawned) server process measures the same as a forked one."""
    from netsim import _processes, runner

    monkeypatch.setattr(runner, "FRESH_SERVERS_FROM", 10)  # so that 20 connections are "big"
    started = []
    real_start = _processes.ServerProcess.start.__func__  # type: ignore[attr-defined]

    def spy(cls: type, *args: object, **kwargs: object) -> object:
        started.append(kwargs.get("fresh"))
        return real_start(cls, *args, **kwargs)

    monkeypatch.setattr(_processes.ServerProcess, "start", classmethod(spy))
    run = netsim.run_scenario(many(write_scenario, "selectors", 20), time_scale=0.2).runs[0]
    assert started == [True]
    assert run.lateness.count == 40
    assert all(conn.intact for conn in run.connections)
    assert run.server_max_rss_mb > 0 and run.server_cpu > 0


def test_fresh_servers_do_not_run_the_callers_script_again(tmp_path: Path) -> None:
    """A script without a main guard, at a scale that starts fresh servers, runs once."""
    scenario = tmp_path / "many.yaml"
    scenario.write_text('netsim: 1\nname: many\nservers: [{name: s, poem: "1\\n"}]\n'
                        "clients: [{model: selectors, connections: 1000, ramp: 200ms}]\n")
    script = tmp_path / "script.py"
    script.write_text(
        "import netsim\n"
        "print('script ran', flush=True)\n"
        f"result = netsim.run_scenario(netsim.load_scenario({str(scenario)!r}), time_scale=0.5)\n"
        "print(result.runs[0].metrics()['intact'])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["script ran", "1.0"]
