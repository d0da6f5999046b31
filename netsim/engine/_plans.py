"""What each server of a run does, and its bound socket: the engine's input, without I/O loops.

A ``ServerPlan`` is a scenario's server with the time scale applied (every duration in
wall-clock seconds) and its poem cut into chunks. It is made in the runner, which
knows the scenario; the engine never imports the scenario's models, so that a server
process at scale starts without pydantic.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim._errors import PortBusyError, ServerStartError
from netsim.conditions import Conditions

# Connections that may wait to be accepted. Serial servers queue their clients here,
# so it must hold every client a scenario opens at once (the kernel caps it at somaxconn).
BACKLOG = 4096


@dataclass(frozen=True)
class PhasePlan:
    """A phase of a server, in wall-clock seconds: from ``at`` after the servers are ready,
    the conditions' ``fields`` change, and the server is up, or down (``reset``: its open
    connections reset too)."""

    at: float
    fields: Mapping[str, Any]  # of Conditions, by name: those that change
    written: Mapping[str, Any]  # the same keys as the scenario writes them, for the log
    down: bool = False
    reset: bool = False


@dataclass(frozen=True)
class ServerPlan:
    """What one server does, in wall-clock seconds (the time scale already applied)."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    chunks: tuple[bytes, ...] = ()  # the poem, cut; empty for a proxy
    conditions: Conditions = field(default_factory=Conditions)
    serial: bool = False
    seed: int = 0
    upstream: str | None = None  # HOST:PORT, or the name of another server of the run
    direction: str = "downstream"  # which way a proxy applies its conditions
    chunking: str | int = "line"  # how a proxy cuts what it forwards
    phases: tuple[PhasePlan, ...] = ()

    @property
    def refuses(self) -> bool:
        return self.conditions.fault == "refuse"


@dataclass(frozen=True)
class Listener:
    """A bound socket of one server: listening, or, for a server that refuses, not."""

    plan: ServerPlan
    sock: socket.socket

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return (str(host), int(port))


def open_listeners(plans: Sequence[ServerPlan]) -> list[Listener]:
    """Bind (and, unless it refuses, listen on) every server's address; all or none.

    Raises PortBusyError for a fixed port in use, ServerStartError for other failures.
    """
    listeners: list[Listener] = []
    try:
        for plan in plans:
            listeners.append(Listener(plan, bind(plan, plan.port, listen=not plan.refuses)))
    except BaseException:
        for listener in listeners:
            listener.sock.close()
        raise
    return listeners


def bind(plan: ServerPlan, port: int, *, listen: bool) -> socket.socket:
    """A non-blocking socket bound to the server's host and ``port``, listening or not (bound
    but not listening, the kernel refuses every connect).

    Raises PortBusyError for a port in use, ServerStartError for other failures.
    """
    host = "127.0.0.1" if plan.host == "localhost" else plan.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets the next run rebind a fixed port while the last run's connections sit in
        # TIME_WAIT, and a server that went down bind its port again beside the
        # connections it still serves; Linux still refuses it while another socket listens there.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # A chunk due now goes now, not after the previous one's ACK. Set here, Linux
        # hands it to every accepted socket (the poem servers count on that).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if listen:
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortBusyError(
                f"server {plan.name!r}: port {port} on {host} is already in use; "
                f"stop what holds it (ss -ltnp 'sport = :{port}'), choose another port, "
                f"or use port 0 for any free one"
            ) from None
        if error.errno == errno.EACCES:
            raise ServerStartError(
                f"server {plan.name!r}: not allowed to bind port {port} on {host} "
                f"(ports below 1024 need privileges)"
            ) from None
        raise ServerStartError(f"server {plan.name!r}: cannot listen on {host}:{port}: "
                               f"{error.strerror or error}") from None
    return sock
