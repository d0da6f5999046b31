"""The event log: in time order across the run's processes, in scenario time beside wall time."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from netsim.events import BytesReceived, ChunkSent, ConnStarted
from netsim.logs import HOLD, make_observer
from tests.conftest import ScenarioWriter, demo_text
from tests.test_cli import run_cli


def lines_of(sink: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_events_arriving_out_of_order_are_written_in_time_order() -> None:
    """A server's batch that comes after a later client batch is still written in the order of time."""
    sink = io.StringIO()
    log = make_observer(json_file=sink)
    assert log is not None
    log(BytesReceived(0.30, "c", "a", 1, 4))  # the client's batch first...
    log(ConnStarted(0.10, "c", "a", 1, 10000))
    log(ChunkSent(0.29, "a", 5000, 0, 4, 0.29, 0.0))  # ...then the server's, older
    log.close()
    assert [line["event"] for line in lines_of(sink)] == ["conn_started", "chunk_sent", "bytes_received"]


def test_the_log_keeps_up_with_the_run() -> None:
    """An event is written once it is HOLD old, without waiting for the next event or the end."""
    sink = io.StringIO()
    log = make_observer(json_file=sink)
    assert log is not None
    log(ConnStarted(0.0, "c", "a", 1, 10000))
    assert sink.getvalue() == ""  # held: the other process's events of that moment may come yet
    deadline = time.monotonic() + HOLD + 2
    while not sink.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [line["event"] for line in lines_of(sink)] == ["conn_started"]
    log.close()


def test_times_are_scenario_seconds_with_the_wall_time_beside() -> None:
    """At time scale 0.1 an event at 0.5 s of wall time is at 5 s; its schedule and lateness too."""
    sink, console = io.StringIO(), io.StringIO()
    log = make_observer(json_file=sink, console=console, time_scale=0.1)
    assert log is not None
    log(ChunkSent(0.5, "a", 5000, 2, 4, 0.4, 0.001, client="c", conn=1))
    log.close()
    [line] = lines_of(sink)
    assert (line["t"], line["wall"], line["scheduled"], line["lateness"]) == (5.0, 0.5, 4.0, 0.01)
    assert list(line)[:6] == ["event", "t", "wall", "client", "server", "conn"]
    assert console.getvalue().startswith("  5.000000 (wall 0.500000)  chunk_sent")
    # The console gives every time with six decimals, as the line's own: no 1e-05 among them.
    small = io.StringIO()
    log = make_observer(console=small)
    assert log is not None
    log(ChunkSent(0.5, "a", 5000, 2, 4, 0.49999, 0.00001, client="c", conn=1))
    log.close()
    assert "scheduled=0.499990 lateness=0.000010" in small.getvalue()


def test_at_time_scale_1_the_console_shows_one_time() -> None:
    """Scenario time is wall time at scale 1: the console line does not repeat it."""
    console = io.StringIO()
    log = make_observer(console=console)
    assert log is not None
    log(ConnStarted(1.25, "c", "a", 1, 10000))
    log.close()
    assert console.getvalue().startswith("  1.250000  conn_started") and "wall" not in console.getvalue()


def test_a_runs_log_is_in_time_order_across_its_processes(write_scenario: ScenarioWriter,
                                                          tmp_path: Path) -> None:
    """Every line of a real run's --log-json comes no earlier than the one before it, in scenario time."""
    path = write_scenario(demo_text(clients="blocking, select, threads"))
    log = tmp_path / "events.jsonl"
    assert run_cli("run", path, "--time-scale", "0.05", "--log-json", log, "-q") == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    times = [line["t"] for line in lines]
    assert len(lines) > 100 and times == sorted(times)
    sent = [line for line in lines if line["event"] == "chunk_sent"]
    assert max(line["t"] for line in sent) > 12  # scenario seconds: blocking alone takes 12
    assert all(abs(line["wall"] - line["t"] * 0.05) < 1e-5 for line in lines)
