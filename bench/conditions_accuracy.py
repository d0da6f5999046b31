"""How accurately netsim keeps its network conditions: rate, delay and jitter.

Run:  python bench/conditions_accuracy.py [--quick]

Everything is measured from the client side, on real sockets, at time scale 1:

* rate: a transfer of about 3 s at each rate from 1 KB/s to 10 MB/s; the client's
  throughput (bytes after the first piece / time from the first piece to the last)
  against the cap, beside a naive baseline server in the same run that writes a piece
  and then sleeps piece/rate (relative pacing, whose errors add up);
* delay: 30 lines with 100 ms after each; when each line arrives against its schedule;
* jitter: 200 pauses of 100 ms ± 50 ms from a seed; each arrival against the seeded
  schedule (which the ideal model knows exactly), and the spread of the pauses.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import netsim
from netsim.conditions import Conditions, StreamSchedule, pause_stream


def scenario(tmp: Path, text: str) -> netsim.Scenario:
    path = tmp / "bench.yaml"
    path.write_text(text)
    # Three seconds at 10 MB/s is a 30 MB poem, past the default limit of 10MB.
    return netsim.load_scenario(path, max_poem_bytes=100 * 1000**2)


def events_of(scn: netsim.Scenario, **options: Any) -> list[dict[str, Any]]:
    """The run's events as the log writes them (``event`` their name, then their fields)."""
    events: list[Any] = []
    netsim.run_scenario(scn, observer=events.append, **options)
    return [event.fields() for event in events]


def client_rate(received: list[tuple[float, int]], total: int) -> float:
    (first_t, first_size), last_t = received[0], received[-1][0]
    return (total - first_size) / (last_t - first_t)


def netsim_rate(tmp: Path, rate: float, seconds: float) -> float:
    size = int(rate * seconds)
    (tmp / "payload.txt").write_text("x" * (size - 1) + "\n")
    scn = scenario(tmp, f"netsim: 1\nname: rate\nservers: [{{name: s, poem_file: payload.txt, "
                        f"chunk: all, rate: {rate}}}]\nclients: [blocking]\n")
    events = events_of(scn, seed=1)
    received = [(e["t"], e["bytes"]) for e in events if e["event"] == "bytes_received"]
    return client_rate(received, size)


def naive_rate(rate: float, seconds: float) -> float:
    """Baseline: a thread that writes a 10 ms piece, then sleeps 10 ms, and so on."""
    size = int(rate * seconds)
    piece = max(1, round(rate * 0.01))
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            for start in range(0, size, piece):
                conn.sendall(b"x" * min(piece, size - start))
                time.sleep(piece / rate)

    thread = threading.Thread(target=serve)
    thread.start()
    received: list[tuple[float, int]] = []
    with socket.create_connection(server.getsockname()) as client:
        while data := client.recv(1 << 16):
            received.append((time.monotonic(), len(data)))
    thread.join()
    server.close()
    return client_rate(received, size)


def arrivals_vs_schedule(events: list[dict[str, Any]]) -> list[float]:
    """For each chunk, client receive time minus the server's schedule for it (seconds)."""
    scheduled = [e["scheduled"] for e in events if e["event"] == "chunk_sent"]
    received = [e["t"] for e in events if e["event"] == "bytes_received"]
    return [got - due for got, due in zip(received, scheduled, strict=False)]


def describe(errors: list[float]) -> str:
    ordered = sorted(abs(e) for e in errors)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"median {statistics.median(ordered) * 1e3:6.3f} ms   p99 {p99 * 1e3:6.3f} ms   "
            f"max {ordered[-1] * 1e3:6.3f} ms   (n={len(ordered)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s transfers and fewer pauses")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        print(f"rate: a {seconds:g} s transfer at each cap, throughput seen by the client")
        print(f"  {'cap':>10}  {'netsim':>12}  {'error':>7}    {'naive sleep':>12}  {'error':>7}")
        for rate in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
            ours = netsim_rate(tmp, rate, seconds)
            naive = naive_rate(rate, seconds)
            print(f"  {rate:>8} B/s  {ours:>10.0f}/s  {(ours / rate - 1) * 100:+6.2f}%"
                  f"    {naive:>10.0f}/s  {(naive / rate - 1) * 100:+6.2f}%")

        lines = 10 if args.quick else 30
        poem = "\\n".join(f"line {n}" for n in range(lines)) + "\\n"
        scn = scenario(tmp, f'netsim: 1\nname: delay\nservers: [{{name: s, poem: "{poem}", delay: 100ms}}]\n'
                            f"clients: [blocking]\n")
        print(f"\ndelay: {lines} lines, 100 ms after each; client receive time minus schedule")
        print("  " + describe(arrivals_vs_schedule(events_of(scn, seed=1))))

        pauses = 50 if args.quick else 200
        poem = "\\n".join(f"l{n}" for n in range(pauses)) + "\\n"
        scn = scenario(tmp, f'netsim: 1\nname: jitter\nservers: [{{name: s, poem: "{poem}", delay: 100ms, '
                            f"jitter: 50ms}}]\nclients: [blocking]\n")
        events = events_of(scn, seed=9)
        print(f"\njitter: {pauses} pauses of 100 ms ± 50 ms (seed 9); client receive time minus the "
              f"seeded schedule")
        print("  " + describe(arrivals_vs_schedule(events)))
        schedule = StreamSchedule(Conditions(delay=0.1, jitter=0.05), pause_stream(9, "s", 1), 0.0)
        for _ in range(pauses):
            schedule.add(3, 0.0)
        starts = [e.due for e in schedule.emissions]
        drawn = [b - a for a, b in itertools.pairwise(starts)]
        print(f"  drawn pauses: mean {statistics.mean(drawn) * 1e3:.1f} ms (expected 100), "
              f"min {min(drawn) * 1e3:.1f}, max {max(drawn) * 1e3:.1f} (expected within 50..150)")
    print(f"\npython {sys.version.split()[0]}, netsim {netsim.__version__}")


if __name__ == "__main__":
    main()
