"""The blocking client: one server after another, with plain blocking sockets.

Each ``recv()`` waits until the server sends something, so while the client waits for
one server it cannot read from any other. The servers are read in turn, and the run
takes the *sum* of their times: three servers that take 4 s each take 12 s.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from netsim.clients._base import RECV_SIZE, ClientModel, Recorder, Target


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    started = time.monotonic()
    for target in targets:
        # With a ramp, a connection does not start before its time.
        time.sleep(max(0.0, started + target.start_at - time.monotonic()))
        fetch(target, recorder)


def fetch(target: Target, recorder: Recorder) -> None:
    """Read one server's whole poem, blocking until it closes the connection."""
    conn = recorder.open(target)
    try:
        # The timeout bounds every wait: the connect, and each recv() after it.
        with socket.create_connection(target.address, timeout=target.timeout) as sock:
            conn.connected(sock.getsockname()[1])
            # recv() returns b"" only when the server has closed its end.
            while data := sock.recv(RECV_SIZE):
                conn.received(data)
            conn.eof()
    except OSError as exc:
        conn.failed(exc)


MODEL = ClientModel(
    name="blocking",
    summary="one server after another with blocking sockets; times add up",
    concurrent=False,
    run=run,
)
