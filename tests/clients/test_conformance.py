"""One conformance suite that every client model runs: same servers, same checks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from netsim.clients import MODELS, ClientModel, Event, Recorder, Target, get_model

from .conftest import FakeSlowServers

# A leaked socket shows up as a ResourceWarning when it is collected; make it a failure.
pytestmark = pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)

POEM = [b"1111\n", b"2222\n", b"3333\n", b"4444\n"]
PAUSE = 0.05  # seconds after every chunk, the last one included
ONE_SERVER = len(POEM) * PAUSE  # 0.2 s
# Room for a loaded 2-core CI machine, still far below the gap between the two timings.
TOLERANCE = 0.15  # seconds


@dataclass
class Run:
    """What one client model did: its events in arrival order and its wall time."""

    events: list[Event]
    elapsed: float  # seconds

    def of(self, target: Target) -> list[Event]:
        return [event for event in self.events if event["conn"] == target.conn]

    def outcome(self, target: Target) -> Event:
        """The event that ended the target's connection."""
        return self.of(target)[-1]


def run_model(model: ClientModel, targets: Sequence[Target]) -> Run:
    events: list[Event] = []
    t0 = time.monotonic()
    recorder = Recorder(model.name, t0, events.extend)
    model.run(targets, recorder)
    elapsed = time.monotonic() - t0
    recorder.flush()  # the runner's job after run(); the models must not do it
    return Run(events, elapsed)


def make_targets(*ports_and_expected: tuple[int, bytes]) -> list[Target]:
    return [
        Target(conn=i, server=f"s{i}", host="127.0.0.1", port=port, expected=expected)
        for i, (port, expected) in enumerate(ports_and_expected, start=1)
    ]


def closed_port() -> int:
    """A port nothing listens on: bound once to get it, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(params=list(MODELS.values()), ids=list(MODELS))
def model(request: pytest.FixtureRequest) -> ClientModel:
    chosen: ClientModel = request.param
    return chosen


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before


def test_every_byte_arrives_intact(model: ClientModel, fake_slow_servers: FakeSlowServers) -> None:
    """Every connection receives all its server's bytes and ends with an intact EOF."""
    poems = [POEM, [b"a" * 100_000], [b"x", b"y"]]
    targets = make_targets(
        *((fake_slow_servers.start(poem, 0.01), b"".join(poem)) for poem in poems)
    )

    run = run_model(model, targets)

    for target in targets:
        received = sum(e["bytes"] for e in run.of(target) if e["event"] == "bytes_received")
        assert received == len(target.expected)
        outcome = run.outcome(target)
        assert outcome["event"] == "eof_received"
        assert outcome["bytes"] == len(target.expected)
        assert outcome["intact"] is True


def test_unexpected_bytes_are_not_intact(
    model: ClientModel, fake_slow_servers: FakeSlowServers
) -> None:
    """A connection whose bytes differ from the expected ones ends with intact=False."""
    port = fake_slow_servers.start(POEM, 0.0)
    [target] = make_targets((port, b"not the poem"))

    run = run_model(model, [target])

    assert run.outcome(target)["event"] == "eof_received"
    assert run.outcome(target)["intact"] is False


def test_timing_adds_up_or_overlaps(model: ClientModel, fake_slow_servers: FakeSlowServers) -> None:
    """Three slow servers take their summed time sequentially and one server's time concurrently."""
    targets = make_targets(
        *((fake_slow_servers.start(POEM, PAUSE), b"".join(POEM)) for _ in range(3))
    )
    sequential = 3 * ONE_SERVER  # 0.6 s

    run = run_model(model, targets)

    assert all(run.outcome(t)["intact"] for t in targets)
    if model.concurrent:
        assert ONE_SERVER * 0.95 <= run.elapsed < ONE_SERVER + TOLERANCE
        assert run.elapsed < sequential * 0.6
    else:
        assert sequential * 0.92 <= run.elapsed < sequential + 2 * TOLERANCE


def test_refused_connection_fails_alone(
    model: ClientModel, fake_slow_servers: FakeSlowServers
) -> None:
    """A port nobody listens on fails as "refused" while the other connections complete intact."""
    poem = b"".join(POEM)
    targets = make_targets(
        (fake_slow_servers.start(POEM, 0.01), poem),
        (closed_port(), poem),
        (fake_slow_servers.start(POEM, 0.01), poem),
    )

    run = run_model(model, targets)

    refused = run.outcome(targets[1])
    assert refused["event"] == "conn_failed"
    assert refused["error"] == "refused"
    assert refused["intact"] is False
    for target in (targets[0], targets[2]):
        assert run.outcome(target)["event"] == "eof_received"
        assert run.outcome(target)["intact"] is True


def test_reset_connection_fails_as_reset(
    model: ClientModel, fake_slow_servers: FakeSlowServers
) -> None:
    """A server that resets the connection after some bytes gives conn_failed with "reset"."""
    poem = b"".join(POEM)
    targets = make_targets(
        (fake_slow_servers.start(POEM[:2], 0.02, reset=True), poem),
        (fake_slow_servers.start(POEM, 0.01), poem),
    )

    run = run_model(model, targets)

    reset = run.outcome(targets[0])
    assert reset["event"] == "conn_failed"
    assert reset["error"] == "reset"
    assert reset["intact"] is False
    assert run.outcome(targets[1])["intact"] is True


def test_events_carry_context_and_increasing_time(
    model: ClientModel, fake_slow_servers: FakeSlowServers
) -> None:
    """Every event names its server, connection and client; a connection's clock never runs back."""
    targets = make_targets(
        *((fake_slow_servers.start(POEM, 0.01), b"".join(POEM)) for _ in range(2))
    )

    run = run_model(model, targets)

    for event in run.events:
        assert event["client"] == model.name
        assert event["server"] == f"s{event['conn']}"
    for target in targets:
        events = run.of(target)
        names = [e["event"] for e in events]
        assert names[:2] == ["conn_started", "conn_established"]
        assert set(names[2:-1]) == {"bytes_received"}
        assert names[-1] == "eof_received"
        times = [e["t"] for e in events]
        assert times == sorted(times)
        assert times[0] >= 0


def test_conn_established_carries_local_port(
    model: ClientModel, fake_slow_servers: FakeSlowServers
) -> None:
    """conn_established reports the client's local port, a different one per connection."""
    targets = make_targets(
        *((fake_slow_servers.start(POEM, 0.0), b"".join(POEM)) for _ in range(2))
    )

    run = run_model(model, targets)

    ports = [e["local_port"] for e in run.events if e["event"] == "conn_established"]
    assert len(ports) == 2
    assert all(isinstance(port, int) and port > 0 for port in ports)
    assert ports[0] != ports[1]


def test_no_targets_finishes_at_once(model: ClientModel) -> None:
    """A model given no targets returns immediately without recording anything."""
    run = run_model(model, [])

    assert run.events == []
    assert run.elapsed < 0.5


def test_models_are_registered_in_teaching_order() -> None:
    """MODELS lists every model under its own name, from blocking to threads."""
    assert list(MODELS) == ["blocking", "select", "selectors", "asyncio", "threads"]
    assert all(name == model.name for name, model in MODELS.items())
    assert [m.name for m in MODELS.values() if not m.concurrent] == ["blocking"]


def test_get_model_rejects_unknown_names() -> None:
    """get_model returns a registered model and raises KeyError for any other name."""
    assert get_model("select") is MODELS["select"]
    with pytest.raises(KeyError, match="known models"):
        get_model("epoll")
