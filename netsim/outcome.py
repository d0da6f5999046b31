"""A finished run as the reports see it: what was planned, what came of it.

``netsim.session`` makes these; ``netsim.report`` and the JSON result read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netsim.baseline import BaselineReport
from netsim.repeat import RepeatResult
from netsim.scenario import Client, Scenario


@dataclass(frozen=True)
class Plan:
    """What is about to run, known once the scenario has loaded and every check passed."""

    scenario: Scenario
    clients: list[Client]
    repeat: int
    time_scale: float

    @property
    def connections(self) -> int:
        """The connections of one run of every client model."""
        return sum(self.scenario.connection_count(client) for client in self.clients)


@dataclass(frozen=True)
class Outcome:
    """A finished run: its results, the baseline comparison, and the files written."""

    plan: Plan
    result: RepeatResult
    baseline: BaselineReport | None
    saved_baseline: Path | None
    notices: list[str]  # the warnings given before the run
    source_file: str | None = None  # the scenario as the command named it
    source_text: str | None = None  # its text, for reports drawn from the result alone

    @property
    def passed(self) -> bool:
        """Every expectation held often enough, and no overhead regressed past the bound."""
        return self.result.passed and (self.baseline is None or self.baseline.passed)

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys([*self.notices, *self.result.warnings]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON result: a single run's keys, ``repeat`` with more runs, ``baseline`` if compared."""
        data = self.result.to_dict()
        data["passed"] = self.passed
        data["warnings"] = self.warnings
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_dict()
        data["source"] = {"file": self.source_file, "text": self.source_text,
                          "description": self.plan.scenario.description}
        return data
