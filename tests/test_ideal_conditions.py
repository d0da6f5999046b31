"""Tests of the ideal-timing model under network conditions: delays, rate, jitter, faults,
client timeouts and proxies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import netsim
from netsim.clients import get_model
from netsim.conditions import Conditions, StreamSchedule, fault_of, pause_stream
from netsim.ideal import IdealConnection, ideal_elapsed, ideal_timeline
from netsim.runner import default_timeout
from netsim.scenario import Server

FOUR_LINES = "1111\n2222\n3333\n4444\n"  # four chunks of 5 bytes
TWO_LINES = "a\nb\n"  # two chunks of 2 bytes
DEMO = Path(__file__).resolve().parent.parent / "scenarios" / "three_ports.yaml"


def server(name: str = "a", *, delay: float = 1.0, mode: str = "concurrent", poem: str = FOUR_LINES,
           **fields: Any) -> Server:
    return Server.model_validate({"name": name, "poem": poem, "delay": delay, "mode": mode, **fields})


def proxy(upstream: str, name: str = "p", **fields: Any) -> Server:
    return Server.model_validate({"name": name, "upstream": upstream, **fields})


def course(conn: IdealConnection) -> tuple[Any, ...]:
    """A connection as (outcome, bytes, first byte, end), with None for a NaN first byte."""
    first = None if math.isnan(conn.first_byte) else conn.first_byte
    return (conn.outcome, conn.bytes, first, conn.end)


def only(servers: list[Server], **options: Any) -> IdealConnection:
    """The course of a single connection to the first server (the others resolve upstreams)."""
    by_name = {one.name: one for one in servers}
    (conn,) = ideal_timeline(servers[:1], concurrent=True, servers=by_name, **options)
    return conn


# Delays and rate.

@pytest.mark.parametrize(("fields", "ttfb", "end"), [
    ({}, 0.0, 4.0),
    ({"initial_delay": 0.5}, 0.5, 4.5),
    ({"accept_delay": 0.25}, 0.25, 4.25),
    ({"accept_delay": 0.25, "initial_delay": 0.5}, 0.75, 4.75),
    ({"close_delay": 0.5}, 0.0, 4.5),
    ({"rate": 10}, 0.0, 6.0),  # each 5-byte chunk takes 0.5 s, then its 1 s pause
    ({"rate": 10, "delay": 0}, 0.0, 2.0),  # 20 bytes at 10 B/s
    ({"rate": 10, "chunk": "all"}, 0.0, 3.0),  # 2 s for the chunk, 1 s pause
    ({"rate": 10, "initial_delay": 0.5, "close_delay": 0.25}, 0.5, 6.75),
])
def test_conditions_add_to_the_ideal(fields: dict[str, Any], ttfb: float, end: float) -> None:
    """initial_delay and accept_delay add to the ttfb, a rate size / rate, close_delay to the end."""
    (conn,) = ideal_timeline([server(**fields)], concurrent=True)
    assert (conn.ttfb, conn.end) == (pytest.approx(ttfb), pytest.approx(end))
    assert (conn.bytes, conn.outcome) == (20, None)
    assert ideal_elapsed([server(**fields)], concurrent=False) == pytest.approx(end)


def test_serial_queue_includes_accept_and_initial_delay() -> None:
    """A serial server is busy during a connection's accept_delay and initial_delay too."""
    a = server(mode="serial", accept_delay=0.25, initial_delay=0.5)
    first, second = ideal_timeline([a, a], concurrent=True)
    assert (first.ttfb, first.end) == (0.75, 4.75)
    assert (second.ttfb, second.end) == (5.5, 9.5)


# Jitter.

@pytest.mark.parametrize("concurrent", [True, False])
def test_jitter_follows_the_seeded_schedule(concurrent: bool) -> None:
    """With jitter, each connection's ideal is the schedule its seeded pause stream gives."""
    a = server(jitter=0.5)
    timeline = ideal_timeline([a, a], concurrent=concurrent, seed=3)
    start = 0.0
    for number, conn in enumerate(timeline, start=1):
        plan = StreamSchedule(Conditions.of(a), pause_stream(3, "a", number), start)
        for chunk in a.chunks():
            plan.add(len(chunk), start)
        assert conn.start == start
        assert conn.end == pytest.approx(plan.close_time(start))
        assert 4 * 0.5 <= conn.duration <= 4 * 1.5
        start = conn.end if not concurrent else 0.0
    assert timeline[0].duration != timeline[1].duration  # each connection has its own stream


def test_jitter_varies_with_the_seed() -> None:
    """Different seeds give different ideals; the same seed, the same one."""
    a = server(jitter=0.5)
    ideals = [ideal_elapsed([a], concurrent=True, seed=seed) for seed in range(5)]
    assert len(set(ideals)) == 5
    assert ideal_elapsed([a], concurrent=True, seed=2) == ideals[2]


# Faults and timeouts.

@pytest.mark.parametrize(("fault", "fields", "timeout", "expected"), [
    ({"kind": "refuse"}, {}, math.inf, ("refused", 0, None, 0.0)),
    ({"kind": "reset"}, {}, math.inf, ("reset", 0, None, 0.0)),
    ({"kind": "reset", "after": 5}, {}, math.inf, ("reset", 5, 0.0, 1.0)),  # when chunk 1 is due
    ({"kind": "reset", "after": 7}, {}, math.inf, ("reset", 7, 0.0, 1.0)),  # 2 bytes of chunk 1, then reset
    ({"kind": "reset", "after": 7}, {"rate": 10}, math.inf, ("reset", 7, 0.0, 1.7)),  # chunk 1 at 1.5
    ({"kind": "reset", "after": 5}, {"initial_delay": 0.5}, math.inf, ("reset", 5, 0.5, 1.5)),
    ({"kind": "close", "after": 10}, {}, math.inf, (None, 10, 0.0, 2.0)),
    ({"kind": "stall", "after": 10}, {}, 3.0, ("timeout", 10, 0.0, 4.0)),  # last byte at 1, then 3 s
    ({"kind": "stall"}, {"initial_delay": 0.5}, 3.0, ("timeout", 0, None, 3.0)),
    ({"kind": "blackhole"}, {}, 3.0, ("timeout", 0, None, 3.0)),
    ({"kind": "blackhole"}, {"accept_delay": 5.0}, 3.0, ("timeout", 0, None, 3.0)),
])
def test_faults(fault: dict[str, Any], fields: dict[str, Any], timeout: float,
                expected: tuple[Any, ...]) -> None:
    """Each fault ends the connection as its kind says, at the moment the schedule gives."""
    (conn,) = ideal_timeline([server(fault=fault, **fields)], concurrent=True, timeout=timeout)
    assert course(conn)[:3] == expected[:3]
    assert conn.end == pytest.approx(expected[3])


def test_refused_takes_no_time() -> None:
    """A refused connection has zero duration, so a sequential client goes straight on."""
    refusing, a = server("r", fault={"kind": "refuse"}), server("a")
    timeline = ideal_timeline([refusing, a], concurrent=False)
    assert [(conn.outcome, conn.start, conn.duration) for conn in timeline] == [
        ("refused", 0.0, 0.0), (None, 0.0, 4.0)]


def test_blackhole_costs_a_sequential_client_its_timeout() -> None:
    """A blackholed connection ends at connect + timeout, and the next one starts then."""
    hole, a = server("h", fault={"kind": "blackhole"}), server("a")
    timeline = ideal_timeline([hole, a], concurrent=False, timeout=3.0)
    assert [(conn.outcome, conn.start, conn.end) for conn in timeline] == [
        ("timeout", 0.0, 3.0), (None, 3.0, 7.0)]
    assert ideal_elapsed([hole, a], concurrent=False, timeout=3.0) == 7.0


@pytest.mark.parametrize("fault", [{"kind": "stall", "after": 5}, {"kind": "blackhole"}])
def test_no_timeout_waits_forever(fault: dict[str, Any]) -> None:
    """Without a timeout, a stalled or blackholed connection never ends."""
    silent = server(fault=fault)
    (conn,) = ideal_timeline([silent], concurrent=True)
    assert (conn.outcome, conn.end, conn.silence) == ("timeout", math.inf, math.inf)
    assert ideal_elapsed([silent, server("b")], concurrent=True) == math.inf


def test_timeout_is_idle_time_between_bytes() -> None:
    """A pause longer than the timeout ends a healthy connection: it counts silence, not duration."""
    (conn,) = ideal_timeline([server()], concurrent=True, timeout=0.5)
    assert course(conn) == ("timeout", 5, 0.0, 0.5)
    (conn,) = ideal_timeline([server()], concurrent=True, timeout=1.0)
    assert course(conn) == (None, 20, 0.0, 4.0)


@pytest.mark.parametrize(("timeout", "expected"), [
    # the second waits 4 s for its first byte, the third 8 s
    (2.0, [(None, 20, 0.0, 4.0), ("timeout", 0, None, 2.0), ("timeout", 0, None, 2.0)]),
    (4.5, [(None, 20, 0.0, 4.0), (None, 20, 4.0, 8.0), ("timeout", 0, None, 4.5)]),
    (8.0, [(None, 20, 0.0, 4.0), (None, 20, 4.0, 8.0), (None, 20, 8.0, 12.0)]),
])
def test_timeout_while_queued(timeout: float, expected: list[tuple[Any, ...]]) -> None:
    """A connection waiting in a serial server's queue longer than the timeout times out there."""
    a = server(mode="serial")
    assert [course(conn) for conn in ideal_timeline([a, a, a], concurrent=True, timeout=timeout)] == expected


@pytest.mark.parametrize("concurrent", [True, False])
def test_fault_probability_picks_the_seeded_connections(concurrent: bool) -> None:
    """With probability 0.5 exactly the connections fault_of() picks for the seed are reset."""
    a = server(fault={"kind": "reset", "after": 5, "probability": 0.5})
    timeline = ideal_timeline([a] * 40, concurrent=concurrent, seed=11)
    picked = [fault_of(Conditions.of(a), 11, "a", number) is not None for number in range(1, 41)]
    assert [conn.outcome == "reset" for conn in timeline] == picked
    assert 0 < sum(picked) < 40
    assert all(conn.bytes == (5 if reset else 20) for conn, reset in zip(timeline, picked, strict=True))


@pytest.mark.parametrize("fault", [
    {"kind": "refuse"}, {"kind": "reset", "after": 5}, {"kind": "close"}, {"kind": "stall"},
    {"kind": "blackhole"},
])
def test_faults_false_ignores_faults(fault: dict[str, Any]) -> None:
    """faults=False gives the fault-free course, for a server and through a proxy to it."""
    a = server(fault=fault)
    assert course(only([a], faults=False, timeout=2.0)) == (None, 20, 0.0, 4.0)
    assert course(only([proxy("a"), a], faults=False, timeout=2.0)) == (None, 20, 0.0, 4.0)


# Proxies.

@pytest.mark.parametrize(("fields", "expected"), [
    # upstream: b"a\n" at 0, b"b\n" at 1, close at 2
    ({}, (None, 4, 0.0, 2.0)),
    ({"delay": 0.5}, (None, 4, 0.0, 2.0)),  # its pauses end before the upstream's next chunk
    # a at 0.25, next free 1.75; b arrives at 1 and waits until 1.75, next free 3.25: close then
    ({"delay": 1.5, "initial_delay": 0.25}, (None, 4, 0.25, 3.25)),
    ({"delay": 1.5, "initial_delay": 0.25, "close_delay": 0.5}, (None, 4, 0.25, 3.75)),
    # the upstream is connected, and serves, 0.5 s late
    ({"accept_delay": 0.5}, (None, 4, 0.5, 2.5)),
    # 1 B/s: a takes 0 to 2, b (arrived at 1) 2 to 4; the upstream's close at 2 waits for it
    ({"rate": 1}, (None, 4, 0.0, 4.0)),
])
def test_proxy_passes_the_upstream_through_its_conditions(fields: dict[str, Any],
                                                           expected: tuple[Any, ...]) -> None:
    """A proxy's connection is the upstream's, delayed by the proxy's own pauses and rate."""
    upstream = server("u", poem=TWO_LINES)
    assert course(only([upstream])) == (None, 4, 0.0, 2.0)
    conn = only([proxy("u", **fields), upstream])
    assert course(conn)[:3] == expected[:3]
    assert conn.end == pytest.approx(expected[3])


@pytest.mark.parametrize(("direction", "end"), [(None, 4.0), ("downstream", 4.0), ("both", 4.0),
                                                ("upstream", 2.0)])
def test_proxy_direction(direction: str | None, end: float) -> None:
    """Only a proxy conditioning the downstream slows it; direction upstream passes it through unchanged."""
    upstream = server("u", poem=TWO_LINES)
    fields = {"direction": direction} if direction else {}
    # a at 0, b (arrived at 1) waits for the pause until 2, close at 4
    assert course(only([proxy("u", delay=2.0, **fields), upstream])) == (None, 4, 0.0, end)


def test_proxy_direction_upstream_fault_never_strikes() -> None:
    """A proxy conditioning only the upstream counts the client's bytes for its fault: none come."""
    upstream = server("u", poem=TWO_LINES)
    downstream = proxy("u", delay=2.0, fault={"kind": "reset", "after": 0})
    assert course(only([downstream, upstream])) == ("reset", 0, None, 0.0)
    upward = proxy("u", delay=2.0, direction="upstream", fault={"kind": "reset", "after": 0})
    assert course(only([upward, upstream])) == (None, 4, 0.0, 2.0)


@pytest.mark.parametrize(("fields", "expected"), [
    # a passes at 0, the upstream's reset at 1 at once
    ({}, ("reset", 2, 0.0, 1.0)),
    ({"initial_delay": 0.75}, ("reset", 2, 0.75, 1.0)),
    # a would go at 1.5, after the reset: it never goes
    ({"initial_delay": 1.5}, ("reset", 0, None, 1.0)),
])
def test_proxy_passes_an_upstream_reset_on_at_once(fields: dict[str, Any], expected: tuple[Any, ...]) -> None:
    """An upstream reset reaches the client at once, with what the proxy had sent before it."""
    upstream = server("u", poem=TWO_LINES, fault={"kind": "reset", "after": 2})
    assert course(only([proxy("u", **fields), upstream])) == expected


def test_proxy_to_a_refusing_upstream_resets() -> None:
    """A proxy whose upstream refuses resets the client once it has tried to connect."""
    upstream = server("u", poem=TWO_LINES, fault={"kind": "refuse"})
    assert course(only([proxy("u", accept_delay=0.5), upstream])) == ("reset", 0, None, 0.5)


def test_proxy_own_fault() -> None:
    """A proxy's own fault counts the bytes it forwards: reset after 2 strikes when b would go."""
    upstream = server("u", poem=TWO_LINES)
    assert course(only([proxy("u", fault={"kind": "reset", "after": 2}), upstream])) == ("reset", 2, 0.0, 1.0)


@pytest.mark.parametrize("concurrent", [True, False])
@pytest.mark.parametrize("position", [0, 1])
def test_proxy_to_an_outside_service_has_no_ideal(concurrent: bool, position: int) -> None:
    """A proxy to HOST:PORT has no ideal (NaN), wherever it stands among the targets."""
    targets = [server("a")]
    targets.insert(position, proxy("127.0.0.1:9"))
    timeline = ideal_timeline(targets, concurrent=concurrent)
    assert math.isnan(timeline[position].end)
    assert math.isnan(ideal_elapsed(targets, concurrent=concurrent))


# What the conditions leave unchanged.

@pytest.mark.parametrize("faults", [True, False])
@pytest.mark.parametrize(("model", "elapsed"), [
    ("blocking", 12.0), ("select", 4.0), ("selectors", 4.0), ("asyncio", 4.0), ("threads", 4.0),
])
def test_the_demo_with_the_new_options(model: str, elapsed: float, faults: bool) -> None:
    """The three-ports demo still needs 12 s blocking and 4 s concurrent with a seed, a timeout and faults."""
    demo = netsim.load_scenario(DEMO)
    targets = demo.targets_of(demo.client(model))
    everything = {one.name: one for one in demo.servers}
    assert ideal_elapsed(targets, concurrent=get_model(model).concurrent, seed=7, timeout=2.0,
                         servers=everything, faults=faults) == pytest.approx(elapsed)


def test_serial_queue_with_the_new_options() -> None:
    """Three connections at once to a serial server still queue, whatever the seed and timeout."""
    a = server(mode="serial")
    timeline = ideal_timeline([a, a, a], concurrent=True, seed=9, timeout=100.0, faults=False)
    assert [(conn.ttfb, conn.end) for conn in timeline] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]


# Handshakes, phases and retries.

def test_syn_times_follow_the_kernels_schedule() -> None:
    """The SYN retransmissions of Linux: doubling from 1 s, after tcp_syn_linear_timeouts of
    1 s each on 6.5 and later; in scenario time they stretch as the time scale shrinks."""
    from netsim.ideal import syn_times

    assert syn_times(1.0, retries=6, linear=0) == (0, 1, 3, 7, 15, 31, 63, 127)
    assert syn_times(1.0, retries=6, linear=4) == (0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67, 131)
    assert syn_times(0.5, retries=2, linear=0) == (0, 2, 6, 14)


@pytest.mark.parametrize(("held", "answered"), [(0.5, 1.0), (1.5, 3.0), (2.5, 3.0), (3.5, 7.0)])
def test_a_handshake_delay_is_quantised_by_the_syn_retransmissions(held: float, answered: float) -> None:
    """A connect made while handshakes are held completes at the first SYN sent after the hold."""
    syn = (0.0, 1.0, 3.0, 7.0, 15.0)
    (conn,) = ideal_timeline([server(handshake_delay=held, delay=0.0, poem="1\n")], concurrent=True, syn=syn)
    assert (conn.first_byte, conn.outcome) == (answered, None)


def test_a_dropped_syn_ends_at_the_clients_timeout_or_its_kernels() -> None:
    """syn_drop: the connect fails in its `connect` phase at the client's timeout, or when the
    kernel gives up if that comes first."""
    dropped = server(fault={"kind": "syn_drop"})
    syn = (0.0, 1.0, 3.0, 7.0)
    (conn,) = ideal_timeline([dropped], concurrent=True, timeout=2.5, syn=syn)
    assert (conn.outcome, conn.phase, conn.end) == ("timeout", "connect", 2.5)
    (conn,) = ideal_timeline([dropped], concurrent=True, syn=syn)
    assert (conn.outcome, conn.end) == ("timeout", 7.0)


def test_a_retrying_client_connects_once_the_server_is_back() -> None:
    """Down from 1 s to 2 s: a connect at 1.2 s is refused; retried every 300 ms, it gets in at
    2.1 s; without retries it stays refused."""
    flapping = server(delay=0.5, phases=[{"at": 1.0, "down": True}, {"at": 2.0}])
    first, second = ideal_timeline([flapping, flapping], concurrent=False, retry=0.3,
                                   starts=[0.0, 1.2])
    assert (first.end, second.start, second.first_byte, second.outcome) == (2.0, 2.0, 2.0, None)
    late = ideal_timeline([flapping], concurrent=True, starts=[1.2], retry=0.3)[0]
    assert late.first_byte == pytest.approx(2.1)
    assert ideal_timeline([flapping], concurrent=True, starts=[1.2])[0].outcome == "refused"


def test_a_retrying_clients_refused_tries_are_no_silence() -> None:
    """Down from 2 s to 6 s, three reads of 1.5 s in a row: 0-1.5, then 1.5-3.0 (begun before
    the outage), then refused at 3.0 and tried every 300 ms until 3.0 + 10 * 0.3 = 6.0, done at
    7.5. The timeout of 2 s (twice the 500 ms pause, plus 1 s) counts from the try that got in:
    the 3 s of refused tries are no wait for a byte."""
    flapping = server(delay=0.5, poem="1111\n2222\n3333\n",
                      phases=[{"at": 2.0, "down": True}, {"at": 6.0}])
    timeline = ideal_timeline([flapping] * 3, concurrent=False, retry=0.3, timeout=2.0)
    assert [conn.outcome for conn in timeline] == [None, None, None]
    assert [(conn.start, conn.first_byte, conn.end) for conn in timeline[2:]] == [(3.0, 6.0, 7.5)]
    assert timeline[2].silence == 0.5


@pytest.mark.parametrize(("pause", "timeout", "end"), [
    (0.5, 2.0, 4.1),  # 2 * 0.5 + 1: done at 2.1 + 4 * 0.5
    (1.5, 4.0, 8.1),  # 2 * 1.5 + 1: done at 2.1 + 4 * 1.5, not timed out after its first line
])
def test_the_default_timeout_follows_a_retrying_clients_course(pause: float, timeout: float,
                                                               end: float) -> None:
    """Down from the start until 2 s: a client retrying every 300 ms gets in at 7 * 0.3 = 2.1 s
    and reads four lines; the default timeout is twice the longest pause of that course plus
    1 s (not of a course refused at once, which has no pause)."""
    down_first = server(delay=pause, phases=[{"at": 0.0, "down": True}, {"at": 2.0}])
    everything = {"a": down_first}
    assert default_timeout([down_first], concurrent=False, seed=0, servers=everything,
                           retry=0.3) == timeout
    (conn,) = ideal_timeline([down_first], concurrent=False, retry=0.3, timeout=timeout)
    assert (conn.first_byte, conn.outcome) == (pytest.approx(2.1), None)
    assert conn.end == pytest.approx(end)


def test_the_phases_count_from_when_the_servers_were_ready() -> None:
    """With the servers ready 50 ms before the client started, a phase at 1 s comes at 0.95 s."""
    resets = server(delay=0.5, phases=[{"at": 1.0, "down": {"reset": True}}])
    (conn,) = ideal_timeline([resets], concurrent=True, ready=-0.05)
    assert (conn.outcome, conn.end, conn.bytes) == ("reset", 0.95, 10)
