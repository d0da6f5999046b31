"""Conditions over time and faults at the handshake, on real sockets: what the clients
measure, what the ideal says, and what the log records.

Each case states the ideal by hand, checks that the ideal model agrees, and checks that a
real run measures it, within 80 ms of scenario time (40 ms of wall time at the scale of
these runs) against values of 400 ms and more.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import netsim
from netsim.events import (
    BytesReceived,
    ConditionsChanged,
    Event,
    HandshakesAnswered,
    HandshakesHeld,
    ServerCameUp,
    ServerListening,
    ServerWentDown,
)
from netsim.ideal import ideal_elapsed, syn_times
from netsim.runner import default_timeout

SCALE = 0.5
TOLERANCE = 0.08  # scenario seconds


@dataclass(frozen=True)
class Case:
    servers: str  # the servers: block, in YAML
    client: str  # the one client's mapping, in YAML flow style
    ideal: float  # scenario seconds, worked out by hand
    errors: dict[str, int]  # expected counts of each error kind
    intact: float = 1.0


CASES = {
    # 250 ms pauses, then 100 ms from 1 s: chunks at 0, .25, .5, .75, then 1.0 (the pause
    # under way is already over), 1.1, 1.2, 1.3, and the close at 1.4.
    "a new delay paces an open connection": Case(
        """- {name: a, poem: "1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n", delay: 250ms,
             phases: [{at: 1s, delay: 100ms}]}""",
        "{model: asyncio}", 1.4, {}),
    # Four reads of 0.6 s one after another: the third, begun before the outage at 1.5 s,
    # finishes through it; the fourth, at 1.8 s, is refused.
    "a server down refuses new connections, not open ones": Case(
        """- {name: b, poem: "1\\n2\\n", delay: 300ms, phases: [{at: 1.5s, down: true}, {at: 2.5s}]}""",
        "{model: blocking, targets: [b, b, b, b]}", 1.8, {"refused": 1}, 0.75),
    # A serial server taken down at 0.4 s, while it serves the first of three clients that
    # have all connected: the first goes on to 0.6 s, the two waiting their turn are served
    # after it, while it is still down (0.6-1.2, 1.2-1.8), as open connections go on.
    "a serial server down keeps the clients waiting their turn": Case(
        """- {name: s, poem: "1\\n2\\n", delay: 300ms, mode: serial,
             phases: [{at: 400ms, down: true}, {at: 1.5s}]}""",
        "{model: select, targets: [s, s, s]}", 1.8, {}),
    "a serial server down with a reset resets the clients waiting their turn too": Case(
        """- {name: t, poem: "1\\n2\\n", delay: 300ms, mode: serial,
             phases: [{at: 400ms, down: {reset: true}}]}""",
        "{model: select, targets: [t, t, t]}", 0.4, {"reset": 3}, 0.0),
    "down with a reset ends the open connections": Case(
        """- {name: c, poem: "1\\n2\\n3\\n4\\n5\\n6\\n", delay: 200ms,
             phases: [{at: 500ms, down: {reset: true}}]}""",
        "{model: asyncio, targets: [c, c]}", 0.5, {"reset": 2}, 0.0),
    # Six bytes have gone at 0.5 s, past `after: 4`: the fault strikes with the next chunk.
    "a fault brought in counts the bytes already sent": Case(
        """- {name: d, poem: "1\\n2\\n3\\n4\\n5\\n6\\n", delay: 200ms,
             phases: [{at: 500ms, fault: {kind: reset, after: 4}}]}""",
        "{model: blocking}", 0.6, {"reset": 1}, 0.0),
    # Handshakes held for 1 s of scenario time (0.5 s of wall time): the SYN sent at once is
    # dropped, the client's kernel sends it again 1 s of wall time later, 2 s of scenario time.
    "a handshake delay waits for the next SYN retransmission": Case(
        """- {name: e, poem: "1\\n", handshake_delay: 1s}""",
        "{model: blocking, timeout: 5s}", 2.0, {}),
    "a dropped SYN leaves the connect to its timeout": Case(
        """- {name: f, poem: "1\\n", fault: {kind: syn_drop}}""",
        "{model: asyncio, timeout: 800ms}", 0.8, {"timeout": 1}, 0.0),
    "a corrupted connection ends as usual, not intact": Case(
        """- {name: g, poem: "1111\\n2222\\n3333\\n4444\\n", delay: 100ms,
             fault: {kind: corrupt, after: 5}}""",
        "{model: selectors}", 0.4, {}, 0.0),
    # The same through a proxy, the fault set on the proxy: its open connection meets it.
    "a fault brought in reaches a proxy's open connection": Case(
        '- {name: up, poem: "1\\n2\\n3\\n4\\n5\\n6\\n", delay: 200ms}\n'
        "- {name: p, upstream: up, phases: [{at: 500ms, fault: {kind: reset, after: 4}}]}",
        "{model: blocking, targets: [p]}", 0.6, {"reset": 1}, 0.0),
    # A time limit brought in at 300 ms counts from the accept: the proxy closes at 500 ms,
    # after the lines of 0, 0.2 and 0.4 s.
    "a time limit brought in closes a proxy's open connection": Case(
        '- {name: up, poem: "1\\n2\\n3\\n4\\n5\\n6\\n", delay: 200ms}\n'
        "- {name: p, upstream: up, phases: [{at: 300ms, fault: {kind: close, at: 500ms}}]}",
        "{model: asyncio, targets: [p]}", 0.5, {}, 0.0),
    # The upstream sends its whole poem at once; the proxy paces it out a line every 200 ms
    # (0, 0.2, 0.4, ...). At 300 ms `after: 5` cuts what it holds: of the line due at 0.4 s
    # only "3" goes, and the fault strikes with it, as on a poem server.
    "a limit brought in cuts what a proxy holds queued": Case(
        '- {name: up, poem: "1\\n2\\n3\\n4\\n5\\n6\\n", chunk: all}\n'
        "- {name: p, upstream: up, delay: 200ms, phases: [{at: 300ms, fault: {kind: reset, after: 5}}]}",
        "{model: blocking, targets: [p]}", 0.4, {"reset": 1}, 0.0),
    # "1" at 0 and "2" at 0.2 s, then the stall (after 4 bytes) silences it from 0.4 s, until
    # it is taken away at 1 s: the pause under way is long over, so "3" goes at once, "4"
    # at 1.2 s, and the close at 1.4 s.
    "a stall taken away lets a poem server's connection go on": Case(
        """- {name: k, poem: "1\\n2\\n3\\n4\\n", delay: 200ms, fault: {kind: stall, after: 4},
             phases: [{at: 1s, fault: null}]}""",
        "{model: asyncio}", 1.4, {}),
    # Through a proxy the same stall ends the connection when taken away: what the upstream
    # sent meanwhile was dropped. The client has "1", "2" and its end at 1 s.
    "a stall taken away ends a proxy's connection": Case(
        '- {name: up, poem: "1\\n2\\n3\\n4\\n5\\n6\\n", delay: 200ms}\n'
        "- {name: p, upstream: up, fault: {kind: stall, after: 4}, phases: [{at: 1s, fault: null}]}",
        "{model: asyncio, targets: [p]}", 1.0, {}, 0.0),
    # Two proxies in a row, each with its own latency: the poem's lines (0 to 0.3 s, closed
    # at 0.4 s) come 100 + 200 ms later, and the close as late: 0.7 s.
    "a proxy in front of a proxy adds both latencies": Case(
        '- {name: up, poem: "1\\n2\\n3\\n4\\n", delay: 100ms}\n'
        "- {name: near, upstream: up, latency: 100ms}\n"
        "- {name: far, upstream: near, latency: 200ms}",
        "{model: selectors, targets: [far]}", 0.7, {}),
    "a time limit resets the connection at its moment": Case(
        """- {name: h, poem: "1111\\n2222\\n3333\\n4444\\n", delay: 300ms,
             fault: {kind: reset, at: 700ms}}""",
        "{model: threads}", 0.7, {"reset": 1}, 0.0),
}


def scenario_of(case: Case) -> netsim.Scenario:
    servers = textwrap.indent(textwrap.dedent(case.servers), "  ")
    text = f"netsim: 1\nname: case\nseed: 5\nservers:\n{servers}\nclients: [{case.client}]\n"
    return netsim.load_scenario_text(text)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_ideal_and_a_real_run_follow_the_conditions_over_time(case: Case) -> None:
    """The ideal model gives the hand-worked time, and a real run measures it."""
    scenario = scenario_of(case)
    (client,) = scenario.clients
    targets = scenario.targets_of(client)
    everything = {server.name: server for server in scenario.servers}
    concurrent = client.model != "blocking"
    timeout = client.timeout or default_timeout(targets, concurrent=concurrent, seed=5, servers=everything,
                                                syn=syn_times(SCALE))
    assert ideal_elapsed(targets, concurrent=concurrent, seed=5, timeout=timeout, servers=everything,
                         syn=syn_times(SCALE)) == pytest.approx(case.ideal)
    (run,) = netsim.run_scenario(scenario, time_scale=SCALE).runs
    assert abs(run.ideal - case.ideal) <= TOLERANCE  # it starts when the servers were ready
    assert abs(run.elapsed - run.ideal) <= TOLERANCE
    metrics = run.metrics()
    for kind in ("refused", "reset", "timeout"):
        assert metrics[f"errors.{kind}"] == case.errors.get(kind, 0), kind
    assert metrics["intact"] == case.intact


def test_a_sliced_connection_arrives_in_pieces_on_the_ideals_schedule() -> None:
    """slice cuts a chunk into pieces the client reads one by one, 50 ms apart, as the ideal says."""
    scenario = netsim.load_scenario_text(textwrap.dedent("""\
        netsim: 1
        name: sliced
        seed: 2
        servers:
          - {name: s, poem: "abcdefghijklmnopqrstuvwxyz\\n", chunk: all, slice: {bytes: 5..8, delay: 50ms}}
        clients: [blocking]
    """))
    events: list[Event] = []
    (run,) = netsim.run_scenario(scenario, time_scale=SCALE, observer=events.append).runs
    reads = [event.bytes for event in events if isinstance(event, BytesReceived)]
    assert len(reads) >= 4 and all(size <= 8 for size in reads) and sum(reads) == 27
    assert run.ideal == pytest.approx(0.05 * (len(reads) - 1))
    assert abs(run.elapsed - run.ideal) <= TOLERANCE
    assert run.connections[0].intact is True


def test_every_change_is_logged_at_its_time_from_ready() -> None:
    """A phase's change, the server going down and coming up, and held handshakes are logged
    at ready + at (scenario time), within 20 ms of wall time."""
    scenario = netsim.load_scenario_text(textwrap.dedent("""\
        netsim: 1
        name: logged
        servers:
          - name: a
            poem: "1\\n2\\n"
            delay: 100ms
            phases:
              - {at: 200ms, delay: 50ms, fault: {kind: close, after: 1}}
              - {at: 400ms, down: true}
              - {at: 600ms, handshake_delay: 200ms}
          - {name: slow, poem: "1\n", initial_delay: 1s}  # keeps the run going past the phases
        clients: [blocking]
    """))
    events: list[Event] = []
    netsim.run_scenario(scenario, time_scale=SCALE, observer=events.append, timeout=5.0)
    (listening, _) = [event for event in events if isinstance(event, ServerListening)]

    def at(kind: type[Event]) -> list[float]:
        return [round((event.t - listening.t) / SCALE, 2) for event in events if isinstance(event, kind)]

    changed = [event for event in events if isinstance(event, ConditionsChanged)]
    assert [(event.changes, event.source) for event in changed] == [
        ({"delay": "50ms", "fault": {"kind": "close", "after": 1}}, "phase 1"),
        ({"handshake_delay": "200ms"}, "phase 3")]
    for kind, when in ((ConditionsChanged, [0.2, 0.6]), (ServerWentDown, [0.4]), (ServerCameUp, [0.6]),
                       (HandshakesHeld, [0.6]), (HandshakesAnswered, [0.8])):
        assert at(kind) == pytest.approx(when, abs=0.04), kind.__name__


def test_a_server_comes_back_on_the_same_port() -> None:
    """Down from 200 ms to 400 ms (wall, at time scale 1): a connect in between is refused,
    one after is served on the same port."""
    text = textwrap.dedent("""\
        netsim: 1
        name: flapping
        servers: [{name: a, poem: "1\\n", phases: [{at: 200ms, down: true}, {at: 400ms}]}]
    """)
    with netsim.serving(text) as net:
        began = time.monotonic()
        address = net.address("a")
        with socket.create_connection(address, timeout=1) as sock:
            assert sock.recv(16) == b"1\n"
        time.sleep(max(0.0, began + 0.3 - time.monotonic()))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=1)
        time.sleep(max(0.0, began + 0.5 - time.monotonic()))
        with socket.create_connection(address, timeout=1) as sock:
            assert sock.recv(16) == b"1\n"
    assert [conn.intact for conn in net.result().connections] == [True, True]


RETRYING_CLIENT = Path(__file__).resolve().parent.parent / "examples" / "retrying_poetry_client.py"


@pytest.mark.slow
def test_a_retrying_program_rides_out_an_outage_longer_than_the_default_timeout() -> None:
    """Down from 2 s to 6 s, three reads of 1.5 s in a row: the third, refused from 3 s and tried
    every 300 ms, gets in at 6 s and is done at 7.5 s, the ideal (its 3 s of refused tries are
    longer than the 2 s default timeout, and no silence); the program measures it."""
    scenario = netsim.load_scenario_text(textwrap.dedent(f"""\
        netsim: 1
        name: long-outage
        servers:
          - {{name: a, poem: "1111\\n2222\\n3333\\n", delay: 500ms,
             phases: [{{at: 2s, down: true}}, {{at: 6s}}]}}
        clients:
          - {{model: command, name: retrying, run: ["{sys.executable}", "{RETRYING_CLIENT}", "{{ports}}"],
             targets: [a, a, a], concurrent: false, retry: 300ms, output: poems}}
    """))
    (run,) = netsim.run_scenario(scenario, time_scale=SCALE).runs
    assert abs(run.ideal - 7.5) <= TOLERANCE  # it starts when the servers were ready
    # The program's start (wall time) may shift its tries by up to one retry: 5% as outage.yaml.
    assert run.elapsed == pytest.approx(run.ideal, rel=0.05)
    assert [conn.error for conn in run.connections] == [None, None, None]
    assert all(conn.intact for conn in run.connections)
