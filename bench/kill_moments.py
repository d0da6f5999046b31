"""SIGKILL ``netsim run`` at moments through its start and its run; check nothing outlives it.

Run:  python bench/kill_moments.py [--moments 0.05,0.1,...] [--scenario PATH] [--time-scale F]

For each moment the script starts ``netsim run scenarios/three_ports.yaml --time-scale
0.1 --free-ports`` in a session of its own, waits that long, notes every process below
it, kills the runner with SIGKILL, and 2 s later counts those processes still alive
(zombies aside). A server holding its port after its runner died is what this guards.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _proc import alive, descendants

ROOT = Path(__file__).resolve().parent.parent
# From the servers' start (about 0.5 s after the command, on this machine) to the end of
# the blocking client's 1.2 s run, and between the models' runs.
MOMENTS = "0.5,0.55,0.6,0.7,0.9,1.2,1.5,1.9,2.3,2.8"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moments", default=MOMENTS, help="seconds after the start, comma-separated")
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "three_ports.yaml"),
                        help="the scenario to run (a command client's program, and what it starts, "
                             "must go too)")
    parser.add_argument("--time-scale", default="0.1", help="the run's time scale")
    args = parser.parse_args()
    total_left = 0
    for moment in (float(text) for text in args.moments.split(",")):
        runner = subprocess.Popen(
            [sys.executable, "-m", "netsim", "run", args.scenario,
             "--time-scale", args.time_scale, "--free-ports", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(moment)
        below = descendants(runner.pid)
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        time.sleep(2.0)
        left = sorted(pid for pid in below if alive(pid))
        total_left += len(left)
        assert runner.stderr is not None
        tracebacks = runner.stderr.read().count(b"Traceback")
        print(f"killed at {moment:4.2f} s: {len(below)} processes below the runner, {len(left)} alive 2 s "
              f"later{' ' + str(left) if left else ''}, {tracebacks} tracebacks")
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    print(f"in all: {total_left} processes outlived their runner")


if __name__ == "__main__":
    main()
