"""What a server tells the run about its connections: events, and every chunk's lateness.

Poem servers and proxies report through the same ``ServerRecord``, so a connection's
events read the same whichever path served it.
"""

from __future__ import annotations

import array
from collections.abc import Callable

from netsim.engine._plans import ServerPlan
from netsim.events import (
    ChunkSent,
    ConditionsChanged,
    ConnAccepted,
    ConnClosed,
    ConnEnded,
    ConnLost,
    ConnsReset,
    FaultStruck,
    HandshakesAnswered,
    HandshakesHeld,
    How,
    Outbox,
    PeerShutdown,
    ServerCameUp,
    ServerEvent,
    ServerWentDown,
    UpstreamConnected,
    UpstreamFailed,
    UpstreamLost,
)

Emit = Callable[[ServerEvent], None]


class ServerRecord:
    """One server's account of its connections, its times on the run's clock.

    Every chunk's lateness goes into ``lateness`` (wall seconds) unless a slow reader
    held the chunk back. Events go to ``emit`` only with ``detail``: at ten thousand
    connections, the measurements need the lateness alone, and events would cost a core.
    """

    def __init__(self, plan: ServerPlan, emit: Emit, t0: float, lateness: array.array[float], *,
                 detail: bool = True, accounts: Outbox | None = None) -> None:
        self.plan = plan
        self.name = plan.name
        self.emit = emit
        self.t0 = t0
        self.lateness = lateness
        self.detail = detail
        self.accounts = accounts  # where accounts go without detail, packed (else to emit)
        self.accepted = 0  # connections so far

    def __repr__(self) -> str:
        return f"<ServerRecord {self.name} accepted={self.accepted} chunks={len(self.lateness)}>"

    def next_index(self) -> int:
        self.accepted += 1
        return self.accepted

    def conn_accepted(self, now: float, peer_port: int, index: int, fault: str | None) -> None:
        if self.detail:
            self.emit(ConnAccepted(now - self.t0, self.name, peer_port, index, fault))

    def chunk_sent(self, now: float, peer_port: int, chunk: int, size: int, due: float, held: bool,
                   direction: str | None = None) -> None:
        """Count a chunk's lateness (unless a slow reader held it back) and log it."""
        if not held:
            self.lateness.append(now - due)
        if self.detail:
            self.emit(ChunkSent(now - self.t0, self.name, peer_port, chunk, size, due - self.t0,
                                now - due, held, direction))

    def fault_struck(self, now: float, peer_port: int, kind: str, sent: int) -> None:
        if self.detail:
            self.emit(FaultStruck(now - self.t0, self.name, peer_port, kind, sent))

    def conn_closed(self, now: float, peer_port: int, sent: int) -> None:
        if self.detail:
            self.emit(ConnClosed(now - self.t0, self.name, peer_port, sent))

    def conn_lost(self, now: float, peer_port: int, sent: int, error: BaseException | None) -> None:
        """The client left first: EOF (``error`` None) or a reset; or the socket failed."""
        if not self.detail:
            return
        if error is None:
            how, reason = "eof", "the client closed the connection"
        else:
            how = "reset" if isinstance(error, ConnectionResetError | BrokenPipeError) else "error"
            reason = f"{type(error).__name__}: {error}"
        self.emit(ConnLost(now - self.t0, self.name, peer_port, sent, how, reason))  # type: ignore[arg-type]

    def conn_ended(self, now: float, peer: tuple[str, int], index: int, accepted: float,
                   first_byte: float | None, ended: float, sent: int, acked: int | None, how: How,
                   fault: str | None, upstream_port: int | None = None) -> None:
        """A connection's account, sent with or without ``detail``: the servers' side of a run
        (a proxy's with the local port of its connection to its upstream)."""
        t0 = self.t0
        event = ConnEnded(now - t0, self.name, peer[1], peer[0], index, accepted - t0,
                          None if first_byte is None else first_byte - t0, ended - t0, sent, acked,
                          how, fault, upstream=self.plan.upstream, upstream_port=upstream_port)
        if self.detail or self.accounts is None:
            self.emit(event)
        else:
            self.accounts.add(event)

    def peer_shutdown(self, now: float, peer_port: int, sent: int) -> None:
        if self.detail:
            self.emit(PeerShutdown(now - self.t0, self.name, peer_port, sent))

    def upstream_connected(self, now: float, peer_port: int, upstream: str) -> None:
        if self.detail:
            self.emit(UpstreamConnected(now - self.t0, self.name, peer_port, upstream))

    def upstream_failed(self, now: float, peer_port: int, upstream: str, error: BaseException) -> None:
        if self.detail:
            self.emit(UpstreamFailed(now - self.t0, self.name, peer_port, upstream,
                                     f"{type(error).__name__}: {error}"))

    def upstream_lost(self, now: float, peer_port: int, error: BaseException) -> None:
        if self.detail:
            self.emit(UpstreamLost(now - self.t0, self.name, peer_port, f"{type(error).__name__}: {error}"))

    # A server's own changes go out with or without ``detail``: they are few, and the log
    # of a run must say when its conditions changed.

    def conditions_changed(self, now: float, changes: dict[str, object], source: str) -> None:
        self.emit(ConditionsChanged(now - self.t0, self.name, dict(changes), source))

    def went_down(self, now: float, source: str, reset: int) -> None:
        self.emit(ServerWentDown(now - self.t0, self.name, source, reset))

    def came_up(self, now: float, source: str, error: str | None = None) -> None:
        self.emit(ServerCameUp(now - self.t0, self.name, source, error))

    def conns_reset(self, now: float, count: int, source: str) -> None:
        self.emit(ConnsReset(now - self.t0, self.name, count, source))

    def handshakes_held(self, now: float, until: float | None) -> None:
        self.emit(HandshakesHeld(now - self.t0, self.name, None if until is None else until - self.t0))

    def handshakes_answered(self, now: float) -> None:
        self.emit(HandshakesAnswered(now - self.t0, self.name))
