"""Repeated runs: the spread of each metric, pass counts, and pass rates."""

from __future__ import annotations

import math

import pytest

import netsim
from netsim.expectations import evaluate, parse_expectation
from netsim.repeat import Spread, repeat_scenario, tally
from netsim.results import Lateness, RunResult, ScenarioResult
from tests.conftest import ScenarioWriter, demo_text


def fake_run(client: str, elapsed: float, *texts: str, ideal: float = 4.0) -> RunResult:
    """A run measured without sockets, judged against ``texts``."""
    run = RunResult(client=client, model="select", elapsed=elapsed, ideal=ideal, wall_elapsed=elapsed,
                    connections=[], lateness=Lateness(0.001, 0.002, 0.003, 12), lateness_wall_p99=0.002)
    verdicts = [evaluate(parse_expectation(text), run.metrics(), {}) for text in texts]
    return RunResult(**{**run.__dict__, "expectations": verdicts})


def fake_results(elapsed: list[float], *texts: str) -> list[ScenarioResult]:
    return [ScenarioResult("demo", 1.0, [fake_run("select", value, *texts)]) for value in elapsed]


def test_spread_takes_min_median_and_max_and_skips_what_was_not_measured() -> None:
    """Spread.of ignores NaN; with nothing measured every figure is NaN."""
    assert Spread.of([4.3, 4.0, math.nan, 4.1]) == Spread(4.0, 4.1, 4.3)
    assert all(math.isnan(value) for value in Spread.of([math.nan]).__dict__.values())


def test_an_expectation_without_a_pass_rate_must_hold_in_every_run() -> None:
    """One run out of five over the bound fails a plain expectation."""
    result = tally(fake_results([4.0, 4.1, 4.0, 4.5, 4.0], "elapsed <= 4.2s"))
    [expectation] = result.client("select").expectations
    assert (expectation.passes, expectation.runs, expectation.required) == (4, 5, "all")
    assert not expectation.passed and not result.passed
    assert result.runs_passed == 4 and result.client("select").runs_passed == 4


def test_a_pass_rate_lets_some_runs_miss() -> None:
    """`in 80% of runs` holds with four runs of five, not with three."""
    held = tally(fake_results([4.0, 4.1, 4.0, 4.5, 4.0], "elapsed <= 4.2s in 80% of runs"))
    missed = tally(fake_results([4.0, 4.5, 4.0, 4.5, 4.0], "elapsed <= 4.2s in 80% of runs"))
    assert held.passed and held.client("select").expectations[0].required == "80%"
    assert not missed.passed


def test_metrics_and_measured_values_are_summed_up_as_spreads() -> None:
    """Each metric and each expectation's measured value get min, median and max."""
    result = tally(fake_results([4.3, 4.0, 4.1], "elapsed <= 5s"))
    client = result.client("select")
    assert client.metrics["elapsed"] == Spread(4.0, 4.1, 4.3)
    assert client.metrics["overhead"].max == pytest.approx(0.3)
    assert client.expectations[0].actual == Spread(4.0, 4.1, 4.3)
    assert client.expectations[0].bound == "<= 5.000s"


def test_the_json_keeps_the_first_run_and_adds_a_repeat_section() -> None:
    """to_dict has the keys of a single run (the first) and `repeat` with spreads and counts."""
    data = tally(fake_results([4.0, 4.5], "elapsed <= 4.2s in 50% of runs")).to_dict()
    assert {"scenario", "time_scale", "passed", "runs"} <= data.keys()
    assert data["runs"][0]["elapsed"] == 4.0 and data["passed"] is True
    repeat = data["repeat"]
    assert (repeat["count"], repeat["runs_passed"], len(repeat["results"])) == (2, 1, 2)
    client = repeat["clients"][0]
    assert client["metrics"]["elapsed"] == {"min": 4.0, "median": 4.25, "max": 4.5}
    assert client["expectations"][0] == {
        "text": "elapsed <= 4.2s in 50% of runs", "passed": True, "passes": 1, "runs": 2,
        "pass_rate": 0.5, "actual": {"min": 4.0, "median": 4.25, "max": 4.5}, "bound": "<= 4.200s"}


def test_repeat_scenario_runs_every_client_the_given_number_of_times(write_scenario: ScenarioWriter) -> None:
    """Three repeats give three results with fresh runs, summed up per client."""
    path = write_scenario(demo_text(delay="10ms", expect="expect:\n  all: [errors == 0, intact == 100%]\n"))
    seen: list[int] = []
    result = repeat_scenario(netsim.load_scenario(path), 3, on_result=lambda number, _: seen.append(number))
    assert seen == [1, 2, 3] and result.count == 3
    assert [client.client for client in result.clients] == ["blocking", "select"]
    blocking = result.client("blocking")
    assert blocking.runs == 3 and blocking.runs_passed == 3 and result.passed
    spread = blocking.metrics["elapsed"]
    assert spread.min <= spread.median <= spread.max
    assert blocking.metrics["ideal"].max == pytest.approx(0.12)


def test_repeat_scenario_needs_at_least_one_run(write_scenario: ScenarioWriter) -> None:
    """A count below 1 is a ValueError."""
    scenario = netsim.load_scenario(write_scenario(demo_text()))
    with pytest.raises(ValueError, match="at least once"):
        repeat_scenario(scenario, 0)


def test_the_bound_shown_is_that_of_the_run_measured_nearest_the_median() -> None:
    """Where each run's bound differs (an ideal that moves a little), the bound beside the
    median measurement is the one that run was judged by, not the first run's."""
    runs = [fake_run("select", elapsed, "elapsed <= ideal + 1s", ideal=ideal)
            for elapsed, ideal in ((4.1, 4.0), (5.1, 5.0), (4.6, 4.5))]
    (expectation,) = tally([ScenarioResult("demo", 1.0, [run]) for run in runs]).clients[0].expectations
    assert expectation.actual.median == pytest.approx(4.6)
    assert expectation.bound == runs[2].expectations[0].bound == "<= 5.500s"


def test_each_warning_of_repeated_runs_says_which_runs_it_came_from() -> None:
    """A busy machine in one run of three is warned of as run 2's, one in every run as every
    run's, each once; a single run's warnings read as they always have."""
    busy = "select: the servers sent chunks up to 40ms late: this machine was too busy"
    slow = "select: the server process used up its real-time budget"
    results = fake_results([4.0, 4.0, 4.0], "elapsed <= 5s")
    for number, result in enumerate(results, start=1):
        result.warnings[:] = [slow] + ([busy] if number == 2 else [])
    assert tally(results).warnings == [f"every one of 3 runs: {slow}", f"run 2 of 3: {busy}"]
    results[2].warnings.append(busy)
    assert tally(results).warnings[1] == f"runs 2 and 3 of 3: {busy}"
    assert tally(results[:1]).warnings == [slow]
