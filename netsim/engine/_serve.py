"""``serve()``: every server of a run on one event loop, each on the path that suits it.

A poem server's bytes are known when a connection is accepted, so it goes on the path
of planned timelines (``_poems.py``), whatever its conditions and mode; a proxy's bytes
come as they come, so it goes on the streaming path (``_proxy.py``). A server whose
fault is ``refuse`` is bound but does not listen (its gate refuses): the kernel refuses
every connect, until a phase or a live change makes it listen. Every server has a
``ServerControl`` (``_control.py``), which carries out its phases and live changes.
"""

from __future__ import annotations

import array
import asyncio
import time
from collections.abc import Callable, Sequence

from netsim.engine._control import Controls, ServerControl
from netsim.engine._plans import Listener
from netsim.engine._poems import PoemServer
from netsim.engine._precise import idle_hook
from netsim.engine._proxy import ProxyServer
from netsim.engine._record import Emit, ServerRecord
from netsim.engine._timers import TimerQueue
from netsim.engine._watch import Watcher
from netsim.events import Outbox, ServerListening


async def serve(listeners: Sequence[Listener], emit: Emit, t0: float, *,
                lateness: array.array[float] | None = None, detail: bool = True,
                accounts: Outbox | None = None,
                on_ready: Callable[[Controls], None] | None = None) -> None:
    """Serve every listener until cancelled; closes the sockets on the way out.

    Every chunk's lateness goes into ``lateness``; events go to ``emit``, all of them
    with ``detail``, else only the servers' own (listening, changes) ones, and each
    connection's account into ``accounts`` (to ``emit`` when there is none). Once every
    listener is being served, the phases begin and ``on_ready`` is called with the
    servers' controls, for live changes. Raises the OSError of an accept that failed for
    good (not for want of descriptors, which only pauses accepting): the run must hear
    of it rather than leave its clients waiting in a backlog.
    """
    loop = asyncio.get_running_loop()
    timers = TimerQueue(loop)
    watcher = Watcher(loop)
    idle = idle_hook(loop)  # None on asyncio's own loop: courses are then planned at the accept
    failed: asyncio.Future[None] = loop.create_future()
    if lateness is None:
        lateness = array.array("d")
    addresses = {listener.plan.name: listener.address for listener in listeners}
    servers: list[PoemServer | ProxyServer] = []
    controls: dict[str, ServerControl] = {}
    try:
        for listener in listeners:
            plan = listener.plan
            record = ServerRecord(plan, emit, t0, lateness, detail=detail, accounts=accounts)
            host, port = listener.address
            emit(ServerListening(time.monotonic() - t0, plan.name, host, port,
                                 "serial" if plan.serial else "concurrent", plan.refuses))
            server: PoemServer | ProxyServer
            if plan.upstream is None:
                server = PoemServer(listener, record, timers, watcher, loop, failed, idle)
            else:
                server = ProxyServer(listener, record, timers, addresses, loop, failed)
            servers.append(server)
            controls[plan.name] = ServerControl(server, record, timers, loop)
            server.start()  # accepting whenever its gate is open (a refusing one's is not)
        everything = Controls(controls)
        everything.begin(loop.time())
        if on_ready is not None:
            on_ready(everything)
        await failed  # until cancelled, or until an accept fails for good
    finally:
        for server in servers:
            server.close()
        watcher.close()
        for listener in listeners:
            listener.sock.close()
        for server in servers:
            server.gate.close()
