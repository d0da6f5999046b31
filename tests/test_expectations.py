"""Tests of the expectation grammar, its error messages and its evaluation."""

from __future__ import annotations

import math
import re

import pytest

from netsim.expectations import (
    METRICS,
    OPERATORS,
    Expectation,
    evaluate,
    parse_expectation,
)

# A value that fits each kind of metric, for the metric-by-operator matrix.
SAMPLES = {"duration": "1s ± 5%", "size": "16B", "count": "0", "share": "100%", "factor": "2.5"}


def run_metrics(**values: float) -> dict[str, float]:
    """The metrics of a plausible run of the 4-second select demo, with overrides."""
    metrics = {
        "elapsed": 4.004,
        "ideal": 4.0,
        "overhead": 0.004,
        "ttfb.p50": 1.001,
        "ttfb.max": 1.002,
        "bytes": 48.0,
        "errors": 0.0,
        "intact": 1.0,
        "lateness.p99": 0.0009,
        "lateness.max": 0.0011,
    }
    metrics.update({name.replace("_", "."): value for name, value in values.items()})
    return metrics


def check(text: str, elapsed_of: dict[str, float] | None = None, /, **values: float) -> bool:
    """Whether ``text`` holds for a run with the given metric values."""
    verdict = evaluate(parse_expectation(text), run_metrics(**values), elapsed_of or {})
    return verdict.passed


# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPERATORS)
@pytest.mark.parametrize("metric", sorted(METRICS))
def test_every_metric_parses_with_every_operator(metric: str, op: str) -> None:
    """Each metric takes each operator with a value of its kind."""
    kind = METRICS[metric]
    sample = SAMPLES[kind] if op == "==" else SAMPLES[kind].removesuffix(" ± 5%")
    written = (
        f"speedup(blocking) {op} {sample}" if metric == "speedup" else f"{metric} {op} {sample}"
    )
    expectation = parse_expectation(written)
    assert (expectation.metric, expectation.op, expectation.kind) == (metric, op, kind)
    assert expectation.other == ("blocking" if metric == "speedup" else None)


@pytest.mark.parametrize(
    ("text", "metric", "other", "op", "offset", "tolerance"),
    [
        ("elapsed == 12s ± 5%", "elapsed", None, "==", 12.0, 0.05),
        ("elapsed <= ideal + 250ms", "elapsed", None, "<=", 0.25, None),
        ("speedup(blocking) >= 2.5", "speedup", "blocking", ">=", 2.5, None),
        ("intact == 100%", "intact", None, "==", 1.0, None),
        ("errors == 0", "errors", None, "==", 0.0, None),
    ],
)
def test_design_examples_parse(
    text: str, metric: str, other: str | None, op: str, offset: float, tolerance: float | None
) -> None:
    """The expectations shown in DESIGN.md parse to what they say."""
    expectation = parse_expectation(text)
    assert (expectation.metric, expectation.other, expectation.op) == (metric, other, op)
    assert expectation.offset == pytest.approx(offset)
    assert expectation.tolerance == tolerance
    assert expectation.text == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("elapsed <= 250ms", 0.25),
        ("elapsed <= 1.5s", 1.5),
        ("elapsed <= 2", 2.0),
        ("elapsed <= 500us", 0.0005),
        ("elapsed <= 500µs", 0.0005),
        ("elapsed <= 2m", 120.0),
        ("elapsed <= 1 min", 60.0),
        ("elapsed <= 1h", 3600.0),
        ("bytes == 16", 16.0),
        ("bytes == 16B", 16.0),
        ("bytes >= 4KB", 4000.0),
        ("bytes >= 4KiB", 4096.0),
        ("bytes >= 1.5MB", 1_500_000.0),
        ("bytes >= 1MiB", 1_048_576.0),
        ("errors <= 3", 3.0),
        ("intact == 100%", 1.0),
        ("intact >= 99.5%", 0.995),
        ("intact >= 0.5", 0.5),
        ("intact >= 0", 0.0),
        ("speedup(blocking) >= 2.5", 2.5),
        ("speedup(blocking) >= 2.5x", 2.5),
        ("speedup(blocking) >= 3×", 3.0),
    ],
)
def test_values_take_the_units_of_their_kind(text: str, value: float) -> None:
    """A value is read in the base unit of its metric: seconds, bytes, a fraction."""
    expectation = parse_expectation(text)
    assert (expectation.scale, expectation.offset) == pytest.approx((0.0, value))


def test_a_share_in_percent_is_exact() -> None:
    """99.5% is the same float as 199 intact connections out of 200."""
    assert parse_expectation("intact >= 99.5%").offset == 199 / 200


@pytest.mark.parametrize(
    ("value", "scale", "offset"),
    [
        ("ideal", 1.0, 0.0),
        ("ideal * 1.05", 1.05, 0.0),
        ("1.05 * ideal", 1.05, 0.0),
        ("ideal + 100ms", 1.0, 0.1),
        ("ideal - 50ms", 1.0, -0.05),
        ("ideal + 1", 1.0, 1.0),
        ("ideal * 2 + 1s", 2.0, 1.0),
        ("ideal*1.1-10ms", 1.1, -0.01),
    ],
)
def test_durations_can_be_written_over_ideal(value: str, scale: float, offset: float) -> None:
    """A duration value may be ideal scaled by a number and shifted by a duration."""
    expectation = parse_expectation(f"elapsed <= {value}")
    assert expectation.uses_ideal
    assert (expectation.scale, expectation.offset) == pytest.approx((scale, offset))


@pytest.mark.parametrize(
    ("tolerance", "amount", "relative"),
    [
        ("± 5%", 0.05, True),
        ("±5%", 0.05, True),
        ("+- 5%", 0.05, True),
        ("+/- 5%", 0.05, True),
        ("± 200ms", 0.2, False),
        ("+-200ms", 0.2, False),
        ("± 0.5", 0.5, False),
    ],
)
def test_tolerance_forms(tolerance: str, amount: float, relative: bool) -> None:
    """A tolerance is a percentage of the value or an amount of the metric's kind."""
    expectation = parse_expectation(f"elapsed == 12s {tolerance}")
    assert expectation.tolerance == pytest.approx(amount)
    assert expectation.relative is relative


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("elapsed<=ideal+250ms", "elapsed<=ideal+250ms"),
        ("  elapsed   <=\n  4s ", "elapsed <= 4s"),
        ("speedup( blocking )>=2.5x", "speedup( blocking )>=2.5x"),
        ("ttfb.p50<1 s", "ttfb.p50<1 s"),
    ],
)
def test_whitespace_is_free(text: str, normalised: str) -> None:
    """Spaces are optional between tokens, and runs of whitespace collapse in the text."""
    expectation = parse_expectation(text)
    assert expectation.text == normalised
    assert str(expectation) == normalised


def test_speedup_keeps_the_other_client_name() -> None:
    """speedup(OTHER) records OTHER so the loader can check that the client exists."""
    assert parse_expectation("speedup( my-threads ) > 2").other == "my-threads"


# --- parse errors ---------------------------------------------------------------------

PARSE_ERRORS = [
    ("", "the expectation is empty"),
    ("   ", "the expectation is empty"),
    ("!!!", "'!!!' does not start with a metric"),
    ("4s >= elapsed", "does not start with a metric"),
    ("elaspsed <= 4s", "unknown metric 'elaspsed' (did you mean 'elapsed'?)"),
    ("ttfb <= 1s", "(did you mean 'ttfb.p50' or 'ttfb.max'?)"),
    ("latency < 3s", "unknown metric 'latency': use one of elapsed, ideal, overhead"),
    ("hello world", "unknown metric 'hello'"),
    ("elapsed <= 4KB", "elapsed takes a duration in us, µs, ms, s, m, min or h"),
    ("ttfb.max < 2x", "'2x' does not fit ttfb.max"),
    ("bytes >= 4s", "bytes takes a size in B, KB, MB, GB, KiB, MiB or GiB"),
    ("errors == 1.5", "errors takes a whole number"),
    ("errors == 1s", "errors takes a whole number"),
    ("intact == 100", "'100' does not fit intact (did you mean 100%?)"),
    ("intact == 150%", "intact takes a percentage like 100% or 99.5%, or a fraction"),
    ("intact == 150", "intact takes a percentage like 100% or 99.5%, or a fraction"),
    ("bytes == 1.5B", "a size must be a whole number of bytes"),
    ("speedup(blocking) >= 2s", "takes a plain number, like 2.5 or 2.5x"),
    ("elapsed == 12s", "'==' on elapsed needs a tolerance because timings are never exact"),
    ("lateness.max == 1ms", "write e.g. 'lateness.max == 1ms ± 5%'"),
    ("elapsed <= 4s ± 5%", "a tolerance only goes with '==', not '<='"),
    ("bytes > 16B +- 1B", "a tolerance only goes with '==', not '>'"),
    ("elapsed 4s", "expected an operator after 'elapsed'"),
    ("elapsed = 4s", "unknown operator '=' (did you mean '=='?)"),
    ("elapsed => 4s", "unknown operator '=>' (did you mean '>='?)"),
    ("elapsed != 4s", "unknown operator '!=': use one of <, <=, >, >=, =="),
    ("elapsed <=", "expected a value after 'elapsed <='"),
    ("bytes <", "expected a value after 'bytes <', like 'bytes < 16B'"),
    ("elapsed <= fast", "'fast' does not fit elapsed"),
    ("elapsed <= 4s foo", "unexpected 'foo' after '4s'"),
    ("elapsed <= 4s 5s", "unexpected '5s' after '4s'"),
    ("elapsed <= ideal + 250ms foo", "unexpected 'foo' after '250ms'"),
    ("elapsed == 12s ± 5% foo", "unexpected 'foo' after '5%'"),
    ("elapsed == 300ms ± 5", "the tolerance ± 5.000s is as wide as 300ms itself, so the bound would take "
                             "in no time at all: did you mean ± 5%?"),
    ("elapsed == 300ms ± 300ms", "the tolerance ± 300ms is as wide as 300ms itself"),
    ("elapsed < ideal + ideal", "'ideal + ideal' is not an expression over ideal: write ideal, ideal * 1.05"),
    ("elapsed == 12s ±", "expected a tolerance after '±'"),
    ("elapsed == 12s ± 5% ± 1s", "more than one tolerance"),
    ("elapsed == 12s ± 5KB", "tolerance '5KB' does not fit elapsed"),
    ("speedup >= 2", "speedup needs the client to compare with"),
    ("speedup() >= 2", "speedup needs the client to compare with"),
    ("elapsed(blocking) <= 4s", "elapsed takes no client in parentheses"),
    ("bytes <= ideal", "only durations can be written over ideal"),
    ("elapsed <= ideal * 2s", "'ideal * 2s' is not an expression over ideal"),
    ("elapsed <= 2 * ideal * 3", "is not an expression over ideal"),
    ("elapsed <= ideal ideal", "is not an expression over ideal"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    """Every mistake raises ValueError with one plain sentence that names the problem."""
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_expectation(text)
    written = str(caught.value)
    assert "\n" not in written
    assert "Error" not in written
    assert written[0].islower() or written[0] == "'"


def test_unknown_metric_message_is_exactly_the_suggestion() -> None:
    """A misspelt metric gets the short did-you-mean message and nothing more."""
    exact = "^" + re.escape("unknown metric 'elaspsed' (did you mean 'elapsed'?)") + "$"
    with pytest.raises(ValueError, match=exact):
        parse_expectation("elaspsed <= 4s")


# --- bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ideal", "low", "high"),
    [
        ("elapsed == 12s ± 5%", 0.0, 11.4, 12.6),
        ("elapsed == ideal ± 200ms", 4.0, 3.8, 4.2),
        ("elapsed <= ideal + 250ms", 4.0, -math.inf, 4.25),
        ("elapsed > 1.05 * ideal", 4.0, 4.2, math.inf),
        ("errors == 0", 4.0, 0.0, 0.0),
        ("bytes == 100B ± 10B", 4.0, 90.0, 110.0),
        ("bytes == 100B ± 10%", 4.0, 90.0, 110.0),
        # A share's percentage tolerance is points of it, not a tenth of 90%.
        ("intact == 90% ± 10%", 4.0, 0.8, 1.0),
        ("intact == 66.7% ± 1%", 4.0, 0.657, 0.677),
    ],
)
def test_bound_is_the_range_the_value_may_take(
    text: str, ideal: float, low: float, high: float
) -> None:
    """bound() puts the ideal in and widens by the tolerance; open ends are infinite."""
    assert parse_expectation(text).bound(ideal) == pytest.approx((low, high))


def test_plain_value_ignores_a_nan_ideal() -> None:
    """A value that does not mention ideal is not made NaN by an unknown ideal."""
    assert parse_expectation("elapsed <= 4s").bound(math.nan) == (-math.inf, 4.0)


@pytest.mark.parametrize(
    ("text", "ideal", "described"),
    [
        ("elapsed <= ideal + 250ms", 4.0, "<= 4.250s"),
        ("elapsed == 12s ± 5%", 4.0, "11.400s .. 12.600s"),
        ("elapsed < 250ms", 4.0, "< 250ms"),
        ("lateness.max < 5ms", 4.0, "< 5ms"),
        ("speedup(blocking) >= 2.5", 4.0, ">= 2.5"),
        ("speedup(blocking) == 3 ± 0.5x", 4.0, "2.5 .. 3.5"),
        ("intact == 100%", 4.0, "== 100%"),
        ("intact == 90% ± 5%", 4.0, "85% .. 95%"),
        ("intact >= 0.995", 4.0, ">= 99.5%"),
        ("errors == 0", 4.0, "== 0"),
        ("errors < 3", 4.0, "< 3"),
        ("bytes == 16", 4.0, "== 16B"),
        ("bytes >= 4KB", 4.0, ">= 4.0KB"),
        ("bytes >= 4KiB", 4.0, ">= 4096B"),
    ],
)
def test_describe_bound(text: str, ideal: float, described: str) -> None:
    """The bound reads with the metric's unit, exactly enough to judge a verdict by."""
    assert parse_expectation(text).describe_bound(ideal) == described


# --- evaluation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "passed"),
    [
        ("bytes < 48", {"bytes": 47}, True),
        ("bytes < 48", {"bytes": 48}, False),
        ("bytes <= 48", {"bytes": 48}, True),
        ("bytes <= 48", {"bytes": 49}, False),
        ("bytes > 48", {"bytes": 48}, False),
        ("bytes > 48", {"bytes": 49}, True),
        ("bytes >= 48", {"bytes": 48}, True),
        ("bytes >= 48", {"bytes": 47}, False),
        ("errors == 0", {"errors": 0}, True),
        ("errors == 0", {"errors": 1}, False),
        ("elapsed == 12s ± 5%", {"elapsed": 12.004}, True),
        ("elapsed == 12s ± 5%", {"elapsed": 11.4}, True),
        ("elapsed == 12s ± 5%", {"elapsed": 12.6}, True),
        ("elapsed == 12s ± 5%", {"elapsed": 11.399}, False),
        ("elapsed == 12s ± 5%", {"elapsed": 12.601}, False),
        ("elapsed <= ideal + 250ms", {"elapsed": 4.25}, True),
        ("elapsed <= ideal + 250ms", {"elapsed": 4.2501}, False),
        ("elapsed < ideal + 250ms", {"elapsed": 4.25}, False),
        ("elapsed < ideal + 250ms", {"elapsed": 4.2499}, True),
        ("elapsed <= ideal * 1.05", {"elapsed": 4.2}, True),
        ("elapsed > ideal - 50ms", {"elapsed": 3.95}, False),
        ("elapsed >= ideal - 50ms", {"elapsed": 3.95}, True),
        ("overhead < 100ms", {"overhead": 0.1}, False),
        ("overhead <= 100ms", {"overhead": 0.1}, True),
        ("intact == 100%", {"intact": 1.0}, True),
        ("intact == 100%", {"intact": 0.99}, False),
        ("intact >= 99.5%", {"intact": 199 / 200}, True),
        ("intact >= 99.5%", {"intact": 198 / 200}, False),
        ("ttfb.p50 <= 2ms", {"ttfb_p50": 0.002}, True),
        ("lateness.p99 < 1ms", {"lateness_p99": 0.0009}, True),
        ("lateness.p99 < 1ms", {"lateness_p99": 0.001}, False),
    ],
)
def test_evaluation_at_and_around_the_bound(
    text: str, values: dict[str, float], passed: bool
) -> None:
    """< and > are strict, <= and >= and a tolerance are inclusive, == is exact."""
    assert check(text, **values) is passed


@pytest.mark.parametrize(
    "text",
    [
        "ttfb.p50 <= 10s",
        "ttfb.max > 0",
        "ttfb.max >= 0",
        "ttfb.p50 < 10s",
        "ttfb.p50 == 1s ± 100%",
        "bytes == 0",
        "intact >= 0%",
    ],
)
def test_a_nan_measurement_fails(text: str) -> None:
    """A value the run could not measure never passes, whatever the bound."""
    metric = parse_expectation(text).metric
    verdict = evaluate(parse_expectation(text), run_metrics(**{metric: math.nan}), {})
    assert not verdict.passed
    assert verdict.actual_text() == "n/a"


def test_a_nan_ideal_fails_an_expression_over_ideal() -> None:
    """An unknown ideal fails expectations written over it rather than passing them."""
    assert not check("elapsed <= ideal + 1h", ideal=math.nan)
    assert check("elapsed <= 1h", ideal=math.nan)


@pytest.mark.parametrize(
    ("elapsed", "passed", "actual"),
    [(4.0, True, "3.00x"), (4.8, True, "2.50x"), (5.0, False, "2.40x")],
)
def test_speedup_divides_the_other_clients_elapsed(
    elapsed: float, passed: bool, actual: str
) -> None:
    """speedup(OTHER) is OTHER's elapsed over this client's, checked like any factor."""
    verdict = evaluate(
        parse_expectation("speedup(blocking) >= 2.5"),
        run_metrics(elapsed=elapsed),
        {"blocking": 12.0},
    )
    assert verdict.passed is passed
    assert verdict.actual == pytest.approx(12.0 / elapsed)
    assert verdict.actual_text() == actual


def test_speedup_over_a_zero_elapsed_fails() -> None:
    """A zero elapsed is a broken measurement, so no speedup over it passes."""
    assert not check("speedup(blocking) > 0", {"blocking": 12.0}, elapsed=0.0)


def test_speedup_of_an_unknown_client_raises_key_error() -> None:
    """The runner guarantees OTHER ran; if it did not, evaluation says so loudly."""
    with pytest.raises(KeyError):
        evaluate(parse_expectation("speedup(ghost) > 1"), run_metrics(), {"blocking": 12.0})


@pytest.mark.parametrize(
    ("text", "values", "actual"),
    [
        ("elapsed <= 20s", {"elapsed": 12.004}, "12.004s"),
        ("ttfb.max < 10ms", {"ttfb_max": 0.0012}, "1.2ms"),
        ("bytes >= 0", {"bytes": 16}, "16B"),
        ("bytes >= 0", {"bytes": 4096}, "4096B"),
        ("intact == 100%", {"intact": 1.0}, "100%"),
        ("intact >= 0.5", {"intact": 0.995}, "99.5%"),
        ("errors == 0", {"errors": 0}, "0"),
    ],
)
def test_actual_text_shows_the_unit(text: str, values: dict[str, float], actual: str) -> None:
    """The measured value reads with the unit of its metric."""
    verdict = evaluate(parse_expectation(text), run_metrics(**values), {})
    assert verdict.actual_text() == actual


def test_speedup_actual_text_has_two_decimals() -> None:
    """A speedup shows as a factor with two decimals, like 3.01x."""
    verdict = evaluate(
        parse_expectation("speedup(blocking) >= 2.5"), run_metrics(elapsed=4.0), {"blocking": 12.04}
    )
    assert verdict.actual_text() == "3.01x"


def test_verdict_reports_actual_and_bound() -> None:
    """A verdict carries the expectation, the measured value and the bound as text."""
    expectation = parse_expectation("elapsed <= ideal + 250ms")
    verdict = evaluate(expectation, run_metrics(elapsed=4.3, ideal=4.0), {})
    assert verdict.expectation is expectation
    assert (verdict.passed, verdict.actual, verdict.bound) == (False, 4.3, "<= 4.250s")
    assert verdict.actual_text() == "4.300s"


def test_expectations_are_frozen_values() -> None:
    """Parsing the same text twice gives equal, hashable, immutable expectations."""
    first, second = parse_expectation("elapsed<=4s"), parse_expectation("elapsed<=4s")
    assert first == second
    assert len({first, second}) == 1
    with pytest.raises(AttributeError):
        first.op = "<"  # type: ignore[misc]
    assert isinstance(first, Expectation)


# --- pass rates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate", "op", "offset"),
    [
        ("elapsed <= 4.2s in 90% of runs", 0.9, "<=", 4.2),
        ("elapsed == 4s ± 5% in 50% of runs", 0.5, "==", 4.0),
        ("speedup(blocking) >= 2.5   in 99.5%   of  runs", 0.995, ">=", 2.5),
        ("errors == 0 in 100% of runs", 1.0, "==", 0.0),
    ],
)
def test_pass_rate_suffix_parses(text: str, rate: float, op: str, offset: float) -> None:
    """`in N% of runs` after an expectation is its pass rate; the rest parses as without it."""
    expectation = parse_expectation(text)
    assert (expectation.pass_rate, expectation.op, expectation.offset) == (rate, op, offset)
    assert expectation.text == " ".join(text.split())


def test_an_expectation_without_a_pass_rate_has_none() -> None:
    """A plain expectation carries no pass rate."""
    assert parse_expectation("elapsed <= 4s").pass_rate is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("elapsed <= 4s in 90%", "write it as 'in 90% of runs'"),
        ("elapsed <= 4s in 90 of runs", "is not a pass rate"),
        ("elapsed <= 4s in", "is not a pass rate"),
        ("elapsed <= 4s in 0% of runs", "above 0 and at most 100"),
        ("elapsed <= 4s in 101% of runs", "above 0 and at most 100"),
    ],
)
def test_a_malformed_pass_rate_is_refused(text: str, message: str) -> None:
    """A pass rate that is not `in N% of runs` with 0 < N <= 100 is an error naming the form."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_expectation(text)


@pytest.mark.parametrize(
    ("text", "passes", "runs", "held"),
    [
        ("elapsed <= 4s", 10, 10, True),
        ("elapsed <= 4s", 9, 10, False),
        ("elapsed <= 4s in 90% of runs", 9, 10, True),
        ("elapsed <= 4s in 90% of runs", 8, 10, False),
        ("elapsed <= 4s in 70% of runs", 7, 10, True),
        ("elapsed <= 4s in 90% of runs", 1, 1, True),
        ("elapsed <= 4s in 90% of runs", 0, 1, False),
        ("elapsed <= 4s in 90% of runs", 0, 0, False),
    ],
)
def test_holding_often_enough(text: str, passes: int, runs: int, held: bool) -> None:
    """Without a pass rate every run must pass; with one, at least that share of them."""
    assert parse_expectation(text).holds_often_enough(passes, runs) is held


def test_a_pass_rate_does_not_change_a_single_verdict() -> None:
    """Evaluated on one run, an expectation with a pass rate holds exactly when the plain one does."""
    for elapsed in (4.0, 4.3):
        plain = evaluate(parse_expectation("elapsed <= 4.2s"), run_metrics(elapsed=elapsed), {})
        rated = evaluate(parse_expectation("elapsed <= 4.2s in 90% of runs"),
                         run_metrics(elapsed=elapsed), {})
        assert (rated.passed, rated.bound) == (plain.passed, plain.bound)


@pytest.mark.parametrize(("ttfbs", "p50", "worst"), [
    ([0.005, 0.010, 0.017, math.nan], 0.0135, math.nan),  # one refused: the median stands
    ([0.005, 0.010, math.nan], 0.010, math.nan),
    ([0.005, math.nan], math.nan, math.nan),  # half got no byte: no median to tell
    ([0.005, 0.010], 0.0075, 0.010),
])
def test_a_connection_without_a_first_byte_counts_as_never(ttfbs: list[float], p50: float,
                                                            worst: float) -> None:
    """ttfb.p50 counts a connection that got no byte as infinitely late, so it is told while
    fewer than half got none; ttfb.max cannot be told once one got none (n/a)."""
    from netsim.results import ConnectionResult, Lateness, RunResult

    connections = [ConnectionResult(conn=number, server="a", port=1, bytes=0, intact=True, error=None,
                                    ttfb=ttfb, duration=0.1) for number, ttfb in enumerate(ttfbs, start=1)]
    metrics = RunResult(client="c", model="select", elapsed=1.0, ideal=1.0, wall_elapsed=1.0,
                        connections=connections, lateness=Lateness(0, 0, 0, 0), lateness_wall_p99=0).metrics()
    for name, expected in (("ttfb.p50", p50), ("ttfb.max", worst)):
        measured = metrics[name]
        assert (math.isnan(measured) and math.isnan(expected)) or measured == pytest.approx(expected)
