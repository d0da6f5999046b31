"""Baselines: what a scenario's overhead was, to fail when it grows.

Raw times do not travel between machines, and neither does overhead in seconds: the
ideal depends on the scenario, and a slower machine adds more to every run. What does
travel is the overhead *relative to the ideal*:

    overhead ratio = (elapsed - ideal) / ideal

A baseline stores it per client. A later run regressed by

    regression = its overhead ratio - the baseline's overhead ratio

in percentage points of the ideal. ``--max-regression 10%`` fails a client whose
regression is above 0.10: with an ideal of 4 s, a baseline of 4.02 s (+0.5 %) and a run
of 4.50 s (+12.5 %), the regression is 12 points, and it fails.

Ratios depend on the time scale (a fixed overhead is a larger share of a shorter
ideal), so a baseline is only compared with runs at the time scale it was made at.
With ``--repeat``, the median elapsed of each client stands for it.

Each client's entry also holds a fingerprint of what it ran against (its entry and its
servers, the seed left out): a later run whose ideal moved is noted as a change of the
scenario only when the fingerprint changed too; under another seed, an unchanged
scenario's jitter and random faults draw another ideal, and its ratio compares the same.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsim._errors import UsageError
from netsim._files import write_output
from netsim._version import __version__
from netsim.repeat import RepeatResult
from netsim.results import ScenarioResult, json_number
from netsim.scenario import Scenario, needed_servers

FORMAT = "netsim-baseline"
FORMAT_VERSION = 1
DEFAULT_MAX_REGRESSION = 0.10  # 10 percentage points of the ideal
# A client's ideal this much (relative) away from the baseline's says the scenario changed
# (where the fingerprints do not tell otherwise).
IDEAL_CHANGED = 0.01  # 1%
FINGERPRINT_DIGITS = 16  # hex digits of a SHA-256: 64 bits, plenty to tell two versions apart

_PERCENT = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*")


class BaselineError(UsageError):
    """A baseline file cannot be read, or does not fit the run (exit 2)."""


@dataclass(frozen=True)
class ClientBaseline:
    """One client's timing in the baseline; durations in scenario seconds.

    A saved baseline holds the elapsed time and the ratio it makes. A baseline written by
    hand may give only the ratio (``elapsed`` is then NaN); the ratio is what is compared.
    """

    ideal: float
    elapsed: float = math.nan  # the median over the runs, when the baseline was made with --repeat
    stated_ratio: float | None = None  # the file's overhead_ratio, when it has no elapsed
    fingerprint: str | None = None  # of what the client ran against; None in older or hand-made files

    @property
    def overhead_ratio(self) -> float:
        """``(elapsed - ideal) / ideal``; NaN when the ideal is 0 (nothing to compare with)."""
        if self.stated_ratio is not None:
            return self.stated_ratio
        return (self.elapsed - self.ideal) / self.ideal if self.ideal > 0 else math.nan


@dataclass(frozen=True)
class Baseline:
    """A scenario's overhead per client, as one run (or the median of repeats) measured it."""

    scenario: str
    time_scale: float
    clients: dict[str, ClientBaseline]
    runs: int = 1
    netsim_version: str = __version__
    created: str = field(default_factory=lambda: datetime.date.today().isoformat())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": FORMAT_VERSION,
            "scenario": self.scenario, "time_scale": self.time_scale, "runs": self.runs,
            "netsim_version": self.netsim_version, "created": self.created,
            "clients": {label: _client_dict(client) for label, client in self.clients.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> Baseline:
        """Raises ValueError naming what is missing or wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a netsim baseline (no \"format\": \"{FORMAT}\")")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"baseline format version {data.get('version')!r} is not supported: "
                             f"this netsim reads version {FORMAT_VERSION}")
        try:
            clients = {str(label): _client_from(str(label), entry)
                       for label, entry in data["clients"].items()}
            return cls(scenario=str(data["scenario"]), time_scale=float(data["time_scale"]),
                       clients=clients, runs=int(data.get("runs", 1)),
                       netsim_version=str(data.get("netsim_version", "?")),
                       created=str(data.get("created", "?")))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"a key is missing or has the wrong type ({error!r})") from None


def _client_dict(client: ClientBaseline) -> dict[str, Any]:
    """One client's entry in a baseline file."""
    entry: dict[str, Any] = {"ideal": client.ideal, "elapsed": json_number(client.elapsed),
                             "overhead_ratio": json_number(client.overhead_ratio)}
    if client.fingerprint is not None:
        entry["fingerprint"] = client.fingerprint
    return entry


_MISSING = object()


def _client_from(label: str, entry: Any) -> ClientBaseline:
    """One client's entry: its ideal, and its elapsed time, its overhead ratio or both.

    Both must agree: a ratio edited by hand beside an elapsed time it contradicts would
    leave the reader to guess which one is meant. Raises ValueError.
    """
    ideal = _number(label, "ideal", entry["ideal"])
    elapsed = entry.get("elapsed", _MISSING)
    ratio = entry.get("overhead_ratio", _MISSING)
    fingerprint = entry.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ValueError(f"client {label!r}: fingerprint must be a string, got {fingerprint!r}; "
                         f"remove it to compare without one")
    if elapsed in (_MISSING, None) and ratio is _MISSING:
        raise ValueError(f"client {label!r} has neither elapsed nor overhead_ratio")
    if elapsed in (_MISSING, None):
        stated = math.nan if ratio is None else _number(label, "overhead_ratio", ratio)
        return ClientBaseline(ideal=ideal, stated_ratio=stated, fingerprint=fingerprint)
    client = ClientBaseline(ideal=ideal, elapsed=_number(label, "elapsed", elapsed), fingerprint=fingerprint)
    if ratio is not _MISSING:
        stated = math.nan if ratio is None else _number(label, "overhead_ratio", ratio)
        computed = client.overhead_ratio
        agree = (math.isnan(stated) and math.isnan(computed)) or math.isclose(
            stated, computed, rel_tol=1e-6, abs_tol=1e-6)
        if not agree:
            raise ValueError(
                f"client {label!r}: overhead_ratio {ratio} does not match its elapsed and ideal, "
                f"which make (elapsed - ideal) / ideal = {computed:.6g}; correct one of them, or "
                f"remove elapsed to compare with the ratio alone")
    return client


def _number(label: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"client {label!r}: {key} must be a number, got {value!r}")
    return float(value)


def baseline_of(result: ScenarioResult | RepeatResult, scenario: Scenario | None = None) -> Baseline:
    """The baseline a run (or the median of repeated runs) makes; with the ``scenario`` it ran,
    each client's fingerprint too."""
    def of(label: str, ideal: float, elapsed: float) -> ClientBaseline:
        return ClientBaseline(ideal=ideal, elapsed=elapsed,
                              fingerprint=None if scenario is None else fingerprint(scenario, label))

    if isinstance(result, RepeatResult):
        return Baseline(
            scenario=result.scenario, time_scale=result.time_scale, runs=result.count,
            clients={tally.client: of(tally.client, tally.metrics["ideal"].median,
                                      tally.metrics["elapsed"].median)
                     for tally in result.clients})
    return Baseline(
        scenario=result.scenario, time_scale=result.time_scale,
        clients={run.client: of(run.client, run.ideal, run.elapsed) for run in result.runs})


def fingerprint(scenario: Scenario, label: str) -> str:
    """What the client labelled ``label`` runs against, as a short hash: its entry and the
    servers it connects to (their upstreams too), as loaded (a ``poem_file``'s text
    included). The scenario's ``seed`` is left out: it draws the jitter and faults of one
    run, which move the ideal of a scenario that did not change. Values left at their
    defaults are left out, so that a key a later netsim adds does not change it."""
    client = scenario.client(label)
    needed = needed_servers(scenario.targets_of(client), {server.name: server for server in scenario.servers})
    shape = {"client": client.model_dump(mode="json", exclude_defaults=True),
             "servers": [server.model_dump(mode="json", exclude_defaults=True)
                         for server in sorted(needed, key=lambda server: server.name)]}
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_DIGITS]


def save_baseline(baseline: Baseline, path: str | Path) -> None:
    """Write ``baseline`` as JSON (a regular file atomically). Raises OSError."""
    write_output(path, json.dumps(baseline.to_dict(), indent=2) + "\n")


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline file. Raises BaselineError with a message naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline {path} does not exist: make one with "
                            f"`netsim run SCENARIO --save-baseline {path}`") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineError(f"baseline {path} cannot be read: {error}") from None
    try:
        return Baseline.from_dict(json.loads(text))
    except json.JSONDecodeError as error:
        raise BaselineError(f"baseline {path} is not JSON: {error}") from None
    except ValueError as error:
        raise BaselineError(f"baseline {path}: {error}") from None


def parse_regression(text: str) -> float:
    """``10%`` -> 0.10. Raises ValueError for anything but a percentage of 0 or more."""
    match = _PERCENT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a percentage: write one like 10%")
    return float(match[1] + "e-2")


def check_fits(baseline: Baseline, *, scenario: str, time_scale: float, path: str | Path,
               time_scale_option: str = "--time-scale") -> None:
    """Refuse a baseline made for another scenario or at another time scale (BaselineError);
    ``time_scale_option``: how the caller's user sets the time scale."""
    if baseline.scenario != scenario:
        raise BaselineError(f"baseline {path} is of scenario {baseline.scenario!r}, not {scenario!r}")
    if not math.isclose(baseline.time_scale, time_scale, rel_tol=1e-9):
        raise BaselineError(
            f"baseline {path} was made at time scale {baseline.time_scale:g}, this run is at "
            f"{time_scale:g}: overhead ratios only compare at one time scale; pass "
            f"{time_scale_option} {baseline.time_scale:g}, or save a new baseline")


@dataclass(frozen=True)
class Comparison:
    """One client's overhead ratio against the baseline's."""

    client: str
    baseline_ratio: float
    ratio: float
    max_regression: float

    @property
    def regression(self) -> float:
        """How much the overhead ratio grew, in fractions of the ideal (0.12 = 12 points)."""
        return self.ratio - self.baseline_ratio

    @property
    def passed(self) -> bool:
        return self.regression <= self.max_regression or math.isclose(
            self.regression, self.max_regression, rel_tol=1e-9, abs_tol=1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "passed": self.passed,
                "baseline_overhead_ratio": json_number(self.baseline_ratio),
                "overhead_ratio": json_number(self.ratio), "regression": json_number(self.regression)}


@dataclass(frozen=True)
class BaselineReport:
    """How a run compares with a baseline, client by client."""

    path: str
    baseline: Baseline
    max_regression: float
    comparisons: list[Comparison]
    skipped: list[str]  # why a client of the run was not compared, one sentence each
    notes: list[str] = field(default_factory=list)  # of clients compared all the same

    @property
    def passed(self) -> bool:
        return all(comparison.passed for comparison in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "passed": self.passed, "max_regression": self.max_regression,
                "scenario": self.baseline.scenario, "created": self.baseline.created,
                "netsim_version": self.baseline.netsim_version,
                "clients": [comparison.to_dict() for comparison in self.comparisons],
                "skipped": list(self.skipped), "notes": list(self.notes)}


def compare(baseline: Baseline, current: Baseline, *, max_regression: float,
            path: str | Path = "") -> BaselineReport:
    """Compare each client of ``current`` with ``baseline`` (made with :func:`baseline_of`)."""
    comparisons, skipped, notes = [], [], []
    for label, client in current.clients.items():
        before = baseline.clients.get(label)
        if before is None:
            skipped.append(f"{label}: not in the baseline; save a new one to compare it")
        elif math.isnan(before.overhead_ratio) or math.isnan(client.overhead_ratio):
            skipped.append(f"{label}: its ideal is 0 or unknown, so its overhead has no ratio to compare")
        else:
            note = _moved(label, before, client)
            if note is not None:
                notes.append(note)
            comparisons.append(Comparison(label, before.overhead_ratio, client.overhead_ratio,
                                          max_regression))
    return BaselineReport(str(path), baseline, max_regression, comparisons, skipped, notes)


def _moved(label: str, before: ClientBaseline, now: ClientBaseline) -> str | None:
    """A note when the client's ideal moved since the baseline because its scenario changed;
    None when it did not move, or when only the seed's draws moved it (the fingerprints
    agree): the ratio compares all the same."""
    if math.isclose(before.ideal, now.ideal, rel_tol=IDEAL_CHANGED):
        return None
    ideals = f"{label}: its ideal is {now.ideal:.3f}s against {before.ideal:.3f}s in the baseline"
    if before.fingerprint is None or now.fingerprint is None:
        return (f"{ideals}: the scenario changed since it was saved, or its seed drew other jitter "
                f"or faults (the baseline has no fingerprint to tell which: an older netsim saved "
                f"it, or it was written by hand); save a new one")
    if before.fingerprint == now.fingerprint:
        return None
    return f"{ideals}: the scenario changed since it was saved; save a new one"
