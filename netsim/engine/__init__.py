"""The server engine: slow poem servers and conditioned proxies on one asyncio loop.

Its modules build on each other in one direction, each importing only those above it
in this list:

* ``_plans``: what each server does (``ServerPlan``) and its bound socket (``Listener``);
* ``_timers``: one loop timer for every deadline of the process (``TimerQueue``);
* ``_watch``: readiness of every connection's socket on one epoll (``Watcher``);
* ``_record``: the events and lateness a server reports (``ServerRecord``);
* ``_gate``: a server's listening socket over its life: answering handshakes, holding
  them (``syn_drop``, ``handshake_delay``) or refusing (down, ``refuse``) (``Gate``);
* ``_poems``: poem servers, each connection a planned ``conditions.Timeline`` carried
  out on a raw socket, and planned anew when the conditions change;
* ``_shaper`` and ``_proxy``: proxies, streaming what they forward through a ``Shaper``;
* ``_control``: each server's conditions over time, its phases and live changes
  (``ServerControl``, ``Controls``);
* ``_serve``: ``serve()``, which puts every server of a run on the path that suits it;
* ``_precise``: the event loop the server process runs, on time to the microsecond;
* ``_priority``: the scheduling the server process asks the kernel for (real time,
  where it is safe and allowed).
"""

from __future__ import annotations

from netsim.engine._control import Controls
from netsim.engine._plans import BACKLOG, Listener, PhasePlan, ServerPlan, open_listeners
from netsim.engine._precise import new_event_loop
from netsim.engine._priority import Priority, ask_for_priority, left_realtime
from netsim.engine._serve import serve

__all__ = ["BACKLOG", "Controls", "Listener", "PhasePlan", "Priority", "ServerPlan",
           "ask_for_priority", "left_realtime", "new_event_loop", "open_listeners", "serve"]
