"""Proxy mode on real sockets: byte-exact forwarding, conditions per direction, failures."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import socket
import threading
import time
from typing import Any

import pytest

import netsim
from netsim.conditions import Conditions
from netsim.engine import ServerPlan, open_listeners, serve
from netsim.engine._proxy import RESET_GRACE
from netsim.events import ChunkSent, ConnEnded, ServerEvent, UpstreamFailed
from tests.conftest import ScenarioWriter
from tests.test_cli import run_cli

PAYLOAD = random.Random(3).randbytes(4 * 1024 * 1024)  # 4 MiB that no bug could fake


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def through_proxy(plan: ServerPlan, talk: Any) -> tuple[Any, list[ServerEvent]]:
    """Start an echo service and ``plan`` as its proxy; run ``talk(proxy_address)``."""
    events: list[ServerEvent] = []
    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    plan = ServerPlan(**{**plan.__dict__, "upstream": f"127.0.0.1:{port}"})
    (listener,) = open_listeners([plan])
    serving = asyncio.create_task(serve([listener], events.append, time.monotonic()))
    try:
        return await talk(listener.address), events
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        upstream.close()
        await upstream.wait_closed()


async def send_and_receive(address: tuple[str, int]) -> tuple[bytes, float]:
    """Write PAYLOAD while reading the echo; return what came back and how long it took."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(*address)

    async def write() -> None:
        for start in range(0, len(PAYLOAD), 100_000):
            writer.write(PAYLOAD[start:start + 100_000])
            await writer.drain()
        writer.write_eof()

    writing = asyncio.create_task(write())
    received = bytearray()
    while data := await reader.read(1 << 20):
        received += data
    await writing
    writer.close()
    await writer.wait_closed()
    return bytes(received), time.monotonic() - started


@pytest.mark.parametrize("direction", ["downstream", "upstream", "both"])
def test_several_megabytes_cross_a_delayed_proxy_exactly(direction: str) -> None:
    """4 MiB go up and come back through a proxy pausing after every 64 KiB: byte for byte, paced."""
    plan = ServerPlan(name="p", conditions=Conditions(delay=0.005), chunking=64 * 1024,
                      direction=direction)
    (received, took), events = asyncio.run(through_proxy(plan, send_and_receive))
    assert received == PAYLOAD
    chunks = len(PAYLOAD) // (64 * 1024)  # 64 chunks, each followed by 5 ms, in each shaped direction
    assert took >= chunks * 0.005 * 0.9
    directions = {event.direction for event in events if isinstance(event, ChunkSent)}
    assert directions == ({"downstream", "upstream"} if direction == "both" else {direction})


@pytest.mark.parametrize("direction", ["downstream", "upstream", "both"])
def test_corruption_reaches_an_echoing_clients_in_every_direction(direction: str) -> None:
    """A corrupting proxy in front of an echo service corrupts what the client gets back in
    each direction it is set for: with `both`, the two directions' masks differ (one mask
    flipped the echoed bytes back, and the client saw no corruption at all)."""
    payload = bytes(range(256)) * 16
    plan = ServerPlan(name="p", conditions=Conditions(fault="corrupt"), chunking="all", direction=direction)

    async def talk(address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(payload)
        writer.write_eof()
        received = await reader.read()
        writer.close()
        await writer.wait_closed()
        return received

    received, _ = asyncio.run(through_proxy(plan, talk))
    assert len(received) == len(payload)
    differing = sum(got != sent for got, sent in zip(received, payload, strict=True))
    if direction == "both":  # two masks: a byte comes back as it was where they agree (1 in 255)
        assert differing >= len(payload) * 0.95
    else:  # a mask byte is never 0: every byte differs
        assert differing == len(payload)


def test_latency_delays_each_piece_by_itself_not_one_after_another() -> None:
    """A proxy's latency (toxiproxy's): each ping comes back 100 ms after it was sent, even
    when the next is sent 20 ms later; a `delay` would space them 100 ms apart instead."""
    plan = ServerPlan(name="p", conditions=Conditions(latency=0.1), chunking="all", direction="downstream")

    async def pings(address: tuple[str, int]) -> list[float]:
        reader, writer = await asyncio.open_connection(*address)
        sent: list[float] = []
        for number in range(3):
            sent.append(time.monotonic())
            writer.write(b"ping %d\n" % number)
            await writer.drain()
            await asyncio.sleep(0.02)
        took = []
        for number in range(3):
            await reader.readexactly(7)
            took.append(time.monotonic() - sent[number])
        writer.close()
        await writer.wait_closed()
        return took

    round_trips, events = asyncio.run(through_proxy(plan, pings))
    assert all(trip >= 0.1 - 0.002 for trip in round_trips)
    assert all(trip < 0.1 + 0.05 for trip in round_trips)  # pipelined: not 0.1, 0.2, 0.3
    sent = [event for event in events if isinstance(event, ChunkSent)]
    assert all(event.lateness >= 0 for event in sent)


def test_latency_is_a_proxys_and_the_ideal_adds_it() -> None:
    """A poem server refuses `latency:` (its bytes are known from the start); through a
    proxy with latency, a poem and its close come that much later, as the ideal says."""
    with pytest.raises(netsim.ScenarioError, match="`latency:` applies to proxies only"):
        netsim.load_scenario_text("netsim: 1\nname: x\nservers: [{name: a, poem: x, latency: 1s}]\n")
    scenario = netsim.load_scenario_text(
        "netsim: 1\nname: far\nservers:\n"
        "  - {name: a, poem: \"1\\n2\\n3\\n4\\n\", delay: 100ms}\n"
        "  - {name: p, upstream: a, latency: 200ms}\n"
        "clients: [{model: blocking, targets: [p]}]\n")
    (run,) = netsim.run_scenario(scenario, time_scale=0.5).runs
    assert run.ideal == pytest.approx(0.6)  # the close at 0.4 s, 200 ms later
    assert run.connections[0].intact and run.elapsed == pytest.approx(0.6, abs=0.06)
    with netsim.serving(scenario) as net, pytest.raises(ValueError, match="applies to proxies only"):
        net.set("a", latency="1s")


def test_only_the_named_direction_is_slowed() -> None:
    """With direction upstream, the client's bytes are paced and the replies are not."""
    plan = ServerPlan(name="p", conditions=Conditions(delay=0.02), chunking="all", direction="upstream")

    async def ping(address: tuple[str, int]) -> list[float]:
        reader, writer = await asyncio.open_connection(*address)
        sent_at, times = [], []
        for number in range(5):
            sent_at.append(time.monotonic())
            writer.write(b"ping %d\n" % number)
            await writer.drain()
            await reader.readexactly(7)
            times.append(time.monotonic() - sent_at[-1])
        writer.close()
        await writer.wait_closed()
        return times

    round_trips, events = asyncio.run(through_proxy(plan, ping))
    sent = [event for event in events if isinstance(event, ChunkSent)]
    assert {event.direction for event in sent} == {"upstream"}
    # Each ping is due no sooner than 20 ms after the one before (a client slow to send the
    # next one waits less: the pause counts from when the previous ping was due), and none
    # goes before it is due. The deadlines are absolute: a ping sent late on a loaded machine
    # does not push the next one back, so the gap between sends is judged on the schedule...
    assert len(sent) == 5
    gaps = [later.scheduled - earlier.scheduled for earlier, later in itertools.pairwise(sent)]
    assert all(gap >= 0.02 - 1e-9 for gap in gaps)
    assert all(event.t >= event.scheduled and event.lateness >= 0 for event in sent)
    # ...and the first, with no pause before it, comes back at once: the replies are not paced.
    assert round_trips[0] < 0.015


def test_a_connection_open_when_the_proxy_stops_is_accounted_for() -> None:
    """The servers stopping with a proxy connection open account for it there and then
    (`stopped`), as a poem server does; the loop would never get round to it."""
    plan = ServerPlan(name="p", conditions=Conditions(), chunking="all")
    held: list[socket.socket] = []

    async def ping(address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"ping\n")
        answer = await reader.readexactly(5)
        # A descriptor of its own keeps the connection open past this loop's end.
        held.append(socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno())))
        writer.transport.abort()
        return answer  # the servers stop now, with the connection still open

    try:
        answer, events = asyncio.run(through_proxy(plan, ping))
    finally:
        for sock in held:
            sock.close()
    assert answer == b"ping\n"
    (ended,) = [event for event in events if isinstance(event, ConnEnded)]
    assert (ended.how, ended.bytes) == ("stopped", 5)  # what it sent the client


def test_a_client_that_closes_early_ends_as_its_close_not_as_the_reset_that_answers() -> None:
    """A client that reads one line through the proxy and closes: the proxy's next write
    brings its kernel's reset, and the connection ends as the client's early close
    (`client_closed_early`, with the bytes it had before it left), not as a reset the client
    sent."""
    events: list[ServerEvent] = []

    async def lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for line in (b"11\n", b"22\n", b"33\n"):  # deaf to the client's EOF, as a slow server is
            writer.write(line)
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.close()

    async def main() -> None:
        upstream = await asyncio.start_server(lines, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        plan = ServerPlan(name="p", conditions=Conditions(), chunking="all", upstream=f"127.0.0.1:{port}")
        (listener,) = open_listeners([plan])
        serving = asyncio.create_task(serve([listener], events.append, time.monotonic()))
        try:
            reader, writer = await asyncio.open_connection(*listener.address)
            assert await reader.readline() == b"11\n"
            writer.close()
            for _ in range(100):  # until the proxy has accounted for it
                await asyncio.sleep(0.01)
                if any(isinstance(event, ConnEnded) for event in events):
                    break
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            upstream.close()
            await upstream.wait_closed()

    asyncio.run(main())
    (ended,) = [event for event in events if isinstance(event, ConnEnded)]
    assert ended.how == "client_closed_early" and ended.bytes == 3  # the line it read: not the next


def test_an_unreachable_upstream_resets_the_client() -> None:
    """When the proxy cannot reach its upstream, the client's connection is reset."""
    port = unused_port()
    events: list[ServerEvent] = []

    async def main() -> bytes | Exception:
        plan = ServerPlan(name="p", upstream=f"127.0.0.1:{port}")
        (listener,) = open_listeners([plan])
        serving = asyncio.create_task(serve([listener], events.append, time.monotonic()))
        try:
            reader, writer = await asyncio.open_connection(*listener.address)
            try:
                return await reader.read()
            except ConnectionResetError as error:
                return error
            finally:
                writer.close()
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    outcome = asyncio.run(main())
    assert isinstance(outcome, ConnectionResetError) or outcome == b""
    assert any(isinstance(event, UpstreamFailed) for event in events)


def test_a_connection_reset_for_an_unreachable_upstream_says_so() -> None:
    """The servers' account of a connection reset because the proxy's upstream refused it
    says that (upstream_failed), not that a reset fault struck."""
    port = unused_port()
    text = f"netsim: 1\nname: lost\nservers: [{{name: p, upstream: '127.0.0.1:{port}'}}]\n"
    with netsim.serving(text) as net:
        # (The reset may come as soon as the connect returns, or at the read.)
        with contextlib.suppress(ConnectionResetError), \
                socket.create_connection(net.address("p"), timeout=5) as sock:
            assert sock.recv(100) == b""
        deadline = time.monotonic() + 5
        while not net.result().connections and time.monotonic() < deadline:
            time.sleep(0.01)
    (conn,) = net.result().connections
    assert conn.served is not None and conn.served.how == "upstream_failed"
    # An error, not counted by errors.reset: that is for the resets a scenario sends.
    assert conn.error == "error" and conn.message is not None
    assert conn.message.startswith("the proxy could not reach its upstream")
    assert net.result().check(["errors.reset == 0", "errors == 1"])


def unused_port() -> int:
    """A loopback port nothing listens on (for a moment: bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def answering(answer: bytes) -> Any:
    """A service on a free port that reads one request line and answers ``answer``, then
    closes: an HTTP/1.0 server, in short. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                while b"\n" not in conn.recv(1024):
                    pass
                conn.sendall(answer)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def ask(address: tuple[str, int], timeout: float) -> bytes:
    """Send a request line and read the answer to its end; raises TimeoutError."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(b"GET\n")
        answer = b""
        while data := sock.recv(1024):
            answer += data
        return answer


def accounted(net: netsim.Serving, count: int) -> list[netsim.ConnectionResult]:
    """The connections once the servers have accounted for ``count`` of them (5 s at most)."""
    deadline = time.monotonic() + 5
    while len(connections := net.result().connections) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return connections


def test_a_client_that_gives_up_before_a_proxys_held_bytes_is_an_error() -> None:
    """A client that times out before the answer a latency holds back, and closes, is an error
    with no byte received, not a success with the bytes the proxy wrote after it had gone."""
    with answering(b"ok\n") as port:
        text = (f"netsim: 1\nname: held\n"
                f"servers: [{{name: p, upstream: '127.0.0.1:{port}', latency: 400ms}}]\n")
        with netsim.serving(text) as net:
            with pytest.raises(TimeoutError):
                ask(net.address("p"), timeout=0.1)
            (conn,) = accounted(net, 1)  # accounted when the held answer meets the closed socket
    assert conn.served is not None and conn.served.how == "client_closed_early"
    assert (conn.error, conn.bytes, conn.intact) == ("error", 0, False)
    assert math.isnan(conn.ttfb)  # no byte reached it: none to time
    assert "before its upstream's end" in (conn.message or "")
    assert net.result().check(["errors == 1", "intact == 0%", "bytes == 0B"])


def test_a_client_that_shuts_down_its_side_and_waits_gets_its_answer_intact() -> None:
    """A client that sends its request, shuts down its side (as `nc -N` does) and waits out a
    latency gets the whole answer, and its connection is intact: the bytes that went after
    its EOF were read, which no reset contradicts."""
    with answering(b"ok\n") as port:
        text = (f"netsim: 1\nname: waits\n"
                f"servers: [{{name: p, upstream: '127.0.0.1:{port}', latency: 200ms}}]\n")
        with netsim.serving(text) as net:
            with socket.create_connection(net.address("p"), timeout=2) as sock:
                sock.sendall(b"GET\n")
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                while data := sock.recv(1024):
                    answer += data
            assert answer == b"ok\n"
            (conn,) = accounted(net, 1)
    assert (conn.error, conn.intact, conn.bytes) == (None, True, 3)
    # It ended with the answer's last byte, not after the wait for a reset (the close that
    # follows the write in one step would take a stall of RESET_GRACE / 2 to be counted late).
    assert conn.duration - conn.ttfb < RESET_GRACE / 2


@pytest.mark.parametrize("undo", ["set", "restore"])
def test_a_latency_taken_away_releases_the_bytes_it_held(undo: str) -> None:
    """An answer held by a 2 s latency goes as soon as the latency is taken away (set to 0,
    or the server restored to a scenario without one), as removing toxiproxy's latency
    toxic forwards what it held, not when the latency would have let it."""
    with answering(b"ok\n") as port:
        text = f"netsim: 1\nname: held\nservers: [{{name: p, upstream: '127.0.0.1:{port}'}}]\n"
        with netsim.serving(text) as net:
            net.set("p", latency="2s")
            with socket.create_connection(net.address("p"), timeout=5) as sock:
                sock.sendall(b"GET\n")
                time.sleep(0.2)  # the answer is held now
                asked = time.monotonic()
                net.set("p", latency="0") if undo == "set" else net.restore("p")
                assert sock.recv(16) == b"ok\n"
                took = time.monotonic() - asked
    assert took < 1.0  # the latency would have held it another 1.8 s


def test_a_half_closed_client_that_leaves_midway_is_counted_the_bytes_it_got() -> None:
    """A client that shuts down its side, reads one piece of a stream sent in pieces 300 ms
    apart and closes is counted that piece, not the next one the proxy wrote after it left
    (which drew the reset)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pieces() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as conn:
            for _ in range(4):
                conn.sendall(b"abcde")
                time.sleep(0.3)

    thread = threading.Thread(target=pieces, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    text = f"netsim: 1\nname: half\nservers: [{{name: p, upstream: '127.0.0.1:{port}'}}]\n"
    try:
        with netsim.serving(text) as net:
            with socket.create_connection(net.address("p"), timeout=2) as sock:
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(100) == b"abcde"
            (conn,) = accounted(net, 1)
    finally:
        thread.join(timeout=3)
        listener.close()
    assert (conn.error, conn.bytes) == ("error", 5)
    assert conn.served is not None and conn.served.how == "client_closed_early"


def test_a_proxied_answer_that_came_whole_is_intact() -> None:
    """Through a proxy, a connection is intact when the client had every byte its upstream
    sent, as sent: a whole answer is; a byte limit past the answer's end cuts nothing, so
    it is too, and its account names no fault."""
    with answering(b"12345678\n") as port:
        text = (f"netsim: 1\nname: whole\nservers:\n"
                f"  - {{name: p, upstream: '127.0.0.1:{port}'}}\n"
                f"  - {{name: far, upstream: '127.0.0.1:{port}', fault: {{kind: close, after: 100}}}}\n")
        with netsim.serving(text) as net:
            assert ask(net.address("p"), timeout=2) == b"12345678\n"
            assert ask(net.address("far"), timeout=2) == b"12345678\n"
            connections = accounted(net, 2)
    assert [(conn.intact, conn.error, conn.bytes) for conn in connections] == [(True, None, 9)] * 2
    assert [conn.served.fault for conn in connections if conn.served is not None] == [None, None]
    assert net.result().check(["intact == 100%", "errors == 0"])


@pytest.mark.parametrize(("fault", "message"), [
    ("{kind: corrupt, after: 2}", "its bytes came corrupted (a corrupt fault, the proxy's or one upstream "
                                  "of it)"),
    ("{kind: close, after: 4}", "cut after 4 bytes (a close fault, the proxy's or one upstream of it)"),
])
def test_a_proxied_answer_a_fault_changed_is_not_intact(fault: str, message: str) -> None:
    """A proxy that corrupted or cut its upstream's answer says so: not intact, and why."""
    with answering(b"12345678\n") as port:
        text = f"netsim: 1\nname: cut\nservers: [{{name: p, upstream: '127.0.0.1:{port}', fault: {fault}}}]\n"
        with netsim.serving(text) as net:
            assert ask(net.address("p"), timeout=2) != b"12345678\n"
            (conn,) = accounted(net, 1)
    assert conn.intact is False and conn.message == message
    assert net.result().check("intact == 0%")


def test_a_proxy_to_a_servers_fixed_port_is_refused_on_free_ports(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """On free ports, a proxy whose `upstream: HOST:PORT` is the port of a server of the
    scenario would forward to nothing (that server listens elsewhere): refused before anything
    starts, naming the fix; on the scenario's own ports it forwards to that server."""
    port = unused_port()
    text = (f"netsim: 1\nname: moved\nservers:\n  - {{name: backend, port: {port}, poem: \"hi\\n\"}}\n"
            f"  - {{name: px, upstream: '127.0.0.1:{port}'}}\nclients: [blocking]\n")
    refused = f"proxy 'px' forwards to 127.0.0.1:{port}, the port of server 'backend'.*`upstream: backend`"
    with pytest.raises(netsim.UsageError, match=refused), netsim.serving(text):
        pass
    assert run_cli("run", write_scenario(text), "--free-ports", "--time-scale", "0.1") == 2
    assert "write `upstream: backend`" in capsys.readouterr().err
    with netsim.serving(text, free_ports=False) as net, \
            socket.create_connection(net.address("px"), timeout=2) as sock:
        assert sock.recv(16) == b"hi\n"


def test_every_proxy_stranded_by_free_ports_is_named_at_once() -> None:
    """Two proxies to fixed ports of the scenario's servers: one refusal names both, each
    with its fix, so that fixing one does not only uncover the next."""
    a, b = unused_port(), unused_port()
    text = (f"netsim: 1\nname: moved\nservers:\n"
            f"  - {{name: one, port: {a}, poem: \"1\\n\"}}\n  - {{name: two, port: {b}, poem: \"2\\n\"}}\n"
            f"  - {{name: p1, upstream: '127.0.0.1:{a}'}}\n  - {{name: p2, upstream: 'localhost:{b}'}}\n"
            f"clients: [blocking]\n")
    with pytest.raises(netsim.UsageError) as caught, netsim.serving(text):
        pass
    message = str(caught.value)
    assert message.startswith("2 proxies forward to the fixed ports of servers that listen on free ports")
    assert f"proxy 'p1' forwards to 127.0.0.1:{a}, the port of server 'one': write `upstream: one`" in message
    assert f"proxy 'p2' forwards to localhost:{b}, the port of server 'two': write `upstream: two`" in message


def test_a_fault_upstream_of_a_proxy_makes_its_connection_not_intact() -> None:
    """A proxy passes on faithfully what it gets, so where a proxy or a poem server upstream of
    it cut the stream, its client's connection is not intact, and names that fault; a chain
    without one is intact."""
    text = """\
netsim: 1
name: chain
servers:
  - {name: origin, poem: "1111\\n2222\\n3333\\n", delay: 20ms}
  - {name: inner, upstream: origin, fault: {kind: close, after: 7}}
  - {name: outer, upstream: inner, latency: 20ms}
  - {name: cutting, poem: "1111\\n2222\\n3333\\n", delay: 20ms, fault: {kind: close, after: 7}}
  - {name: before, upstream: cutting}
  - {name: clean, upstream: outer_ok}
  - {name: outer_ok, upstream: origin, latency: 20ms}
"""
    with netsim.serving(text) as net:
        for name in ("outer", "before", "clean"):
            with socket.create_connection(net.address(name), timeout=3) as sock:
                read = b""
                while data := sock.recv(100):
                    read += data
            assert read == (b"1111\n2222\n3333\n" if name == "clean" else b"1111\n22")
        connections = accounted(net, 3)
    judged = [(conn.server, conn.intact, conn.served.fault if conn.served else "?") for conn in connections]
    assert judged == [("outer", False, "close"), ("before", False, "close"), ("clean", True, None)]


def test_a_run_starts_the_server_a_proxy_names_by_its_fixed_port(write_scenario: ScenarioWriter) -> None:
    """A client of a proxy whose `upstream: HOST:PORT` is a scenario server's fixed port has
    that server started for its run, as `upstream: NAME` would; and a proxy that names its
    own port is refused, since each connection would make another."""
    port = unused_port()
    text = (f"netsim: 1\nname: fx\nservers:\n  - {{name: origin, port: {port}, poem: \"1111\\n\"}}\n"
            f"  - {{name: p, upstream: '127.0.0.1:{port}'}}\nclients: [{{model: blocking, targets: [p]}}]\n")
    (run,) = netsim.run_scenario(netsim.load_scenario(write_scenario(text))).runs
    assert [(conn.error, conn.bytes) for conn in run.connections] == [(None, 5)]
    own = f"netsim: 1\nname: loop\nservers: [{{name: s, port: {port}, upstream: '127.0.0.1:{port}'}}]\n"
    with pytest.raises(netsim.ScenarioError, match="a proxy cannot forward to itself"):
        netsim.load_scenario_text(own)


def test_serve_warns_once_a_proxys_upstream_is_out_of_reach() -> None:
    """What `serve` prints without -v: a warning, once per proxy, that its upstream could
    not be reached and its clients are reset (they saw only resets)."""
    from netsim._serving import Serving

    port = unused_port()
    warnings: list[str] = []
    scenario = netsim.load_scenario_text(f"netsim: 1\nname: lost\nservers: [{{name: p, upstream: "
                                         f"'127.0.0.1:{port}'}}]\n")
    with Serving(scenario, on_warning=warnings.append) as net:
        for _ in range(3):
            with contextlib.suppress(ConnectionResetError), \
                    socket.create_connection(net.address("p"), timeout=5) as sock:
                sock.recv(100)
        deadline = time.monotonic() + 5
        while len(net.result().connections) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert warnings == [f"proxy 'p' could not reach its upstream 127.0.0.1:{port} (or lost it), and reset "
                        f"its client's connection; so it does with every client until the upstream "
                        f"answers (-v shows each, with why)"]


def test_every_client_model_reads_a_poem_through_a_proxy(write_scenario: ScenarioWriter) -> None:
    """A proxy in front of a poem server adds its own pauses; every model gets the poem intact."""
    path = write_scenario("""\
        netsim: 1
        name: proxied
        servers:
          - {name: poet, poem: "1111\\n2222\\n", delay: 100ms}
          - {name: slow-link, upstream: poet, delay: 50ms, chunk: {bytes: 2}}
        clients:
          - {model: blocking, targets: [slow-link]}
          - {model: select, targets: [slow-link]}
          - {model: selectors, targets: [slow-link]}
          - {model: asyncio, targets: [slow-link]}
          - {model: threads, targets: [slow-link]}
        expect:
          all: [intact == 100%, errors == 0]
    """)
    scenario = netsim.load_scenario(path)
    # At time scale 1, so that the slack a loaded machine needs (80 ms) is well below the
    # 300 ms it checks.
    result = netsim.run_scenario(scenario, clients=None, time_scale=1.0)
    for run in result.runs:
        # poet: "1111\n" at 0, "2222\n" at 100 ms, closes at 200 ms. The proxy cuts each line
        # into 2+2+1 bytes with 50 ms after each piece: the first goes at 0, 50, 100 ms; the
        # second arrives at 100 but waits for the pause, going at 150, 200, 250; the proxy
        # closes after the last pause, at 300 ms.
        assert run.ideal == pytest.approx(0.3)
        assert run.ideal - 0.005 <= run.elapsed <= run.ideal + 0.08, run.client
    assert result.passed


@pytest.mark.parametrize(("conditions", "errors", "intact"), [
    ("slice: {bytes: 2..3, delay: 40ms}", 0, 1.0),
    ("fault: {kind: corrupt, after: 6}", 0, 0.0),
    ("fault: {kind: reset, at: 250ms}", 1, 0.0),
    ("fault: {kind: close, at: 250ms}", 0, 0.0),
], ids=["slice", "corrupt", "reset-at", "close-at"])
def test_a_proxy_slices_corrupts_and_cuts_by_the_clock_as_the_ideal_says(
        write_scenario: ScenarioWriter, conditions: str, errors: int, intact: float) -> None:
    """Through a proxy, slices, corruption and time limits reach the client as they would from
    a poem server, and the run takes the ideal's time within 40 ms."""
    path = write_scenario(f"""\
        netsim: 1
        name: proxied
        seed: 4
        servers:
          - {{name: source, poem: "1111\\n2222\\n3333\\n4444\\n", delay: 100ms}}
          - {{name: p, upstream: source, chunk: all, {conditions}}}
        clients: [{{model: blocking, targets: [p]}}]
    """)
    (run,) = netsim.run_scenario(netsim.load_scenario(path)).runs
    assert abs(run.elapsed - run.ideal) <= 0.04
    assert (run.metrics()["errors"], run.metrics()["intact"]) == (errors, intact)
