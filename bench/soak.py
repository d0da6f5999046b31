"""Run a scenario many times in one runner process and watch what it leaves behind.

Run:  python bench/soak.py [--runs 200] [--time-scale 0.1] [SCENARIO]

Each run is ``netsim.run_scenario`` on free ports, as ``netsim run`` does. After every
run the script notes whether it passed, the runner's open descriptors and resident
memory, and the processes it has left (children of this process still alive). At the
end it prints how each of those moved over the runs: a leak shows as a trend, not as
one figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

from _proc import living_parents

import netsim

ROOT = Path(__file__).resolve().parent.parent


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children() -> list[int]:
    """Processes whose parent is this one, zombies left out."""
    me = os.getpid()
    return [child for child, parent in living_parents().items() if parent == me]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "three_ports.yaml"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=0.1)
    args = parser.parse_args()
    scenario = netsim.load_scenario(args.scenario)
    passed, failed, errors = 0, [], []
    fds, memory, left, took = [], [], [], []
    for number in range(1, args.runs + 1):
        started = time.monotonic()
        try:
            result = netsim.run_scenario(scenario, time_scale=args.time_scale, free_ports=True)
        except netsim.RunError as error:
            errors.append(f"run {number}: {error}")
        else:
            if result.passed:
                passed += 1
            else:
                failed.append(f"run {number}: " + "; ".join(
                    f"{run.client}: {verdict.expectation.text} measured {verdict.actual_text()}"
                    for run in result.runs for verdict in run.expectations if not verdict.passed))
        took.append(time.monotonic() - started)
        fds.append(descriptors())
        memory.append(rss_mb())
        left.append(len(children()))
    print(f"{args.runs} runs of {scenario.name} at time scale {args.time_scale:g}: "
          f"{passed} passed, {len(failed)} failed an expectation, {len(errors)} could not run")
    for line in failed + errors:
        print("  " + line)
    print(f"wall seconds per run: min {min(took):.2f}, median {statistics.median(took):.2f}, "
          f"max {max(took):.2f}")
    marks = sorted({0, min(9, args.runs - 1), min(99, args.runs - 1), args.runs - 1})
    print(f"runner descriptors after runs {[mark + 1 for mark in marks]}: {[fds[mark] for mark in marks]} "
          f"(max {max(fds)})")
    print(f"runner RSS MB after runs {[mark + 1 for mark in marks]}: "
          f"{[round(memory[mark], 1) for mark in marks]}")
    print(f"child processes left after a run: max {max(left)}, after the last {left[-1]}")
    print(f"peak RSS of the runner: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")


if __name__ == "__main__":
    main()
