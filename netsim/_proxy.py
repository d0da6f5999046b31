"""Proxy mode: forward a real TCP service's bytes under a server's conditions.

A client's connection is held for ``accept_delay``, then the proxy connects to the
upstream and forwards both ways, each way through a ``Shaper``: conditioned in the
directions the scenario names, passed straight through (with backpressure) in the
others. Bytes are forwarded exactly; only their timing changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from netsim.conditions import Conditions, Emission, StreamSchedule
from netsim.server import READ_PAUSE, Shaper, _Connection, _ServerState

_PLAIN = Conditions()


class ProxyProtocol(_Connection):
    """One client connection of a proxy, with its upstream connection."""

    def __init__(self, server: _ServerState) -> None:
        super().__init__(server)
        self._upstream: asyncio.Transport | None = None
        self._down: Shaper | None = None  # upstream -> client
        self._up: Shaper | None = None  # client -> upstream
        self._connecting: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (f"<ProxyProtocol {self._plan.name}#{self.index} peer_port={self._peer_port} "
                f"down={self._down} up={self._up}>")

    @property
    def sent(self) -> int:
        return sum(shaper.sent for shaper in (self._down, self._up) if shaper is not None)

    def start(self, accepted: float) -> None:
        assert self._transport is not None
        self._transport.pause_reading()  # the client's bytes wait until the upstream is there
        self._connecting = self._loop.create_task(
            self._connect(accepted + self._plan.conditions.accept_delay))

    def _address(self) -> tuple[str, int]:
        upstream = self._plan.upstream
        assert upstream is not None
        if ":" not in upstream:
            return self._server.addresses[upstream]
        host, _, port = upstream.rpartition(":")
        return (host.strip("[]"), int(port))

    async def _connect(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - self._loop.time()))
        host, port = self._address()
        try:
            upstream, _ = await self._loop.create_connection(lambda: _Upstream(self), host, port)
        except OSError as error:
            self._log("upstream_failed", self._loop.time(), upstream=f"{host}:{port}",
                      reason=f"{type(error).__name__}: {error}")
            self._reset()  # the client learns that something broke, as from a real proxy
            return
        if self._closed:  # the client left while we connected
            upstream.close()
            return
        assert self._transport is not None
        self._upstream = upstream
        start = self._loop.time()
        self._log("upstream_connected", start, upstream=f"{host}:{port}")
        client, direction = self._transport, self._plan.direction
        self._down = self._shaper("downstream", direction in ("downstream", "both"), start, client,
                                  on_done=self._close_all, on_drain=upstream.resume_reading)
        self._up = self._shaper("upstream", direction in ("upstream", "both"), start, upstream,
                                on_done=upstream.write_eof, on_drain=client.resume_reading)
        client.resume_reading()

    def _shaper(self, direction: str, conditioned: bool, start: float, sink: asyncio.Transport,
                **callbacks: Any) -> Shaper:
        if conditioned:
            schedule = self._schedule(start, direction)
            chunking = self._plan.chunking
        else:
            schedule = StreamSchedule(_PLAIN, None, start)
            chunking = "all"

        def chunk_sent(emission: Emission, now: float, held: bool) -> None:
            self._chunk_sent(emission, now, held, direction=direction)

        # Bytes passed straight through have no schedule to be late against.
        return Shaper(schedule, sink, chunking=chunking, timers=self._server.timers,
                      on_chunk=chunk_sent if conditioned else None,
                      on_fault=self._strike, **callbacks)

    # The client's side.

    def data_received(self, data: bytes) -> None:
        if self._up is None:
            return
        self._up.feed(data)
        if self._up.buffered > READ_PAUSE and self._transport is not None:
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        if self._up is not None:
            self._up.end_input()  # forwarded as a half-close once the upstream shaper is done
        return True  # keep the connection open for what the upstream still sends

    def pause_writing(self) -> None:
        if self._down is not None:
            self._down.pause()

    def resume_writing(self) -> None:
        if self._down is not None:
            self._down.resume()

    # The upstream's side.

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
            self._log("upstream_lost", self._loop.time(), reason=f"{type(exc).__name__}: {exc}")
            self._reset()

    def upstream_paused(self, paused: bool) -> None:
        if self._up is not None:
            (self._up.pause if paused else self._up.resume)()

    # The end.

    def _strike(self) -> None:
        super()._strike()
        if self._fault == "stall":
            for shaper in (self._down, self._up):
                if shaper is not None:
                    shaper.cancel()
            return
        if self._upstream is not None:
            self._upstream.abort()

    def _close_all(self) -> None:
        self._close()
        if self._upstream is not None:
            self._upstream.close()

    def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        for shaper in (self._down, self._up):
            if shaper is not None:
                shaper.cancel()
        if self._upstream is not None:
            self._upstream.close()


class _Upstream(asyncio.Protocol):
    """The proxy's connection to its upstream: everything goes to the ProxyProtocol."""

    def __init__(self, proxy: ProxyProtocol) -> None:
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
