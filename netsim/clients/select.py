"""The select() client: every connection open at once, one loop watching them all.

The sockets are non-blocking, and ``select.select()`` sleeps until at least one of them
is ready (writable when its handshake is over, readable when bytes came), so the client
waits for whichever server speaks next instead of for one server in particular. The
servers' times *overlap*: three servers that take 4 s each take 4 s together.
``select()`` handles at most ``FD_SETSIZE`` (1024) sockets and rescans every one of them
on each call; the ``selectors`` model lifts both limits.
"""

from __future__ import annotations

import collections
import select
import socket
import time
from collections.abc import Sequence

from netsim.clients._base import (
    RECV_SIZE,
    ClientModel,
    ConnectionRecord,
    Deadlines,
    ModelLimitError,
    Recorder,
    Target,
    finish_connecting,
    start_connecting,
)

# select() takes descriptor sets of a fixed size: no socket numbered this or above fits.
FD_SETSIZE = 1024


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    started = time.monotonic()
    waiting = collections.deque(sorted(targets, key=lambda target: target.start_at))
    connecting: dict[int, tuple[socket.socket, ConnectionRecord]] = {}  # by descriptor
    open_conns: dict[int, tuple[socket.socket, ConnectionRecord]] = {}
    deadlines = Deadlines()  # a connection silent past its timeout is given up

    def forget(sock: socket.socket) -> None:
        deadlines.forget(sock.fileno())
        connecting.pop(sock.fileno(), None)
        open_conns.pop(sock.fileno(), None)
        sock.close()

    try:
        while waiting or connecting or open_conns:
            # Begin connecting to every target whose time has come, without waiting for
            # the handshakes: a server may hold one back for seconds, and the loop
            # overlaps that wait too.
            while waiting and started + waiting[0].start_at <= time.monotonic():
                target = waiting.popleft()
                conn = recorder.open(target)
                try:
                    sock = start_connecting(target)
                except OSError as exc:
                    conn.failed(exc)
                    continue
                if sock.fileno() >= FD_SETSIZE:
                    sock.close()
                    raise ModelLimitError(
                        f"select() cannot watch descriptor {sock.fileno()}: FD_SETSIZE is "
                        f"{FD_SETSIZE}; use the selectors or asyncio model for this many "
                        f"connections")
                connecting[sock.fileno()] = (sock, conn)
                deadlines.set(sock.fileno(), target.timeout)

            if not connecting and not open_conns and not waiting:
                break  # every connection failed to connect: there is nothing to wait for

            # Sleep until a handshake is over (the socket turns writable), a socket is
            # readable, a connection is due, or one times out.
            wake_ups = [deadlines.earliest()]
            if waiting:
                wake_ups.append(started + waiting[0].start_at)
            due = min((t for t in wake_ups if t is not None), default=None)
            wait = None if due is None else max(0.0, due - time.monotonic())
            readable, writable, _ = select.select(list(open_conns), list(connecting), [], wait)
            for fd in writable:
                sock, conn = connecting.pop(fd)
                try:
                    finish_connecting(sock)
                except OSError as exc:
                    conn.failed(exc)
                    forget(sock)
                    continue
                conn.connected(sock.getsockname()[1])
                open_conns[fd] = (sock, conn)
                deadlines.set(fd, conn.target.timeout)
            for fd in readable:
                sock, conn = open_conns[fd]
                if _read(sock, conn):
                    deadlines.set(fd, conn.target.timeout)
                else:
                    forget(sock)
            for fd in deadlines.expired(time.monotonic()):
                if fd in connecting:
                    sock, conn = connecting[fd]
                    conn.failed(TimeoutError("no handshake within the timeout"))
                else:
                    sock, conn = open_conns[fd]
                    conn.failed(TimeoutError("no data within the timeout"))
                forget(sock)
    finally:
        for sock, _ in [*connecting.values(), *open_conns.values()]:
            sock.close()


def _read(sock: socket.socket, conn: ConnectionRecord) -> bool:
    """Take what one ready socket has; return whether the connection is still open."""
    try:
        data = sock.recv(RECV_SIZE)
    except BlockingIOError:
        # Readiness is a hint, not a promise: select() will report the socket again.
        return True
    except OSError as exc:
        conn.failed(exc)
        return False
    if not data:
        conn.eof()
        return False
    conn.received(data)
    return True


MODEL = ClientModel(
    name="select",
    summary="non-blocking sockets watched by select.select(); times overlap",
    concurrent=True,
    run=run,
    limit=FD_SETSIZE - 24,  # the process's own descriptors come first
    limit_reason=f"select() watches descriptors below FD_SETSIZE ({FD_SETSIZE}) only; "
                 f"the selectors and asyncio models have no such limit",
)
