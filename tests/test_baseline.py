"""Baselines: overhead ratios saved, read back, and compared."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from netsim.baseline import (
    Baseline,
    BaselineError,
    ClientBaseline,
    baseline_of,
    check_fits,
    compare,
    load_baseline,
    parse_regression,
    save_baseline,
)
from netsim.repeat import tally
from tests.test_repeat import fake_results


def test_the_overhead_ratio_is_overhead_over_ideal() -> None:
    """(elapsed - ideal) / ideal; NaN when the ideal is 0."""
    assert ClientBaseline(ideal=4.0, elapsed=4.2).overhead_ratio == pytest.approx(0.05)
    assert math.isnan(ClientBaseline(ideal=0.0, elapsed=0.01).overhead_ratio)


def test_a_baseline_of_a_run_and_of_repeats_uses_the_median() -> None:
    """A single run gives its elapsed; repeated runs give the median elapsed of each client."""
    results = fake_results([4.0, 4.4, 4.2])
    assert baseline_of(results[0]).clients["select"] == ClientBaseline(4.0, 4.0)
    repeated = baseline_of(tally(results))
    assert repeated.clients["select"] == ClientBaseline(4.0, 4.2) and repeated.runs == 3


def test_a_saved_baseline_reads_back_the_same(tmp_path: Path) -> None:
    """save_baseline writes JSON with the documented keys; load_baseline reads it back."""
    path = tmp_path / "base.json"
    baseline = Baseline("demo", 0.1, {"select": ClientBaseline(4.0, 4.2)}, runs=3)
    save_baseline(baseline, path)
    data = json.loads(path.read_text())
    assert {"scenario", "time_scale", "netsim_version", "created", "clients", "runs"} <= data.keys()
    assert data["clients"]["select"] == {"ideal": 4.0, "elapsed": 4.2, "overhead_ratio": 0.05}
    assert load_baseline(path) == baseline
    assert sorted(os.listdir(tmp_path)) == ["base.json"]  # no temporary file left behind
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable like any new file


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ("{", "is not JSON"),
    ('{"scenario": "demo"}', "not a netsim baseline"),
    ('{"format": "netsim-baseline", "version": 9}', "version 9 is not supported"),
    ('{"format": "netsim-baseline", "version": 1, "scenario": "demo"}', "a key is missing"),
])
def test_a_bad_baseline_file_is_a_clear_error(tmp_path: Path, text: str | None, message: str) -> None:
    """A missing, broken or foreign baseline is a BaselineError (exit 2) naming the file."""
    path = tmp_path / "base.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BaselineError, match=message) as caught:
        load_baseline(path)
    assert str(path) in str(caught.value)


def test_a_baseline_only_fits_its_scenario_and_time_scale() -> None:
    """Another scenario's baseline, or one made at another time scale, is refused."""
    baseline = Baseline("demo", 0.1, {})
    check_fits(baseline, scenario="demo", time_scale=0.1, path="b.json")
    with pytest.raises(BaselineError, match="of scenario 'demo', not 'other'"):
        check_fits(baseline, scenario="other", time_scale=0.1, path="b.json")
    with pytest.raises(BaselineError, match=r"made at time scale 0\.1, this run is at 1"):
        check_fits(baseline, scenario="demo", time_scale=1.0, path="b.json")


def test_regression_is_the_growth_of_the_overhead_ratio_in_points_of_ideal() -> None:
    """+0.5% of ideal before, +12.5% now: 12 points, over a 10% bound; 8 points would pass."""
    before = Baseline("demo", 1.0, {"a": ClientBaseline(4.0, 4.02), "b": ClientBaseline(4.0, 4.02)})
    now = Baseline("demo", 1.0, {"a": ClientBaseline(4.0, 4.5), "b": ClientBaseline(4.0, 4.34)})
    report = compare(before, now, max_regression=0.10)
    a, b = report.comparisons
    assert a.regression == pytest.approx(0.12) and not a.passed
    assert b.regression == pytest.approx(0.08) and b.passed
    assert not report.passed


def test_a_regression_equal_to_the_bound_passes_and_an_improvement_always_does() -> None:
    """The bound itself is allowed; a smaller overhead than the baseline's is no regression."""
    before = Baseline("demo", 1.0, {"a": ClientBaseline(4.0, 4.0), "b": ClientBaseline(4.0, 4.4)})
    now = Baseline("demo", 1.0, {"a": ClientBaseline(4.0, 4.4), "b": ClientBaseline(4.0, 4.0)})
    report = compare(before, now, max_regression=0.10)
    assert [comparison.passed for comparison in report.comparisons] == [True, True]


def test_clients_without_a_comparable_baseline_are_skipped_with_a_reason() -> None:
    """A client missing from the baseline, or with an ideal of 0, is not compared, and says why."""
    before = Baseline("demo", 1.0, {"zero": ClientBaseline(0.0, 0.01)})
    now = Baseline("demo", 1.0, {"zero": ClientBaseline(0.0, 0.02), "new": ClientBaseline(1.0, 1.0)})
    report = compare(before, now, max_regression=0.10)
    assert report.comparisons == [] and report.passed
    assert [reason.split(":")[0] for reason in report.skipped] == ["zero", "new"]


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("2.5 %", 0.025), ("0%", 0.0)])
def test_max_regression_is_a_percentage(text: str, value: float) -> None:
    """--max-regression takes a percentage."""
    assert parse_regression(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["10", "-5%", "ten%", ""])
def test_max_regression_without_a_percent_sign_is_refused(text: str) -> None:
    """A bare number is ambiguous (10 or 0.10?), so it is refused."""
    with pytest.raises(ValueError, match="not a percentage"):
        parse_regression(text)


def write_baseline(path: Path, clients: dict[str, dict[str, object]]) -> Path:
    path.write_text(json.dumps({"format": "netsim-baseline", "version": 1, "scenario": "demo",
                                "time_scale": 1.0, "clients": clients}))
    return path


def test_the_stated_overhead_ratio_is_what_is_compared(tmp_path: Path) -> None:
    """A baseline may give a client's overhead_ratio alone; that ratio is the one compared."""
    path = write_baseline(tmp_path / "base.json", {"select": {"ideal": 4.0, "overhead_ratio": 0.02}})
    baseline = load_baseline(path)
    assert baseline.clients["select"].overhead_ratio == pytest.approx(0.02)
    now = Baseline("demo", 1.0, {"select": ClientBaseline(4.0, 4.6)})  # +15%: 13 points more
    [comparison] = compare(baseline, now, max_regression=0.10).comparisons
    assert comparison.regression == pytest.approx(0.13) and not comparison.passed


def test_a_ratio_that_contradicts_the_elapsed_time_is_refused(tmp_path: Path) -> None:
    """An overhead_ratio edited beside an elapsed time it does not match is an error naming both."""
    path = write_baseline(tmp_path / "base.json",
                          {"select": {"ideal": 4.0, "elapsed": 4.2, "overhead_ratio": 0.5}})
    with pytest.raises(BaselineError, match=r"client 'select': overhead_ratio 0.5 does not match .* = 0.05"):
        load_baseline(path)


def test_a_ratio_that_agrees_with_the_elapsed_time_reads_back(tmp_path: Path) -> None:
    """An entry with both, as netsim saves them, reads back as the same client."""
    path = write_baseline(tmp_path / "base.json",
                          {"select": {"ideal": 4.0, "elapsed": 4.2, "overhead_ratio": 0.05}})
    assert load_baseline(path).clients["select"] == ClientBaseline(4.0, 4.2)
