"""Structured logging of run events: the one place where structlog is configured.

An observer built here renders each event (``netsim.events``) to every sink asked
for: JSON lines for a file (``--log-json``) and a readable line for the console (``-v``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from netsim.events import Event, Observer

# Field order of JSON lines: what, when and where first, then what the event carries.
_LEADING = ("event", "t", "client", "server", "conn")


def _round_times(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key in ("t", "scheduled", "lateness"):
        value = event_dict.get(key)
        if isinstance(value, float):
            event_dict[key] = round(value, 6)
    return event_dict


def _order_fields(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    leading = {key: event_dict.pop(key) for key in _LEADING if key in event_dict}
    return {**leading, **event_dict}


def _console_line(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> str:
    t = event_dict.pop("t", 0.0)
    event = event_dict.pop("event", "")
    who = "/".join(str(event_dict.pop(key)) for key in ("client", "server") if event_dict.get(key))
    conn = event_dict.pop("conn", None)
    if conn is not None:
        who += f"#{conn}"
    # What an event does not have (a field at None or False) would only be noise here.
    rest = " ".join(f"{key}={value}" for key, value in event_dict.items()
                    if value is not None and value is not False)
    return f"{t:10.6f}  {event:<17} {who:<18} {rest}".rstrip()


def make_observer(*, console: TextIO | None = None, json_file: TextIO | None = None,
                  context: Callable[[], dict[str, Any]] | None = None) -> Observer | None:
    """An observer that logs every event to the given sinks; None when there are none.

    ``context()``, when given, adds its fields to every line (``repeat``: the run's number).
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

    def observe(event: Event) -> None:
        fields = event.fields()
        name = fields.pop("event")
        if context is not None:
            fields.update(context())
        for logger in loggers:
            logger.info(name, **fields)

    return observe
