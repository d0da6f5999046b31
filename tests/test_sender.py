"""A server process's messages to the runner never hold up its loop, and arrive whole and in order."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time

import pytest

from netsim._sender import LoopSender, frame
from netsim.events import LatenessBatch

# Far more than a socketpair's buffers hold (a few hundred KiB on Linux).
MESSAGES = 64
SIZE = 64 * 1024  # 64 KiB each: 4 MiB in all


def _messages() -> list[LatenessBatch]:
    return [LatenessBatch(bytes([number]) * SIZE) for number in range(MESSAGES)]


def test_a_frame_is_what_connection_send_writes() -> None:
    """The runner reads a frame with Connection.recv() as if Connection.send had written it."""
    ours, theirs = multiprocessing.Pipe()
    try:
        message = LatenessBatch(b"\x00" * 8)
        theirs.send_bytes(frame(message)[4:])  # send_bytes adds the same 4-byte header
        assert ours.recv() == message
    finally:
        ours.close()
        theirs.close()


def test_sending_to_a_runner_that_does_not_read_never_blocks_the_loop() -> None:
    """With nobody reading, 4 MiB of sends return at once; the loop then writes them as the reader reads."""
    ours, theirs = multiprocessing.Pipe()  # a socketpair, as between the runner and its servers
    loop = asyncio.new_event_loop()
    sender = LoopSender(theirs, loop)
    try:
        began = time.monotonic()
        for message in _messages():
            sender.send(message)
        took = time.monotonic() - began
        assert sender.backlog > 0  # the channel is full: the rest waits in the backlog
        assert took < 2.0  # a blocking send would wait here for ever (the test's timeout)

        received: list[LatenessBatch] = []

        async def read_all() -> None:
            while len(received) < MESSAGES:
                # The loop keeps running (and writing) while a thread reads, as the runner would.
                received.append(await asyncio.to_thread(ours.recv))

        loop.run_until_complete(asyncio.wait_for(read_all(), timeout=30))
        assert received == _messages()
        assert sender.backlog == 0
    finally:
        sender.close()
        loop.close()
        ours.close()
        theirs.close()


def test_close_writes_the_backlog_before_it_returns() -> None:
    """What the loop had no time to write goes out at close, whole, before anything sent after it."""
    ours, theirs = multiprocessing.Pipe()
    loop = asyncio.new_event_loop()
    received: list[LatenessBatch] = []
    reader = threading.Thread(target=lambda: received.extend(ours.recv() for _ in range(MESSAGES + 1)))
    sender = LoopSender(theirs, loop)
    try:
        for message in _messages():
            sender.send(message)
        assert sender.backlog > 0
        reader.start()
        sender.close()  # the loop is done: it waits for the reader
        theirs.send(LatenessBatch(b"after"))  # the next message, sent the blocking way
        reader.join(timeout=30)
        assert received == [*_messages(), LatenessBatch(b"after")]
    finally:
        sender.close()  # (closed already, unless an assertion came first)
        loop.close()
        ours.close()
        theirs.close()


@pytest.mark.parametrize("size", [0, 1, 16 * 1024 + 1])
def test_small_and_odd_sized_messages_cross_whole(size: int) -> None:
    """Messages of every size, from empty to just past Connection's own split point, cross unchanged."""
    ours, theirs = multiprocessing.Pipe()
    loop = asyncio.new_event_loop()
    sender = LoopSender(theirs, loop)
    try:
        sender.send(LatenessBatch(b"x" * size))
        sender.close()
        assert ours.recv() == LatenessBatch(b"x" * size)
    finally:
        sender.close()
        loop.close()
        ours.close()
        theirs.close()
