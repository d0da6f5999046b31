"""No process of a run outlives its runner, however the runner ends (SIGKILL included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ScenarioWriter

SLOW = """\
netsim: 1
name: slow
servers: [{name: s, poem: "1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n9\\n", delay: 1s}]
clients: [blocking]
"""


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_line(stream: object, marker: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, f"the command ended before printing {marker!r}"
        if marker in line:
            return
    raise AssertionError(f"no {marker!r} within {timeout}s")


def kill_and_wait(runner: subprocess.Popen[str], children: set[int]) -> list[int]:
    """SIGKILL the runner, and give its children 2 s to follow; those still alive then."""
    runner.send_signal(signal.SIGKILL)
    runner.wait(5)
    deadline = time.monotonic() + 2.0
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [pid for pid in children if alive(pid)]


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_killed_runner_takes_its_children_along(write_scenario: ScenarioWriter, command: str) -> None:
    """SIGKILL of `netsim run` (forked children) or `netsim serve` (a fresh interpreter) leaves no
    process behind within 2 s, and nothing prints a traceback."""
    path = write_scenario(SLOW)
    argv = [sys.executable, "-m", "netsim", command, str(path), "-v"]
    runner = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if command == "serve":
            wait_for_line(runner.stdout, "ready")
        else:
            wait_for_line(runner.stderr, "chunk_sent")  # both children are up and busy
        children = descendants(runner.pid)
        assert children, "the runner has no child processes to test with"
        assert not kill_and_wait(runner, children), "children outlived their runner"
        _, errors = runner.communicate(timeout=5)
        assert "Traceback" not in errors
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in descendants(runner.pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_runner_takes_a_programs_own_children_along(write_scenario: ScenarioWriter) -> None:
    """SIGKILL of `netsim run` while a `command` client's program runs ends what the program
    started too (here a shell's two `sleep`s), not only the program, within 2 s."""
    runner = _running_program(write_scenario, "sh -c 'sleep 37 & sleep 38'")
    sleeps: list[int] = []
    try:
        sleeps = _sleeps_of(runner)
        left = kill_and_wait(runner, descendants(runner.pid))
        assert not set(sleeps) & set(left), "the program's children outlived the runner"
        assert not left, "children outlived their runner"
    finally:
        if runner.poll() is None:
            runner.kill()
        # Orphans belong to init, not to the runner: the sleeps are ended by their pids.
        for pid in descendants(runner.pid) | set(_named(set(sleeps), "sleep")):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_stopped_runner_takes_a_programs_detached_daemon_along(write_scenario: ScenarioWriter,
                                                                 stop: signal.Signals) -> None:
    """SIGTERM, Ctrl-C or SIGKILL of `netsim run` while a `command` client's program runs ends a
    daemon the program detached (`setsid`) as well, within 2 s: it is adopted only once the
    program has died, and the client process waits for that before it goes."""
    runner = _running_program(write_scenario, "sh -c 'setsid sleep 39 & sleep 38'")
    daemon: list[int] = []
    try:
        daemon = _sleeps_of(runner)
        runner.send_signal(stop)
        runner.wait(10)
        deadline = time.monotonic() + 2.0
        while any(alive(pid) for pid in daemon) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [pid for pid in daemon if alive(pid)], "the detached daemon outlived the run"
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in _named(set(daemon), "sleep"):
            os.kill(pid, signal.SIGKILL)


def _running_program(write_scenario: ScenarioWriter, run: str) -> subprocess.Popen[str]:
    """`netsim run` of a slow scenario whose one client is the program ``run``."""
    path = write_scenario(SLOW.replace("clients: [blocking]", f'clients: [{{model: command, run: "{run}"}}]'))
    return subprocess.Popen([sys.executable, "-m", "netsim", "run", str(path), "--free-ports"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _sleeps_of(runner: subprocess.Popen[str]) -> list[int]:
    """The two `sleep`s the runner's program starts, once both run."""
    deadline = time.monotonic() + 20
    while len(sleeps := _named(descendants(runner.pid), "sleep")) < 2:
        assert time.monotonic() < deadline and runner.poll() is None, "the program's sleeps never ran"
        time.sleep(0.02)
    return sleeps


def _named(pids: set[int], name: str) -> list[int]:
    found = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found.append(pid)
        except OSError:
            pass
    return found
