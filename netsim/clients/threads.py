"""The threads client: the blocking client's loop, once per connection, in a thread each.

Every thread blocks in its own ``recv()``, and the operating system runs whichever
thread has data; the GIL is released while a thread waits. The code of a connection
stays as simple as the blocking model's, and the servers' times *overlap*: three
servers that take 4 s each take 4 s together. The cost is a thread (and its stack)
per connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from netsim.clients import blocking
from netsim.clients._base import ClientModel, Recorder, Target

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
    """Wait for this connection's turn on the ramp, then read as the blocking client does."""
    time.sleep(max(0.0, started + target.start_at - time.monotonic()))
    # The very same code as the blocking model: only where it runs has changed.
    blocking.fetch(target, recorder)


MODEL = ClientModel(
    name="threads",
    summary="a thread per connection, each a blocking read loop; times overlap",
    concurrent=True,
    run=run,
    limit=THREAD_LIMIT,
    limit_reason=f"a thread per connection: past {THREAD_LIMIT} threads their scheduling, "
                 f"not the servers, decides the timing; use asyncio or selectors",
)
