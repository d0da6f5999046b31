"""Three plain slow-poem servers, the baselines netsim's pacing is measured against.

Run:  python bench/baseline_servers.py {coroutine,threads,call_at} [--lines 10] [--delay 0.25]
                                       [--jitter 0] [--seed 1]

Each serves the benchmark poem (``line 00\\n`` ... one line per chunk) to every
connection, with a pause after each line, and closes one pause after the last. A pause
is ``delay`` seconds, or with ``--jitter J`` drawn uniformly from ``delay ± J`` (never
below zero) from the connection's own stream of draws, seeded by ``--seed`` and the
connection's accept number (``_workload.jittered_offsets``), all drawn at its accept as
netsim plans a jittered connection at its accept. Each is the small, idiomatic version
of its design, untuned:

* ``coroutine``: ``asyncio.start_server``; per connection ``write``, ``await drain()``,
  ``await asyncio.sleep(pause)``. Relative sleeps: every wake-up's lateness carries
  into the lines after it.
* ``threads``: a thread per connection, and one more that accepts them; chunk i is due
  at accept + its offset (i * delay without jitter), and the thread sleeps until then
  (``time.sleep``) and sends it (``sendall``).
* ``call_at``: an ``asyncio.Protocol``; each chunk is sent by a ``loop.call_at`` on its
  absolute deadline (accept + its offset), the next one scheduled as it goes.

What is measured: per chunk, its lateness, the monotonic time just before the send
call minus its schedule (accept + the sum of the pauses before it; chunk 0 at accept,
where "accept" is the moment the design's code first sees the connection). Latenesses
are kept in memory.

Prints ``listening PORT`` once bound (127.0.0.1, port 0); on SIGINT or SIGTERM prints
one JSON line ``{"chunks": n, "p50": s, "p99": s, "max": s, "connections": n}``
(seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial

from _workload import BACKLOG, jittered_offsets, plain_offsets, poem_lines, summary

Record = Callable[[float], None]
# A connection's accept number (1-based) -> when each of its lines is due and when it
# closes, in seconds from its accept (``lines + 1`` values).
Offsets = Callable[[int], tuple[float, ...]]


def announce(port: int) -> None:
    print(f"listening {port}", flush=True)


# -- coroutine ---------------------------------------------------------------------------


async def serve_coroutine(lines: list[bytes], offsets_of: Offsets, record: Record,
                          accepted: list[int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        start = time.monotonic()
        offsets = offsets_of(accepted[0])
        try:
            for i, line in enumerate(lines):
                record(time.monotonic() - (start + offsets[i]))
                writer.write(line)
                await writer.drain()
                await asyncio.sleep(offsets[i + 1] - offsets[i])
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    await wait_for_signal()
    server.close()


# -- call_at -----------------------------------------------------------------------------


class PoemProtocol(asyncio.Protocol):
    """Sends line i at accept + offsets[i], each on its own ``loop.call_at`` deadline."""

    def __init__(self, lines: list[bytes], offsets: tuple[float, ...], record: Record) -> None:
        self.lines, self.offsets, self.record = lines, offsets, record
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.accepted = self.loop.time()
        self.send(0)

    def send(self, i: int) -> None:
        assert self.transport is not None
        self.record(time.monotonic() - (self.accepted + self.offsets[i]))
        self.transport.write(self.lines[i])
        following = self.accepted + self.offsets[i + 1]
        if i + 1 < len(self.lines):
            self.timer = self.loop.call_at(following, self.send, i + 1)
        else:
            self.timer = self.loop.call_at(following, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


async def serve_call_at(lines: list[bytes], offsets_of: Offsets, record: Record,
                        accepted: list[int]) -> None:
    def protocol() -> PoemProtocol:
        accepted[0] += 1
        return PoemProtocol(lines, offsets_of(accepted[0]), record)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    await wait_for_signal()
    server.close()


async def wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


# -- threads -----------------------------------------------------------------------------


def serve_threads(lines: list[bytes], offsets_of: Offsets, record: Record, accepted: list[int]) -> None:
    def serve_connection(conn: socket.socket, start: float, number: int) -> None:
        offsets = offsets_of(number)
        with conn:
            try:
                for i, line in enumerate(lines):
                    due = start + offsets[i]
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    record(time.monotonic() - due)
                    conn.sendall(line)
                pause = start + offsets[len(lines)] - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            except OSError:
                pass

    def accept_forever(listener: socket.socket) -> None:
        while True:
            conn, _ = listener.accept()
            accepted[0] += 1
            # Daemon: a stop must not wait for threads that are mid-poem. The connection's
            # pauses are drawn in its own thread, so that accepting stays as cheap as it was.
            threading.Thread(target=serve_connection, args=(conn, time.monotonic(), accepted[0]),
                             daemon=True).start()

    # The kernel hands a process signal to any thread that does not block it, and only
    # the main thread runs Python handlers: with thousands of threads, a SIGINT would
    # wake a worker while the main thread sleeps on. So every thread blocks the stop
    # signals (threads inherit the mask) and the main thread waits for them by sigwait.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    listener = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
    announce(listener.getsockname()[1])
    threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
    signal.sigwait(stop_signals)


# -- main --------------------------------------------------------------------------------

DESIGNS = {"coroutine": serve_coroutine, "call_at": serve_call_at, "threads": serve_threads}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("design", choices=sorted(DESIGNS))
    parser.add_argument("--lines", type=int, default=10, help="lines per connection (default 10)")
    parser.add_argument("--delay", type=float, default=0.25,
                        help="seconds after each line (default 0.25)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="each pause drawn uniformly from delay ± jitter seconds (default 0)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the jitter's draws (default 1)")
    args = parser.parse_args()
    if args.jitter < 0:
        parser.error("--jitter must not be negative")

    latenesses: list[float] = []
    accepted = [0]
    lines = poem_lines(args.lines)
    offsets_of: Offsets
    if args.jitter:
        offsets_of = partial(jittered_offsets, args.lines, args.delay, args.jitter, args.seed)
    else:
        shared = plain_offsets(args.lines, args.delay)

        def offsets_of(number: int) -> tuple[float, ...]:
            return shared  # without jitter, every connection shares one schedule
    serve = DESIGNS[args.design]
    if args.design == "threads":
        serve_threads(lines, offsets_of, latenesses.append, accepted)
    else:
        asyncio.run(serve(lines, offsets_of, latenesses.append, accepted))  # type: ignore[arg-type]

    report = {"chunks": len(latenesses), **summary(latenesses), "connections": accepted[0]}
    print(json.dumps(report), flush=True)
    if args.design == "threads":
        # Up to thousands of daemon threads may still be asleep mid-poem; the report is
        # out, so leave without the interpreter's shutdown walking them.
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
