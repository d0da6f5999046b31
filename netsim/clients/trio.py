"""The trio client: a task per connection in a nursery, each written as if it were blocking.

As in the asyncio model, each connection reads in what looks like a blocking loop, and
every ``await`` hands control to trio's scheduler, which runs whichever task has data.
Trio's way is *structured*: tasks are started in a ``nursery``, and the ``async with``
block that opened it ends only when every task in it has ended, so no task outlives the
run and there is nothing to gather. A timeout is a cancel scope around a wait
(``trio.fail_after``), so it bounds exactly the waits it encloses. The servers' times
*overlap*: three servers that take 4 s each take 4 s together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import trio

from netsim.clients._base import RECV_SIZE, ClientModel, Recorder, Target


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    trio.run(_fetch_all, targets, recorder)


async def _fetch_all(targets: Sequence[Target], recorder: Recorder) -> None:
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for target in targets:
            nursery.start_soon(_fetch, target, recorder, started + target.start_at)


async def _fetch(target: Target, recorder: Recorder, turn: float) -> None:
    """Read one server's whole poem, letting the other tasks run while it waits."""
    await trio.sleep_until(turn)  # a ramp's turn
    conn = recorder.open(target)
    timeout = math.inf if target.timeout is None else target.timeout  # a scope that never expires
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(target.host, target.port)
    except (OSError, trio.TooSlowError) as exc:
        conn.failed(_as_builtin(exc))
        return
    conn.connected(stream.socket.getsockname()[1])
    async with stream:  # closed however the reading ends
        try:
            while True:
                # A scope per wait for data: the timeout bounds each, not the whole connection.
                with trio.fail_after(timeout):
                    data = await stream.receive_some(RECV_SIZE)
                if not data:  # b"": the server has closed its end
                    break
                conn.received(data)
            conn.eof()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            conn.failed(_as_builtin(exc))


def _as_builtin(error: Exception) -> BaseException:
    """The standard exception behind trio's, as results count them."""
    if isinstance(error, trio.TooSlowError):
        return TimeoutError("no data within the timeout")
    # A broken stream is caused by the socket's error. A connect that failed is an
    # OSError caused by a group of each address's error: a target's host is one address.
    cause = error.__cause__
    if isinstance(cause, ExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    return cause if isinstance(cause, OSError) else error


MODEL = ClientModel(
    name="trio",
    summary="one trio task per connection in a nursery, on trio streams; times overlap",
    concurrent=True,
    run=run,
)
