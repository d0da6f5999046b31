"""A server's listening socket over its life: handshakes answered, held (SYNs dropped at a
full accept queue) or refused, on one port, with real connects."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Iterator

import pytest

from netsim.engine import ServerPlan, open_listeners
from netsim.engine._gate import Gate


@pytest.fixture
def gate() -> Iterator[Gate]:
    loop = asyncio.new_event_loop()
    (listener,) = open_listeners([ServerPlan(name="s")])
    one = Gate(listener, loop, lambda: None)
    try:
        yield one
    finally:
        one.close()
        loop.close()


def accepted_peers(gate: Gate) -> list[tuple[str, int]]:
    """Accept what waits in the backlog; the peers that are clients (not fillers)."""
    peers = []
    time.sleep(0.02)  # the loopback handshakes complete in the kernel meanwhile
    while True:
        try:
            conn, peer = gate.sock.accept()
        except BlockingIOError:
            return peers
        conn.close()
        if not gate.is_filler(peer):
            peers.append(peer)


def test_held_handshakes_leave_a_connect_waiting_until_its_timeout(gate: Gate) -> None:
    """While held, a connect gets no answer at all: it times out, neither refused nor accepted."""
    gate.set("held")
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection(gate.address, timeout=0.3)
    assert time.monotonic() - began == pytest.approx(0.3, abs=0.1)


def test_answered_again_the_port_accepts_and_the_filler_is_never_served(gate: Gate) -> None:
    """Once answered again, a new client connects at once, and the connection that filled the
    queue is recognised and dropped rather than served."""
    gate.set("held")
    gate.set("open")
    client = socket.create_connection(gate.address, timeout=1)
    try:
        assert accepted_peers(gate) == [client.getsockname()]
    finally:
        client.close()


def test_a_refusing_gate_refuses_then_listens_again_on_its_port(gate: Gate) -> None:
    """Refusing, a connect is refused at once; open again, the same port accepts."""
    port = gate.address[1]
    gate.set("refusing")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(gate.address, timeout=1)
    gate.set("open")
    assert gate.sock.getsockname()[1] == port
    with socket.create_connection(gate.address, timeout=1) as client:
        assert accepted_peers(gate) == [client.getsockname()]


def test_a_client_waiting_in_the_backlog_stays_there_while_handshakes_are_held(gate: Gate) -> None:
    """A client whose handshake completed before the hold is still queued after it."""
    client = socket.create_connection(gate.address, timeout=1)
    try:
        gate.set("held")
        gate.set("open")
        assert accepted_peers(gate) == [client.getsockname()]
    finally:
        client.close()


@pytest.mark.parametrize(("code", "paused"), [(errno.EMFILE, True), (errno.ENOMEM, True),
                                              (errno.EINVAL, False)])
def test_a_failed_accept_pauses_or_fails_the_run(code: int, paused: bool) -> None:
    """Out of descriptors or memory, accepting stops and resumes after RETRY_ACCEPT; any other
    failure stops it for good and fails the run's future (poem servers and proxies alike)."""
    from netsim.engine._gate import RETRY_ACCEPT, accept_failed
    from tests.engine.fakeloop import FakeLoop

    loop, calls = FakeLoop(), []
    real = asyncio.new_event_loop()  # only to make the future the run would await
    try:
        failed: asyncio.Future[None] = real.create_future()
        accept_failed(OSError(code, "no"), loop, stop=lambda: calls.append("stop"),  # type: ignore[arg-type]
                      resume=lambda: calls.append("resume"), failed=failed)
        assert calls == ["stop"]
        loop.advance(RETRY_ACCEPT)
        assert calls == (["stop", "resume"] if paused else ["stop"])
        assert failed.done() is not paused
        if not paused:
            assert failed.exception().errno == code  # type: ignore[union-attr]
    finally:
        real.close()
