"""The benchmark scripts still run against the library as it is now.

They measure what the tests cannot (speed, fidelity at scale), so they are run by hand,
and a change of the library's API can break one unseen: `bench/conditions_accuracy.py`
still read events as dicts long after they became typed. Each runs here at its
smallest, and says what it measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench(*args: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, *args], cwd=BENCH, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_c10k_benchmark_runs_its_smallest_size() -> None:
    """bench/c10k.py at 100 connections, jittered: a row for netsim, every poem intact."""
    out = bench("c10k.py", "--sizes", "100", "--designs", "netsim", "--workloads", "jitter")
    row = next(line for line in out.splitlines() if line.startswith("netsim "))
    assert "100/100" in row and row.rstrip().endswith("ok")


def test_the_conditions_accuracy_helpers_read_a_run() -> None:
    """bench/conditions_accuracy.py's reading of a run: each chunk's arrival against its
    schedule, from the observer's events."""
    sys.path.insert(0, str(BENCH))
    try:
        import conditions_accuracy  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    import netsim

    scenario = netsim.load_scenario_text(
        'netsim: 1\nname: d\nservers: [{name: s, poem: "a\\nb\\nc\\n", delay: 20ms}]\nclients: [blocking]\n')
    errors = conditions_accuracy.arrivals_vs_schedule(conditions_accuracy.events_of(scenario, seed=1))
    assert len(errors) == 3 and all(-0.001 < error < 0.5 for error in errors)


@pytest.mark.slow
def test_the_soak_and_the_kill_benchmarks_run() -> None:
    """bench/soak.py over two runs and bench/kill_moments.py at one moment: each ends with
    its summary, and nothing outlives a killed runner."""
    soak = bench("soak.py", "--runs", "2", "--time-scale", "0.02")
    assert soak.strip()
    killed = bench("kill_moments.py", "--moments", "0.6", "--time-scale", "0.05")
    assert killed.strip().endswith("in all: 0 processes outlived their runner")
