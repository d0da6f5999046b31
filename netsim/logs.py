"""Structured logging of run events: the one place where structlog is configured.

An :class:`EventLog` built here renders each event (``netsim.events``) to every sink
asked for: JSON lines for a file (``--log-json``) and a readable line for the console
(``-v``). Two things make the log one a person can follow:

* Time order across the run's processes. The servers and the client model send their
  events in batches, each process on its own beat, so they arrive interleaved a batch
  apart (and a server's events wait until the client reports the connection they
  belong to). The log holds each event back for HOLD, then writes it in the order of
  its time: a thread of its own does that as time passes, so the console keeps up with
  the run. ``flush()`` writes what is held (the session calls it as each client model
  ends, once every event of its run is in).
* Scenario time. ``t`` (and every other time of an event: ``scheduled``, ``lateness``,
  ``accepted``, ``first_byte``, ``ended``) is in scenario seconds, the unit of the table
  and the expectations; ``wall`` beside it is the wall-clock seconds since the run began.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from netsim._units import printable
from netsim.events import Event

# Field order of JSON lines: what, when and where first, then what the event carries.
_LEADING = ("event", "t", "wall", "client", "server", "conn")

# The times an event carries: seconds of the run's clock (or, for lateness, a span of it).
_TIMES = ("t", "scheduled", "lateness", "accepted", "first_byte", "ended", "stopped")

# How long an event is held back for the ones of the other process to catch up: batches
# come every 50 ms from each process (netsim/_processes.py, netsim/clients/_base.py),
# and a server's events may wait one batch more for their connection's client event.
HOLD = 0.25  # wall seconds
TICK = 0.05  # wall seconds between the writer's looks at what is due


def _round_times(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key in (*_TIMES, "wall"):
        value = event_dict.get(key)
        if isinstance(value, float):
            event_dict[key] = round(value, 6)
    return event_dict


def _order_fields(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    leading = {key: event_dict.pop(key) for key in _LEADING if key in event_dict}
    return {**leading, **event_dict}


def _console_line(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> str:
    t = event_dict.pop("t", 0.0)
    wall = event_dict.pop("wall", None)
    event = event_dict.pop("event", "")
    who = "/".join(str(event_dict.pop(key)) for key in ("client", "server") if event_dict.get(key))
    conn = event_dict.pop("conn", None)
    if conn is not None:
        who += f"#{conn}"
    # What an event does not have (a field at None or False) would only be noise here; its
    # times read as the line's own does (lateness=0.000081, not 8.1e-05).
    rest = " ".join(f"{key}={value:.6f}" if key in _TIMES and isinstance(value, float) else f"{key}={value}"
                    for key, value in event_dict.items() if value is not None and value is not False)
    # At time scale 1 the wall time is the scenario time: shown once.
    when = f"{t:10.6f}" if wall is None or wall == t else f"{t:10.6f} (wall {wall:.6f})"
    # A program's output is logged as it wrote it: its escape sequences must not reach a terminal.
    return printable(f"{when}  {event:<17} {who:<18} {rest}".rstrip())


class EventLog:
    """An observer that logs every event, in time order, to the sinks it was made with."""

    def __init__(self, loggers: list[Any], *, time_scale: float,
                 context: Callable[[], dict[str, Any]] | None) -> None:
        self._loggers = loggers
        self._time_scale = time_scale
        self._context = context
        self._held: list[tuple[float, int, Event, dict[str, Any]]] = []
        self._order = itertools.count()  # events of one time keep their order of arrival
        self._lock = threading.Lock()  # the held events, and the sinks' turn
        self._offset: float | None = None  # the monotonic clock minus the run's, as first seen
        self._failure: Exception | None = None  # what a write on the writer's thread raised
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<EventLog sinks={len(self._loggers)} held={len(self._held)}>"

    def __call__(self, event: Event) -> None:
        self._raise_failure()
        # The context (a repeat's number) is the one of the moment the event arrives.
        extra = self._context() if self._context is not None else {}
        with self._lock:
            if self._offset is None:
                self._offset = time.monotonic() - event.t
            heapq.heappush(self._held, (event.t, next(self._order), event, extra))
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_due, name="netsim-log", daemon=True)
            self._writer.start()

    def flush(self) -> None:
        """Write every event held, in time order; the next one starts the run's clock anew
        (a repeat begins at 0)."""
        with self._lock:
            self._write_held(math.inf)
            self._offset = None
        self._raise_failure()

    def close(self) -> None:
        """Write what is held and stop the writer."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        self.flush()

    def _write_due(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                if self._offset is not None:
                    try:
                        self._write_held(time.monotonic() - self._offset - HOLD)
                    except Exception as error:  # raised on the run's thread, at its next event
                        self._failure = error
                        return

    def _write_held(self, until: float) -> None:
        while self._held and self._held[0][0] <= until:
            _, _, event, extra = heapq.heappop(self._held)
            self._write(event, extra)

    def _write(self, event: Event, extra: dict[str, Any]) -> None:
        fields = event.fields()
        name = fields.pop("event")
        scale = self._time_scale
        for key in _TIMES:
            value = fields.get(key)
            if isinstance(value, float):
                fields[key] = value / scale
        fields["wall"] = event.t
        fields.update(extra)
        for logger in self._loggers:
            logger.info(name, **fields)

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure


def make_observer(*, console: TextIO | None = None, json_file: TextIO | None = None,
                  context: Callable[[], dict[str, Any]] | None = None,
                  time_scale: float = 1.0) -> EventLog | None:
    """An event log to the given sinks, in scenario time at ``time_scale``; None when there
    are no sinks.

    ``context()``, when given, adds its fields to every line (``repeat``: the run's number).
    Call ``close()`` once the run is over, ``flush()`` where every event so far is in.
    """
    loggers: list[Any] = []
    if json_file is not None:
        loggers.append(structlog.wrap_logger(
            structlog.WriteLogger(json_file),
            processors=[_round_times, _order_fields, structlog.processors.JSONRenderer()]))
    if console is not None:
        loggers.append(structlog.wrap_logger(
            structlog.WriteLogger(console), processors=[_round_times, _console_line]))
    if not loggers:
        return None
    return EventLog(loggers, time_scale=time_scale, context=context)
