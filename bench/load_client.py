"""An independent load client for the c10k benchmark: many slow readers in one process.

Run:  python bench/load_client.py HOST PORT --connections N [--ramp 1.0] [--lines 10]
                                 [--delay 0.25] [--jitter 0] [--expect-bytes B] [--tick 0.001]

Opens N non-blocking connections, connection k at start + k * ramp / N, and reads each
to EOF on one epoll loop that looks at its sockets once per tick (a millisecond) and
sleeps in between. What is measured, per connection:

* its connect time: the monotonic time of its ``connect`` call, the client's own
  start of the schedule (it cannot see when the server accepted);
* the arrival of each line: the kernel's receive stamp (SO_TIMESTAMPNS) of the last
  segment the ``recv`` that brought its newline read, so it does not depend on when
  this loop got round to the socket (two lines read by one ``recv`` both get the later
  stamp, which can only overstate the error);
* the client error of line i: arrival - (connect time + i * delay). Signed, nothing
  clamped: p50 is reported signed, p99 and max over its absolute value. It includes the
  server's lateness, the time to accept and the loopback. With ``--jitter``, the pauses
  are the server's own seeded draws, which the client does not know, so it has no
  schedule to judge a line against after the first: the client error is then null, and
  the first byte (line 0's error) is what remains of it;
* first byte: its arrival - connect time, where a server slow to accept shows;
* gaps: the time between one line's arrival and the next's (min, p50, max), which shows
  whether the pauses were jittered at all (two lines read by one ``recv`` show a gap of 0);
* connect lag: how late each connect call was against the ramp, and the client's CPU
  time: where the client itself, not the server, limits what it can see;
* intact: the bytes read equal the benchmark poem exactly (``line 00\\n`` ...).

Prints one JSON line: ``{"connections", "intact", "errors", "unfinished", "elapsed",
"timed_out", "client_error", "first_byte", "gaps", "connect_lag", "cpu", "error_kinds"}``
(seconds; each summary has p50, p99 and max, gaps min, p50 and max; the kinds are errno
names such as ``ECONNRESET``). ``elapsed`` runs from the first connect to the last EOF.
It never hangs: after ramp + lines * (delay + jitter) * 4 + 30 s it reports what it has,
with ``"timed_out": true``; an unfinished connection is neither intact nor an error.
Exits 1 with a message if it cannot open N sockets (it raises its own RLIMIT_NOFILE soft
limit to the hard one first).
"""

from __future__ import annotations

import argparse
import errno
import json
import resource
import select
import socket
import struct
import sys
import time
from itertools import pairwise

from _workload import poem_lines, summary

# Sockets this process needs besides the N connections: stdio, the selector, slack.
SPARE_FDS = 16

# SO_TIMESTAMPNS (Linux; the socket module does not name it): the kernel stamps each
# received segment, and recvmsg returns the stamp of the last one read, as a timespec.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
STAMP = struct.Struct("qq")

# How often the client looks at its sockets (seconds). Between looks it sleeps rather
# than waits in epoll, so a line's arrival does not wake it: the server's send() does
# not pay for waking the client (an inter-processor interrupt on a VM), and the client
# handles a tick's arrivals in one pass. Arrival times come from the kernel's stamps,
# so the tick costs no precision. 0 waits in epoll and wakes for each arrival.
TICK = 1e-3


class Connection:
    """One reader: its socket, what it has read, and when each piece came."""

    __slots__ = ("data", "done", "error", "opened", "pieces", "sock")

    def __init__(self, sock: socket.socket, opened: float) -> None:
        self.sock = sock
        self.opened = opened
        self.data = bytearray()
        # (arrival time, total bytes read so far): lines are split only at the end, so
        # the hot loop does one append per recv.
        self.pieces: list[tuple[float, int]] = []
        self.error: str | None = None
        self.done = False  # read to EOF without an error

    def line_arrivals(self) -> list[float]:
        """When each line arrived: the time of the recv that brought its newline."""
        arrivals, piece = [], 0
        end = self.data.find(b"\n")
        while end != -1:
            while self.pieces[piece][1] <= end:
                piece += 1
            arrivals.append(self.pieces[piece][0])
            end = self.data.find(b"\n", end + 1)
        return arrivals


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"load_client: needs {needed} file descriptors, the hard limit is {hard}; "
                 f"raise it (ulimit -Hn) or open fewer connections")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(host: str, port: int, n: int, ramp: float, lines: int, delay: float, jitter: float,
        tick: float) -> dict[str, object]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    poller = select.epoll()
    live: dict[int, Connection] = {}
    conns: list[Connection] = []
    step = ramp / n
    start = time.monotonic()
    deadline = start + ramp + lines * (delay + jitter) * 4 + 30
    last_eof = start
    timed_out = False
    # How late each connect was against the ramp: this loop's own backlog, the part
    # of the client error that is the client's.
    connect_lag: list[float] = []
    stamp_space = socket.CMSG_SPACE(16)
    while True:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        # Open every connection that is due: when the loop falls behind, it catches up
        # at once rather than letting the ramp stretch.
        while len(conns) < n and start + len(conns) * step <= now:
            connect_lag.append(time.monotonic() - (start + len(conns) * step))
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as error:
                sys.exit(f"load_client: cannot open socket {len(conns) + 1} of {n}: {error.strerror}")
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            conn = Connection(sock, time.monotonic())
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                conn.error = errno.errorcode.get(code, str(code))
                sock.close()
            else:
                # Readable covers a failed connect too: the recv then raises its error.
                poller.register(sock.fileno(), select.EPOLLIN)
                live[sock.fileno()] = conn
            conns.append(conn)
        if len(conns) == n and not live:
            break
        wake = start + len(conns) * step if len(conns) < n else deadline
        if tick:
            # Sleep to the next tick, then take whatever is ready without waiting.
            time.sleep(max(0.0, min(wake, now + tick) - time.monotonic()))
            ready = poller.poll(0)
        else:
            ready = poller.poll(max(0.0, wake - now))
        # The kernel's receive stamps are on the wall clock: map them to this one.
        offset = time.time() - time.monotonic()
        for fd, _ in ready:
            conn = live[fd]
            try:
                data, ancillary, _, _ = conn.sock.recvmsg(65536, stamp_space)
            except OSError as error:
                conn.error = errno.errorcode.get(error.errno or 0, type(error).__name__)
                data, ancillary = b"", []
            if ancillary:
                seconds, nanoseconds = STAMP.unpack(ancillary[0][2])
                arrived = seconds + nanoseconds * 1e-9 - offset
            else:
                arrived = time.monotonic()
            if data:
                conn.data += data
                conn.pieces.append((arrived, len(conn.data)))
                continue
            poller.unregister(fd)
            del live[fd]
            conn.sock.close()
            conn.done = conn.error is None
            last_eof = arrived
    for conn in live.values():
        conn.sock.close()
    poller.close()

    expected = b"".join(poem_lines(lines))
    finished = [c for c in conns if c.done]
    errors = sum(1 for c in conns if c.error is not None)
    client_error: list[float] = []
    first_line: list[float] = []
    gaps: list[float] = []
    for conn in finished:
        arrivals = conn.line_arrivals()
        if not jitter:
            client_error.extend(arrival - (conn.opened + i * delay) for i, arrival in enumerate(arrivals))
        gaps.extend(later - earlier for earlier, later in pairwise(arrivals))
        if conn.pieces:
            first_line.append(conn.pieces[0][0] - conn.opened)
    # Empty with jitter: both summaries are then null (n/a), not zero.
    signed = summary(client_error)
    absolute = summary([abs(e) for e in client_error])
    gap = summary(gaps)
    return {
        "connections": n,
        "intact": sum(1 for c in finished if c.data == expected),
        "errors": errors,
        "unfinished": n - len(finished) - errors,
        "elapsed": last_eof - start,
        "timed_out": timed_out,
        "client_error": {"p50": signed["p50"], "p99": absolute["p99"], "max": absolute["max"]},
        "first_byte": summary(first_line),
        "gaps": {"min": min(gaps, default=None), "p50": gap["p50"], "max": gap["max"]},
        "connect_lag": summary(connect_lag),
        "cpu": cpu_seconds(),
        "error_kinds": sorted({c.error for c in conns if c.error is not None}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, required=True, metavar="N")
    parser.add_argument("--ramp", type=float, default=1.0,
                        help="seconds over which the connections are opened (default 1.0)")
    parser.add_argument("--lines", type=int, default=10, help="lines per connection (default 10)")
    parser.add_argument("--delay", type=float, default=0.25,
                        help="seconds after each line (default 0.25)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="the server draws each pause from delay ± jitter seconds; the "
                             "client error is then not judged (default 0)")
    parser.add_argument("--expect-bytes", type=int, metavar="B",
                        help="bytes each connection must carry; a check that client and server "
                             "agree on the poem (default: lines * 8)")
    parser.add_argument("--tick", type=float, default=TICK, metavar="SECONDS",
                        help=f"how often to look at the sockets (default {TICK}); 0 wakes "
                             f"for every arrival")
    args = parser.parse_args()
    if args.tick < 0:
        parser.error("--tick must not be negative")
    if args.jitter < 0:
        parser.error("--jitter must not be negative")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    poem_size = len(b"".join(poem_lines(args.lines)))
    if args.expect_bytes is not None and args.expect_bytes != poem_size:
        parser.error(f"--expect-bytes {args.expect_bytes}: the poem of {args.lines} lines "
                     f"is {poem_size} bytes")

    raise_fd_limit(args.connections + SPARE_FDS)
    result = run(args.host, args.port, args.connections, args.ramp, args.lines, args.delay,
                 args.jitter, args.tick)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
