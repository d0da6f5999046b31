"""Faults and conditions seen from the client side, on real sockets.

How each fault ends a connection, for every client model, is a clause of the client
models' contract (``netsim.testing.check_client_model``, run in tests/clients).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import netsim
from netsim.events import BytesReceived, ChunkSent, ConnAccepted, Event
from tests.conftest import ScenarioWriter

POEM = "1111\n2222\n3333\n4444\n"  # four chunks of 5 bytes
SCALE = 0.1  # 100 ms pauses take 10 ms


def test_a_share_of_connections_fails_as_the_seed_says(write_scenario: ScenarioWriter) -> None:
    """probability: 50% resets the connections the seed picks, and the ideal knows which."""
    from netsim.conditions import Conditions, fault_of

    path = write_scenario("""\
        netsim: 1
        name: some
        seed: 11
        servers: [{name: s, poem: "1\\n2\\n", delay: 50ms, fault: {kind: reset, probability: 50%}}]
        clients: [{model: asyncio, targets: [s, s, s, s, s, s, s, s]}]
    """)
    scenario = netsim.load_scenario(path)
    (run,) = netsim.run_scenario(scenario, time_scale=SCALE).runs
    conditions = Conditions.of(scenario.servers[0])
    picked = {index for index in range(1, 9) if fault_of(conditions, 11, "s", index)}
    assert 0 < len(picked) < 8  # this seed gives a mix
    assert sum(conn.error == "reset" for conn in run.connections) == len(picked)
    assert sum(conn.intact is True for conn in run.connections) == 8 - len(picked)


def chunk_offsets(events: list[Event]) -> list[list[float]]:
    """Per connection, when each chunk was scheduled relative to the connection's accept."""
    accepted = {event.peer_port: event.t for event in events if isinstance(event, ConnAccepted)}
    offsets: dict[int, list[float]] = {}
    for event in events:
        if isinstance(event, ChunkSent):
            assert event.conn is not None
            offsets.setdefault(event.conn, []).append(round(event.scheduled - accepted[event.peer_port], 6))
    return [offsets[conn] for conn in sorted(offsets)]


def test_the_same_seed_gives_the_same_schedule(write_scenario: ScenarioWriter) -> None:
    """With jitter, two runs with one seed schedule every chunk alike; another seed differs."""
    path = write_scenario("""\
        netsim: 1
        name: jittery
        servers: [{name: s, poem: "a\\nb\\nc\\nd\\ne\\nf\\n", delay: 100ms, jitter: 80ms}]
        clients: [{model: select, targets: [s, s]}]
    """)
    scenario = netsim.load_scenario(path)

    def schedule(seed: int) -> list[list[float]]:
        events: list[Event] = []
        netsim.run_scenario(scenario, time_scale=SCALE, seed=seed, observer=events.append)
        return chunk_offsets(events)

    first, again, other = schedule(5), schedule(5), schedule(6)
    assert first == again
    assert first != other
    assert len({tuple(conn) for conn in first}) == 2  # two connections, two different schedules


@pytest.mark.slow
def test_a_rate_cap_is_kept_within_two_percent(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """200 KB at 200 KB/s arrives at 200 KB/s (within 2 %), as the client measures it over a second."""
    (tmp_path / "big.txt").write_text("x" * 199_999 + "\n")
    path = write_scenario("""\
        netsim: 1
        name: rated
        servers: [{name: s, poem_file: big.txt, chunk: all, rate: 200KB/s}]
        clients: [blocking]
    """)
    events: list[Event] = []
    result = netsim.run_scenario(netsim.load_scenario(path), observer=events.append)
    received = [(event.t, event.bytes) for event in events if isinstance(event, BytesReceived)]
    (first_t, first_size), (last_t, _) = received[0], received[-1]
    # The first piece is due at once; the rest follow at the rate.
    assert (200_000 - first_size) / (last_t - first_t) == pytest.approx(200_000, rel=0.02)
    assert result.runs[0].connections[0].intact is True


def test_a_serial_server_moves_on_when_a_blackholed_client_leaves(write_scenario: ScenarioWriter) -> None:
    """On a serial server, the connection after a blackholed one is served once that client gives up."""
    from netsim.conditions import Conditions, fault_of

    probe = netsim.load_scenario(write_scenario("""\
        netsim: 1
        name: probe
        servers: [{name: s, poem: "1\\n", fault: {kind: blackhole, probability: 50%}}]
        clients: [blocking]
    """, name="probe.yaml"))
    conditions = Conditions.of(probe.servers[0])
    seed = next(seed for seed in range(1000)
                if fault_of(conditions, seed, "s", 1) and not fault_of(conditions, seed, "s", 2))
    path = write_scenario(f"""\
        netsim: 1
        name: stuck
        seed: {seed}
        servers:
          - {{name: s, poem: "1111\\n2222\\n", delay: 100ms, mode: serial,
              fault: {{kind: blackhole, probability: 50%}}}}
        clients: [{{model: blocking, targets: [s, s], timeout: 300ms}}]
    """)
    # At time scale 1: the 80 ms a loaded machine may add is well below the 500 ms checked.
    (run,) = netsim.run_scenario(netsim.load_scenario(path), time_scale=1.0).runs
    first, second = run.connections
    assert (first.error, first.bytes) == ("timeout", 0)
    assert (second.error, second.intact) == (None, True)
    # the second starts when the first has timed out (300 ms), and takes 200 ms
    assert run.ideal == pytest.approx(0.5)
    assert 0.5 - 0.005 <= run.elapsed <= 0.5 + 0.08


@pytest.mark.parametrize("fault", ["{kind: stall, after: 5}", "{kind: blackhole}"])
def test_a_silent_connection_its_client_left_costs_the_server_nothing(
        write_scenario: ScenarioWriter, fault: str) -> None:
    """Once its client gives up a stalled or blackholed connection, the server keeps the
    socket (a half-close may be all it was) without looking at it again: it spun at a
    whole core for the rest of the run, watching a socket that always read as ready."""
    scenario = netsim.load_scenario(write_scenario(f"""\
        netsim: 1
        name: spin
        servers:
          - {{name: freezes, poem: "1111\\n2222\\n", delay: 500ms, fault: {fault}}}
          - {{name: slow, poem: "1\\n2\\n3\\n4\\n", delay: 500ms}}
        clients: [{{model: blocking, timeout: 1s}}]
    """))
    (run,) = netsim.run_scenario(scenario, time_scale=0.5).runs
    assert [conn.error for conn in run.connections] == ["timeout", None]
    # 1.5 s of wall time after the timeout: a spinning server used all of it.
    assert run.server_cpu < 0.3 * run.wall_elapsed


@pytest.mark.parametrize("model", ["blocking", "select", "selectors", "asyncio", "threads", "trio",
                                   "twisted"])
def test_every_model_says_whether_a_connection_failed_connecting_or_reading(
        write_scenario: ScenarioWriter, model: str) -> None:
    """A connect whose SYNs go unanswered times out in the phase `connect`; a stall, in `read`."""
    path = write_scenario(f"""\
        netsim: 1
        name: phases
        servers:
          - {{name: dropped, poem: "1\\n", fault: {{kind: syn_drop}}}}
          - {{name: stalled, poem: "1111\\n2222\\n", fault: {{kind: stall, after: 5}}}}
        clients: [{{model: {model}, timeout: 300ms}}]
    """)
    (run,) = netsim.run_scenario(netsim.load_scenario(path)).runs
    assert [(conn.error, conn.phase, conn.bytes) for conn in run.connections] == [
        ("timeout", "connect", 0), ("timeout", "read", 5)]
    assert run.to_dict()["connections"][0]["phase"] == "connect"
