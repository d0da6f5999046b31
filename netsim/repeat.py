"""Run a scenario several times and sum the runs up.

A single run is a repeat of one: its tally reads as the run does, and the reports
(netsim.report, netsim.junit) render one run and many from the same RepeatResult.

One run of a timing experiment can be unlucky: a busy machine, a late wake-up.
:func:`repeat_scenario` runs the whole scenario ``count`` times (fresh servers for each
client model every time, as :func:`netsim.run_scenario` does) and reports, per client,
the min, median and max of every metric, how many runs passed, and for each
expectation how often it held.

An expectation without a pass rate must hold in every run; one written with a pass
rate (``elapsed <= 4.2s in 90% of runs``) must hold in at least that share of them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netsim.expectations import Expectation
from netsim.results import RunResult, ScenarioResult, json_number
from netsim.scenario import Scenario


@dataclass(frozen=True)
class Spread:
    """The min, median and max of one value over the runs (NaN when no run measured it)."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        measured = [value for value in values if not math.isnan(value)]
        if not measured:
            return cls(math.nan, math.nan, math.nan)
        return cls(min(measured), statistics.median(measured), max(measured))

    def to_dict(self) -> dict[str, float | None]:
        return {"min": json_number(self.min), "median": json_number(self.median),
                "max": json_number(self.max)}


@dataclass(frozen=True)
class ExpectationTally:
    """How often one expectation of one client held over the runs."""

    expectation: Expectation
    passes: int
    runs: int
    actual: Spread  # the measured values, in the metric's base unit
    bound: str  # as the run nearest the median measurement described it (see tally)

    @property
    def passed(self) -> bool:
        return self.expectation.holds_often_enough(self.passes, self.runs)

    @property
    def required(self) -> str:
        """The share of runs it had to hold in, for humans: ``90%`` or ``all``."""
        rate = self.expectation.pass_rate
        return "all" if rate is None else f"{rate * 100:g}%"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.expectation.text, "passed": self.passed, "passes": self.passes,
                "runs": self.runs, "pass_rate": self.expectation.pass_rate,
                "actual": self.actual.to_dict(), "bound": self.bound}


@dataclass(frozen=True)
class ClientTally:
    """One client model over the runs: the spread of each metric, and its expectations."""

    client: str
    runs: int
    runs_passed: int  # the runs in which every expectation of this client held
    metrics: dict[str, Spread]
    expectations: list[ExpectationTally]

    @property
    def passed(self) -> bool:
        return all(tally.passed for tally in self.expectations)

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "passed": self.passed, "runs": self.runs,
                "runs_passed": self.runs_passed,
                "metrics": {name: spread.to_dict() for name, spread in self.metrics.items()},
                "expectations": [tally.to_dict() for tally in self.expectations]}


@dataclass(frozen=True)
class RepeatResult:
    """Every run of a repeated scenario, and the verdict over all of them."""

    results: list[ScenarioResult]
    clients: list[ClientTally]

    @property
    def count(self) -> int:
        return len(self.results)

    @property
    def first(self) -> ScenarioResult:
        return self.results[0]

    @property
    def scenario(self) -> str:
        return self.first.scenario

    @property
    def time_scale(self) -> float:
        return self.first.time_scale

    @property
    def passed(self) -> bool:
        """Did every expectation hold in every run, or in the share its pass rate asks for?"""
        return all(client.passed for client in self.clients)

    @property
    def runs_passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def warnings(self) -> list[str]:
        """Every run's warnings, once each; with several runs, each says which runs it came
        from (``run 2 of 3: ...``): a busy machine in one run says nothing of the others."""
        runs: dict[str, list[int]] = {}
        for number, result in enumerate(self.results, start=1):
            for warning in result.warnings:
                runs.setdefault(warning, []).append(number)
        if self.count == 1:
            return list(runs)
        return [f"{_which_runs(numbers, self.count)}: {warning}" for warning, numbers in runs.items()]

    def client(self, label: str) -> ClientTally:
        for client in self.clients:
            if client.client == label:
                return client
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        """The first run under the keys of a single run; with more runs, a ``repeat`` section.

        A single run writes exactly what :meth:`ScenarioResult.to_dict` does: a repeat of
        one has no spread to report, and its result would only be written twice.
        """
        data = self.first.to_dict()
        data["passed"] = self.passed
        data["warnings"] = self.warnings
        if self.count == 1:
            return data
        data["repeat"] = {
            "count": self.count,
            "runs_passed": self.runs_passed,
            "clients": [client.to_dict() for client in self.clients],
            "results": [result.to_dict() for result in self.results],
        }
        return data


def _which_runs(numbers: Sequence[int], count: int) -> str:
    """``run 2 of 3``, ``runs 1 and 3 of 3``, ``every one of 3 runs``."""
    if len(numbers) == count:
        return f"every one of {count} runs"
    if len(numbers) == 1:
        return f"run {numbers[0]} of {count}"
    listed = ", ".join(str(number) for number in numbers[:-1])
    return f"runs {listed} and {numbers[-1]} of {count}"


def repeat_scenario(
    scenario: Scenario,
    count: int,
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[int, ScenarioResult], None] | None = None,
    **options: Any,
) -> RepeatResult:
    """Run ``scenario`` ``count`` times with :func:`netsim.run_scenario` and sum the runs up.

    ``options`` go to every ``run_scenario`` call (``time_scale``, ``clients``,
    ``free_ports``...); ``on_start(number, seed)`` is called before each run (1-based) with
    the seed its jitter and faults are drawn from (``seed`` if given, else the scenario's,
    else a fresh one for each run), and ``on_result(number, result)`` after it. Raises
    ValueError for a count below 1, and what ``run_scenario`` raises: the first run that
    cannot be carried out ends the repeat.
    """
    from netsim.runner import run_scenario, seed_for

    if count < 1:
        raise ValueError(f"a scenario runs at least once, got count={count}")
    results = []
    for number in range(1, count + 1):
        # Drawn here rather than by run_scenario: a run that does not finish still reports it.
        seed = seed_for(scenario, options.get("seed"))
        if on_start is not None:
            on_start(number, seed)
        result = run_scenario(scenario, **{**options, "seed": seed})
        if on_result is not None:
            on_result(number, result)
        results.append(result)
    return tally(results)


def _bound_beside(runs: Sequence[RunResult], index: int, median: float) -> str:
    """The bound to show beside the median measurement: that of the run measured nearest
    it. A bound over the ideal can differ a little from run to run (the ideal follows when
    the servers were ready), and each run was judged by its own."""
    verdicts = [run.expectations[index] for run in runs]
    if math.isnan(median):
        return verdicts[0].bound
    return min(verdicts, key=lambda verdict: abs(verdict.actual - median)
               if not math.isnan(verdict.actual) else math.inf).bound


def tally(results: Sequence[ScenarioResult]) -> RepeatResult:
    """Sum up runs of one scenario (each with the same clients): the spreads and pass counts."""
    if not results:
        raise ValueError("no runs to sum up")
    clients = []
    for first in results[0].runs:
        runs = [result.run(first.client) for result in results]
        names = list(first.metrics())
        metrics = {name: Spread.of([run.metrics()[name] for run in runs]) for name in names}
        expectations = []
        for index, verdict in enumerate(first.expectations):
            actual = Spread.of([run.expectations[index].actual for run in runs])
            expectations.append(ExpectationTally(
                expectation=verdict.expectation, passes=sum(run.expectations[index].passed for run in runs),
                runs=len(runs), actual=actual, bound=_bound_beside(runs, index, actual.median)))
        clients.append(ClientTally(client=first.client, runs=len(runs),
                                   runs_passed=sum(run.passed for run in runs),
                                   metrics=metrics, expectations=expectations))
    return RepeatResult(list(results), clients)
