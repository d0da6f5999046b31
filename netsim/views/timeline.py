"""The timeline in the terminal: each client model's connections on one shared time axis.

A row per connection, in scenario seconds since its client model started, fitted to
the width given: where it began to connect, each arrival of bytes, its end and how it
ended, and where the ideal model has it end. Client models share the axis, so the
blocking client's staircase stands beside the select client's overlap. A client model
with more connections than fit (``MAX_ROWS``) is drawn as a summary instead: the
connections open over time, the arrivals and the lateness of the servers, each a
sparkline on the same axis.

rich draws it: it knows the terminal's colours (and NO_COLOR, and TERM=dumb), where
escape codes of our own would not; the text it gives back is plain when colour is off.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from netsim._units import format_duration
from netsim.views._picture import Change, ClientPicture, Picture, Row, elide, seconds_label, ticks

if TYPE_CHECKING:
    from rich.text import Text

# Up to this many connections in all, a run on a terminal draws its timeline by default.
AUTO_CONNECTIONS = 50
MIN_AXIS = 20  # columns: narrower than this, a timeline says nothing
# Room after a summary's sparklines for their captions, the longest "  peak 10000 per 300.8ms".
SUMMARY_INFO = 26
MAX_LABEL = 24  # columns of a row's label ("  #1 a"): a longer one loses its middle to "…"
LEVELS = " ▁▂▃▄▅▆▇█"  # a sparkline's heights, from nothing to the peak

# What each mark is, and its style.
START = ("├", "cyan")
HANDSHAKE = ("╌", "cyan dim")
OPEN = ("─", "cyan")
ARRIVAL = ("●", "green")
SENT = ("○", "green")  # a chunk its server sent: where the client reports no reads (a program)
EOF = ("┤", "cyan")
CUT = ("┤", "red")
ERROR = ("✕", "bold red")
IDEAL = ("┊", "yellow")
CHANGE = ("▼", "magenta")
_EMPTY = (" ", "")
# Each mark (and the ruler's, the sparklines' and a cut label's "…") as ASCII, where the
# output cannot encode them (a latin-1 or ASCII locale): one column each, so that rows and
# axis stay aligned.
ASCII_MARKS = {"├": "[", "╌": ".", "─": "-", "●": "*", "○": "o", "┤": "]", "✕": "x", "┊": ":", "▼": "v",
               "┼": "+", "…": "~", **dict(zip(LEVELS[1:], ".:-=+*#@", strict=True))}
SHOWN_CHANGES = 6  # a client model's server changes listed in words (outages first); the rest are counted
LEGEND = ((START, "connect"), (ARRIVAL, "bytes arrived"), (EOF, "EOF"), (ERROR, "error"),
          (IDEAL, "ideal end"))

Cell = tuple[str, str]


def wanted(choice: bool | None, connections: int) -> bool:
    """Is a timeline drawn? ``choice``: --timeline (True), --no-timeline (False), or neither
    (None: on a terminal, for runs of up to AUTO_CONNECTIONS connections)."""
    return choice if choice is not None else connections <= AUTO_CONNECTIONS


def render(picture: Picture, *, width: int = 100, color: bool = False) -> str:
    """The timeline of every client model of ``picture`` as text ``width`` columns wide
    (with ANSI colours when ``color``)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, emoji=False)
    for line in lines(picture, width):
        console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
    return buffer.getvalue()


def lines(picture: Picture, width: int) -> list[Text]:
    """The timeline's lines, each at most ``width`` columns."""
    from rich.text import Text

    drawn = [client for client in picture.clients if not client.summarised()]
    labels = [f"  {row.label}" for client in drawn for row in client.rows] + ["  lateness", "  servers"]
    label_width = min(max(len(label) for label in labels), MAX_LABEL) + 1
    info_width = 2 + 8 + 2 + max([len(row.ending) for client in drawn for row in client.rows] + [8])
    if len(drawn) < len(picture.clients):  # a summary's captions: "peak 10000 per 300.8ms"
        info_width = max(info_width, SUMMARY_INFO)
    axis = Axis(picture.span, max(width - label_width - info_width, MIN_AXIS))
    out = [Text("timeline: scenario seconds since each client model started", style="bold")]
    if picture.error is not None:
        out.append(Text("(the run did not finish: what finished before it stopped)", style="dim"))
    out += [Text(" " * label_width) + axis.labels(),
           Text(" " * label_width) + axis.ruler()]
    for client in picture.clients:
        out.append(_heading(client))
        if client.summarised():
            out += _summary(client, axis, label_width)
        else:
            out += [_row(row, client, axis, label_width) for row in client.rows]
        out += _changes(client, axis, label_width)
    changed = any(client.changes for client in picture.clients)
    legend = Text(" " * label_width)
    # A summary's rows are sparklines: of the per-connection marks, only its errors' stay.
    marks = LEGEND if drawn else tuple(entry for entry in LEGEND if entry[0] in (ERROR, IDEAL))
    if any(_connecting_shown(row, client, axis) for client in drawn for row in client.rows):
        marks = (marks[0], (HANDSHAKE, "connecting"), *marks[1:])
    if any(_sends_drawn(row) for client in drawn for row in client.rows):
        marks = (*marks[:2], (SENT, "server sent (no reads reported)"), *marks[2:])
    for (mark, style), meaning in marks + (((CHANGE, "server changed"),) if changed else ()):
        if len(legend) + len(meaning) + 2 > width and len(legend) > label_width:
            legend.rstrip()
            out.append(legend)  # the rest on a line of its own
            legend = Text(" " * label_width)
        legend.append(mark, style=style)
        legend.append(f" {meaning}  ", style="dim")
    legend.rstrip()
    out.append(legend)
    if picture.repeat > 1:
        out.append(Text(f"(the first of {picture.repeat} runs)", style="dim"))
    return out


def _sends_drawn(row: Row) -> bool:
    """Does the row draw its server's sends (``○``)? Where the client reports no reads of its
    own (a ``command`` client's program), they are what shows when its bytes went."""
    return row.drawn and not row.arrivals and not row.arrival_count and bool(row.emissions)


def _columns(row: Row, client: ClientPicture, axis: Axis) -> tuple[int, int, int]:
    """Where the row begins, is connected (``╌`` before, ``─`` from there) and ends; a
    handshake never answered connects past its end."""
    end = row.end if not math.isnan(row.end) else client.elapsed
    first, last = axis.column(row.start), axis.column(end)
    if row.never_connected:  # connecting all along
        return first, last + 1, last
    return first, axis.column(row.connected) if not math.isnan(row.connected) else first, last


def _connecting_shown(row: Row, client: ClientPicture, axis: Axis) -> bool:
    """Does the row draw a ``╌`` (a column between its start's and its end's marks)?"""
    if not row.drawn:
        return False
    first, connected, last = _columns(row, client, axis)
    return min(connected, last) > first + 1


class Axis:
    """Scenario seconds from 0 to ``span`` on ``columns`` columns."""

    def __init__(self, span: float, columns: int) -> None:
        self.span = span if span > 0 else 1.0
        self.columns = columns

    def __repr__(self) -> str:
        return f"<Axis 0..{self.span:g}s on {self.columns} columns>"

    def column(self, t: float) -> int:
        return min(self.columns - 1, max(0, round(t / self.span * (self.columns - 1))))

    def ticks(self) -> list[float]:
        """Round times, about 8 columns apart: room for each label."""
        return ticks(self.span, self.columns // 8)

    def labels(self) -> Text:
        from rich.text import Text

        cells = [" "] * (self.columns + 8)
        marks = self.ticks()
        step = marks[1] if len(marks) > 1 else self.span
        for tick in marks:
            text = seconds_label(tick, step)
            start = self.column(tick)
            if start + len(text) <= len(cells):
                cells[start:start + len(text)] = text
        return Text("".join(cells).rstrip(), style="dim")

    def ruler(self) -> Text:
        from rich.text import Text

        cells = ["─"] * self.columns
        for tick in self.ticks():
            cells[self.column(tick)] = "┼"
        cells[0] = "├"
        return Text("".join(cells), style="dim")

    def slices(self, count: int, width: float) -> list[range]:
        """For each column, the indices of the ``count`` slices of ``width`` seconds it covers."""
        covered = []
        per_column = self.span / self.columns
        for column in range(self.columns):
            first = int(column * per_column / width)
            last = max(first + 1, math.ceil((column + 1) * per_column / width))
            covered.append(range(min(first, count), min(last, count)))
        return covered


def _heading(client: ClientPicture) -> Text:
    from rich.text import Text

    heading = Text(client.client, style="bold")
    facts = [f"{client.model}" if client.model != client.client else "",
             f"elapsed {format_duration(client.elapsed)}", f"ideal {format_duration(client.ideal)}",
             client.counted]
    if client.summarised():
        facts.append("a summary over time")
    elif not client.detail and client.rows:
        facts.append("only each connection's first arrival recorded")
    heading.append("  " + ", ".join(fact for fact in facts if fact), style="dim")
    return heading


def _row(row: Row, client: ClientPicture, axis: Axis, label_width: int) -> Text:
    from rich.text import Text

    line = Text(elide(f"  {row.label}", label_width - 1).ljust(label_width))
    if not row.drawn:
        line.append(f"({row.why_not_drawn})", style="dim")
        return line
    cells: list[Cell] = [_EMPTY] * axis.columns
    end = row.end if not math.isnan(row.end) else client.elapsed
    first, connected, last = _columns(row, client, axis)
    for column in range(first, last + 1):
        cells[column] = HANDSHAKE if column < connected else OPEN
    if not math.isnan(row.ideal_end):
        column = axis.column(row.ideal_end)
        if cells[column][0] in " ─╌":
            cells[column] = IDEAL
    cells[first] = START
    for t, _ in row.arrivals:
        cells[axis.column(t)] = ARRIVAL
    if _sends_drawn(row):
        for t, _, _ in row.emissions:
            cells[axis.column(t)] = SENT
    if not math.isnan(row.end):
        cells[last] = ERROR if row.error is not None else CUT if row.intact is False else EOF
    _append(line, cells)
    failed = row.error is not None or row.intact is False
    line.append(f"  {format_duration(end - row.start):>8}  ", style="dim")
    line.append(row.ending, style="red" if failed else "dim")
    return line


def _changes(client: ClientPicture, axis: Axis, label_width: int) -> list[Text]:
    """A row marking where the servers changed, and what each change was."""
    from rich.text import Text

    if not client.changes:
        return []
    cells: list[Cell] = [_EMPTY] * axis.columns
    for change in client.changes:
        cells[axis.column(change.t)] = CHANGE
    line = Text("  servers".ljust(label_width))
    _append(line, cells)
    out = [line]
    shown = _worth_saying(client.changes, SHOWN_CHANGES)
    for change in shown:
        said = Text(" " * label_width)
        said.append(CHANGE[0], style=CHANGE[1])
        said.append(f" {format_duration(change.t)}  {change.text}", style="dim")
        out.append(said)
    if len(client.changes) > len(shown):
        out.append(Text(" " * label_width + f"  and {len(client.changes) - len(shown)} more", style="dim"))
    return out


def _worth_saying(changes: Sequence[Change], most: int) -> list[Change]:
    """``most`` of ``changes`` in time order: a server going down, resetting connections or
    failing to come up (what explains a run's errors) before its coming up, and that before
    a change of conditions."""
    def rank(change: Change) -> int:
        what = change.what
        if what.startswith(("down", "not up")) or what.endswith("reset"):
            return 0
        return 1 if what == "up" else 2

    chosen = sorted(range(len(changes)), key=lambda index: (rank(changes[index]), index))[:most]
    return [changes[index] for index in sorted(chosen)]


def _summary(client: ClientPicture, axis: Axis, label_width: int) -> list[Text]:
    from rich.text import Text

    activity = client.activity
    if activity is None or not activity.open:
        return [Text(" " * label_width + "(no activity recorded)", style="dim")]
    covered = axis.slices(len(activity.open), activity.slice)
    per_column = axis.span / axis.columns
    series: list[tuple[str, Sequence[float], Callable[[list[float]], float], Callable[[float], str], str]] = [
        ("open", activity.open, max, lambda peak: f"peak {peak:.0f} open", "cyan"),
        ("arrivals", activity.arrivals, sum,
         lambda peak: f"peak {peak:.0f} per {format_duration(per_column)}", "green"),
        ("lateness", activity.lateness_max, max, lambda peak: f"max {format_duration(peak)}", "yellow"),
    ]
    out = []
    for name, values, combine, caption, style in series:
        column_values = []
        for indices in covered:
            known = [float(values[index]) for index in indices if not math.isnan(values[index])]
            column_values.append(combine(known) if known else math.nan)
        peak = max((value for value in column_values if not math.isnan(value)), default=0.0)
        line = Text(f"  {name}".ljust(label_width))
        cells: list[Cell] = [(_level(value, peak), style) for value in column_values]
        if not math.isnan(client.ideal) and cells[axis.column(client.ideal)][0] == " ":
            cells[axis.column(client.ideal)] = IDEAL
        _append(line, cells)
        line.append(f"  {caption(peak)}" if peak > 0 else "  none", style="dim")
        out.append(line)
    failed = [row for row in client.rows if row.error is not None and not math.isnan(row.end)]
    if failed:  # where connections failed: the one thing a summary must not hide
        line = Text("  errors".ljust(label_width))
        cells = [_EMPTY] * axis.columns
        for row in failed:
            cells[axis.column(row.end)] = ERROR
        _append(line, cells)
        kinds = sorted({row.error for row in failed if row.error is not None})
        line.append(f"  {len(failed)} ({', '.join(kinds)})", style="red")
        out.append(line)
    return out


def _level(value: float, peak: float) -> str:
    if math.isnan(value) or value <= 0 or peak <= 0:
        return " "
    return LEVELS[max(1, round(value / peak * (len(LEVELS) - 1)))]


def _append(line: Text, cells: list[Cell]) -> None:
    """Append cells, one span per run of a style (not one per cell)."""
    run, style = "", cells[0][1] if cells else ""
    for char, cell_style in cells:
        if cell_style != style:
            line.append(run, style=style or None)
            run, style = "", cell_style
        run += char
    line.append(run, style=style or None)
