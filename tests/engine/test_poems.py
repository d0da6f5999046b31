"""The poem server's executor on a clock the test controls: each write at its deadline, late
wake-ups that catch up without drift, rates, faults, and clients that half-close or leave."""

from __future__ import annotations

import array
import math
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from netsim.conditions import Conditions
from netsim.engine import ServerPlan, open_listeners
from netsim.engine._poems import AHEAD_LEAST, PoemServer
from netsim.engine._precise import IdleWork
from netsim.engine._record import ServerRecord
from netsim.engine._timers import TimerQueue
from netsim.engine._watch import Watcher
from netsim.events import ChunkSent, ConnClosed, ConnEnded, ConnLost, FaultStruck, PeerShutdown, ServerEvent
from tests.engine.fakeloop import FakeLoop


class Idle:
    """Where a server's idle work goes; the test says when the loop would sleep."""

    def __init__(self) -> None:
        self.works: list[IdleWork] = []

    def add_idle(self, work: IdleWork) -> None:
        self.works.append(work)

    def remove_idle(self, work: IdleWork) -> None:
        self.works.remove(work)

    def sleep(self, *, busy: bool = False) -> None:
        """A long wait: every work gets as long as it likes (``busy``: a socket is ready)."""
        for work in list(self.works):
            work(math.inf, lambda: busy)


class Harness:
    """A poem server on a FakeLoop, fed connected TCP sockets; the test moves the clock."""

    def __init__(self, chunks: tuple[bytes, ...], idle: Idle | None = None, **conditions: Any) -> None:
        self.loop = FakeLoop()
        self.events: list[ServerEvent] = []
        plan = ServerPlan(name="s", chunks=chunks, conditions=Conditions(**conditions))
        (self.listener,) = open_listeners([plan])
        self.record = ServerRecord(plan, self.events.append, 0.0, array.array("d"))
        self.watcher = Watcher(self.loop)  # type: ignore[arg-type]
        self.server = PoemServer(self.listener, self.record, TimerQueue(self.loop), self.watcher,
                                 self.loop, idle=idle)  # type: ignore[arg-type]
        self.clients: list[socket.socket] = []

    def connect(self) -> socket.socket:
        """A new client, its server side adopted now (as an accept would)."""
        client = socket.create_connection(self.listener.address)
        accepted, peer = self.listener.sock.accept()
        self.server.adopt(accepted.detach(), peer)
        self.server.run_due()
        client.setblocking(False)
        self.clients.append(client)
        return client

    def at(self, when: float) -> None:
        """Move the clock to ``when``, firing the timers due, then handle ready sockets."""
        self.loop.advance(when)
        self.watcher.poll()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.server.close()
        self.watcher.close()
        self.listener.sock.close()


@pytest.fixture
def harness() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for one in made:
        one.close()


def make(harnesses: list[Harness], chunks: tuple[bytes, ...], idle: Idle | None = None,
         **conditions: Any) -> Harness:
    one = Harness(chunks, idle, **conditions)
    harnesses.append(one)
    return one


def waiting(client: socket.socket) -> bytes | None:
    """What has arrived (b"" at EOF), or None when nothing has."""
    try:
        return client.recv(1 << 16)
    except BlockingIOError:
        return None


def test_each_chunk_goes_at_its_deadline_and_no_sooner(harness: list[Harness]) -> None:
    """Chunk i is written when the clock reaches i x delay, not a moment before; then the close."""
    one = make(harness, (b"11", b"22", b"33"), delay=1.0)
    client = one.connect()
    assert waiting(client) == b"11"
    for due, chunk in ((1.0, b"22"), (2.0, b"33"), (3.0, b"")):
        one.at(due - 0.001)
        assert waiting(client) is None
        one.at(due)
        assert waiting(client) == chunk
    assert list(one.record.lateness) == [0.0, 0.0, 0.0]
    closed, ended = one.events[-2:]
    assert isinstance(closed, ConnClosed) and closed.bytes == 6
    assert isinstance(ended, ConnEnded) and ended.ended == 3.0


def test_a_late_wake_catches_up_without_moving_the_schedule(harness: list[Harness]) -> None:
    """Woken 1.5 s late, the server sends both chunks that came due, counts their lateness, and
    still closes at 3 s: errors never accumulate."""
    one = make(harness, (b"11", b"22", b"33"), delay=1.0)
    client = one.connect()
    one.loop.now = 2.5  # the process was not scheduled: the wake-up for 1 s comes at 2.5 s
    one.loop.fire_next()
    assert waiting(client) == b"11" + b"2233"
    assert list(one.record.lateness) == [0.0, 1.5, 0.5]
    one.at(2.999)
    assert waiting(client) is None
    one.at(3.0)
    assert waiting(client) == b""


def test_connections_keep_their_own_schedules(harness: list[Harness]) -> None:
    """A connection accepted later is paced from its own accept, beside the first."""
    one = make(harness, (b"a", b"b"), delay=1.0)
    first = one.connect()
    one.at(0.4)
    second = one.connect()
    assert (waiting(first), waiting(second)) == (b"a", b"a")
    one.at(1.0)
    assert (waiting(first), waiting(second)) == (b"b", None)
    one.at(1.4)
    assert waiting(second) == b"b"


def test_a_rate_is_more_writes(harness: list[Harness]) -> None:
    """At 4 B/s a 4-byte chunk goes a byte every 250 ms; only its first write counts as the chunk."""
    one = make(harness, (b"abcd",), rate=4.0)
    client = one.connect()
    got = [waiting(client)]
    for step in (0.25, 0.5, 0.75, 1.0):
        one.at(step)
        got.append(waiting(client))
    assert got == [b"a", b"b", b"c", b"d", b""]
    assert [event.index for event in one.events if isinstance(event, ChunkSent)] == [0]


def test_a_reset_fault_cuts_the_timeline_and_resets(harness: list[Harness]) -> None:
    """A reset after 3 bytes sends them, then resets the connection when the fourth byte is due."""
    one = make(harness, (b"11", b"22"), delay=1.0, fault="reset", fault_after=3)
    client = one.connect()
    assert waiting(client) == b"11"
    one.at(1.0)
    received = b""

    def read_until_reset() -> None:
        nonlocal received
        while (data := waiting(client)) is not None:
            received += data

    with pytest.raises(ConnectionResetError):
        read_until_reset()
    assert received in (b"", b"2")  # the RST may overtake the byte before it is read
    struck = next(event for event in one.events if isinstance(event, FaultStruck))
    assert (struck.kind, struck.bytes, struck.t) == ("reset", 3, 1.0)


def test_a_half_close_is_noted_and_the_poem_goes_on(harness: list[Harness]) -> None:
    """A client that shuts down its sending side is noted at once and still gets the rest."""
    one = make(harness, (b"11", b"22"), delay=1.0)
    client = one.connect()
    client.shutdown(socket.SHUT_WR)
    one.at(0.5)
    assert [type(event) for event in one.events][-1] is PeerShutdown
    one.at(1.0)
    assert waiting(client) == b"1122"
    one.at(2.0)
    assert waiting(client) == b""
    assert not any(isinstance(event, ConnLost) for event in one.events)


def test_a_client_that_closes_early_ends_at_the_reset_its_close_brings(harness: list[Harness]) -> None:
    """A client that reads the first line and closes: its EOF is noted once (it might be a
    half-close), the next write brings its kernel's reset, and the connection ends there
    and then, where the server was woken for the reset again and again until a write failed.
    It ends as the client's close (the reset only answered the write), not as its reset."""
    one = make(harness, (b"11", b"22", b"33"), delay=1.0)
    client = one.connect()
    assert waiting(client) == b"11"
    client.close()
    one.clients.remove(client)
    one.at(0.5)  # the EOF
    one.at(1.0)  # the second line, which the client's kernel answers with a reset
    for _ in range(3):  # the loop polling while the reset stands
        one.watcher.poll()
    assert sum(isinstance(event, PeerShutdown) for event in one.events) == 1
    ended = [event for event in one.events if isinstance(event, ConnEnded)]
    assert [(event.how, event.bytes, event.ended) for event in ended] == [("client_closed", 4, 1.0)]
    assert not one.server.live


def test_a_stalled_connection_ends_when_its_client_leaves(harness: list[Harness]) -> None:
    """A stall keeps the connection silent and open; the client's close ends it at once."""
    one = make(harness, (b"11", b"22"), delay=1.0, fault="stall", fault_after=2)
    client = one.connect()
    one.at(5.0)
    assert waiting(client) == b"11"
    assert one.record.accepted == 1 and len(one.server.live) == 1
    client.close()
    one.clients.remove(client)
    one.at(5.1)
    lost = next(event for event in one.events if isinstance(event, ConnLost))
    assert (lost.how, lost.t) == ("eof", 5.1)
    ended = one.events[-1]
    assert isinstance(ended, ConnEnded) and (ended.how, ended.bytes, ended.acked) == ("client_closed", 2, 2)
    assert not one.server.live


@pytest.mark.parametrize(("conditions", "sent"), [
    ({"fault": "stall", "fault_after": 2}, b"11"),  # shut before the stall strikes
    ({"fault": "stall", "fault_after": 4}, b"1122"),  # shut while its last chunk is out
    ({"fault": "blackhole"}, b""),
])
def test_a_silent_connection_stays_silent_for_a_client_that_half_closes(
        harness: list[Harness], conditions: dict[str, Any], sent: bytes) -> None:
    """A client that shuts down its sending side (nc, an HTTP/1.0 request) gets silence from a
    stall or a blackhole, never an end of file, until PARK_GRACE; its account is of the
    server's view: the client's EOF is when it left."""
    from netsim.engine._poems import PARK_GRACE

    one = make(harness, (b"11", b"22", b"33"), delay=1.0, **conditions)
    client = one.connect()
    one.at(0.5 if conditions.get("fault_after") != 4 else 1.5)
    client.shutdown(socket.SHUT_WR)
    one.at(1.9)
    one.at(5.0)
    if sent:
        assert waiting(client) == sent
    assert waiting(client) is None  # nothing (more), and no end of file
    ended = one.events[-1]
    assert isinstance(ended, ConnEnded) and (ended.how, ended.bytes) == ("client_closed", len(sent))
    assert not one.server.live
    one.at(1.9 + PARK_GRACE - 0.1)
    assert waiting(client) is None
    one.at(1.9 + PARK_GRACE)
    assert waiting(client) == b""  # let go at last


def test_a_silent_connection_parked_is_closed_when_the_server_stops(harness: list[Harness]) -> None:
    """A parked socket does not outlive its server."""
    one = make(harness, (b"11",), delay=1.0, fault="blackhole")
    client = one.connect()
    client.shutdown(socket.SHUT_WR)
    one.at(0.5)
    assert waiting(client) is None
    one.server.close()
    assert waiting(client) == b""


def test_every_connection_ends_with_its_account(harness: list[Harness]) -> None:
    """The server's account says when the connection was accepted, first written to and
    closed, and that the client's kernel acknowledged every byte; with every byte
    acknowledged by its close, the server closes at once, without waiting for the client."""
    one = make(harness, (b"11", b"22", b"33"), delay=1.0)
    one.at(0.25)
    client = one.connect()
    port = client.getsockname()[1]
    one.at(3.25)
    ended = one.events[-1]
    assert isinstance(ended, ConnEnded)
    assert (ended.how, ended.bytes, ended.acked, ended.fault) == ("closed", 6, 6, None)
    assert (ended.accepted, ended.first_byte, ended.ended, ended.t) == (0.25, 0.25, 3.25, 3.25)
    assert (ended.peer_host, ended.peer_port) == ("127.0.0.1", port)
    assert client.recv(100) == b"112233" and client.recv(100) == b""
    assert not one.server.live


def unacknowledged_at_the_close(harness: list[Harness]) -> tuple[Harness, socket.socket]:
    """A connection whose client reads nothing through a small window: when the server's time
    to close comes, most of its 256 KiB chunk is still unacknowledged in its send buffer."""
    one = make(harness, (bytes(256 * 1024),), delay=1.0)
    client = one.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    one.at(1.0)
    assert not any(isinstance(event, ConnEnded) for event in one.events)
    return one, client


def test_a_client_that_never_closes_is_let_go_after_the_grace(harness: list[Harness]) -> None:
    """With bytes unacknowledged at its close, the server sends FIN and waits CLOSE_GRACE
    for the client to close, then accounts for what was acknowledged by then."""
    from netsim.engine._poems import CLOSE_GRACE

    one, _ = unacknowledged_at_the_close(harness)
    one.at(1.0 + CLOSE_GRACE - 0.01)
    assert not any(isinstance(event, ConnEnded) for event in one.events)
    one.at(1.0 + CLOSE_GRACE)
    ended = one.events[-1]
    assert isinstance(ended, ConnEnded) and (ended.how, ended.ended) == ("closed", 1.0)
    assert ended.acked is not None and ended.acked < ended.bytes == 256 * 1024


def test_a_client_that_reads_the_rest_after_the_fin_is_accounted_for_all_of_it(
        harness: list[Harness]) -> None:
    """The wait after the FIN is what lets the account count the bytes a slow reader takes
    after the server's close."""
    one, client = unacknowledged_at_the_close(harness)
    client.setblocking(True)
    received = 0
    while data := client.recv(1 << 16):
        received += len(data)
    client.close()
    one.clients.remove(client)
    one.at(1.5)
    ended = one.events[-1]
    assert received == 256 * 1024
    assert isinstance(ended, ConnEnded)
    assert (ended.how, ended.ended, ended.acked) == ("closed", 1.0, 256 * 1024)


def test_bytes_a_client_never_took_are_not_acknowledged(harness: list[Harness]) -> None:
    """A client that stops reading leaves most of a large chunk unacknowledged; stopping the
    server accounts for the connection as stopped, with what was acknowledged."""
    one = make(harness, (bytes(8 * 1024 * 1024),), delay=1.0)
    client = one.connect()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    one.at(0.5)
    one.server.close()
    ended = next(event for event in one.events if isinstance(event, ConnEnded))
    assert ended.how == "stopped"
    assert ended.acked is not None and ended.acked < ended.bytes < 8 * 1024 * 1024


def test_a_reset_fault_is_accounted_as_the_servers_reset(harness: list[Harness]) -> None:
    """A reset fault ends the account as 'reset', with the fault and the bytes acknowledged."""
    one = make(harness, (b"11", b"22"), delay=1.0, fault="reset", fault_after=2)
    one.connect()
    one.at(1.0)
    ended = one.events[-1]
    assert isinstance(ended, ConnEnded)
    assert (ended.how, ended.fault, ended.bytes, ended.acked, ended.ended) == ("reset", "reset", 2, 2, 1.0)


def test_a_change_replans_an_open_connection_from_where_it_stands(harness: list[Harness]) -> None:
    """Changed at 1.5 s from 1 s pauses to 100 ms, the next chunk goes at once and the rest
    100 ms apart; changed to 3 s, nothing goes at the old deadline."""
    one = make(harness, (b"11", b"22", b"33", b"44"), delay=1.0)
    client = one.connect()
    one.at(1.0)
    assert waiting(client) == b"1122"
    one.at(1.5)
    one.server.change(Conditions(delay=0.1), 1)
    assert waiting(client) == b"33"
    one.at(1.61)
    assert waiting(client) == b"44"
    one.at(1.71)
    assert waiting(client) == b""

    other = make(harness, (b"11", b"22"), delay=1.0)
    slow = other.connect()
    assert waiting(slow) == b"11"
    other.at(0.5)
    other.server.change(Conditions(delay=3.0), 1)
    other.at(2.999)
    assert waiting(slow) is None  # the entry for 1 s was stale, and wrote nothing
    other.at(3.0)
    assert waiting(slow) == b"22"


def test_a_change_that_keeps_the_next_deadline_makes_each_write_once(harness: list[Harness]) -> None:
    """A stall brought in at 0.5 s that keeps the next write at 1 s: two bytes of the next
    line go then and the fault strikes once, where the old and the new heap entry for that
    same moment each took the connection on, and the stall struck twice."""
    one = make(harness, (b"1111\n", b"2222\n", b"3333\n"), delay=1.0)
    client = one.connect()
    one.at(0.5)
    one.server.change(Conditions(delay=1.0, fault="stall", fault_after=7), 1)
    one.at(1.0)
    assert waiting(client) == b"1111\n22"
    assert sum(isinstance(event, FaultStruck) for event in one.events) == 1


def test_reset_open_resets_every_open_connection(harness: list[Harness]) -> None:
    """reset_open resets the connections still open, counts them, and accounts for each as reset."""
    one = make(harness, (b"11", b"22"), delay=1.0)
    clients = [one.connect(), one.connect()]
    assert one.server.reset_open() == 2
    for client in clients:
        assert waiting(client) == b"11"
        with pytest.raises(ConnectionResetError):
            client.recv(16)
    assert [event.how for event in one.events if isinstance(event, ConnEnded)] == ["reset", "reset"]


def schedules(one: Harness) -> list[list[float]]:
    """When each connection's chunks were due, counted from its accept (its first chunk)."""
    due: dict[int, list[float]] = {}
    for event in one.events:
        if isinstance(event, ChunkSent):
            due.setdefault(event.peer_port, []).append(event.scheduled)
    return [[when - times[0] for when in times] for times in due.values()]


def run_to_the_end(one: Harness, clients: list[socket.socket]) -> None:
    for when in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5):
        one.at(when)
        for client in clients:
            waiting(client)


def test_connections_get_the_courses_planned_while_the_server_was_idle(harness: list[Harness]) -> None:
    """A jittered server plans the next connections' courses while it waits, and they keep
    exactly the schedules they would have had, planned at their accepts."""
    chunks = (b"1", b"2", b"3", b"4")
    idle = Idle()
    ahead = make(harness, chunks, idle, delay=0.5, jitter=0.25)
    idle.sleep(busy=True)  # a connection waits: the server leaves the planning for later
    assert ahead.server._planner.planned_ahead == 0
    idle.sleep()
    assert ahead.server._planner.planned_ahead == AHEAD_LEAST
    at_accept = make(harness, chunks, delay=0.5, jitter=0.25)
    for one in (ahead, at_accept):
        run_to_the_end(one, [one.connect() for _ in range(3)])
    assert ahead.server._planner.planned_ahead == AHEAD_LEAST - 3  # theirs were taken
    assert schedules(ahead) == schedules(at_accept)
    assert len(schedules(ahead)) == 3 and len({tuple(s) for s in schedules(ahead)}) == 3  # jittered


def test_courses_planned_ahead_do_not_outlive_a_change_of_conditions(harness: list[Harness]) -> None:
    idle = Idle()
    one = make(harness, (b"1", b"2"), idle, delay=0.5, jitter=0.25)
    idle.sleep()
    one.server.change(Conditions(delay=2.0), 1)
    assert idle.works == []  # its connections share one timeline now: nothing to plan ahead
    client = one.connect()
    one.at(2.0)
    assert waiting(client) == b"12"
    assert schedules(one) == [[0.0, 2.0]]


def test_a_server_takes_idle_time_only_while_it_has_courses_to_plan(harness: list[Harness]) -> None:
    idle = Idle()
    one = make(harness, (b"1",), idle, delay=0.5)
    assert idle.works == []  # every connection shares one timeline
    one.server.change(Conditions(delay=0.5, jitter=0.25), 1)
    assert len(idle.works) == 1
    one.server.close()
    assert idle.works == []
