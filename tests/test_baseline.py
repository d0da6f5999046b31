"""Baselines: overhead ratios saved, read back, and compared."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

import netsim
from netsim.baseline import (
    Baseline,
    BaselineError,
    ClientBaseline,
    baseline_of,
    check_fits,
    compare,
    fingerprint,
    load_baseline,
    parse_regression,
    save_baseline,
)
from netsim.repeat import tally
from netsim.session import Outputs, run_session
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


JITTERED = """\
netsim: 1
name: jit
servers: [{name: a, poem: "1\\n2\\n3\\n", delay: 200ms, jitter: 100ms}]
clients: [select]
"""


def test_a_fingerprint_tells_a_change_of_the_scenario_from_another_seed() -> None:
    """Another seed keeps a client's fingerprint; a server's delay, a client's option, or a
    server it does not use added, changes it, or not, as what it runs against changes."""
    def print_of(text: str, label: str = "select") -> str:
        return fingerprint(netsim.load_scenario_text(text), label)

    same = print_of(JITTERED)
    assert print_of(JITTERED.replace("name: jit", "name: jit\nseed: 9")) == same
    assert print_of(JITTERED.replace("delay: 200ms", "delay: 300ms")) != same
    assert print_of(JITTERED.replace("[select]", "[{model: select, connections: 2}]")) != same
    unused = JITTERED.replace("jitter: 100ms}]", "jitter: 100ms}, {name: b, poem: x}]").replace(
        "[select]", "[{model: select, targets: [a]}]")
    assert print_of(unused) == print_of(JITTERED.replace("[select]", "[{model: select, targets: [a]}]"))


def test_a_moved_ideal_is_a_change_of_the_scenario_only_where_the_fingerprints_differ() -> None:
    """An ideal 10% away is noted as a changed scenario when the fingerprints differ, not when
    they agree (another draw of the jitter), and as either when the baseline has none."""
    before = Baseline("demo", 1.0, {"a": ClientBaseline(4.0, 4.0, fingerprint="f1"),
                                    "b": ClientBaseline(4.0, 4.0, fingerprint="f1"),
                                    "c": ClientBaseline(4.0, 4.0)})
    now = Baseline("demo", 1.0, {"a": ClientBaseline(4.4, 4.4, fingerprint="f1"),
                                 "b": ClientBaseline(4.4, 4.4, fingerprint="f2"),
                                 "c": ClientBaseline(4.4, 4.4, fingerprint="f1")})
    notes = compare(before, now, max_regression=0.10).notes
    assert [note.split(":")[0] for note in notes] == ["b", "c"]
    assert notes[0].endswith("its ideal is 4.400s against 4.000s in the baseline: the scenario changed "
                             "since it was saved; save a new one")
    assert "or its seed drew other jitter or faults" in notes[1]


def test_a_fingerprint_is_saved_and_an_older_baseline_without_one_reads_back(tmp_path: Path) -> None:
    """The fingerprint is written beside the ratio and read back; an entry without one loads."""
    path = tmp_path / "base.json"
    save_baseline(Baseline("demo", 1.0, {"select": ClientBaseline(4.0, 4.2, fingerprint="2fc0")}), path)
    assert json.loads(path.read_text())["clients"]["select"]["fingerprint"] == "2fc0"
    assert load_baseline(path).clients["select"].fingerprint == "2fc0"
    older = write_baseline(tmp_path / "older.json", {"select": {"ideal": 4.0, "elapsed": 4.2}})
    assert load_baseline(older).clients["select"].fingerprint is None
    wrong = write_baseline(tmp_path / "wrong.json",
                           {"select": {"ideal": 4.0, "elapsed": 4.2, "fingerprint": 7}})
    with pytest.raises(BaselineError, match="fingerprint must be a string"):
        load_baseline(wrong)


def test_a_jittered_scenario_run_under_another_seed_is_no_change(tmp_path: Path) -> None:
    """Saved with seed 1, run with seed 2: the jitter draws another ideal, 7% away, and the
    baseline compares it without saying the scenario changed; a new delay still is noted."""
    path = tmp_path / "jit.yaml"
    path.write_text(JITTERED)
    base = tmp_path / "base.json"
    run_session(path, time_scale=0.5, seed=1, free_ports=True, outputs=Outputs(save_baseline=base))
    other = run_session(path, time_scale=0.5, seed=2, free_ports=True, baseline=base, max_regression=1.0)
    assert other.baseline is not None
    (client,) = other.baseline.baseline.clients.values()
    assert not math.isclose(baseline_of(other.result).clients["select"].ideal, client.ideal,
                            rel_tol=0.05)  # another draw
    assert other.baseline.notes == []
    path.write_text(JITTERED.replace("delay: 200ms", "delay: 400ms"))
    changed = run_session(path, time_scale=0.5, seed=1, free_ports=True, baseline=base, max_regression=10.0)
    assert changed.baseline is not None
    assert [note.split(": ", 2)[2] for note in changed.baseline.notes] == [
        "the scenario changed since it was saved; save a new one"]
