"""Live progress on a terminal while a client model runs: its connections done, the bytes
it received, and its elapsed time against its ideal.

:class:`LiveProgress` wraps the progress it adds to (the live table): it passes every
call on, and between a client model's start and its row it keeps one line at the bottom
of the terminal up to date, then clears it, so that the table reads as it would without
it. rich draws the line (its bar, the refresh on a thread of its own, the cursor
movements that clear it), which hand-written escape codes would only imitate.

The command line shows it only on a terminal, never with ``-q`` or ``-v`` (the event log
is the progress then); the pytest plugin never asks for it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from netsim._units import format_duration, format_size
from netsim.events import BytesReceived, ClientStarted, ConnEnded, ConnFailed, EofReceived, Event

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from netsim.outcome import Plan
    from netsim.results import RunResult
    from netsim.session import Progress

SHOW_AFTER = 0.3  # wall seconds: a client model done sooner leaves no line to flicker
REFRESH = 8  # times a second


@dataclass
class _Client:
    """What is known of the client model under way."""

    label: str
    ideal: float  # scenario seconds
    connections: int
    number: int  # which of the run's client models, 1-based
    announced: float = field(default_factory=time.monotonic)  # its servers about to start
    started: float | None = None  # the model itself began (ClientStarted arrived), monotonic
    received: dict[int, int] = field(default_factory=dict)  # bytes by connection
    ended: set[int] = field(default_factory=set)  # connections the client saw end
    served: int = 0  # connections the servers saw end (all a program's client tells)
    acked: int = 0  # bytes their clients' kernels acknowledged


PROGRESS_STYLE = "cyan"  # the bar's, as the timeline draws a connection


class LiveProgress:
    """A live line per client model under way, on a terminal ``stream``, around ``inner``."""

    def __init__(self, inner: Progress, stream: TextIO) -> None:
        self._inner = inner
        self._stream = stream
        self._live: Live | None = None
        self._client: _Client | None = None
        self._time_scale = 1.0
        self._clients = 0
        self._number = 0

    def __repr__(self) -> str:
        label = None if self._client is None else self._client.label
        return f"<LiveProgress client={label!r} live={self._live is not None}>"

    # --- Progress -------------------------------------------------------------------------

    def warn(self, message: str) -> None:
        self._inner.warn(message)

    def started(self, plan: Plan) -> None:
        self._time_scale = plan.time_scale
        self._clients = len(plan.clients)
        self._inner.started(plan)

    def repeat_started(self, number: int) -> None:
        self._number = 0
        self._inner.repeat_started(number)

    def client_started(self, client: str, ideal: float, connections: int) -> None:
        self._number += 1
        self._client = _Client(client, ideal, connections, self._number)
        self._inner.client_started(client, ideal, connections)
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._stream, highlight=False, emoji=False)
            self._live = Live(get_renderable=self._render, console=console, transient=True,
                              refresh_per_second=REFRESH, redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def measured(self, run: RunResult) -> None:
        self.close()
        self._inner.measured(run)

    def unfinished(self, seed: int | None) -> None:
        self.close()
        self._inner.unfinished(seed)

    # --- events -------------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Count what the run under way has done (called with every event, as it arrives)."""
        client = self._client
        if client is None:
            return
        match event:
            case ClientStarted():
                client.started = time.monotonic()
            case BytesReceived():
                client.received[event.conn] = client.received.get(event.conn, 0) + event.bytes
            case EofReceived() | ConnFailed():
                client.received[event.conn] = event.bytes
                client.ended.add(event.conn)
            case ConnEnded():
                client.served += 1
                client.acked += event.acked if event.acked is not None else event.bytes

    def close(self) -> None:
        """Clear the line (the run is over, or stopped)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    # --- drawing ------------------------------------------------------------------------------

    def line(self) -> str:
        """The progress of the client model under way, as plain text (empty before SHOW_AFTER)."""
        client = self._client
        if client is None or time.monotonic() - client.announced < SHOW_AFTER:
            return ""
        which = f"{client.label} [{client.number}/{self._clients}]"
        if client.started is None:
            return f"{which}  starting its servers"
        elapsed = (time.monotonic() - client.started) / self._time_scale
        done = max(len(client.ended), client.served)
        received = sum(client.received.values()) if client.received else client.acked
        ideal = f" of ideal {format_duration(client.ideal)}" if math.isfinite(client.ideal) else ""
        return (f"{which}  {format_duration(elapsed)}{ideal}  {done}/{client.connections} connections "
                f"done  {format_size(received)} received")

    def _render(self) -> RenderableType:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        text = self.line()
        client = self._client
        if not text or client is None:
            return Text("")
        grid = Table.grid(padding=(0, 1))
        ideal = client.ideal if math.isfinite(client.ideal) and client.ideal > 0 else None
        # rich's own bar is pink-red, which reads as a failure: netsim's connections' cyan.
        if client.started is None or ideal is None:  # a pulse: nothing to measure against yet
            bar = ProgressBar(total=None, width=20, pulse_style=PROGRESS_STYLE)
        else:
            elapsed = (time.monotonic() - client.started) / self._time_scale
            bar = ProgressBar(total=ideal, completed=min(elapsed, ideal), width=20,
                              complete_style=PROGRESS_STYLE, finished_style=PROGRESS_STYLE)
        grid.add_row(bar, Text(text, overflow="ellipsis", no_wrap=True))
        return grid
