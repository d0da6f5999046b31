"""Conditions that change while a run goes on: each server's phases, and live control.

A ``ServerControl`` owns one server's conditions as they are now. Its phases are part of
the plan, so the server process carries them out itself, each on a timer of its own
deadline (``ready + at``): exact, whatever the runner is doing. A live change (a
``ControlMessage`` from the runner) takes the same path at once. Either way the poem
server plans the rest of every open connection anew (``PoemServer.change``), the gate
decides what a connect meets (answered, held, refused), and the record logs the change
with its time.

``Controls`` holds every server of the process and answers the runner's requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

from netsim._errors import RunError
from netsim.engine._gate import GateState
from netsim.engine._plans import PhasePlan
from netsim.engine._poems import PoemServer
from netsim.engine._proxy import ProxyServer
from netsim.engine._record import ServerRecord
from netsim.engine._timers import TimerQueue
from netsim.events import (
    BringUp,
    ChangeConditions,
    ControlDone,
    ControlMessage,
    ReportStates,
    ResetConnections,
    ServerState,
    ServerStates,
    TakeDown,
)

CONTROL = "control"  # the source of a live change, in the log


class ServerControl:
    """One server's conditions over time: its phases, live changes, down and up."""

    def __init__(self, server: PoemServer | ProxyServer, record: ServerRecord, timers: TimerQueue,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.gate = server.gate
        self.record = record
        self.plan = record.plan
        self.conditions = record.plan.conditions
        self.down = False
        self.changes = 0  # how many times the conditions changed: the generation of their draws
        self._timers = timers
        self.clock = loop.time
        # Handshakes go unanswered until then (a handshake_delay): until the servers are
        # ready and a while after, for the server's own.
        self._held_until = math.inf if self.conditions.handshake_delay else 0.0
        self._held = False  # as last logged: the first state is logged once the servers are ready
        self.gate.set(self._wanted())

    def __repr__(self) -> str:
        state = "down" if self.down else self.gate.state
        return f"<ServerControl {self.plan.name} {state} changes={self.changes}>"

    def begin(self, ready: float) -> None:
        """The servers are ready (at ``ready``, loop clock): the phases count from now."""
        if self.conditions.handshake_delay:
            self._hold_for(ready, self.conditions.handshake_delay)
        else:
            self._refresh()
        for number, phase in enumerate(self.plan.phases, start=1):
            self._timers.call_at(ready + phase.at, functools.partial(self._enter, number, phase))

    def _enter(self, number: int, phase: PhasePlan) -> None:
        source = f"phase {number}"
        if phase.fields:
            self.change(phase.fields, phase.written, source)
        if phase.down:
            self.take_down(reset=phase.reset, source=source)
        elif self.down:
            try:
                self.bring_up(source)
            except RunError as error:  # the run goes on, the server down; the log tells why
                self.record.came_up(self.clock(), source, str(error))

    # What a phase or the runner asks.

    def change(self, fields: Mapping[str, Any], written: Mapping[str, Any], source: str) -> None:
        """Set these fields of the conditions from now on."""
        now = self.clock()
        self.conditions = dataclasses.replace(self.conditions, **fields)
        self.changes += 1
        self.record.conditions_changed(now, dict(written), source)
        self.server.change(self.conditions, self.changes)
        if "handshake_delay" in fields:  # held from now on for that long (0: answered now)
            self._hold_for(now, self.conditions.handshake_delay)
        else:
            self._refresh()

    def take_down(self, *, reset: bool, source: str) -> int:
        """Refuse new connections; with ``reset``, reset the open ones. Returns how many were."""
        self.down = True
        self._refresh()
        count = self.server.reset_open() if reset else 0
        self.record.went_down(self.clock(), source, count)
        return count

    def bring_up(self, source: str) -> None:
        """Listen again, on the same port. Raises PortBusyError if another program took it."""
        self.down = False
        try:
            self._refresh()
        except RunError:
            self.down = True
            raise
        self.record.came_up(self.clock(), source)

    def reset_open(self, source: str) -> int:
        count = self.server.reset_open()
        self.record.conns_reset(self.clock(), count, source)
        return count

    def state(self) -> ServerState:
        host, port = self.gate.address
        t0 = self.record.t0
        return ServerState(self.plan.name, host, port, not self.down,
                           "held" if self.gate.state == "held" else "answered",
                           {field.name: getattr(self.conditions, field.name)
                            for field in dataclasses.fields(self.conditions)},
                           [(index, peer_port, sent, accepted - t0)
                            for index, peer_port, sent, accepted in self.server.open_connections()])

    # The gate.

    def _hold_for(self, now: float, duration: float) -> None:
        self._held_until = now + duration
        self._timers.call_at(self._held_until, self._refresh)
        self._refresh()

    def _wanted(self) -> GateState:
        if self.down or self.conditions.fault == "refuse":
            return "refusing"
        if self.conditions.fault == "syn_drop" or self.clock() < self._held_until:
            return "held"
        return "open"

    def _refresh(self) -> None:
        """Put the gate in the state the conditions ask for; log handshakes held or answered."""
        state = self._wanted()
        self.gate.set(state)
        held = state == "held"
        if held != self._held:
            self._held = held
            now = self.clock()
            if held:
                until = None if self.conditions.fault == "syn_drop" or math.isinf(self._held_until) \
                    else self._held_until
                self.record.handshakes_held(now, until)
            else:
                self.record.handshakes_answered(now)


class Controls:
    """Every server of a process, by name: carries out the runner's control requests."""

    def __init__(self, servers: Mapping[str, ServerControl]) -> None:
        self.servers = dict(servers)

    def __repr__(self) -> str:
        return f"<Controls {', '.join(self.servers)}>"

    def begin(self, ready: float) -> None:
        for control in self.servers.values():
            control.begin(ready)

    def ending(self) -> bool:
        """Is a proxy still passing on the end of a connection whose client has left?"""
        return any(isinstance(control.server, ProxyServer) and control.server.ending()
                   for control in self.servers.values())

    def handle(self, request: ControlMessage, t0: float) -> ControlDone | ServerStates:
        """Carry out a request and say how it went, and when it took effect (seconds after
        ``t0``, the run's start)."""
        if isinstance(request, ReportStates):
            return ServerStates(request.request, [control.state() for control in self.servers.values()])
        control = self.servers.get(request.server)
        if control is None:  # the runner checks names first: this is a bug, told not raised
            return ControlDone(request.request, math.nan, f"no server {request.server!r}")
        count = 0
        try:
            match request:
                case ChangeConditions():
                    control.change(request.fields, request.written, CONTROL)
                case TakeDown():
                    count = control.take_down(reset=request.reset, source=CONTROL)
                case BringUp():
                    control.bring_up(CONTROL)
                case ResetConnections():
                    count = control.reset_open(CONTROL)
        except RunError as error:
            return ControlDone(request.request, control.clock() - t0, str(error))
        return ControlDone(request.request, control.clock() - t0, None, count)
