"""Proxy mode: forward a real TCP service's bytes under a server's conditions.

A client's connection is held for ``accept_delay``, then the proxy connects to the
upstream and forwards both ways, each way through a ``Shaper``: conditioned in the
directions the scenario names, passed straight through (with backpressure) in the
others. Bytes are forwarded exactly; only their timing changes. A proxy streams what
it has not seen yet, so it keeps asyncio's transports, which read every socket all the
time: a client that leaves is noticed at once, as on a poem server.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from typing import Any

from netsim.conditions import (
    CUTTING_FAULTS,
    Conditions,
    Corruption,
    Draws,
    Emission,
    Streams,
    StreamSchedule,
    fault_of,
    pause_stream,
)
from netsim.engine._gate import Gate, accept_failed
from netsim.engine._plans import Listener
from netsim.engine._poems import LINGER_RESET
from netsim.engine._record import ServerRecord
from netsim.engine._shaper import READ_PAUSE, Shaper
from netsim.engine._timers import TimerQueue
from netsim.events import How

_PLAIN = Conditions()
# A client that had shut down its side may have closed its socket altogether: the bytes sent
# after that are answered by a reset, which tells a client that left early from one that
# waited (nc -N, an HTTP/1.0 client). Before the proxy closes such a connection it waits
# this long for that reset: a round trip, on loopback far less.
RESET_GRACE = 0.05  # seconds


class ProxyServer:
    """Accepts one proxy server's connections (the factory of their protocols), and holds
    the state they share."""

    def __init__(self, listener: Listener, record: ServerRecord, timers: TimerQueue,
                 addresses: dict[str, tuple[str, int]], loop: asyncio.AbstractEventLoop,
                 failed: asyncio.Future[None] | None = None) -> None:
        self.record = record
        self.plan = record.plan
        self.conditions = record.plan.conditions  # as they are now: a change replaces them
        self.timers = timers
        self.addresses = addresses  # every server of the run, for an upstream given by name
        self.gate = Gate(listener, loop, self._accept)
        self._loop = loop
        self._failed = failed  # set with the error when accepting fails for good
        # The loop forgets a transport that is not reading (paused by backpressure), and
        # a forgotten transport is collected and closes its socket: hold them here.
        self.live: set[ProxyConnection] = set()
        self._adopting: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<ProxyServer {self.plan.name} -> {self.plan.upstream} live={len(self.live)}>"

    def __call__(self) -> ProxyConnection:
        return ProxyConnection(self)

    def start(self) -> None:
        """Accept connections whenever the gate is open."""
        self.gate.want(True)

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.gate.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # the client gave up before we got to it
                continue
            except OSError as error:
                accept_failed(error, self._loop, stop=lambda: self.gate.want(False), resume=self.start,
                              failed=self._failed)
                return
            if self.gate.is_filler((str(peer[0]), int(peer[1]))):
                sock.close()
                continue
            task = self._loop.create_task(self._loop.connect_accepted_socket(self, sock))
            self._adopting.add(task)
            task.add_done_callback(self._adopting.discard)

    def open_connections(self) -> list[tuple[int, int, int, float]]:
        """Each open connection's index, peer port, bytes sent and accept time (loop clock)."""
        return sorted((conn.index, conn.peer_port, conn.sent, conn.accepted) for conn in self.live)

    def change(self, conditions: Conditions, generation: int = 0) -> None:
        """Serve with ``conditions`` from now on: new connections, and the chunks that reach
        an open one from now on, with the fault the new conditions give it (as a poem
        server's open connections get theirs)."""
        self.conditions = conditions
        for conn in self.live:
            conn.conditions_changed(conditions)

    def reset_open(self) -> int:
        """Reset every connection still open; how many there were."""
        count = 0
        for conn in list(self.live):
            if conn.reset_now():
                count += 1
        return count

    def ending(self) -> bool:
        """Is a connection whose client has left still passing the end on (see ``close``)?"""
        return any(conn.ending for conn in self.live)

    def close(self) -> None:
        """Stop serving: every connection still open is accounted for and closed. (A stop
        lets those that are ``ending`` end first, for a moment: a client that closed just
        before it did not leave a connection open.)"""
        for task in self._adopting:
            task.cancel()
        self.gate.close()
        for conn in list(self.live):
            conn.conclude()

    def upstream_address(self) -> tuple[str, int]:
        upstream = self.plan.upstream
        assert upstream is not None
        if ":" not in upstream:
            return self.addresses[upstream]
        host, _, port = upstream.rpartition(":")
        return (host.strip("[]"), int(port))


class ProxyConnection(asyncio.Protocol):
    """One client connection of a proxy, with its upstream connection."""

    def __init__(self, server: ProxyServer) -> None:
        self._server = server
        self._plan = server.plan
        self._record = server.record
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._upstream_port: int | None = None  # its local port toward the upstream
        self._down: Shaper | None = None  # upstream -> client
        self._up: Shaper | None = None  # client -> upstream
        self._connecting: asyncio.Task[None] | None = None
        self._peer: tuple[str, int] = ("", 0)
        self._accepted = 0.0
        self._how: How | None = None  # how the proxy itself ended it, if it did
        self._fault: str | None = None
        self._faults = 0  # how many times its fault was set: a time limit of an earlier one is stale
        self._silent = False  # a stall struck: nothing will ever be sent again
        # The fault that first cut, stopped or reset the stream: what its account names, though
        # a later change take the fault away (the bytes it cut stay cut).
        self._struck_by: str | None = None
        self._ending = False  # its silence is over, and a fault with a time limit will end it
        self._sent_at_eof: int | None = None  # what the client had been sent when it shut down
        self._closed = False
        self._client_eof = False  # the client has shut down its side: the end is on its way
        self._accounted = False  # its ConnEnded is recorded
        self._ended: float | None = None  # when it ended, where that was before its account
        self.index = 0

    def __repr__(self) -> str:
        return (f"<ProxyConnection {self._plan.name}#{self.index} peer_port={self._peer_port} "
                f"down={self._down} up={self._up}>")

    @property
    def _peer_port(self) -> int:
        return self._peer[1]

    @property
    def peer_port(self) -> int:
        return self._peer[1]

    @property
    def accepted(self) -> float:
        return self._accepted

    @property
    def sent(self) -> int:
        return sum(shaper.sent for shaper in (self._down, self._up) if shaper is not None)

    # The client's side.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        self.index = self._record.next_index()
        self._server.live.add(self)
        plan = self._plan
        self._fault = fault_of(self._server.conditions, plan.seed, plan.name, self.index)
        now = self._accepted = self._loop.time()
        self._record.conn_accepted(now, self._peer_port, self.index, self._fault)
        if self._fault == "blackhole":
            # Accept, never send, never close. It still reads (and drops what comes), or
            # it would never notice the client leave.
            self._silent = True
            self._struck_by = "blackhole"
            return
        transport.pause_reading()  # the client's bytes wait until the upstream is there
        conditions = self._server.conditions
        self._connecting = self._loop.create_task(self._connect(now + conditions.accept_delay))
        self._limit_in_time(conditions)

    def data_received(self, data: bytes) -> None:
        if self._up is None:
            return
        self._up.feed(data)
        if self._up.buffered > READ_PAUSE and self._transport is not None:
            self._transport.pause_reading()

    @property
    def ending(self) -> bool:
        """Has its client left, the proxy still passing the end on (its upstream's last bytes,
        its close)?"""
        return self._client_eof and not self._accounted

    def eof_received(self) -> bool:
        self._client_eof = True
        self._sent_at_eof = 0 if self._down is None else self._down.sent
        if self._down is not None:
            self._down.reader_gone = self._reset_came
        # Reading is paused until the upstream is connected, so no shaper means a blackhole.
        if self._up is None or self._silent:
            return False  # nothing will ever be sent: the client has left, let it close
        self._up.end_input()  # forwarded as a half-close once the upstream shaper is done
        return True  # keep the connection open for what the upstream still sends

    def pause_writing(self) -> None:
        if self._down is not None:
            self._down.pause()

    def resume_writing(self) -> None:
        if self._down is not None:
            self._down.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._accounted:  # concluded when the servers stopped
            return
        now = self._loop.time() if self._ended is None else self._ended
        how = self._how
        if not self._closed:
            self._record.conn_lost(now, self._peer_port, self.sent, exc)
            self._closed = True
            if exc is None:
                how = "client_closed"
            elif self._client_eof and isinstance(exc, ConnectionResetError | BrokenPipeError):
                # After its EOF, a reset answers a write: the client had closed, not only shut
                # down its side. If bytes went after that EOF, it left before them (it gave up
                # waiting out a latency or a slow upstream, or wanted no more); else it left
                # after everything it had been sent.
                late = self._down is not None and self._down.sent > (self._sent_at_eof or 0)
                how = "client_closed_early" if late else "client_closed"
            else:
                how = "client_reset" if isinstance(exc, ConnectionResetError | BrokenPipeError) else "error"
        self._account(now, how or "stopped")

    def conclude(self) -> None:
        """The servers stop with this connection open: account for it now (``stopped``, unless
        the proxy had ended it already) and close both sides; the loop would not get round
        to it."""
        if self._accounted or self._transport is None:
            return
        self._closed = True
        self._account(self._loop.time(), self._how or "stopped")
        self._transport.abort()

    def _account(self, now: float, how: How) -> None:
        self._accounted = True
        down = self._down
        sent = 0 if down is None else down.sent
        first_write = None if down is None else down.first_write
        if how == "client_closed_early" and down is not None:
            # What went after its close never reached it: the write a reset answered, at
            # least (it had all that went before its EOF).
            sent = max(self._sent_at_eof or 0, down.sent - down.last_write)
            if not sent:
                first_write = None  # no byte reached it: no first byte to time
        # The fault it names is one that changed the stream (a proxy's byte limit can lie
        # past what its upstream ever sends, and then nothing was cut): so a connection
        # that names none came through as its upstream sent it.
        corrupted = any(shaper is not None and shaper.corrupted for shaper in (self._down, self._up))
        fault = self._struck_by or ("corrupt" if corrupted else None)
        # What the client's kernel acknowledged cannot be told once asyncio has closed the
        # socket: a proxy's account leaves it open (None).
        self._record.conn_ended(now, self._peer, self.index, self._accepted, first_write, now, sent, None,
                                how, fault, self._upstream_port)
        self._stop()
        self._server.live.discard(self)

    # The upstream's side.

    async def _connect(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - self._loop.time()))
        if self._silent:  # a blackhole brought in meanwhile: it never sends
            return
        host, port = self._server.upstream_address()
        try:
            upstream, _ = await self._loop.create_connection(lambda: _Upstream(self), host, port)
        except OSError as error:
            self._record.upstream_failed(self._loop.time(), self._peer_port, f"{host}:{port}", error)
            self._reset("upstream_failed")  # the client learns that something broke, as from a real proxy
            return
        local = upstream.get_extra_info("sockname")
        self._upstream_port = int(local[1]) if local else None
        if self._closed:  # the client left while we connected
            upstream.close()
            return
        assert self._transport is not None
        self._upstream = upstream
        start = self._loop.time()
        self._record.upstream_connected(start, self._peer_port, f"{host}:{port}")
        client, direction = self._transport, self._plan.direction
        self._down = self._shaper("downstream", direction in ("downstream", "both"), start, client,
                                  on_done=self._close_both, on_drain=upstream.resume_reading)
        self._up = self._shaper("upstream", direction in ("upstream", "both"), start, upstream,
                                on_done=upstream.write_eof, on_drain=client.resume_reading)
        client.resume_reading()

    def _shaper(self, direction: str, conditioned: bool, start: float, sink: asyncio.Transport,
                **callbacks: Any) -> Shaper:
        plan = self._plan
        slices: Draws | None = None
        corruption: tuple[Corruption, int] | None = None
        if conditioned:
            # Drawn even without jitter or slices now: a change may bring them in later.
            conditions = self._server.conditions
            counted = self._fault in CUTTING_FAULTS and conditions.fault_at is None  # after bytes
            schedule = StreamSchedule(conditions, pause_stream(plan.seed, plan.name, self.index, direction),
                                      start, fault_after=conditions.fault_after if counted else None)
            chunking = plan.chunking
            streams = self._streams(direction)
            slices = streams.slices
            if self._fault == "corrupt":
                corruption = (streams.corruption, conditions.fault_after)
        else:
            schedule = StreamSchedule(_PLAIN, None, start)
            chunking = "all"

        def chunk_sent(emission: Emission, now: float, held: bool) -> None:
            self._record.chunk_sent(now, self._peer_port, emission.chunk, emission.size, emission.due,
                                    held, direction)

        # Bytes passed straight through have no schedule to be late against.
        return Shaper(schedule, sink, chunking=chunking, timers=self._server.timers, conditioned=conditioned,
                      slices=slices, corruption=corruption, on_chunk=chunk_sent if conditioned else None,
                      on_fault=self._strike, **callbacks)

    def _streams(self, direction: str) -> Streams:
        """The seeded draws of one direction (slices, the corruption's mask). Each has its own:
        with one mask for both, a service that echoes would get its bytes corrupted and send
        them back corrupted again, the second flip undoing the first, so that a client saw
        no corruption at all. The downstream ones are the connection's, as for a poem server."""
        plan = self._plan
        server = plan.name if direction == "downstream" else f"{plan.name}/upstream"
        return Streams(plan.seed, server, self.index)

    def upstream_data(self, data: bytes) -> None:
        if self._down is None or self._upstream is None:
            return
        self._down.feed(data)
        if self._down.buffered > READ_PAUSE:
            self._upstream.pause_reading()

    def upstream_eof(self) -> None:
        if self._down is not None:
            self._down.end_input()

    def upstream_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self._closed:
            self._record.upstream_lost(self._loop.time(), self._peer_port, exc)
            self._reset("upstream_failed")

    def upstream_paused(self, paused: bool) -> None:
        if self._up is not None:
            (self._up.pause if paused else self._up.resume)()

    # Changes.

    def conditions_changed(self, conditions: Conditions) -> None:
        """The chunks scheduled from now on go under ``conditions``, those the proxy holds
        included (a latency taken away releases them), and so does its fault: one brought
        in strikes where it would have had it been there from the accept (after as many
        bytes, at as long after the accept), at once if that moment has passed; one taken
        away no longer will (the bytes it cut stay cut)."""
        self._change(conditions)
        for shaper in (self._down, self._up):
            if shaper is not None and shaper.conditioned:
                shaper.replan()

    def _change(self, conditions: Conditions) -> None:
        shapers = [(direction, shaper)
                   for direction, shaper in (("downstream", self._down), ("upstream", self._up))
                   if shaper is not None and shaper.conditioned]
        for _, shaper in shapers:
            shaper.schedule.conditions = conditions
        if self._closed or self._ending:
            return  # (ending: a cut decided stays, as a fault that has cut bytes does below)
        if self._silent:
            plan = self._plan
            fault = fault_of(conditions, plan.seed, plan.name, self.index)
            if fault in ("stall", "blackhole") or self._transport is None:
                return
            # The silence is over, but what its upstream sent meanwhile was dropped: the
            # stream cannot go on whole, so it ends, as toxiproxy's timeout toxic ends its
            # connections when taken away: now, or by the reset or close that came in, at
            # its moment. (Its shapers stay stopped: it sends nothing more.)
            self._fault, self._faults = fault, self._faults + 1
            if fault in CUTTING_FAULTS and conditions.fault_at is not None:
                self._silent, self._ending = False, True
                self._limit_in_time(conditions)
            elif fault == "reset":
                self._reset()
            else:
                self._close_both()
            return
        if any(shaper.schedule.fault_at is not None for _, shaper in shapers):
            return  # its fault has cut its bytes already, and will strike: it stays
        plan = self._plan
        fault = fault_of(conditions, plan.seed, plan.name, self.index)
        self._fault, self._faults = fault, self._faults + 1
        if fault == "blackhole":  # from now on it sends nothing, and never closes
            self._struck_by = self._struck_by or "blackhole"
            self._go_silent()
            return
        # A limit in bytes cuts what is queued past it, or else the next chunk.
        counted = fault in CUTTING_FAULTS and conditions.fault_at is None
        for direction, shaper in shapers:
            shaper.limit(conditions.fault_after if counted else None)
            shaper.corrupt((self._streams(direction).corruption, conditions.fault_after)
                           if fault == "corrupt" else None)
        self._limit_in_time(conditions)

    def _limit_in_time(self, conditions: Conditions) -> None:
        """A fault with a time limit strikes that long after the accept (now, if that has passed)."""
        if self._fault in CUTTING_FAULTS and conditions.fault_at is not None:
            when = max(self._accepted + conditions.fault_at, self._loop.time())
            self._server.timers.call_at(when, functools.partial(self._strike_in_time, self._faults))

    def reset_now(self) -> bool:
        """Reset the client's connection and close the upstream's; False if it had ended."""
        if self._closed or self._transport is None:
            return False
        self._reset()
        if self._upstream is not None:
            self._upstream.abort()
        return True

    # The end.

    def _strike_in_time(self, faults: int) -> None:
        """A time limit has come: the fault strikes, unless the connection is over already or
        its fault has been set anew since (``faults``)."""
        if faults == self._faults and not self._closed and self._transport is not None and not self._silent:
            self._strike()

    def _strike(self) -> None:
        """The fault's moment has come: reset, close, or go silent (stall)."""
        assert self._fault is not None and self._transport is not None
        self._record.fault_struck(self._loop.time(), self._peer_port, self._fault, self.sent)
        self._struck_by = self._struck_by or self._fault
        if self._fault == "reset":
            self._reset()
        elif self._fault == "close":
            self._close()
        if self._fault == "stall":
            self._go_silent()
        elif self._upstream is not None:
            self._upstream.abort()

    def _go_silent(self) -> None:
        """Send nothing more, either way, and keep the connection open until the client leaves."""
        self._silent = True
        for shaper in (self._down, self._up):
            if shaper is not None:
                shaper.cancel()

    def _reset(self, how: How = "reset") -> None:
        """Reset the client's connection: a fault's doing, or (``upstream_failed``) what a
        proxy does when its upstream cannot be reached or fails."""
        assert self._transport is not None
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self._closed = True
        self._how = how
        self._transport.abort()

    def _close(self) -> None:
        assert self._transport is not None
        if not self._closed:
            self._closed = True
            self._how = "closed"
            now = self._loop.time()
            self._record.conn_closed(now, self._peer_port, self.sent)
            down, eof = self._down, self._sent_at_eof
            if down is not None:
                down.cancel()  # nothing more goes to a client the proxy closes
            if eof is not None and down is not None and down.sent > eof:
                try:
                    self._transport.write_eof()  # (the close waits for the reset that may answer)
                except OSError:  # the reset is here already (loopback's comes within the send)
                    self._how = "client_closed_early"
                else:
                    self._loop.call_later(RESET_GRACE, self._close_after_eof, now)
                    return
            self._transport.close()

    def _reset_came(self) -> bool:
        """Has a reset answered what went since the client's EOF (it had closed, not only shut
        down its side, and the reader is gone after it)? Then the connection ends before
        another byte goes, as ``client_closed_early``: asyncio reads no more after an EOF, so
        only the next write would have found out, and counted a write it never received."""
        if not self._reset_answered():
            return False
        assert self._transport is not None
        self._closed = True
        self._how = "client_closed_early"
        self._transport.abort()
        return True

    def _reset_answered(self) -> bool:
        """Has a reset come from the client (its socket's pending error)? Reading it clears it."""
        sock = None if self._transport is None else self._transport.get_extra_info("socket")
        return sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (
            errno.ECONNRESET, errno.EPIPE)

    def _close_after_eof(self, closed: float) -> None:
        """Close a connection whose client had shut down its side before its last bytes went:
        if a reset answered them, the client had gone (``client_closed_early``)."""
        transport = self._transport
        if self._accounted or transport is None:
            return
        if self._reset_answered():
            self._how = "client_closed_early"
        self._ended = closed
        transport.close()

    def _close_both(self) -> None:
        self._close()
        if self._upstream is not None:
            self._upstream.close()

    def _stop(self) -> None:
        """Cancel whatever is still scheduled."""
        if self._connecting is not None:
            self._connecting.cancel()
        for shaper in (self._down, self._up):
            if shaper is not None:
                shaper.cancel()
        if self._upstream is not None:
            self._upstream.close()


class _Upstream(asyncio.Protocol):
    """The proxy's connection to its upstream: everything goes to the ProxyConnection."""

    def __init__(self, proxy: ProxyConnection) -> None:
        self._proxy = proxy

    def data_received(self, data: bytes) -> None:
        self._proxy.upstream_data(data)

    def eof_received(self) -> bool:
        self._proxy.upstream_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._proxy.upstream_lost(exc)

    def pause_writing(self) -> None:
        self._proxy.upstream_paused(True)

    def resume_writing(self) -> None:
        self._proxy.upstream_paused(False)
