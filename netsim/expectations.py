"""Timing expectations: ``METRIC OP VALUE [± TOLERANCE]``, parsed and checked.

A scenario's ``expect:`` lists lines such as ``elapsed == 12s ± 5%``,
``elapsed <= ideal + 250ms`` or ``speedup(blocking) >= 2.5``. :func:`parse_expectation`
turns one line into an :class:`Expectation`; :func:`evaluate` checks it against the
measurements of one run and returns a :class:`Verdict`.

Grammar (whitespace is free; ``±`` may be written ``+-`` or ``+/-``)::

    expectation := METRIC ["(" OTHER ")"] OP VALUE ["±" TOLERANCE] [PASS_RATE]
    OP          := "<" | "<=" | ">" | ">=" | "=="
    VALUE       := AMOUNT | [NUMBER "*"] "ideal" ["*" NUMBER] [("+" | "-") AMOUNT]
    TOLERANCE   := NUMBER "%" | AMOUNT
    PASS_RATE   := "in" NUMBER "%" "of" "runs"

An AMOUNT is a number with a unit of the metric's kind; only duration metrics may be
written over ``ideal``, and only ``==`` takes a tolerance (which durations need).

A PASS_RATE (``elapsed <= 4.2s in 90% of runs``) matters when a scenario is run
several times (``netsim run --repeat N``): the expectation must then hold in at least
that share of the runs, where one without a pass rate must hold in every run. A single
run is judged as it is: the expectation holds or it does not.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from netsim._units import (
    DURATION_UNITS,
    SIZE_UNITS,
    format_duration,
    format_share,
    format_size,
    parse_duration,
    parse_size,
)

METRICS: dict[str, str] = {
    "elapsed": "duration",
    "ideal": "duration",
    "overhead": "duration",
    "ttfb.p50": "duration",
    "ttfb.max": "duration",
    "bytes": "size",
    "errors": "count",
    "errors.refused": "count",  # connections refused (nothing listened, or a `refuse` fault)
    "errors.reset": "count",  # connections reset by the peer
    "errors.timeout": "count",  # connections that hit the client's timeout
    "intact": "share",  # a fraction 0..1 in code, written and shown as a percentage
    "speedup": "factor",  # written speedup(OTHER): OTHER's elapsed / this client's elapsed
    "lateness.p99": "duration",
    "lateness.max": "duration",
    "exit_code": "count",  # a `command` client's program's exit code
    # the connections a `command` client's program made to its servers beyond its targets
    "extra_connections": "count",
}
OPERATORS = ("<", "<=", ">", ">=", "==")

_OPERATOR_TYPOS = {"=": "==", "=>": ">=", "=<": "<="}
_EXAMPLE = "write METRIC OP VALUE, like 'elapsed <= 4s'"
_KNOWN = ", ".join("speedup(OTHER)" if name == "speedup" else name for name in METRICS)


def _either(units: Mapping[str, object]) -> str:
    names = [unit for unit in units if unit]
    return ", ".join(names[:-1]) + " or " + names[-1]


# What a value of each kind looks like, for error messages.
_TAKES = {
    "duration": f"a duration in {_either(DURATION_UNITS)}, like 250ms or 1.5s",
    "size": f"a size in {_either(SIZE_UNITS)}, like 512B or 4KiB",
    "count": "a whole number, like 0 or 3",
    "share": "a percentage like 100% or 99.5%, or a fraction from 0 to 1",
    "factor": "a plain number, like 2.5 or 2.5x",
}
_SAMPLE = {"duration": "4s", "size": "16B", "count": "0", "share": "100%", "factor": "2.5"}
_TOLERANCE_SAMPLE = {
    "duration": "200ms",
    "size": "100B",
    "count": "1",
    "share": "0.01",
    "factor": "0.5",
}

_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_HEAD = re.compile(
    r"(?P<metric>[A-Za-z_][\w.]*)\s*(?:\((?P<other>[^()]*)\)\s*)?(?P<op>[<>=!]*)\s*(?P<rest>.*)"
)
_QUANTITY = re.compile(rf"(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-zµ%×]*)\s*")
_TOLERANCE_MARK = re.compile(r"±|\+/-|\+-")
_MENTIONS_IDEAL = re.compile(r"\bideal\b")
_PASS_RATE = re.compile(rf"\s+in\s+(?P<rate>{_NUMBER})\s*%\s+of\s+runs$")
_PASS_RATE_START = re.compile(r"\s+in(?:\s+|$)")
_OVER_IDEAL = re.compile(
    rf"(?:(?P<before>{_NUMBER})\s*\*\s*)?ideal(?:\s*\*\s*(?P<after>{_NUMBER}))?"
    r"(?:\s*(?P<sign>[+-])\s*(?P<offset>.+))?"
)


# --- parsing --------------------------------------------------------------------------


def parse_expectation(text: str) -> Expectation:
    """Parse one expectation such as ``elapsed <= ideal + 250ms``.

    Raises ValueError with a one-sentence message fit for users when the text is not
    an expectation: an unknown metric, a unit that does not fit it, a bad operator,
    ``==`` on a duration without a tolerance, a tolerance with another operator.
    """
    written = " ".join(text.split())
    if not written:
        raise ValueError(f"the expectation is empty: {_EXAMPLE}")
    condition, pass_rate = _split_pass_rate(written)
    head = _HEAD.fullmatch(condition)
    if head is None:
        raise ValueError(f"'{written}' does not start with a metric: {_EXAMPLE}")
    metric, other, op, rest = head["metric"], head["other"], head["op"], head["rest"]
    if metric not in METRICS:
        raise ValueError(_unknown_metric(metric))
    if metric == "speedup":
        if other is None or not other.strip():
            raise ValueError("speedup needs the client to compare with, like speedup(blocking)")
        other = other.strip()
    elif other is not None:
        raise ValueError(f"{metric} takes no client in parentheses; only speedup(OTHER) does")
    label = metric if other is None else f"{metric}({other})"
    if op not in OPERATORS:
        raise ValueError(_bad_operator(label, op))

    kind = METRICS[metric]
    value_text, *tolerances = (part.strip() for part in _TOLERANCE_MARK.split(rest))
    if not value_text:
        sample = f"{label} {op} {_SAMPLE[kind]}"
        raise ValueError(f"expected a value after '{label} {op}', like '{sample}'")
    if len(tolerances) > 1:
        raise ValueError(f"'{condition}' has more than one tolerance; write one, like ± 5%")
    scale, offset = _parse_value(kind, label, value_text)
    if tolerances and op != "==":
        raise ValueError(
            f"a tolerance only goes with '==', not '{op}': "
            f"write '{label} {op} {value_text}' or '{label} == {value_text} ± {tolerances[0]}'"
        )
    if op == "==" and kind == "duration" and not tolerances:
        raise ValueError(
            f"'==' on {label} needs a tolerance because timings are never exact: "
            f"write e.g. '{label} == {value_text} ± 5%'"
        )
    tolerance, relative = (
        _parse_tolerance(kind, label, tolerances[0]) if tolerances else (None, False)
    )
    if kind == "duration" and not scale and tolerance is not None and not relative \
            and tolerance >= offset > 0:
        # `elapsed == 300ms ± 5`: a bare number is seconds, so the bound would start below 0.
        bare = _split_quantity(tolerances[0]) == (tolerances[0], "")
        hint = f": did you mean ± {tolerances[0]}%?" if bare else ""
        raise ValueError(f"the tolerance ± {_format(kind, tolerance)} is as wide as {value_text} itself, so "
                         f"the bound would take in no time at all{hint}")
    return Expectation(written, metric, other, op, scale, offset, tolerance, relative, pass_rate)


def _split_pass_rate(written: str) -> tuple[str, float | None]:
    """Split ``elapsed <= 4s in 90% of runs`` into the condition and the rate (0.9)."""
    match = _PASS_RATE.search(written)
    if match is None:
        start = _PASS_RATE_START.search(written)
        if start is not None:
            raise ValueError(
                f"'{written[start.start():].strip()}' is not a pass rate: "
                f"write it as 'in 90% of runs', after the rest of the expectation"
            )
        return written, None
    rate = float(match["rate"])
    if not 0 < rate <= 100:
        raise ValueError(
            f"a pass rate is a percentage above 0 and at most 100, like 'in 90% of runs' (got {rate:g}%)"
        )
    return written[: match.start()], float(match["rate"] + "e-2")


def _unknown_metric(name: str) -> str:
    close = difflib.get_close_matches(name, METRICS, n=2)
    if close:
        return f"unknown metric '{name}' (did you mean {' or '.join(map(repr, close))}?)"
    return f"unknown metric '{name}': use one of {_KNOWN}"


def _bad_operator(label: str, op: str) -> str:
    if not op:
        return f"expected an operator after '{label}': one of {', '.join(OPERATORS)}"
    if op in _OPERATOR_TYPOS:
        return f"unknown operator '{op}' (did you mean '{_OPERATOR_TYPOS[op]}'?)"
    return f"unknown operator '{op}': use one of {', '.join(OPERATORS)}"


def _parse_value(kind: str, label: str, text: str) -> tuple[float, float]:
    """Return ``(scale, offset)``: the value is ``scale * ideal + offset``."""
    if not _MENTIONS_IDEAL.search(text):
        return 0.0, _parse_amount(kind, label, text)
    if kind != "duration":
        raise ValueError(f"only durations can be written over ideal: {label} takes {_TAKES[kind]}")
    match = _OVER_IDEAL.fullmatch(text)
    if (match is None or (match["before"] and match["after"])
            or (match["offset"] and _MENTIONS_IDEAL.search(match["offset"]))):
        raise ValueError(
            f"'{text}' is not an expression over ideal: "
            "write ideal, ideal * 1.05, 1.05 * ideal, ideal + 100ms or ideal - 50ms"
        )
    scale = float(match["before"] or match["after"] or 1.0)
    offset = _parse_amount(kind, label, match["offset"]) if match["offset"] else 0.0
    return scale, -offset if match["sign"] == "-" else offset


def _parse_amount(kind: str, label: str, text: str) -> float:
    """Return the base-unit amount (seconds, bytes, count, fraction, factor) of ``text``."""
    quantity = _split_quantity(text)
    if quantity is not None:
        number, unit = quantity
        if kind == "duration" and unit in DURATION_UNITS:
            return parse_duration(number + unit)
        if kind == "size" and unit in SIZE_UNITS:
            return float(parse_size(number + unit))
        if kind == "count" and not unit and float(number).is_integer():
            return float(number)
        if kind == "factor" and unit in ("", "x", "×"):
            return float(number)
        if kind == "share" and unit == "%" and float(number) <= 100:
            return float(number + "e-2")  # parsed as a decimal: 99.5% is exactly 199/200
        if kind == "share" and not unit and float(number) <= 1:
            return float(number)
        if kind == "share" and not unit and float(number) <= 100:
            raise ValueError(f"'{text}' does not fit {label} (did you mean {number}%?)")
    raise ValueError(f"'{text}' does not fit {label}: {label} takes {_TAKES[kind]}")


def _parse_tolerance(kind: str, label: str, text: str) -> tuple[float, bool]:
    """Return ``(amount, relative)``; a relative tolerance is a fraction of the value."""
    example = f"± {_TOLERANCE_SAMPLE[kind]}"
    if not text:
        raise ValueError(f"expected a tolerance after '±', like ± 5% or {example}")
    quantity = _split_quantity(text)
    if quantity is not None and quantity[1] == "%":
        # Of a share, a percentage is points of it (intact == 90% ± 5% is 85% .. 95%), as
        # anyone reading it would take it; of anything else, a fraction of the value.
        return float(quantity[0] + "e-2"), kind != "share"
    try:
        return _parse_amount(kind, label, text), False
    except ValueError:
        raise ValueError(
            f"tolerance '{text}' does not fit {label}: write a percentage like ± 5% "
            f"or an amount like {example}"
        ) from None


def _split_quantity(text: str) -> tuple[str, str] | None:
    """Split ``250ms`` into ``("250", "ms")``; None when ``text`` is not a number."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    if match.end() < len(text):
        raise ValueError(f"unexpected '{text[match.end() :]}' after '{match[0].strip()}'")
    return match["number"], match["unit"]


# --- the expectation ------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """One parsed expectation; the value it compares with is ``scale * ideal + offset``.

    Amounts are in the metric's base unit: seconds, bytes, a count, a fraction (shares)
    or a factor.
    """

    text: str  # as the user wrote it, whitespace collapsed
    metric: str
    other: str | None  # the OTHER of speedup(OTHER)
    op: str
    scale: float  # times ideal; 0.0 when the value does not mention ideal
    offset: float
    tolerance: float | None = None  # '==' only; a fraction of the value when relative
    relative: bool = False
    pass_rate: float | None = None  # the share of repeated runs it must hold in (0..1]
    # Where it was written, when it came from a scenario file (set by the loader).
    line: int | None = field(default=None, compare=False)

    @property
    def meaning(self) -> tuple[object, ...]:
        """What it checks, however written: `errors==0` and `errors == 0`, `intact == 1` and
        `intact == 100%`, `elapsed <= 1s` and `elapsed <= 1000ms` mean one thing."""
        return (self.metric, self.other, self.op, self.scale, self.offset, self.tolerance, self.relative,
                self.pass_rate)

    def holds_often_enough(self, passes: int, runs: int) -> bool:
        """Did it hold in enough of ``runs`` repeated runs? Every run, without a pass rate."""
        if runs <= 0:
            return False
        required = 1.0 if self.pass_rate is None else self.pass_rate
        share = passes / runs
        return share >= required or _same(share, required)

    @property
    def kind(self) -> str:
        """The kind of the metric: duration, size, count, share or factor."""
        return METRICS[self.metric]

    @property
    def uses_ideal(self) -> bool:
        return self.scale != 0.0

    def target(self, ideal: float) -> float:
        """The value as written, with ``ideal`` (seconds) put in."""
        # Guarded so that an unused NaN ideal cannot poison a plain value (0 * nan).
        return self.scale * ideal + self.offset if self.uses_ideal else self.offset

    def bound(self, ideal: float) -> tuple[float, float]:
        """Return ``(low, high)``, the range the measured value may take (±inf if open)."""
        target = self.target(ideal)
        if self.op in ("<", "<="):
            return -math.inf, target
        if self.op in (">", ">="):
            return target, math.inf
        if self.tolerance is None:
            return target, target
        width = self.tolerance * abs(target) if self.relative else self.tolerance
        return target - width, target + width

    def describe_bound(self, ideal: float) -> str:
        """The bound for humans: ``<= 4.250s``, ``11.400s .. 12.600s``, ``== 100%``."""
        low, high = self.bound(ideal)
        if self.op == "==" and self.tolerance is not None:
            return f"{_format(self.kind, low)} .. {_format(self.kind, high)}"
        if self.op == "==":
            return f"== {_format(self.kind, low)}"
        return f"{self.op} {_format(self.kind, high if self.op in ('<', '<=') else low)}"

    def format_measured(self, value: float) -> str:
        """A measured value of the metric with its unit: ``12.004s``, ``16B``, ``3.01x``."""
        if self.kind == "factor" and not math.isnan(value):
            return f"{value:.2f}x"
        if self.kind == "share" and not math.isnan(value):
            return format_share(value)
        return _format(self.kind, value)

    def __str__(self) -> str:
        return self.text


def _format(kind: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if kind == "duration":
        return format_duration(value)
    if kind == "size":
        shown = format_size(value)
        if value < 1000:
            return shown
        # format_size rounds to one decimal; a bound of 4096 bytes must not read "4.1KB".
        return shown if float(shown[:-2]) * SIZE_UNITS[shown[-2:]] == value else f"{value:.0f}B"
    if kind == "share":
        return f"{value * 100:.6g}%"
    if kind == "count" and float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:g}"


# --- evaluation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether one expectation held in one run, with the measured value and the bound."""

    expectation: Expectation
    passed: bool
    actual: float  # in the metric's base unit; NaN when the run could not measure it
    bound: str  # Expectation.describe_bound of the run's ideal

    def actual_text(self) -> str:
        """The measured value with its unit: ``12.004s``, ``16B``, ``100%``, ``3.01x``."""
        return self.expectation.format_measured(self.actual)


def evaluate(
    expectation: Expectation, metrics: Mapping[str, float], elapsed_of: Mapping[str, float]
) -> Verdict:
    """Check ``expectation`` against one run.

    ``metrics`` maps metric names to the run's values (durations in seconds, ``intact``
    as a fraction); ``elapsed_of`` maps client names to their elapsed seconds, for
    ``speedup(OTHER)``. A NaN measurement fails. Raises KeyError when a metric, the
    ideal (if the value uses it) or OTHER is missing.
    """
    if expectation.other is not None:
        elapsed = metrics["elapsed"]
        # A zero elapsed is a broken measurement, not an infinite speedup: fail it.
        actual = elapsed_of[expectation.other] / elapsed if elapsed > 0 else math.nan
    else:
        actual = float(metrics[expectation.metric])  # a count may come in as an int
    ideal = metrics["ideal"] if expectation.uses_ideal else math.nan
    low, high = expectation.bound(ideal)
    return Verdict(
        expectation=expectation,
        passed=_holds(expectation.op, actual, low, high),
        actual=actual,
        bound=expectation.describe_bound(ideal),
    )


def _holds(op: str, actual: float, low: float, high: float) -> bool:
    if math.isnan(actual) or math.isnan(low) or math.isnan(high):
        return False
    if op == "<":
        return actual < high and not _same(actual, high)
    if op == ">":
        return actual > low and not _same(actual, low)
    at_least = actual >= low or _same(actual, low)
    at_most = actual <= high or _same(actual, high)
    if op == "<=":
        return at_most
    if op == ">=":
        return at_least
    return at_least and at_most


def _same(a: float, b: float) -> bool:
    # Bounds are computed in floats (250ms is 250 * 0.001, 5% of 12s is 0.6000000000000001),
    # so a value equal to the bound as written must compare equal to it.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
