"""What every picture of a run is drawn from: the JSON result, read back.

The terminal timeline, the HTML report and ``netsim report`` all draw a :class:`Picture`
made by :func:`picture_of` from the JSON result (``RepeatResult.to_dict()``, or the file
``--json`` wrote), never from the live objects: so a report drawn later from the JSON
alone is the one the run drew, and the JSON is bound to keep what the pictures need.

Times are scenario seconds since each client model started; NaN where a value is not
known (a result written before netsim kept each connection's course has none).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netsim.results import LATENESS_BINS, NOT_PRINTED, Program

# More connections than this in one client model, and its timeline is a summary over
# time (connections open, arrivals, lateness) instead of a row per connection.
MAX_ROWS = 40


class ResultFormatError(ValueError):
    """The data is not a netsim JSON result: the message names the key at fault."""


@dataclass(frozen=True)
class Row:
    """One connection's course."""

    conn: int
    server: str
    start: float
    connected: float
    end: float
    ideal_start: float
    ideal_end: float
    bytes: int
    error: str | None
    intact: bool | None
    arrivals: tuple[tuple[float, int], ...]  # (t, bytes)
    arrival_count: int  # every arrival, the ones not kept included
    emissions: tuple[tuple[float, int, float], ...]  # (t, bytes, lateness)
    emission_count: int
    message: str = ""  # why it ended as it did, where the result says
    unseen: bool = False  # the result says its server saw no connection (`served` is null)
    fault: str | None = None  # the fault its server struck it with, where the result says
    extra: bool = False  # a program's connection beyond its targets (`message`: how it ended)

    @property
    def label(self) -> str:
        return f"+ {self.server}" if self.extra else f"#{self.conn} {self.server}"

    @property
    def never_connected(self) -> bool:
        """Did it fail without a byte, never known to connect (an unanswered handshake)? It
        was connecting all along, and is drawn so: not as connected, then silent."""
        return math.isnan(self.connected) and self.error is not None and not self.bytes

    @property
    def ending(self) -> str:
        """How it ended, in a word: ``eof``, not intact (``eof, cut short``, ``eof,
        corrupted``, ``eof, not in its output``) or the error's kind."""
        if self.extra:
            return f"beyond its targets, {self.message.replace('_', ' ')}"
        if self.error is not None:
            return self.error
        if math.isnan(self.end):
            return "unknown"
        if self.intact is not False:
            return "eof"
        if any(mark in self.message for mark in NOT_PRINTED):  # (what was printed instead may follow)
            return "eof, not in its output"
        if self.fault == "corrupt":
            return "eof, corrupted"
        return "eof, cut short"

    @property
    def drawn(self) -> bool:
        """Is there a course to draw (a start)?"""
        return not math.isnan(self.start)

    @property
    def why_not_drawn(self) -> str:
        """Why a row has no course: a program's connection is known from its server's
        account, so without one its server saw none; else the result predates courses."""
        if self.unseen:
            return f"{self.error or 'no connection'}: its server saw no connection"
        return "no course recorded: a result from an older netsim"


@dataclass(frozen=True)
class Activity:
    """A run in equal time slices (netsim.results.Activity, read back)."""

    slice: float
    open: tuple[int, ...]
    arrivals: tuple[int, ...]
    bytes: tuple[int, ...]
    emissions: tuple[int, ...]
    lateness_max: tuple[float, ...]


@dataclass(frozen=True)
class Change:
    """A server's change while the client model ran (netsim.results.ServerChange, read back)."""

    t: float
    server: str
    what: str
    source: str

    @property
    def text(self) -> str:
        """``a: delay 500ms (phase 1)``."""
        return f"{self.server}: {self.what}" + (f" ({self.source})" if self.source else "")


@dataclass(frozen=True)
class Verdict:
    text: str
    passed: bool
    actual: float  # with repeats, the median over the runs
    bound: str
    held: str = ""  # with repeats: "held 2 of 3 runs"

    @property
    def measured(self) -> str:
        """The measured value with its metric's unit, as the terminal's verdicts show it."""
        from netsim.expectations import parse_expectation
        from netsim.report import measured_text

        try:
            return measured_text(parse_expectation(self.text), self.actual)
        except ValueError:  # written by another version of the grammar: the bare number
            return "n/a" if math.isnan(self.actual) else f"{self.actual:g}"


@dataclass(frozen=True)
class ClientPicture:
    """One client model's run."""

    client: str
    model: str
    passed: bool | None  # None: measured, not judged (the run stopped before its verdicts)
    elapsed: float
    ideal: float
    metrics: Mapping[str, float]
    rows: tuple[Row, ...]
    activity: Activity | None
    lateness_bins: tuple[tuple[float, int], ...]  # (upper bound, emissions); inf for the last
    detail: bool  # every arrival was recorded
    verdicts: tuple[Verdict, ...]
    changes: tuple[Change, ...] = ()  # of the servers, in time order
    program: Program | None = None  # a `command` client's program
    # Over repeated runs: each metric's (min, median, max), and how many runs passed.
    spreads: Mapping[str, tuple[float, float, float]] | None = None
    runs_passed: int | None = None
    compared: bool = False  # another client model's speedup() compares with its run

    @property
    def status(self) -> str:
        """``pass``, ``fail``, or ``unjudged`` (the run stopped before its verdicts)."""
        return "unjudged" if self.passed is None else "pass" if self.passed else "fail"

    @property
    def judged(self) -> str:
        """Its expectations in a few words: ``2 of 3`` held, ``not judged (the run stopped)``,
        ``ran for comparison`` (only another's speedup() names it) or ``none``."""
        if self.passed is None:
            return "not judged (the run stopped)"
        if self.verdicts:
            return f"{sum(verdict.passed for verdict in self.verdicts)} of {len(self.verdicts)}"
        return "ran for comparison" if self.compared else "none"

    @property
    def counted(self) -> str:
        """``3 connections``, and ``and 6 beyond its targets`` where a program made more."""
        extra = sum(row.extra for row in self.rows)
        targets = len(self.rows) - extra
        return (f"{targets} connection{'s' * (targets != 1)}"
                + (f" and {extra} beyond its targets" if extra else ""))

    def summarised(self, rows: int = MAX_ROWS) -> bool:
        """Are there more connections than ``rows``, so that the run is drawn as a summary?"""
        return len(self.rows) > rows

    @property
    def end(self) -> float:
        """The latest time this run's picture must show."""
        times = [self.elapsed, self.ideal, *(row.end for row in self.rows)]
        return max((time for time in times if math.isfinite(time)), default=0.0)


@dataclass(frozen=True)
class Picture:
    """A whole result: every client model's run, the verdict, and the scenario."""

    scenario: str
    description: str
    time_scale: float
    seed: int | None
    passed: bool
    warnings: tuple[str, ...]
    clients: tuple[ClientPicture, ...]
    repeat: int  # how many runs; the pictures are of the first
    source_file: str | None
    source_text: str | None
    error: str | None = None  # why the run did not finish (its `clients` are those that did)
    seeds: tuple[int, ...] = ()  # with repeats, each run's seed, in order

    @property
    def span(self) -> float:
        """The shared time axis: up to the latest end of any client model's run."""
        return max((client.end for client in self.clients), default=0.0)


def elide(text: str, width: int) -> str:
    """``text`` in ``width`` characters, with "…" in place of its middle when it is longer: names
    that differ only at their end (``server-1``, ``server-2``) stay apart."""
    if len(text) <= width:
        return text
    tail = (width - 1) * 2 // 5
    return text[:width - 1 - tail] + "…" + text[len(text) - tail:]


def ticks(span: float, most: int) -> list[float]:
    """Round times from 0 to ``span`` for an axis, at most about ``most`` of them: steps of 1, 2
    or 5 times a power of ten."""
    rough = span / max(most, 1)
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(factor * power for factor in (1, 2, 5, 10) if factor * power >= rough)
    return [index * step for index in range(int(span / step + 1e-9) + 1)]


def seconds_label(seconds: float, unit: float) -> str:
    """A short label of ``seconds`` in the unit that fits ``unit`` (an axis's step): ``2s``,
    ``1.5s``, ``500ms``, ``20µs``."""
    if unit >= 1 or unit == 0 or seconds >= 1 or seconds == 0:
        return f"{seconds:g}s"
    if unit >= 1e-3:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds * 1e6:g}µs"


def count_label(count: int) -> str:
    """A count in five characters at most: ``980``, ``9.1k``, ``14.8k``, ``148k``, ``1.5M``."""
    if count < 1000:
        return str(count)
    # (From 999,500 on, "1M": "1000k" would take a sixth character.)
    value, unit = (count / 1e6, "M") if count >= 999_500 else (count / 1e3, "k")
    text = f"{value:.1f}" if round(value, 1) < 100 else f"{value:.0f}"
    return text.removesuffix(".0") + unit


def picture_of(data: object) -> Picture:
    """Read a JSON result (already parsed) into a Picture.

    Raises ResultFormatError, naming the key at fault, when ``data`` is not a netsim
    result. Keys that older results lack (each connection's course) read as unknown.
    """
    top = _mapping(data, "the result")
    runs = _list(top, "runs", "the result")
    repeat = top.get("repeat")
    source = top.get("source") if isinstance(top.get("source"), Mapping) else {}
    assert isinstance(source, Mapping)
    clients = tuple(_tallied(_client(run, f"runs[{index}]"), repeat) for index, run in enumerate(runs))
    compared = {other for client in clients for other in _compared_with(client)}
    runs_of_repeat = (repeat.get("results") or ()) if isinstance(repeat, Mapping) else ()
    return Picture(
        scenario=_text(top, "scenario", "the result"),
        description=str(source.get("description") or ""),
        time_scale=_number(top, "time_scale", "the result", default=1.0),
        seed=top.get("seed") if isinstance(top.get("seed"), int) else None,
        passed=bool(top.get("passed")),
        warnings=tuple(str(warning) for warning in top.get("warnings") or ()),
        clients=tuple(dataclasses.replace(client, compared=client.client in compared) for client in clients),
        repeat=int(repeat.get("count", 1)) if isinstance(repeat, Mapping) else 1,
        source_file=source.get("file") if isinstance(source.get("file"), str) else None,
        source_text=source.get("text") if isinstance(source.get("text"), str) else None,
        error=str(top["error"]) if top.get("error") is not None else None,
        seeds=tuple(result["seed"] for result in runs_of_repeat
                    if isinstance(result, Mapping) and isinstance(result.get("seed"), int)),
    )


def _compared_with(client: ClientPicture) -> set[str]:
    """The client models whose run ``client``'s speedup() expectations compare with its own."""
    from netsim.expectations import parse_expectation

    others = set()
    for verdict in client.verdicts:
        try:
            other = parse_expectation(verdict.text).other
        except ValueError:  # written by another version of the grammar: no telling
            continue
        if other:
            others.add(other)
    return others


def _tallied(client: ClientPicture, repeat: object) -> ClientPicture:
    """With repeats, a client's verdicts over every run (as the terminal gives them: passed
    often enough, the median measured), in place of its first run's; its pictures stay
    those of the first run."""
    tallies = repeat.get("clients") if isinstance(repeat, Mapping) else None
    tally = next((one for one in tallies or ()
                  if isinstance(one, Mapping) and one.get("client") == client.client), None)
    if tally is None or not isinstance(tally.get("expectations"), list):
        return client
    verdicts = []
    for one in tally["expectations"]:
        if not isinstance(one, Mapping):
            return client
        actual = one.get("actual") if isinstance(one.get("actual"), Mapping) else {}
        assert isinstance(actual, Mapping)
        verdicts.append(Verdict(str(one.get("text", "")), bool(one.get("passed")),
                                _float(actual.get("median")), str(one.get("bound", "")),
                                f"held in {one.get('passes')} of {one.get('runs')} runs"))
    metrics = tally.get("metrics") if isinstance(tally.get("metrics"), Mapping) else {}
    assert isinstance(metrics, Mapping)
    spreads = {str(name): (_float(spread.get("min")), _float(spread.get("median")), _float(spread.get("max")))
               for name, spread in metrics.items() if isinstance(spread, Mapping)}
    passed_runs = tally.get("runs_passed")
    return dataclasses.replace(client, verdicts=tuple(verdicts), passed=bool(tally.get("passed")),
                               spreads=spreads,
                               runs_passed=passed_runs if isinstance(passed_runs, int) else None)


def _client(data: object, where: str) -> ClientPicture:
    run = _mapping(data, where)
    rows = tuple(_row(conn, f"{where}.connections[{index}]")
                 for index, conn in enumerate(_list(run, "connections", where)))
    program = run.get("program") if isinstance(run.get("program"), Mapping) else {}
    assert isinstance(program, Mapping)
    rows += tuple(_extra_row(extra, f"{where}.program.extra[{index}]")
                  for index, extra in enumerate(program.get("extra") or ()))
    metrics = run.get("metrics") if isinstance(run.get("metrics"), Mapping) else {}
    assert isinstance(metrics, Mapping)
    lateness = run.get("lateness") if isinstance(run.get("lateness"), Mapping) else {}
    assert isinstance(lateness, Mapping)
    counts = [int(count) for _, count in _pairs(lateness.get("histogram"))]
    verdicts = tuple(
        Verdict(_text(verdict, "text", f"{where}.expectations[{index}]"), bool(verdict.get("passed")),
                _number(verdict, "actual", f"{where}.expectations[{index}]"), str(verdict.get("bound", "")))
        for index, verdict in enumerate(_mapping(item, f"{where}.expectations[{index}]")
                                        for index, item in enumerate(_list(run, "expectations", where))))
    # A run cut short writes its finished models' runs with `passed: null`: measured, not judged.
    passed = run.get("passed", all(verdict.passed for verdict in verdicts))
    return ClientPicture(
        client=_text(run, "client", where),
        model=str(run.get("model", "")),
        passed=None if passed is None else bool(passed),
        elapsed=_number(run, "elapsed", where),
        ideal=_number(run, "ideal", where),
        metrics={str(name): _float(value) for name, value in metrics.items()},
        rows=rows,
        activity=_activity(run.get("activity"), f"{where}.activity"),
        lateness_bins=tuple(zip(LATENESS_BINS, counts, strict=False)) if len(counts) == len(LATENESS_BINS)
        else (),
        detail=bool(run.get("detail", False)),
        verdicts=verdicts,
        # A result from before netsim kept the servers' changes has none.
        changes=tuple(_change(change, f"{where}.changes[{index}]") for index, change
                      in enumerate(_list(run, "changes", where) if "changes" in run else ())),
        program=_program(run.get("program"), f"{where}.program") if run.get("program") is not None else None,
    )


def _extra_row(data: object, where: str) -> Row:
    """A program's connection beyond its targets, drawn after its targets' rows."""
    extra = _mapping(data, where)
    start = _number(extra, "accepted", where)
    acked = extra.get("acked")
    return Row(conn=0, server=_text(extra, "server", where), start=start, connected=start,
               end=start + _number(extra, "duration", where), ideal_start=math.nan, ideal_end=math.nan,
               bytes=int(acked if isinstance(acked, int) else _number(extra, "bytes", where)), error=None,
               intact=None, arrivals=(), arrival_count=0, emissions=(), emission_count=0,
               message=str(extra.get("how") or ""), extra=True)


def _program(data: object, where: str) -> Program:
    program = _mapping(data, where)
    return Program(argv=[str(arg) for arg in _list(program, "argv", where)],
                   exit_code=int(_number(program, "exit_code", where)),
                   stdout=str(program.get("stdout") or ""), stderr=str(program.get("stderr") or ""),
                   timed_out=bool(program.get("timed_out")),
                   left_running=int(program.get("left_running") or 0),
                   extra_connections=int(program.get("extra_connections") or 0),
                   started=program.get("started") is not False)


def _change(data: object, where: str) -> Change:
    change = _mapping(data, where)
    return Change(t=_number(change, "t", where), server=_text(change, "server", where),
                  what=_text(change, "what", where), source=str(change.get("source") or ""))


def _row(data: object, where: str) -> Row:
    conn = _mapping(data, where)
    error = conn.get("error")
    intact = conn.get("intact")
    served = conn.get("served")
    account = served if isinstance(served, dict) else {}  # the server's, where the result has it
    return Row(
        conn=int(_number(conn, "conn", where)),
        server=_text(conn, "server", where),
        start=_number(conn, "start", where, default=math.nan),
        connected=_number(conn, "connected", where, default=math.nan),
        end=_number(conn, "end", where, default=math.nan),
        ideal_start=_number(conn, "ideal_start", where, default=math.nan),
        ideal_end=_number(conn, "ideal_end", where, default=math.nan),
        bytes=int(_number(conn, "bytes", where, default=0)),
        error=str(error) if error is not None else None,
        intact=intact if isinstance(intact, bool) else None,
        arrivals=tuple((t, int(size)) for t, size in _pairs(conn.get("arrivals"))),
        arrival_count=int(_number(conn, "arrival_count", where, default=0)),
        emissions=tuple((_float(item[0]), int(_float(item[1])), _float(item[2]))
                        for item in conn.get("emissions") or () if _is_point(item, 3)),
        emission_count=int(_number(conn, "emission_count", where, default=0)),
        message=str(conn.get("message") or ""),
        unseen="served" in conn and conn["served"] is None,
        fault=str(account["fault"]) if account.get("fault") else None,
    )


def _activity(data: object, where: str) -> Activity | None:
    if data is None:
        return None
    activity = _mapping(data, where)

    def series(key: str) -> tuple[float, ...]:
        values = activity.get(key)
        if not isinstance(values, Sequence) or isinstance(values, str):
            raise ResultFormatError(f"{where}.{key}: expected a list of numbers")
        return tuple(_float(value) for value in values)

    return Activity(slice=_number(activity, "slice", where),
                    open=tuple(int(value) for value in series("open")),
                    arrivals=tuple(int(value) for value in series("arrivals")),
                    bytes=tuple(int(value) for value in series("bytes")),
                    emissions=tuple(int(value) for value in series("emissions")),
                    lateness_max=series("lateness_max"))


# --- reading JSON values --------------------------------------------------------------------


def _mapping(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ResultFormatError(f"{where}: expected an object, got {type(data).__name__}")
    return data


def _list(data: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ResultFormatError(f"{where}: missing the list {key!r}" if value is None
                                else f"{where}.{key}: expected a list, got {type(value).__name__}")
    return value


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ResultFormatError(f"{where}: missing the text {key!r}" if value is None
                                else f"{where}.{key}: expected text, got {type(value).__name__}")
    return value


_MISSING = object()


def _number(data: Mapping[str, Any], key: str, where: str, *, default: object = _MISSING) -> float:
    if key not in data and default is not _MISSING:
        assert isinstance(default, int | float)
        return float(default)
    value = data.get(key, _MISSING)
    if value is None:  # JSON's null: a value that could not be measured
        return math.nan
    if value is _MISSING:
        raise ResultFormatError(f"{where}: missing the number {key!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultFormatError(f"{where}.{key}: expected a number, got {type(value).__name__}")
    return float(value)


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _is_point(item: object, size: int) -> bool:
    return isinstance(item, list) and len(item) == size


def _pairs(data: object) -> list[tuple[float, float]]:
    """``[[a, b], ...]`` as pairs of numbers (null: infinity, as in the histogram's last bin)."""
    if not isinstance(data, list):
        return []
    return [(math.inf if item[0] is None else _float(item[0]), _float(item[1]))
            for item in data if _is_point(item, 2)]
