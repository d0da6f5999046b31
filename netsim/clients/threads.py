"""The threads client: the blocking client's loop, once per connection, in a thread each.

Every thread blocks in its own ``recv()``, and the operating system runs whichever
thread has data; the GIL is released while a thread waits. The code of a connection
stays as simple as the blocking model's, and the servers' times *overlap*: three
servers that take 4 s each take 4 s together. The cost is a thread (and its stack)
per connection.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence

from netsim.clients._base import RECV_SIZE, ClientModel, Recorder, Target

# Each thread costs a stack and a share of the GIL's switching; past this many the
# threads' scheduling, not the servers, decides the timing.
THREAD_LIMIT = 2000


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=_fetch,
            args=(target, recorder, started),
            name=f"netsim-{recorder.client}-{target.server}-{target.conn}",
        )
        for target in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _fetch(target: Target, recorder: Recorder, started: float) -> None:
    """Read one server's whole poem, blocking only this thread while it waits."""
    time.sleep(max(0.0, started + target.start_at - time.monotonic()))  # a ramp's turn
    conn = recorder.open(target)
    try:
        # The timeout bounds every wait: the connect, and each recv() after it.
        with socket.create_connection(target.address, timeout=target.timeout) as sock:
            conn.connected(sock)
            # recv() returns b"" only when the server has closed its end.
            while data := sock.recv(RECV_SIZE):
                conn.received(data)
            conn.eof()
    except OSError as exc:
        conn.failed(exc)


MODEL = ClientModel(
    name="threads",
    summary="a thread per connection, each a blocking read loop; times overlap",
    concurrent=True,
    run=run,
    limit=THREAD_LIMIT,
    limit_reason=f"a thread per connection: past {THREAD_LIMIT} threads their scheduling, "
                 f"not the servers, decides the timing; use asyncio or selectors",
)
