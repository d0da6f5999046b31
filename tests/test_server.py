"""The server engine on real sockets: pacing, serial queueing, backpressure, busy ports."""

from __future__ import annotations

import array
import asyncio
import socket
import time
from typing import Any

import pytest

from netsim import PortBusyError
from netsim.conditions import Conditions
from netsim.server import PoemProtocol, ServerPlan, _ServerState, open_listeners, serve

DELAY = 0.05  # seconds; small, so the tests are quick, yet well above loop wake-up jitter


def plan(name: str = "s", *, chunks: tuple[bytes, ...] = (b"11", b"22", b"33", b"44"),
         delay: float = DELAY, serial: bool = False, port: int = 0, **conditions: Any) -> ServerPlan:
    return ServerPlan(name=name, host="127.0.0.1", port=port, chunks=chunks, serial=serial,
                      conditions=Conditions(delay=delay, **conditions))


async def read_all(address: tuple[str, int], started: float) -> tuple[bytes, list[float], float]:
    """Read a connection to EOF; return the bytes, arrival times and EOF time (since started)."""
    reader, writer = await asyncio.open_connection(*address)
    data, arrivals = b"", []
    while chunk := await reader.read(65536):
        data += chunk
        arrivals.append(time.monotonic() - started)
    eof = time.monotonic() - started
    writer.close()
    await writer.wait_closed()
    return data, arrivals, eof


def run_with_servers(plans: list[ServerPlan], scenario: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Serve ``plans`` on a fresh loop while ``scenario(addresses)`` runs; return its result, events."""
    events: list[dict[str, Any]] = []

    async def main() -> Any:
        listeners = open_listeners(plans)
        serving = asyncio.create_task(serve(listeners, events.append, time.monotonic()))
        try:
            return await scenario([listener.address for listener in listeners])
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    return asyncio.run(main()), events


def test_chunks_arrive_on_their_absolute_schedule() -> None:
    """Chunk i arrives about i * delay after connecting and the server closes one delay after the last."""

    async def scenario(addresses: list[tuple[str, int]]) -> Any:
        return await read_all(addresses[0], time.monotonic())

    (data, _arrivals, eof), events = run_with_servers([plan()], scenario)
    assert data == b"11223344"
    sent = [event for event in events if event["event"] == "chunk_sent"]
    assert [event["index"] for event in sent] == [0, 1, 2, 3]
    for index, event in enumerate(sent[1:], start=1):
        gap = event["scheduled"] - sent[0]["scheduled"]
        assert gap == pytest.approx(index * DELAY, abs=1e-6)  # the schedule is exact
        assert 0 <= event["lateness"] < 0.02  # and the emissions keep to it
    assert 4 * DELAY - 0.005 <= eof < 4 * DELAY + 0.1


def test_serial_server_queues_connections_in_the_backlog() -> None:
    """On a serial server the second connection gets its first byte only after the first one ends."""

    async def scenario(addresses: list[tuple[str, int]]) -> Any:
        started = time.monotonic()
        return await asyncio.gather(read_all(addresses[0], started), read_all(addresses[0], started))

    results, _ = run_with_servers([plan(serial=True)], scenario)
    (_, _, first_eof), (_, second_arrivals, second_eof) = sorted(results, key=lambda r: r[2])
    assert second_arrivals[0] >= first_eof - 0.005
    assert second_eof == pytest.approx(8 * DELAY, abs=0.08)


def test_concurrent_server_serves_connections_at_once() -> None:
    """On a concurrent server two connections overlap and both end after one service time."""

    async def scenario(addresses: list[tuple[str, int]]) -> Any:
        started = time.monotonic()
        return await asyncio.gather(read_all(addresses[0], started), read_all(addresses[0], started))

    results, _ = run_with_servers([plan(serial=False)], scenario)
    for data, _, eof in results:
        assert data == b"11223344"
        assert eof == pytest.approx(4 * DELAY, abs=0.08)


def test_a_client_that_does_not_read_costs_a_bounded_buffer() -> None:
    """A 4 MB chunk to a client that does not read is held back, not copied into the server's buffers."""
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    protocols: list[PoemProtocol] = []

    async def main() -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        events: list[dict[str, Any]] = []
        (listener,) = open_listeners([plan(chunks=(payload,), delay=0.0)])
        state = _ServerState(listener.plan, events.append, time.monotonic(), {}, array.array("d"))

        def factory() -> PoemProtocol:
            protocol = state.protocol()
            assert isinstance(protocol, PoemProtocol)
            protocols.append(protocol)
            return protocol

        server = await loop.create_server(factory, sock=listener.sock)
        try:
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            await loop.sock_connect(client, listener.address)
            await asyncio.sleep(0.3)  # the server has had ample time to buffer everything
            buffered = protocols[0].buffered_bytes
            received = bytearray()
            while data := await loop.sock_recv(client, 1 << 20):
                received += data
            client.close()
            return buffered, bytes(received)
        finally:
            server.close()

    buffered, received = asyncio.run(main())
    assert received == payload  # everything arrives once the client reads
    # asyncio's high-water mark is 64 KiB and the engine writes at most 64 KiB at once.
    assert buffered <= 2 * 64 * 1024


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


def test_the_bulk_path_paces_and_holds_back_for_a_slow_reader() -> None:
    """A plain concurrent server (the bulk path) keeps its schedule and queues for a slow reader."""
    from netsim._bulk import BulkServer, eligible

    payload = bytes(range(256)) * (1024 * 1024 // 256)  # 1 MiB: more than the socket buffers take
    lateness = array.array("d")

    async def main() -> tuple[bytes, list[float], float]:
        (listener,) = open_listeners([plan(chunks=(b"11", b"22", payload, b"44"))])
        assert eligible(listener)
        state = _ServerState(listener.plan, lambda event: None, time.monotonic(), {}, lateness, False)
        server = BulkServer(listener, state)
        server.start()
        try:
            loop = asyncio.get_running_loop()
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            started = time.monotonic()
            await loop.sock_connect(client, listener.address)
            await asyncio.sleep(0.3)  # not reading: the third chunk cannot all go
            held = sum(conn.sent for conn in server.live)
            received = bytearray()
            while data := await loop.sock_recv(client, 1 << 20):
                received += data
            client.close()
            return bytes(received), [held], time.monotonic() - started
        finally:
            server.close()
            listener.sock.close()

    received, (held,), took = asyncio.run(main())
    assert received == b"1122" + payload + b"44"
    assert held < len(payload)  # the server waited for the reader instead of buffering it all
    assert took >= 4 * DELAY - 0.01
    assert len(lateness) <= 4  # chunks held back by the reader are not counted as late


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


def test_the_bulk_path_wakes_once_for_all_its_connections() -> None:
    """However many connections a plain server holds, the timers hold one entry for it,
    and every connection still gets every chunk on its own schedule."""
    from netsim._bulk import BulkServer

    lateness = array.array("d")
    conns = 40

    async def main() -> tuple[list[bytes], int]:
        (listener,) = open_listeners([plan(delay=0.02)])
        state = _ServerState(listener.plan, lambda event: None, time.monotonic(), {}, lateness, False)
        server = BulkServer(listener, state)
        server.start()
        loop = asyncio.get_running_loop()
        clients = []
        try:
            for _ in range(conns):
                client = socket.socket()
                client.setblocking(False)
                await loop.sock_connect(client, listener.address)
                clients.append(client)
                await asyncio.sleep(0.001)  # staggered: every connection has its own deadlines
            while len(server.live) < conns:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)
            entries = len(state.timers._heap)
            return await read_each(clients), entries
        finally:
            for client in clients:
                client.close()
            server.close()
            listener.sock.close()

    received, entries = asyncio.run(main())
    assert received == [b"11223344"] * conns
    assert entries <= 2  # the server's next wake-up (and at most one superseded one)
    assert len(lateness) == 4 * conns


def test_accepting_gives_way_to_the_timers_after_its_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog is accepted a slice at a time, so a burst of connects never holds back
    the chunks already due; the rest are accepted on the next pass of the loop."""
    from netsim import _bulk

    monkeypatch.setattr(_bulk, "ACCEPT_SLICE", 0.0)  # a slice of one accept

    async def main() -> tuple[int, list[bytes]]:
        (listener,) = open_listeners([plan()])
        state = _ServerState(listener.plan, lambda event: None, time.monotonic(), {},
                             array.array("d"), False)
        server = _bulk.BulkServer(listener, state)
        clients = [socket.create_connection(listener.address) for _ in range(3)]
        try:
            server._accept()  # one pass, with three connections waiting in the backlog
            first_pass = len(server.live)
            server.start()  # the loop takes the rest
            return first_pass, await read_each(clients)
        finally:
            for client in clients:
                client.close()
            server.close()
            listener.sock.close()

    first_pass, received = asyncio.run(main())
    assert first_pass == 1
    assert received == [b"11223344"] * 3


def test_serve_reports_ready_only_once_the_loop_watches_every_listener() -> None:
    """on_ready comes when connects are being accepted, not merely queued in the backlog."""
    watched: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listeners = open_listeners([plan("plain"), plan("paced", rate=1000.0)])

        def ready() -> None:
            selector = loop._selector  # type: ignore[attr-defined]
            watched.extend(listener.sock.fileno() in selector.get_map() for listener in listeners)
            serving.cancel()

        serving = asyncio.create_task(serve(listeners, lambda event: None, time.monotonic(),
                                            on_ready=ready))
        await asyncio.gather(serving, return_exceptions=True)

    asyncio.run(main())
    assert watched == [True, True]
