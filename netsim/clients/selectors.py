"""The selectors client: the select() client on the best mechanism the OS offers.

``selectors.DefaultSelector`` is epoll on Linux and kqueue on the BSDs and macOS: no
limit on the number of sockets, and no rescan of every socket on each call. Each
socket is registered with its connection's record attached to the key, so a ready
event arrives with everything needed to handle it. A socket is first registered for
writing, which it becomes when its handshake is over, then for reading. Like select(),
the servers' times *overlap*: three servers that take 4 s each take 4 s together.
"""

from __future__ import annotations

import collections
import selectors
import socket
import time
from collections.abc import Sequence
from typing import cast

from netsim.clients._base import (
    RECV_SIZE,
    ClientModel,
    ConnectionRecord,
    Deadlines,
    Recorder,
    Target,
    finish_connecting,
    start_connecting,
)


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    started = time.monotonic()
    waiting = collections.deque(sorted(targets, key=lambda target: target.start_at))
    deadlines = Deadlines()  # a connection silent past its timeout is given up
    with selectors.DefaultSelector() as selector:

        def forget(sock: socket.socket) -> None:
            deadlines.forget(sock.fileno())
            selector.unregister(sock)
            sock.close()

        try:
            while waiting or selector.get_map():
                # Begin connecting to every target whose time has come (its turn on a ramp).
                while waiting and started + waiting[0].start_at <= time.monotonic():
                    target = waiting.popleft()
                    conn = recorder.open(target)
                    try:
                        # Begun, not waited for: the handshake is one more thing the
                        # selector overlaps (a server may hold it back for seconds).
                        sock = start_connecting(target)
                    except OSError as exc:
                        conn.failed(exc)
                        continue
                    selector.register(sock, selectors.EVENT_WRITE, data=conn)  # writable: connected
                    deadlines.set(sock.fileno(), target.timeout)

                if not selector.get_map() and not waiting:
                    break  # every connection failed to connect: there is nothing to wait for

                # Sleep until a handshake is over (the socket turns writable), a socket is
                # readable, a connection is due, or one times out.
                wake_ups = [deadlines.earliest()]
                if waiting:
                    wake_ups.append(started + waiting[0].start_at)
                due = min((t for t in wake_ups if t is not None), default=None)
                wait = None if due is None else max(0.0, due - time.monotonic())
                for key, events in selector.select(wait):
                    sock, conn = cast(socket.socket, key.fileobj), key.data
                    if events & selectors.EVENT_WRITE:  # the handshake is over
                        if _connected(sock, conn):
                            selector.modify(sock, selectors.EVENT_READ, data=conn)
                            deadlines.set(sock.fileno(), conn.target.timeout)
                        else:
                            forget(sock)
                    elif _read(sock, conn):
                        deadlines.set(sock.fileno(), conn.target.timeout)
                    else:
                        forget(sock)
                for fd in deadlines.expired(time.monotonic()):
                    key = selector.get_key(fd)
                    connecting = key.events & selectors.EVENT_WRITE
                    key.data.failed(TimeoutError("no handshake within the timeout" if connecting
                                                 else "no data within the timeout"))
                    forget(cast(socket.socket, key.fileobj))
        finally:
            # Closing the selector does not close the sockets registered with it.
            for key in list(selector.get_map().values()):
                cast(socket.socket, key.fileobj).close()


def _connected(sock: socket.socket, conn: ConnectionRecord) -> bool:
    """Report how a socket's handshake ended; return whether it is connected."""
    try:
        finish_connecting(sock)
    except OSError as exc:
        conn.failed(exc)
        return False
    conn.connected(sock.getsockname()[1])
    return True


def _read(sock: socket.socket, conn: ConnectionRecord) -> bool:
    """Take what one ready socket has; return whether the connection is still open."""
    try:
        data = sock.recv(RECV_SIZE)
    except BlockingIOError:
        # Readiness is a hint, not a promise: the selector will report the socket again.
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
    name="selectors",
    summary="non-blocking sockets on selectors.DefaultSelector (epoll); times overlap",
    concurrent=True,
    run=run,
)
