"""Messages from a server process's event loop to the runner, sent without waiting.

``Connection.send`` blocks while the channel is full, and the channel fills whenever the
runner reads more slowly than the servers write: with a detailed log at ten thousand
connections, the runner has a core's worth of events to take in, and a server blocked
on it for 50 ms sent a thousand chunks late. A ``LoopSender`` frames each message the
way ``multiprocessing.connection`` does (so the runner reads it with ``recv()`` as
before), writes what the socket takes at once, and leaves the rest to the loop, which
writes it as the runner catches up. The servers' memory holds the backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

# multiprocessing.connection's frame: a signed 32-bit big-endian length, or -1 and then
# an unsigned 64-bit one for a payload of 2 GiB or more.
_LONG = 0x7FFFFFFF


def frame(message: Any) -> bytes:
    """``message`` as ``Connection.send`` would put it on the wire."""
    payload = ForkingPickler.dumps(message)
    size = len(payload)
    header = struct.pack("!i", size) if size <= _LONG else struct.pack("!iQ", -1, size)
    return header + payload


class LoopSender:
    """Sends messages down ``conn`` (a socket) from ``loop``, never blocking it.

    Every message sent while the loop runs goes through ``send``, so that the frames stay
    whole and in order; ``close`` writes the rest, waiting, once the loop is done.
    """

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        # A socket object of our own on the same channel: MSG_DONTWAIT makes each write
        # non-blocking without making the channel so for the Connection's blocking reads.
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._loop = loop
        self._backlog = bytearray()

    def __repr__(self) -> str:
        return f"<LoopSender backlog={len(self._backlog)}B>"

    @property
    def backlog(self) -> int:
        """Bytes framed but not yet taken by the channel."""
        return len(self._backlog)

    def send(self, message: Any) -> None:
        """Send ``message``, or as much of it as the channel takes now and the rest later."""
        data = frame(message)
        if self._backlog:
            self._backlog += data
            return
        sent = self._write(data)
        if sent < len(data):
            self._backlog += data[sent:]
            self._loop.add_writer(self._sock.fileno(), self._drain)

    def _write(self, data: bytes | bytearray) -> int:
        try:
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:  # the runner died: there is no one to tell
            os._exit(1)

    def _drain(self) -> None:
        sent = self._write(self._backlog)
        del self._backlog[:sent]
        if not self._backlog:
            self._loop.remove_writer(self._sock.fileno())

    def close(self) -> None:
        """Write the backlog, blocking until the runner has taken it, and let go of the socket
        (once: a second call does nothing)."""
        if self._sock.fileno() < 0:
            return
        self._loop.remove_writer(self._sock.fileno())
        try:
            if self._backlog:
                self._sock.sendall(self._backlog)
        except OSError:
            os._exit(1)
        finally:
            self._backlog.clear()
            self._sock.close()
