"""The selectors client: the select() client on the best mechanism the OS offers.

``selectors.DefaultSelector`` is epoll on Linux and kqueue on the BSDs and macOS: no
limit on the number of sockets, and no rescan of every socket on each call. Each
socket is registered with its connection's record attached to the key, so a ready
event arrives with everything needed to handle it. Like select(), the servers' times
*overlap*: three servers that take 4 s each take 4 s together.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Sequence
from typing import cast

from netsim.clients._base import RECV_SIZE, ClientModel, ConnectionRecord, Recorder, Target


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    with selectors.DefaultSelector() as selector:
        try:
            for target in targets:
                conn = recorder.open(target)
                try:
                    # Connecting blocks, but only for a loopback handshake; the slow
                    # part, waiting for the poem, is what the selector overlaps.
                    sock = socket.create_connection(target.address)
                except OSError as exc:
                    conn.failed(exc)
                    continue
                conn.connected(sock)
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, data=conn)

            while selector.get_map():
                for key, _ in selector.select():
                    sock = cast(socket.socket, key.fileobj)
                    if not _read(sock, key.data):
                        selector.unregister(sock)
                        sock.close()
        finally:
            # Closing the selector does not close the sockets registered with it.
            for key in list(selector.get_map().values()):
                cast(socket.socket, key.fileobj).close()


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
