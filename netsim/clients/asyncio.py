"""The asyncio client: one coroutine per connection, written as if it were blocking.

Each connection reads with ``await reader.read()``, which looks like a blocking loop,
but every ``await`` hands control back to the event loop, which runs whichever
coroutine has data. Under the hood this is the selectors model; the loop does the
bookkeeping. The servers' times *overlap*: three servers that take 4 s each take 4 s
together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from netsim.clients._base import RECV_SIZE, ClientModel, Recorder, Target


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    asyncio.run(_fetch_all(targets, recorder))


async def _fetch_all(targets: Sequence[Target], recorder: Recorder) -> None:
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(_fetch(target, recorder, started) for target in targets))


async def _fetch(target: Target, recorder: Recorder, started: float) -> None:
    """Read one server's whole poem, yielding to the others while it waits."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, started + target.start_at - loop.time()))  # a ramp's turn
    conn = recorder.open(target)
    try:
        # asyncio.timeout(None) never expires: no timeout, no special case.
        async with asyncio.timeout(target.timeout):
            reader, writer = await asyncio.open_connection(*target.address)
    except TimeoutError as exc:  # asyncio.timeout's own says nothing: say what ran out
        conn.failed(exc if str(exc) else TimeoutError("no handshake within the timeout"))
        return
    except OSError as exc:
        conn.failed(exc)
        return
    conn.connected(writer.get_extra_info("sockname")[1])
    try:
        while True:
            # The timeout bounds each wait for data, not the whole connection.
            async with asyncio.timeout(target.timeout):
                data = await reader.read(RECV_SIZE)
            if not data:  # b"": the server has closed its end
                break
            conn.received(data)
        conn.eof()
    except TimeoutError as exc:
        conn.failed(exc if str(exc) else TimeoutError("no data within the timeout"))
    except OSError as exc:
        conn.failed(exc)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass  # the same error the read loop has already recorded


MODEL = ClientModel(
    name="asyncio",
    summary="one coroutine per connection on asyncio streams; times overlap",
    concurrent=True,
    run=run,
)
