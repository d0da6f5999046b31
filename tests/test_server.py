"""The server engine on real sockets: pacing, serial queueing, backpressure, clients that
leave or half-close, busy ports."""

from __future__ import annotations

import array
import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from netsim import PortBusyError
from netsim.conditions import Conditions
from netsim.engine import Controls, ServerPlan, open_listeners, serve
from netsim.engine._poems import PoemServer
from netsim.engine._record import ServerRecord
from netsim.engine._timers import TimerQueue
from netsim.engine._watch import Watcher
from netsim.events import ChunkSent, ConnAccepted, ConnLost, PeerShutdown, ServerEvent

DELAY = 0.05  # seconds; small, so the tests are quick, yet well above loop wake-up jitter
POEM = (b"11", b"22", b"33", b"44")


def plan(name: str = "s", *, chunks: tuple[bytes, ...] = POEM, delay: float = DELAY,
         serial: bool = False, port: int = 0, seed: int = 0, **conditions: Any) -> ServerPlan:
    return ServerPlan(name=name, host="127.0.0.1", port=port, chunks=chunks, serial=serial, seed=seed,
                      conditions=Conditions(delay=delay, **conditions))


async def read_all(address: tuple[str, int], started: float, *,
                   half_close: bool = False) -> tuple[bytes, list[float], float]:
    """Read a connection to EOF; return the bytes, arrival times and EOF time (since started).

    With ``half_close`` the client shuts down its sending side first, as ``nc`` does.
    """
    reader, writer = await asyncio.open_connection(*address)
    if half_close:
        writer.write_eof()
    data, arrivals = b"", []
    while chunk := await reader.read(65536):
        data += chunk
        arrivals.append(time.monotonic() - started)
    eof = time.monotonic() - started
    writer.close()
    await writer.wait_closed()
    return data, arrivals, eof


Scenario = Callable[[list[tuple[str, int]], list[ServerEvent]], Awaitable[Any]]


def run_with_servers(plans: list[ServerPlan], scenario: Scenario) -> tuple[Any, list[ServerEvent]]:
    """Serve ``plans`` on a fresh loop while ``scenario(addresses, events)`` runs; return its
    result and the servers' events."""
    events: list[ServerEvent] = []

    async def main() -> Any:
        listeners = open_listeners(plans)
        serving = asyncio.create_task(serve(listeners, events.append, time.monotonic()))
        try:
            return await scenario([listener.address for listener in listeners], events)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    return asyncio.run(main()), events


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait until ``condition()`` holds; return when (monotonic). Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the awaited event did not come"
        await asyncio.sleep(0.001)
    return time.monotonic()


def test_chunks_arrive_on_their_absolute_schedule() -> None:
    """Chunk i arrives about i * delay after connecting and the server closes one delay after the last."""

    async def scenario(addresses: list[tuple[str, int]], _events: list[ServerEvent]) -> Any:
        return await read_all(addresses[0], time.monotonic())

    (data, _arrivals, eof), events = run_with_servers([plan()], scenario)
    assert data == b"11223344"
    sent = [event for event in events if isinstance(event, ChunkSent)]
    assert [event.index for event in sent] == [0, 1, 2, 3]
    for index, event in enumerate(sent[1:], start=1):
        gap = event.scheduled - sent[0].scheduled
        assert gap == pytest.approx(index * DELAY, abs=1e-6)  # the schedule is exact
        assert 0 <= event.lateness < 0.02  # and the emissions keep to it
    assert 4 * DELAY - 0.005 <= eof < 4 * DELAY + 0.1


def test_serial_server_queues_connections_in_the_backlog() -> None:
    """On a serial server the second connection gets its first byte only after the first one ends."""

    async def scenario(addresses: list[tuple[str, int]], _events: list[ServerEvent]) -> Any:
        started = time.monotonic()
        return await asyncio.gather(read_all(addresses[0], started), read_all(addresses[0], started))

    results, _ = run_with_servers([plan(serial=True)], scenario)
    (_, _, first_eof), (_, second_arrivals, second_eof) = sorted(results, key=lambda r: r[2])
    assert second_arrivals[0] >= first_eof - 0.005
    assert second_eof == pytest.approx(8 * DELAY, abs=0.08)


def test_concurrent_server_serves_connections_at_once() -> None:
    """On a concurrent server two connections overlap and both end after one service time."""

    async def scenario(addresses: list[tuple[str, int]], _events: list[ServerEvent]) -> Any:
        started = time.monotonic()
        return await asyncio.gather(read_all(addresses[0], started), read_all(addresses[0], started))

    results, _ = run_with_servers([plan(serial=False)], scenario)
    for data, _, eof in results:
        assert data == b"11223344"
        assert eof == pytest.approx(4 * DELAY, abs=0.08)


@pytest.mark.parametrize("conditions", [
    {}, {"serial": True}, {"jitter": 0.02}, {"rate": 200.0}, {"close_delay": 0.05},
    {"fault": "close", "fault_after": 6}, {"initial_delay": 0.05, "accept_delay": 0.02},
], ids=["plain", "serial", "jitter", "rate", "close_delay", "close-fault", "delays"])
def test_a_half_closed_client_still_gets_everything(conditions: dict[str, Any]) -> None:
    """A client that shuts down its sending side first (as nc does) gets all the server sends."""
    serial = conditions.pop("serial", False)
    expected = b"112233"[:conditions.get("fault_after", 8)] if "fault" in conditions else b"11223344"

    async def scenario(addresses: list[tuple[str, int]], _events: list[ServerEvent]) -> Any:
        return await read_all(addresses[0], time.monotonic(), half_close=True)

    (data, _, _), events = run_with_servers([plan(serial=serial, **conditions)], scenario)
    assert data == expected
    assert any(isinstance(event, PeerShutdown) for event in events)
    assert not any(isinstance(event, ConnLost) for event in events)


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a client killed with unread data does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("how", ["reset", "eof"])
def test_a_client_that_leaves_is_noticed_at_once(how: str) -> None:
    """A client that resets during a 1 s pause, or closes during a stall, is reported gone at
    once (not at the next write), and a serial server serves the next client straight away."""
    extra: dict[str, Any] = {"fault": "stall", "fault_after": 2} if how == "eof" else {}

    async def scenario(addresses: list[tuple[str, int]], events: list[ServerEvent]) -> Any:
        loop = asyncio.get_running_loop()
        first = socket.socket()
        first.setblocking(False)
        await loop.sock_connect(first, addresses[0])
        assert await loop.sock_recv(first, 10) == b"11"
        left = time.monotonic()
        _reset(first) if how == "reset" else first.close()
        noticed = await until(lambda: any(isinstance(event, ConnLost) for event in events))
        second = socket.socket()  # queued behind the first
        second.setblocking(False)
        asked = time.monotonic()
        await loop.sock_connect(second, addresses[0])
        assert await loop.sock_recv(second, 10) == b"11"
        second.close()
        return noticed - left, time.monotonic() - asked

    (took, next_first_byte), events = run_with_servers(
        [plan(delay=1.0, serial=True, chunks=(b"11", b"22"), **extra)], scenario)
    lost = next(event for event in events if isinstance(event, ConnLost))
    assert lost.how == how
    assert lost.bytes == 2
    assert took < 0.25  # the next write is 1 s away
    assert next_first_byte < 0.25


def test_a_slow_reader_is_held_back_not_buffered() -> None:
    """A 16 MiB chunk to a client that stops reading waits for it: the next chunk is logged as held,
    not counted as late, and everything arrives once the client reads."""
    payload = bytes(range(256)) * (16 * 1024 * 1024 // 256)  # 16 MiB: more than socket buffers take
    lateness = array.array("d")

    async def main() -> tuple[bytes, list[ServerEvent]]:
        events: list[ServerEvent] = []
        listeners = open_listeners([plan(chunks=(b"11", b"22", payload, b"44"))])
        serving = asyncio.create_task(serve(listeners, events.append, time.monotonic(), lateness=lateness))
        loop = asyncio.get_running_loop()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        started = time.monotonic()
        try:
            await loop.sock_connect(client, listeners[0].address)
            # Not reading: the last chunk comes due while the big one is still waiting for us.
            await until(lambda: any(isinstance(e, ChunkSent) and e.index == 2 for e in events))
            await asyncio.sleep(max(0.0, started + 3 * DELAY + 0.02 - time.monotonic()))
            received = bytearray()
            while data := await loop.sock_recv(client, 1 << 20):
                received += data
            return bytes(received), events
        finally:
            client.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    received, events = asyncio.run(main())
    assert received == b"1122" + payload + b"44"
    last = next(event for event in events if isinstance(event, ChunkSent) and event.index == 3)
    assert last.held
    assert len(lateness) == 3  # the held chunk is the reader's doing, not counted as late


def test_a_busy_fixed_port_names_the_server_and_the_port() -> None:
    """Binding a port another socket listens on raises PortBusyError naming both."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortBusyError, match=rf"server .busy.: port {port} on 127.0.0.1 is already"):
            open_listeners([plan(), plan("busy", port=port)])
    finally:
        holder.close()


async def read_each(clients: list[socket.socket]) -> list[bytes]:
    """Read every client socket to EOF, one after another."""
    loop = asyncio.get_running_loop()
    received = []
    for client in clients:
        client.setblocking(False)
        data = bytearray()
        while chunk := await loop.sock_recv(client, 1024):
            data += chunk
        received.append(bytes(data))
    return received


def poem_server(**conditions: Any) -> tuple[PoemServer, TimerQueue, ServerRecord]:
    """A poem server on a listener of its own, on the running loop, not yet accepting."""
    loop = asyncio.get_running_loop()
    (listener,) = open_listeners([plan(**conditions)])
    record = ServerRecord(listener.plan, lambda event: None, time.monotonic(), array.array("d"),
                          detail=False)
    timers = TimerQueue(loop)
    return PoemServer(listener, record, timers, Watcher(loop), loop), timers, record


def test_a_poem_server_wakes_once_for_all_its_connections() -> None:
    """However many connections a server holds, the timers hold one entry for it, and every
    connection still gets every chunk on its own schedule."""
    conns = 40

    async def main() -> tuple[list[bytes], int, int]:
        server, timers, record = poem_server(delay=0.02)
        server.start()
        loop = asyncio.get_running_loop()
        clients = []
        try:
            for _ in range(conns):
                client = socket.socket()
                client.setblocking(False)
                await loop.sock_connect(client, server.gate.address)
                clients.append(client)
                await asyncio.sleep(0.001)  # staggered: every connection has its own deadlines
            await until(lambda: record.accepted == conns)
            entries = len(timers)
            return await read_each(clients), entries, len(record.lateness)
        finally:
            for client in clients:
                client.close()
            server.close()
            server.gate.close()

    received, entries, chunks = asyncio.run(main())
    assert received == [b"11223344"] * conns
    assert entries <= 2  # the server's next wake-up (and at most one superseded one)
    assert chunks == 4 * conns


def test_accepting_gives_way_to_the_timers_after_its_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog is accepted a slice at a time, so a burst of connects never holds back
    the chunks already due; the rest are accepted on the next pass of the loop."""
    from netsim.engine import _poems

    monkeypatch.setattr(_poems, "ACCEPT_SLICE", 0.0)  # a slice of one accept

    async def main() -> tuple[int, list[bytes]]:
        server, _, record = poem_server()
        clients = [socket.create_connection(server.gate.address) for _ in range(3)]
        try:
            server.start()
            server._accept()  # one pass, with three connections waiting in the backlog
            first_pass = record.accepted
            return first_pass, await read_each(clients)  # the loop takes the rest
        finally:
            for client in clients:
                client.close()
            server.close()
            server.gate.close()

    first_pass, received = asyncio.run(main())
    assert first_pass == 1
    assert received == [b"11223344"] * 3


def test_serve_reports_ready_only_once_the_loop_watches_every_listener() -> None:
    """on_ready comes when connects are being accepted, not merely queued in the backlog."""
    watched: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listeners = open_listeners([plan("plain"), plan("paced", rate=1000.0),
                                    ServerPlan(name="proxy", upstream="127.0.0.1:9")])

        def ready(controls: Controls) -> None:
            selector = loop._selector  # type: ignore[attr-defined]
            watched.extend(listener.sock.fileno() in selector.get_map() for listener in listeners)
            serving.cancel()

        serving = asyncio.create_task(serve(listeners, lambda event: None, time.monotonic(),
                                            on_ready=ready))
        await asyncio.gather(serving, return_exceptions=True)

    asyncio.run(main())
    assert watched == [True, True, True]


def test_every_accept_is_reported_with_the_fault_it_meets() -> None:
    """conn_accepted names the fault a connection will meet, and numbers connections in accept order."""

    async def scenario(addresses: list[tuple[str, int]], _events: list[ServerEvent]) -> Any:
        started = time.monotonic()
        for _ in range(2):
            await read_all(addresses[0], started)

    _, events = run_with_servers([plan(fault="close", fault_after=4)], scenario)
    accepted = [event for event in events if isinstance(event, ConnAccepted)]
    assert [(event.index, event.fault) for event in accepted] == [(1, "close"), (2, "close")]
