"""The select() client: every connection open at once, one loop watching them all.

The sockets are non-blocking, and ``select.select()`` sleeps until at least one of them
has something to read, so the client waits for whichever server speaks next instead
of for one server in particular. The servers' times *overlap*: three servers that take
4 s each take 4 s together. ``select()`` handles at most ``FD_SETSIZE`` (1024) sockets
and rescans every one of them on each call; the ``selectors`` model lifts both limits.
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
    ModelLimitError,
    Recorder,
    Target,
)

# select() takes descriptor sets of a fixed size: no socket numbered this or above fits.
FD_SETSIZE = 1024


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    started = time.monotonic()
    waiting = collections.deque(sorted(targets, key=lambda target: target.start_at))
    open_conns: dict[socket.socket, ConnectionRecord] = {}
    # A connection silent past its timeout is given up: when that is due, per socket.
    deadlines: dict[socket.socket, float] = {}

    def forget(sock: socket.socket) -> None:
        del open_conns[sock]
        deadlines.pop(sock, None)
        sock.close()

    try:
        while waiting or open_conns:
            # Connect every target whose time has come (all at once, without a ramp).
            while waiting and started + waiting[0].start_at <= time.monotonic():
                target = waiting.popleft()
                conn = recorder.open(target)
                try:
                    # Connecting blocks, but only for a loopback handshake; the slow part,
                    # waiting for the poem, is what the select() loop overlaps.
                    sock = socket.create_connection(target.address, timeout=target.timeout)
                except OSError as exc:
                    conn.failed(exc)
                    continue
                if sock.fileno() >= FD_SETSIZE:
                    sock.close()
                    raise ModelLimitError(
                        f"select() cannot watch descriptor {sock.fileno()}: FD_SETSIZE is "
                        f"{FD_SETSIZE}; use the selectors or asyncio model for this many "
                        f"connections")
                conn.connected(sock)
                sock.setblocking(False)
                open_conns[sock] = conn
                if target.timeout is not None:
                    deadlines[sock] = time.monotonic() + target.timeout

            # Sleep until a socket is readable, a connection is due, or one times out.
            wake_ups = list(deadlines.values())
            if waiting:
                wake_ups.append(started + waiting[0].start_at)
            wait = max(0.0, min(wake_ups) - time.monotonic()) if wake_ups else None
            readable, _, _ = select.select(list(open_conns), [], [], wait)
            for sock in readable:
                conn = open_conns[sock]
                if not _read(sock, conn):
                    forget(sock)
                elif conn.target.timeout is not None:
                    deadlines[sock] = time.monotonic() + conn.target.timeout
            now = time.monotonic()
            for sock, deadline in list(deadlines.items()):
                if deadline <= now:
                    open_conns[sock].failed(TimeoutError("no data within the timeout"))
                    forget(sock)
    finally:
        for sock in open_conns:
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
