"""The machine's part in a run: the steal time its hypervisor took, read from /proc/stat."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from netsim._machine import Machine, StealClock, steal_seconds

TICKS = os.sysconf("SC_CLK_TCK")


def stat_file(path: Path, steal: int) -> str:
    """A /proc/stat of two CPUs whose hypervisor has taken ``steal`` ticks."""
    path.write_text(f"cpu  1191252 1989 392143 8157646 5908 0 103529 {steal} 0 0\n"
                    f"cpu0 517545 938 186611 4167922 895 0 51108 {steal // 2} 0 0\n"
                    f"cpu1 673707 1050 205531 3989724 5013 0 52421 {steal - steal // 2} 0 0\n"
                    "intr 1 2 3\n", encoding="ascii")
    return str(path)


def test_steal_is_read_from_the_machine_line_in_seconds(tmp_path: Path) -> None:
    """The eighth count of the first line, in clock ticks, is the machine's steal time."""
    assert steal_seconds(stat_file(tmp_path / "stat", 39708)) == pytest.approx(39708 / TICKS)


@pytest.mark.parametrize("text", ["", "cpu 1 2 3\n", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 4 5 6 7 x\n"])
def test_a_count_that_cannot_be_read_is_nan(tmp_path: Path, text: str) -> None:
    """A missing file, a kernel that does not count steal, or a line of another kind gives NaN."""
    (tmp_path / "stat").write_text(text, encoding="ascii")
    assert math.isnan(steal_seconds(str(tmp_path / "stat")))
    assert math.isnan(steal_seconds(str(tmp_path / "missing")))


def test_the_clock_counts_only_what_was_taken_since_it_started(tmp_path: Path) -> None:
    """A StealClock reports the steal between its start and its reading, and the window."""
    stat = stat_file(tmp_path / "stat", 1000)
    clock = StealClock(stat)
    stat_file(tmp_path / "stat", 1000 + 3 * TICKS // 2)
    machine = clock.read()
    assert machine.steal == pytest.approx(1.5)
    assert machine.cpus == os.cpu_count() and 0 < machine.window < 5


def test_a_count_that_went_back_says_nothing(tmp_path: Path) -> None:
    """A steal count lower at the end than at the start (a hypervisor's quirk) is unknown,
    never a negative time."""
    clock = StealClock(stat_file(tmp_path / "stat", 5000))
    stat_file(tmp_path / "stat", 4000)
    assert math.isnan(clock.read().steal)


def test_the_share_is_of_all_the_cpus_time_over_the_window() -> None:
    """1 s taken from 2 CPUs over 10 s is 5% of their time; an unknown steal stays unknown."""
    assert Machine(cpus=2, steal=1.0, window=10.0).steal_share == pytest.approx(0.05)
    assert math.isnan(Machine(cpus=2, steal=math.nan, window=10.0).steal_share)
    assert Machine(cpus=2, steal=math.nan, window=1.0).to_dict() == {"cpus": 2, "steal_seconds": None}


def test_this_machine_counts_its_steal() -> None:
    """On Linux the real /proc/stat gives a count that only grows."""
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat: not Linux")
    first = steal_seconds()
    assert math.isfinite(first) and first >= 0
    assert steal_seconds() >= first
