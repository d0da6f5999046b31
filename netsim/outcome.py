"""A finished run as the reports see it: what was planned, what came of it.

``netsim.session`` makes these; ``netsim.report`` and the JSON result read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netsim.baseline import BaselineReport
from netsim.repeat import RepeatResult
from netsim.results import RunResult
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
        return list(dict.fromkeys([*self.notices, *self.result.warnings, *self.not_carried_out]))

    @property
    def not_carried_out(self) -> list[str]:
        """A line for each ``command`` client whose program netsim could not start (not found,
        not runnable), unless an expectation of its judges its exit code (``exit_code ==
        127``): its run could not be carried out (exit 3), though every other client's was,
        and is judged."""
        return list(self.unstarted.values())

    @property
    def unstarted(self) -> dict[str, str]:
        """``not_carried_out``, by client."""
        said: dict[str, str] = {}
        for run in (run for result in self.result.results for run in result.runs):
            why = unstarted(run, self.plan.scenario)
            if why is not None and run.client not in said:
                said[run.client] = (f"client {run.client!r}: {why}: its run could not be carried out; "
                                    f"{judged_instead(run)}")
        return said

    def to_dict(self) -> dict[str, Any]:
        """The JSON result: a single run's keys, ``repeat`` with more runs, ``baseline`` if compared."""
        data = self.result.to_dict()
        data["passed"] = self.passed
        data["warnings"] = self.warnings
        if self.not_carried_out:  # (exit 3): scripts tell it from a failed expectation here
            data["not_carried_out"] = self.not_carried_out
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_dict()
        data["source"] = {"file": self.source_file, "text": self.source_text,
                          "description": self.plan.scenario.description}
        return data


def unstarted(run: RunResult, scenario: Scenario) -> str | None:
    """Why a ``command`` client's program could not be started (not found, not runnable),
    where netsim could not start it and no expectation of its judges its exit code (``exit_code
    == 127``): a run not carried out. None otherwise."""
    program = run.program
    if program is None or program.started or any(
            expectation.metric == "exit_code" for expectation in scenario.expectations_for(run.client)):
        return None
    why = program.stderr.removeprefix("netsim: ").strip()
    where = _looked_up(program.argv[0] if program.argv else "", scenario.folder)
    return f"netsim could not start its program ({why}{where})"


def judged_instead(run: RunResult) -> str:
    """How a run whose program could not be started could be judged instead."""
    code = run.program.exit_code if run.program is not None else 127
    return f"an expectation `exit_code == {code}` would judge that instead"


def _looked_up(command: str, folder: Path) -> str:
    """Where a program's name was looked for, as the exec of a program started in ``folder``
    looks: a relative path from there, a bare name on PATH."""
    if command.startswith("/"):
        return ""
    return f"; looked up in {folder}" if "/" in command else "; looked up on PATH"
