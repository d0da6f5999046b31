"""Tests of the ideal-timing model: sequential clients add up, concurrent ones overlap,
serial servers queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import netsim
from netsim.clients import get_model
from netsim.ideal import IdealConnection, ideal_elapsed, ideal_timeline, service_time
from netsim.scenario import Server

FOUR_LINES = "1111\n2222\n3333\n4444\n"
DEMO = Path(__file__).resolve().parent.parent / "scenarios" / "three_ports.yaml"


def server(name: str = "a", *, delay: float = 1.0, mode: str = "serial", poem: str = FOUR_LINES,
           **fields: Any) -> Server:
    return Server.model_validate({"name": name, "poem": poem, "delay": delay, "mode": mode, **fields})


def times(timeline: list[IdealConnection]) -> list[tuple[str, float, float, float]]:
    """Each connection as (server, start, ttfb, end)."""
    return [(conn.server, conn.start, conn.ttfb, conn.end) for conn in timeline]


@pytest.mark.parametrize(("model", "elapsed"), [
    ("blocking", 12.0), ("select", 4.0), ("selectors", 4.0), ("asyncio", 4.0), ("threads", 4.0),
])
def test_the_demo(model: str, elapsed: float) -> None:
    """In the three-ports demo the blocking client needs 12 s and every concurrent one 4 s."""
    demo = netsim.load_scenario(DEMO)
    targets = demo.targets_of(demo.client(model))
    assert ideal_elapsed(targets, concurrent=get_model(model).concurrent) == pytest.approx(elapsed)


def test_the_demo_blocking_timeline() -> None:
    """The blocking client reads a, then b, then c, each for 4 s, each from its first byte at once."""
    servers = [server("a"), server("b"), server("c")]
    assert times(ideal_timeline(servers, concurrent=False)) == [
        ("a", 0.0, 0.0, 4.0), ("b", 4.0, 0.0, 8.0), ("c", 8.0, 0.0, 12.0)]


@pytest.mark.parametrize(("mode", "expected"), [
    ("serial", [("a", 0.0, 0.0, 4.0), ("a", 0.0, 4.0, 8.0), ("a", 0.0, 8.0, 12.0)]),
    ("concurrent", [("a", 0.0, 0.0, 4.0), ("a", 0.0, 0.0, 4.0), ("a", 0.0, 0.0, 4.0)]),
])
def test_three_concurrent_connections_to_one_server(mode: str, expected: list[tuple[Any, ...]]) -> None:
    """Three connections at once to one server queue if it is serial and overlap if it is concurrent."""
    a = server("a", mode=mode)
    timeline = ideal_timeline([a, a, a], concurrent=True)
    assert times(timeline) == expected
    assert ideal_elapsed([a, a, a], concurrent=True) == expected[-1][3]


@pytest.mark.parametrize("mode", ["serial", "concurrent"])
def test_sequential_client_on_one_server(mode: str) -> None:
    """A sequential client never waits for a server, serial or not: its connections follow one another."""
    a = server("a", mode=mode)
    assert times(ideal_timeline([a, a, a], concurrent=False)) == [
        ("a", 0.0, 0.0, 4.0), ("a", 4.0, 0.0, 8.0), ("a", 8.0, 0.0, 12.0)]


def test_serial_queues_are_per_server() -> None:
    """Connections queue only behind others to the same serial server."""
    a, b = server("a"), server("b", delay=0.5)
    assert times(ideal_timeline([a, b, a, b], concurrent=True)) == [
        ("a", 0.0, 0.0, 4.0), ("b", 0.0, 0.0, 2.0), ("a", 0.0, 4.0, 8.0), ("b", 0.0, 2.0, 4.0)]
    assert ideal_elapsed([a, b, a, b], concurrent=True) == 8.0


@pytest.mark.parametrize(("after", "outcomes", "ends"), [
    # The first gives up at 0.5 s; the server sees that close only then, so the second,
    # waiting since 0 with the same timeout, has given up already: never served.
    (2, ["timeout", "timeout"], [0.5, 0.5]),
    # The first gives up at 0.6 s (its second line came at 0.1): the second is gone by then.
    (5, ["timeout", "timeout"], [0.6, 0.5]),
])
def test_a_connection_queued_behind_a_timeout_times_out_at_the_same_moment(
        after: int, outcomes: list[str], ends: list[float]) -> None:
    """Queued at a serial server behind a connection that ends by the client's own timeout,
    a connection whose timeout falls at that moment times out: the server frees up after."""
    stalling = server("s", delay=0.1, poem="ab\ncd\n", fault={"kind": "stall", "after": after})
    timeline = ideal_timeline([stalling, stalling], concurrent=True, timeout=0.5)
    assert [conn.outcome for conn in timeline] == outcomes
    assert [conn.end for conn in timeline] == pytest.approx(ends)


def test_a_connection_queued_behind_a_close_is_served_at_that_moment() -> None:
    """Behind a connection the server closes, the next is served at once, even when its
    timeout falls at the same moment (the server's write goes in the same wake-up)."""
    a = server("a", delay=0.25, poem="1\n2\n")
    timeline = ideal_timeline([a, a], concurrent=True, timeout=0.5)
    assert [(conn.outcome, conn.ttfb) for conn in timeline] == [(None, 0.0), (None, 0.5)]


@pytest.mark.parametrize(("concurrent", "elapsed"), [(True, 4.0), (False, 5.125)])
def test_mixed_delays(concurrent: bool, elapsed: float) -> None:
    """Different delays add up for a sequential client; a concurrent one waits for the slowest."""
    targets = [server("a", delay=1.0), server("b", delay=0.25), server("c", delay=0.0625, poem="x\ny\n")]
    assert ideal_elapsed(targets, concurrent=concurrent) == pytest.approx(elapsed)


@pytest.mark.parametrize("concurrent", [True, False])
@pytest.mark.parametrize("mode", ["serial", "concurrent"])
def test_zero_delay_takes_no_time(concurrent: bool, mode: str) -> None:
    """Servers without a delay make the ideal run take no time at all."""
    a = server("a", delay=0.0, mode=mode)
    assert all(conn.end == 0.0 and conn.ttfb == 0.0
               for conn in ideal_timeline([a, a, server("b", delay=0.0)], concurrent=concurrent))
    assert ideal_elapsed([a, a], concurrent=concurrent) == 0.0


@pytest.mark.parametrize(("fields", "seconds"), [
    ({"chunk": "line"}, 4.0),
    ({"chunk": "line", "newline": "strip"}, 4.0),
    ({"chunk": "all"}, 1.0),
    ({"chunk": {"bytes": 5}}, 4.0),  # 20 bytes
    ({"chunk": {"bytes": 6}}, 4.0),  # 6 + 6 + 6 + 2
    ({"chunk": {"bytes": 7}}, 3.0),
    ({"chunk": {"bytes": 20}}, 1.0),
    ({"chunk": {"bytes": 1}}, 20.0),
    ({"chunk": {"bytes": 4}, "newline": "strip"}, 4.0),  # 16 bytes
    ({"poem": "one\n\nthree\n"}, 3.0),  # the blank line is an empty chunk, with its delay
    ({"poem": "no newline at the end"}, 1.0),
])
def test_service_time_is_one_delay_per_chunk(fields: dict[str, Any], seconds: float) -> None:
    """A connection is served for one delay after each chunk, the last one included."""
    one = server("a", **fields)
    assert service_time(one) == pytest.approx(seconds)
    assert service_time(one) == len(one.chunks()) * one.delay
    assert ideal_elapsed([one], concurrent=False) == pytest.approx(seconds)


def test_connection_duration_and_ttfb() -> None:
    """A queued connection's ttfb is its wait, and its duration the wait plus the service time."""
    a = server("a", delay=0.5)
    first, second = ideal_timeline([a, a], concurrent=True)
    assert (first.ttfb, first.duration) == (0.0, 2.0)
    assert (second.ttfb, second.duration) == (2.0, 4.0)


def test_no_targets() -> None:
    """A client with nothing to connect to takes no time."""
    assert ideal_timeline([], concurrent=True) == []
    assert ideal_elapsed([], concurrent=False) == 0.0
