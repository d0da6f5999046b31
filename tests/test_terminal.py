"""netsim on a real terminal (a pseudo-terminal): the live progress and the timeline appear
there by default, and neither with -q, -v or in the pytest plugin."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import ScenarioWriter, demo_text

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ROOT = Path(__file__).resolve().parent.parent


def in_a_terminal(*args: str, columns: int = 120, timeout: float = 60) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on one pseudo-terminal ``columns`` wide; its
    exit code and everything it wrote (escape codes included)."""
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT,
                               start_new_session=True)
    os.close(child)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every end of the terminal's other side is closed
                break
            if not chunk:
                break
            written += chunk
        code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return code, written.decode("utf-8", "replace")


def netsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "netsim", *args]


def test_a_run_on_a_terminal_shows_its_progress_then_its_timeline(write_scenario: ScenarioWriter) -> None:
    """While blocking runs, its line tells the connections done and the time against the ideal, in
    place, beside a bar in the connections' cyan (rich's own red-pink reads as a failure); then
    the table, the timeline (one row per connection) and the verdicts."""
    path = write_scenario(demo_text(delay="1s"))
    code, screen = in_a_terminal(*netsim("run", str(path), "--time-scale", "0.1"))
    assert code == 0, screen
    plain = ANSI.sub("", screen)
    assert re.search(r"blocking \[1/2\]\s+\S+ of ideal 12\.000s\s+[0-3]/3 connections done", plain)
    assert "\x1b[2K" in screen or "\x1b[1A" in screen  # the progress line is cleared, not left behind
    assert "\x1b[36m━" in screen and "38;5;197" not in screen  # its bar cyan, not rich's red-pink
    assert "timeline: scenario seconds" in plain
    assert len(re.findall(r"^  #\d \w .*eof\s*$", plain, re.MULTILINE)) == 6
    assert plain.index("client ") < plain.index("timeline:") < plain.index("no expectations")
    assert "\x1b[" in screen.split("timeline:")[1]  # in colour on a terminal


def test_quiet_and_verbose_runs_show_no_progress(write_scenario: ScenarioWriter) -> None:
    """-q prints neither the progress nor the timeline; -v's event log is the progress (no line of it)."""
    path = write_scenario(demo_text(delay="1s", clients="blocking"))
    code, screen = in_a_terminal(*netsim("run", str(path), "--time-scale", "0.1", "-q"))
    assert code == 0 and "connections done" not in screen and "timeline:" not in screen
    code, screen = in_a_terminal(*netsim("run", str(path), "--time-scale", "0.1", "-v"))
    assert code == 0 and "connections done" not in screen and "chunk_sent" in screen


def test_the_pytest_plugin_shows_no_timeline_or_progress(write_scenario: ScenarioWriter) -> None:
    """Scenario files run under pytest, on a terminal, print pytest's report and nothing of netsim's own."""
    path = write_scenario(demo_text(delay="1s", expect="expect:\n  all: [errors == 0]\n"), name="demo.yaml")
    code, screen = in_a_terminal(sys.executable, "-m", "pytest", str(path), "--netsim-time-scale", "0.1",
                                 "-p", "no:cacheprovider", "-q")
    plain = ANSI.sub("", screen)
    assert code == 0, plain
    assert "2 passed" in plain
    assert "connections done" not in plain and "timeline:" not in plain
