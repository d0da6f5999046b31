"""What the machine did while a run went on: the CPU time its hypervisor took away.

A virtual machine shares physical cores with other guests, and the hypervisor may take
one of its CPUs away for milliseconds at a time ("steal time"). Nothing inside the guest
can see that coming or prevent it: a server whose CPU is taken sends nothing until it
comes back, however well its own process is scheduled. Linux counts that time per CPU
in ``/proc/stat``; a run reads the count before and after, so that a late run can say
whose lateness it was.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

STAT = "/proc/stat"
STEAL_FIELD = 8  # on the "cpu" line: user nice system idle iowait irq softirq steal ...


def steal_seconds(stat: str | None = None) -> float:
    """CPU seconds the hypervisor has taken from this machine since it booted, all its
    CPUs together, as ``stat`` (default: /proc/stat) counts them; NaN where the count
    cannot be read (not Linux, or a kernel too old to count it)."""
    ticks = _steal_ticks(stat)
    return math.nan if ticks is None else ticks / _TICKS_PER_SECOND


def _steal_ticks(stat: str | None) -> int | None:
    try:
        with open(stat or STAT, encoding="ascii") as file:
            fields = file.readline().split()
    except (OSError, ValueError):
        return None
    if len(fields) <= STEAL_FIELD or fields[0] != "cpu" or not fields[STEAL_FIELD].isdigit():
        return None
    return int(fields[STEAL_FIELD])


def _clock_ticks() -> int:
    try:
        return max(1, os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100  # the kernel's USER_HZ on every common platform


_TICKS_PER_SECOND = _clock_ticks()


@dataclass(frozen=True)
class Machine:
    """The machine's part in a run: how many CPUs it had and how much of their time its
    hypervisor took while the run went on (NaN where that is not known)."""

    cpus: int
    steal: float  # CPU seconds, all CPUs together
    window: float  # wall seconds over which the steal was counted

    @property
    def steal_share(self) -> float:
        """The share of the machine's CPU time over the window that was taken."""
        if self.window <= 0 or self.cpus <= 0:
            return math.nan
        return self.steal / (self.window * self.cpus)

    def to_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "steal_seconds": None if math.isnan(self.steal) else self.steal}


class StealClock:
    """Counts the steal time from its creation: ``read()`` gives what the machine did since."""

    def __init__(self, stat: str | None = None) -> None:
        self._stat = stat
        self._began = time.monotonic()
        self._ticks = _steal_ticks(stat)

    def read(self) -> Machine:
        ticks, began = _steal_ticks(self._stat), self._ticks
        # In whole ticks, so that 13 ticks are 0.13 s and not 0.12999999999999545. A count
        # that went back (some hypervisors' quirk) says nothing.
        if ticks is None or began is None or ticks < began:
            steal = math.nan
        else:
            steal = (ticks - began) / _TICKS_PER_SECOND
        return Machine(cpus=os.cpu_count() or 1, steal=steal, window=time.monotonic() - self._began)
