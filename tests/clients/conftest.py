"""A test-only stand-in for the server engine: slow TCP servers on loopback port 0."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator, Sequence

import pytest


class FakeSlowServers:
    """Slow servers on one asyncio loop in a background thread, for client tests only."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-servers")
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def start(self, chunks: Sequence[bytes], pause: float, *, reset: bool = False) -> int:
        """Serve chunks with a pause after each, then close (or reset); return the port."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(pause)
                if reset:
                    # Linger 0 turns close() into an RST instead of a FIN.
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except (OSError, asyncio.CancelledError):
                pass  # the client left, or the test is over (3.11 logs a cancelled handler)
            finally:
                writer.close()

        starting = asyncio.start_server(handle, "127.0.0.1", 0)
        server = asyncio.run_coroutine_threadsafe(starting, self._loop).result(timeout=5)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    def stop(self) -> None:
        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks)
            await asyncio.sleep(0)  # the transports closed above release their sockets now

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()


@pytest.fixture
def fake_slow_servers() -> Iterator[FakeSlowServers]:
    servers = FakeSlowServers()
    try:
        yield servers
    finally:
        servers.stop()
