"""The HTML report: one self-contained file that needs no network to be opened.

Everything is inline: the CSS, the SVG pictures, the system's own fonts; no script, no
CDN. It is drawn from the JSON result alone (netsim.views._picture), so ``run --html``
and ``netsim report RESULT.json --html`` draw the same page: the summary table, a
timeline per client model (its connections on a shared axis, the servers' emissions
above each, the client's arrivals on it, the ideal end marked), a lateness histogram
per client model, every expectation with its verdict and measured value, and the
scenario's text.

Elements carry what a test (or a script) needs to find them: ``data-client`` on each
client model's figure, ``data-conn`` and ``data-ending`` on each timeline row,
``data-verdict`` on each expectation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from netsim._units import format_share, format_size, printable
from netsim._version import __version__
from netsim.report import command_line, duration_text, program_ending, signed_duration_text
from netsim.views._picture import (
    ClientPicture,
    Picture,
    ResultFormatError,
    Row,
    count_label,
    elide,
    picture_of,
    seconds_label,
    ticks,
)

# More connections than this in a client model, and its timeline is a summary over time.
HTML_ROWS = 100

# The timeline's geometry, in SVG units (the picture scales to the page's width).
WIDTH = 1100
LABEL = 130  # the connection's label, left of the plot
LABEL_CHARS = 18  # what fits of it at the font's size; a longer one loses its middle (whole on hover)
INFO = 150  # its duration and ending, right of it
PLOT = WIDTH - LABEL - INFO
AXIS = 30  # the time labels above the rows
SUMMARY_ROW = 70  # each chart of a summarised run
TEXT_UNITS = 7  # what a character of 12px text takes, about (wider than most)
# A lateness histogram's geometry: each bin wide enough for its count ("14.8k", 12px text)
# above its bar and its bound ("500µs", 10px) below, side by side with the next bin's.
HISTOGRAM_WIDTH = 340
HISTOGRAM_MARGIN = 10
HISTOGRAM_STEP = 50

STYLE = """
/* Marks keep 3:1 against what they are drawn on (WCAG's non-text contrast): an arrival
   against a bar's fill (#d1e9ff, 3.6:1), the ideal's orange against the page (4.5:1). */
:root { --ink: #1f2933; --muted: #667085; --line: #d0d5dd; --bg: #ffffff; --panel: #f8f9fb;
  --pass: #12805c; --fail: #c4320a; --conn: #2e90fa; --arrival: #08875a; --emission: #7a5af8;
  --ideal: #b95e00; --late: #7a5af8; --change: #c11574; }
* { box-sizing: border-box; }
body { margin: 0; padding: 28px 36px 48px; color: var(--ink); background: var(--bg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; display: flex; align-items: center; gap: 14px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 2px; }
p { margin: 4px 0; }
.muted, figcaption .facts { color: var(--muted); }
.badge { font-size: 13px; font-weight: 700; letter-spacing: .05em; padding: 3px 10px; border-radius: 999px;
  color: #fff; }
.pass .badge, .badge.pass { background: var(--pass); }
.fail .badge, .badge.fail { background: var(--fail); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 12px; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-size: 13px; color: var(--muted); font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
tr.fail td { background: #fef3f2; }
.verdict { font-weight: 700; font-size: 13px; }
tr.pass .verdict { color: var(--pass); }
tr.fail .verdict { color: var(--fail); }
figure { margin: 10px 0 22px; }
figcaption { margin-bottom: 2px; }
figcaption b { font-size: 15px; }
svg { width: 100%; height: auto; display: block; }
/* A timeline keeps its text readable: drawn at its own size at most (12px text), and on a
   narrow screen no smaller than 880 units wide, scrolled sideways rather than shrunk. */
.plot, .scroll { overflow-x: auto; }
.plot > svg { min-width: 880px; max-width: 1100px; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  fill: var(--ink); }
svg .tick { fill: var(--muted); }
svg .note { paint-order: stroke; stroke: var(--bg); stroke-width: 4px; stroke-linejoin: round; }
svg .grid { stroke: #eaecf0; }
svg .bar { fill: #d1e9ff; stroke: var(--conn); }
svg .connecting { stroke: var(--conn); stroke-dasharray: 3 2; }
svg .arrival { fill: var(--arrival); stroke: #fff; stroke-width: .8; }
svg .emission { fill: var(--emission); }
svg .ideal { stroke: var(--ideal); stroke-width: 2; stroke-dasharray: 4 3; }
svg .ghost { fill: none; stroke: var(--ideal); stroke-dasharray: 2 2; }
svg .end { stroke: var(--conn); stroke-width: 2; }
svg .error { stroke: var(--fail); stroke-width: 2.4; }
svg .failed { fill: var(--fail); }
svg .area { fill: #d1e9ff; stroke: var(--conn); }
svg .column { fill: var(--arrival); }
svg .late { fill: var(--late); }
svg .hist { fill: var(--late); }
svg .change { stroke: var(--change); stroke-width: 1.5; stroke-dasharray: 6 3; }
svg .change-mark { fill: var(--change); }
ul.changes { margin: 4px 0 0; padding-left: 18px; color: var(--muted); font-size: 13px; }
.legend { display: flex; flex-wrap: wrap; gap: 18px; color: var(--muted); font-size: 13px;
  margin: 6px 0 4px; }
.legend svg { width: 26px; height: 14px; display: inline-block; vertical-align: middle; }
.histograms { display: grid; gap: 12px 28px; }
@media (max-width: 600px) { body { padding: 16px 14px 32px; } }
.warnings li, .unfinished { color: var(--fail); }
.unfinished { font-weight: 600; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
  overflow-x: auto; font: 13px/1.5 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
td.name { max-width: 16em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
footer { margin-top: 36px; color: var(--muted); font-size: 13px; }
"""


def html_report(result: object) -> str:
    """The HTML report of a JSON result (parsed), as one self-contained page.

    Raises ResultFormatError when ``result`` is not a netsim result.
    """
    picture = picture_of(result)
    # A run that did not finish was not judged: it did not fail an expectation.
    verdict = "passed" if picture.passed else "did not finish" if picture.error is not None else "FAILED"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>netsim: {escape(picture.scenario)}, {verdict}</title>",
        f"<style>{STYLE}</style></head>",
        f'<body class="{"pass" if picture.passed else "fail"}">',
        _header(picture),
        _summary(picture),
        _timelines(picture),
        _histograms(picture),
        _expectations(picture),
        _programs(picture),
        _warnings(picture),
        _source(picture),
        f'<footer>drawn by netsim {escape(__version__)} from the JSON result alone; times in '
        f"scenario seconds</footer>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


__all__ = ["ResultFormatError", "html_report"]


# --- sections ---------------------------------------------------------------------------------


SHOWN_SEEDS = 5  # of repeated runs' seeds, in the header (the JSON result keeps every one)


def _header(picture: Picture) -> str:
    verdicts = [verdict for client in picture.clients for verdict in client.verdicts]
    held = sum(verdict.passed for verdict in verdicts)
    finished = " finished" if picture.error is not None else ""
    facts = [f"{len(picture.clients)} client model{'s' * (len(picture.clients) != 1)}{finished}",
             f"{held} of {len(verdicts)} expectations held" if verdicts
             else "no expectations judged" if picture.error is not None else "no expectations"]
    if picture.repeat > 1:
        facts.append(f"{picture.repeat} runs (verdicts over them all, pictures of the first)")
    if picture.time_scale != 1:
        facts.append(f"time scale {picture.time_scale:g}")
    if len(set(picture.seeds)) > 1:  # each run drew its own: no one seed draws them all again
        shown = ", ".join(str(seed) for seed in picture.seeds[:SHOWN_SEEDS])
        facts.append(f"a seed per run: {shown}{', …' if len(picture.seeds) > SHOWN_SEEDS else ''}")
    elif picture.seed is not None:
        facts.append(f"seed {picture.seed}")
    badge = "PASSED" if picture.passed else "DID NOT FINISH" if picture.error is not None else "FAILED"
    description = f"<p>{escape(picture.description.strip())}</p>" if picture.description.strip() else ""
    unfinished = (f'<p class="unfinished" id="unfinished">The run did not finish: {escape(picture.error)}. '
                  f"{'What finished before is drawn below.' if picture.clients else 'Nothing finished.'}</p>"
                  if picture.error is not None else "")
    return (f'<header><h1>{escape(picture.scenario)} <span class="badge" id="verdict">{badge}</span></h1>'
            f'{description}<p class="muted">{escape(" · ".join(facts))}</p>{unfinished}</header>')


_COLUMNS = ("client", "elapsed", "ideal", "overhead", "ttfb.p50", "bytes", "errors", "intact",
            "lateness.p99", "expectations")


def _summary(picture: Picture) -> str:
    if not picture.clients:  # a run that stopped before any client model finished
        return ""
    rows = []
    for client in picture.clients:
        metric = client.metrics
        overhead = metric.get("overhead", math.nan)
        intact = metric.get("intact", math.nan)
        cells = [escape(client.client), duration_text(client.elapsed), duration_text(client.ideal),
                 signed_duration_text(overhead),
                 duration_text(metric.get("ttfb.p50", math.nan)),
                 "n/a" if math.isnan(metric.get("bytes", math.nan)) else format_size(metric["bytes"]),
                 "n/a" if math.isnan(metric.get("errors", math.nan)) else f"{metric['errors']:.0f}",
                 format_share(intact),
                 duration_text(metric.get("lateness.p99", math.nan)),
                 client.judged]
        rows.append(f'<tr class="{client.status}" data-client="{escape(client.client)}">'
                    f'<td class="name" title="{escape(client.client)}">{cells[0]}</td>'
                    + "".join(f"<td>{cell}</td>" for cell in cells[1:]) + "</tr>")
    head = "".join(f"<th>{escape(name)}</th>" for name in _COLUMNS)
    title = "Summary" if picture.repeat == 1 else f"Summary of the first of {picture.repeat} runs"
    return (f'<section id="summary"><h2>{title}</h2><div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{_spreads(picture)}</section>')


def _spreads(picture: Picture) -> str:
    """Over repeated runs, each client's spread: the table the terminal prints above its verdicts."""
    clients = [client for client in picture.clients if client.spreads]
    if picture.repeat == 1 or not clients:
        return ""
    rows = []
    for client in clients:
        assert client.spreads is not None
        cells = [escape(client.client), f"{client.runs_passed} of {picture.repeat}"]
        for metric, shown in (("elapsed", duration_text), ("overhead", signed_duration_text)):
            low, middle, high = client.spreads.get(metric, (math.nan,) * 3)
            cells.append(" / ".join(shown(value) for value in (low, middle, high)))
        cells.append(duration_text(client.spreads.get("lateness.p99", (math.nan,) * 3)[2]))
        rows.append(f'<tr data-client="{escape(client.client)}">'
                    + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{name}</th>" for name in ("client", "runs passed", "elapsed min / median / max",
                                                   "overhead min / median / max", "lateness.p99 max"))
    return (f'<h3 id="spreads">Over the {picture.repeat} runs</h3><div class="scroll"><table><thead><tr>'
            f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _timelines(picture: Picture) -> str:
    if not picture.clients:
        return ""
    span = picture.span if picture.span > 0 else 1.0
    figures = []
    for client in picture.clients:
        facts = [client.counted,
                 f"elapsed {duration_text(client.elapsed)}", f"ideal {duration_text(client.ideal)}"]
        if client.model and client.model != client.client:
            facts.insert(0, f"model {client.model}")
        if client.summarised(HTML_ROWS):
            facts.append(f"more than {HTML_ROWS}: drawn as a summary over time")
            svg = _summary_svg(client, span)
        elif not client.detail and client.rows:
            facts.append("only each connection's first arrival and no emission recorded")
            svg = _rows_svg(client, span)
        else:
            svg = _rows_svg(client, span)
        figures.append(
            f'<figure class="client {client.status}" data-client="{escape(client.client)}">'
            f'<figcaption><b>{escape(client.client)}</b> <span class="facts">{escape(" · ".join(facts))}'
            f'</span></figcaption><div class="plot">{svg}</div>{_changes_list(client)}</figure>')
    return ('<section id="timelines"><h2>Timelines</h2>'
            '<p class="muted">Every client model on one axis: scenario seconds since it started.</p>'
            f"{_legend(picture)}{''.join(figures)}</section>")


def _legend(picture: Picture) -> str:
    """What each mark means: of a connection's row where one is drawn, of a summary's series
    where one is."""
    summarised = [client.summarised(HTML_ROWS) for client in picture.clients]
    rows = [
        ('<rect x="1" y="4" width="24" height="7" class="bar"/>', "connection open"),
        ('<line x1="1" y1="7" x2="25" y2="7" class="connecting"/>', "connecting"),
        ('<path d="M9 1 L17 1 L13 7 Z" class="emission"/>', "server sent a chunk"),
        ('<circle cx="13" cy="7" r="4" class="arrival"/>', "bytes arrived"),
        ('<line x1="13" y1="0" x2="13" y2="14" class="end"/>', "EOF"),
        ('<path d="M8 2 L18 12 M18 2 L8 12" class="error"/>', "error"),
        ('<rect x="1" y="3" width="24" height="9" class="ghost"/>', "ideal course"),
    ]
    summaries = [
        ('<path d="M1 13 L1 8 L9 8 L9 3 L17 3 L17 9 L25 9 L25 13 Z" class="area"/>', "connections open"),
        ('<path d="M3 13 V6 H7 V13 Z M10 13 V2 H14 V13 Z M17 13 V8 H21 V13 Z" class="column"/>',
         "arrivals in each slice"),
        ('<path d="M3 13 V9 H7 V13 Z M10 13 V4 H14 V13 Z M17 13 V7 H21 V13 Z" class="late"/>',
         "the servers' lateness, the most in each slice"),
    ]
    items = [*(rows if not all(summarised) else ()), *(summaries if any(summarised) else ()),
             ('<line x1="13" y1="0" x2="13" y2="14" class="ideal"/>', "ideal end"),
             ('<line x1="13" y1="0" x2="13" y2="14" class="change"/>', "a server changed")]
    return '<div class="legend">' + "".join(
        f'<span><svg viewBox="0 0 26 14" aria-hidden="true">{mark}</svg> {escape(text)}</span>'
        for mark, text in items) + "</div>"


def _histograms(picture: Picture) -> str:
    # One range of bins for every client model, so that their histograms compare at a glance.
    filled = [index for client in picture.clients for index, (_, count) in enumerate(client.lateness_bins)
              if count]
    shown = range(max(min(filled) - 1, 0), max(filled) + 2) if filled else range(0)
    if not picture.clients:
        return ""
    charts = [_histogram_svg(client, shown) for client in picture.clients]
    # Each chart's column as wide as its bins need, so that its labels keep their size.
    columns = f"repeat(auto-fill, minmax(min({_histogram_width(len(shown))}px, 100%), 1fr))"
    return ('<section id="lateness"><h2>Server lateness</h2>'
            '<p class="muted">How late the servers sent their chunks against the schedule, in each client '
            "model's run (scenario time): a bar counts the chunks up to its bound and above the one "
            f'before it.</p><div class="histograms" style="grid-template-columns: {columns}">'
            f'{"".join(charts)}</div></section>')


def _expectations(picture: Picture) -> str:
    rows = []
    for client in picture.clients:
        for verdict in client.verdicts:
            status = "pass" if verdict.passed else "fail"
            rows.append(
                f'<tr class="{status}" data-client="{escape(client.client)}" data-verdict="{status}">'
                f'<td class="verdict">{"PASS" if verdict.passed else "FAIL"}</td>'
                f'<td class="text">{escape(client.client)}</td><td class="text"><code>{escape(verdict.text)}'
                f"</code></td><td>{escape(verdict.measured)}</td><td>{escape(verdict.bound)}</td>"
                + (f'<td class="text">{escape(verdict.held)}</td>' if picture.repeat > 1 else "") + "</tr>")
    if not rows and picture.error is not None:
        # A run cut short judges nothing: its verdicts compare client models with one another.
        finished = ("the client models that finished before it stopped are measured above, not judged"
                    if picture.clients else "no client model finished before it stopped")
        body = f'<p class="muted">None judged: the run did not finish (see above), and {finished}.</p>'

    elif not rows:
        body = ('<p class="muted">No expectations: the scenario has no <code>expect:</code> for these '
                "clients.</p>")
    else:
        held = '<th class="text">over the runs</th>' if picture.repeat > 1 else ""
        measured = "measured (median)" if picture.repeat > 1 else "measured"
        body = ('<div class="scroll"><table><thead><tr><th>verdict</th><th class="text">client</th>'
                f'<th class="text">expectation</th><th>{measured}</th><th>bound</th>{held}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div>')
    return f'<section id="expectations"><h2>Expectations</h2>{body}</section>'


# What the report shows of a program's streams: the start of its output, the end of its
# errors (the JSON keeps 64 KiB of each).
SHOWN_LINES = 40


def _programs(picture: Picture) -> str:
    """Each `command` client's program: how it was run, how it ended, what it wrote."""
    parts = []
    for client in picture.clients:
        program = client.program
        if program is None:
            continue
        # What a program wrote that is not printable (an escape sequence, a NUL) as its escape,
        # as the terminal and JUnit show it: a browser would draw it as nothing, or a box.
        stdout = [printable(line) for line in program.stdout.splitlines()]
        stderr = [printable(line) for line in program.stderr.splitlines()]
        streams = []
        if stderr:
            cut = " (its last lines)" if len(stderr) > SHOWN_LINES else ""
            streams.append(f"<h4>stderr{cut}</h4><pre>{escape(chr(10).join(stderr[-SHOWN_LINES:]))}</pre>")
        if stdout:
            cut = " (its first lines)" if len(stdout) > SHOWN_LINES else ""
            streams.append(f"<details><summary>stdout{cut}, {len(program.stdout):,} characters kept</summary>"
                           f"<pre>{escape(chr(10).join(stdout[:SHOWN_LINES]))}</pre></details>")
        ending = program_ending(program).removesuffix(", its stderr ends:").removesuffix(":")
        parts.append(f'<div class="program {client.status}" data-client="{escape(client.client)}">'
                     f"<h3>{escape(client.client)}</h3><p><code>{escape(command_line(program.argv))}</code></p>"
                     f"<p>{escape(ending)}</p>{''.join(streams)}</div>")
    if not parts:
        return ""
    return f'<section id="programs"><h2>Programs</h2>{"".join(parts)}</section>'


def _warnings(picture: Picture) -> str:
    if not picture.warnings:
        return ""
    items = "".join(f"<li>{escape(warning)}</li>" for warning in picture.warnings)
    return f'<section id="warnings"><h2>Warnings</h2><ul class="warnings">{items}</ul></section>'


def _source(picture: Picture) -> str:
    if picture.source_text is None:
        return ('<section id="scenario"><h2>Scenario</h2><p class="muted">The result does not carry the '
                "scenario's text.</p></section>")
    name = f" <span class=\"muted\">{escape(picture.source_file)}</span>" if picture.source_file else ""
    return f'<section id="scenario"><h2>Scenario{name}</h2><pre>{escape(picture.source_text)}</pre></section>'


# --- pictures -----------------------------------------------------------------------------------


class _Scale:
    """Scenario seconds to SVG x, from 0 to ``span``."""

    def __init__(self, span: float) -> None:
        self.span = span

    def x(self, t: float) -> float:
        return round(LABEL + min(max(t, 0.0), self.span) / self.span * PLOT, 2)


def _axis(scale: _Scale, height: float) -> str:
    parts = []
    marks = ticks(scale.span, 10)
    step = marks[1] if len(marks) > 1 else scale.span
    for tick in marks:
        x = scale.x(tick)
        parts.append(f'<line x1="{x}" y1="{AXIS - 6}" x2="{x}" y2="{height}" class="grid"/>'
                     f'<text x="{x}" y="{AXIS - 10}" text-anchor="middle" class="tick">'
                     f"{seconds_label(tick, step)}</text>")
    return "".join(parts)


def _rows_svg(client: ClientPicture, span: float) -> str:
    scale = _Scale(span)
    count = len(client.rows)
    row = 26 if count <= 12 else 18 if count <= 40 else 12
    height = AXIS + row * max(count, 1) + 8
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="{escape(_described("timeline", client))}">', _axis(scale, height)]
    if not math.isnan(client.ideal):
        x = scale.x(client.ideal)
        parts.append(f'<line x1="{x}" y1="{AXIS - 4}" x2="{x}" y2="{height - 4}" class="ideal">'
                     f"<title>ideal end of the run: {duration_text(client.ideal)}</title></line>")
    for index, conn in enumerate(client.rows):
        parts.append(_row_svg(conn, client, scale, AXIS + index * row, row))
    parts.append(_changes_svg(client, scale, height))
    parts.append("</svg>")
    return "".join(parts)


def _described(what: str, client: ClientPicture) -> str:
    """A picture of ``client``'s run, said in words for those who cannot see it: ``timeline of
    blocking: 3 connections, elapsed 12.040s, ideal 12.000s, 1 error``."""
    facts = [client.counted, f"elapsed {duration_text(client.elapsed)}",
             f"ideal {duration_text(client.ideal)}"]
    failed = sum(row.error is not None for row in client.rows)
    if failed:
        facts.append(f"{failed} error{'s' * (failed != 1)}")
    return f"{what} of {client.client}: {', '.join(facts)}"


def _lateness_described(client: ClientPicture, bins: Sequence[tuple[float, int]]) -> str:
    """A lateness histogram in words: ``lateness of select: 12 chunks, p99 1.2ms, max 2ms``."""
    chunks = sum(count for _, count in bins)
    facts = [f"{chunks:,} chunk{'s' * (chunks != 1)}"]
    facts += [f"{name} {duration_text(client.metrics[f'lateness.{name}'])}" for name in ("p99", "max")
              if not math.isnan(client.metrics.get(f"lateness.{name}", math.nan))]
    return f"lateness of {client.client}: {', '.join(facts)}"


def _label(text: str, y: float) -> str:
    """A row's label, elided to LABEL_CHARS so that it stays out of the plot; whole in its title."""
    shown = elide(text, LABEL_CHARS)
    title = f"<title>{escape(text)}</title>" if shown != text else ""
    return f'<text x="6" y="{y}">{title}{escape(shown)}</text>'


def _row_svg(conn: Row, client: ClientPicture, scale: _Scale, top: float, height: float) -> str:
    middle = top + height / 2
    bar = max(height * 0.36, 4)
    ending = conn.ending
    parts = [f'<g class="row" data-client="{escape(client.client)}" data-conn="{conn.conn}" '
             f'data-ending="{escape(ending)}">',
             _label(f"#{conn.conn} {conn.server}", middle + 4)]
    ideal_end = float(LABEL)  # where its ideal course ends, if it has one
    if not (math.isnan(conn.ideal_start) or math.isnan(conn.ideal_end)):
        x0, ideal_end = scale.x(conn.ideal_start), scale.x(conn.ideal_end)
        parts.append(f'<rect x="{x0}" y="{middle - bar / 2 - 3}" width="{round(max(ideal_end - x0, 1), 2)}" '
                     f'height="{bar + 6}" class="ghost"><title>ideal: {duration_text(conn.ideal_start)} to '
                     f"{duration_text(conn.ideal_end)}</title></rect>")
    if not conn.drawn:
        # Why there is no course, after the ideal one where it fits there (in it, else); its halo
        # keeps the lines it crosses (the ideal end) out of its words.
        why = conn.why_not_drawn
        x = ideal_end + 6 if ideal_end + 6 + len(why) * TEXT_UNITS <= LABEL + PLOT else LABEL + 4
        parts.append(f'<text x="{x}" y="{middle + 4}" class="tick note">{escape(why)}</text></g>')
        return "".join(parts)
    end = conn.end if not math.isnan(conn.end) else client.elapsed
    never = conn.never_connected  # connecting all along: no bar
    connected = end if never else conn.connected if not math.isnan(conn.connected) else conn.start
    x_start, x_open, x_end = scale.x(conn.start), scale.x(connected), scale.x(end)
    why = f": {conn.message}" if conn.message and not conn.extra else ""
    if x_open > x_start:
        parts.append(f'<line x1="{x_start}" y1="{middle}" x2="{x_open}" y2="{middle}" class="connecting">'
                     f"<title>connecting: {duration_text(connected - conn.start)}"
                     f"{escape(why) if never else ''}</title></line>")
    if not never:
        parts.append(f'<rect x="{x_open}" y="{middle - bar / 2}" width="{max(x_end - x_open, 1)}" '
                     f'height="{bar}" rx="2" class="bar"><title>#{conn.conn} to {escape(conn.server)}: '
                     f"{duration_text(conn.start)} to {duration_text(end)}, {format_size(conn.bytes)}, "
                     f"{escape(ending)}{escape(why)}{_drawn(conn)}</title></rect>")
    mark = min(height * 0.3, 6)
    for t, size, lateness in conn.emissions:
        x = scale.x(t)
        parts.append(f'<path d="M{x - mark / 2:.2f} {middle - bar / 2 - mark - 1:.2f} h{mark:.2f} '
                     f'l{-mark / 2:.2f} {mark:.2f} Z" class="emission"><title>sent {size}B at '
                     f"{duration_text(t)}, {duration_text(lateness)} late</title></path>")
    radius = min(height * 0.2, 4.2)
    for t, size in conn.arrivals:
        parts.append(f'<circle cx="{scale.x(t)}" cy="{middle}" r="{radius:.2f}" class="arrival">'
                     f"<title>{size}B arrived at {duration_text(t)}</title></circle>")
    failed = conn.error is not None or conn.intact is False
    if not math.isnan(conn.end):
        if conn.error is not None:
            arm = bar / 2 + 2
            parts.append(f'<path d="M{x_end - arm} {middle - arm} L{x_end + arm} {middle + arm} '
                         f'M{x_end + arm} {middle - arm} L{x_end - arm} {middle + arm}" class="error"/>')
        else:
            parts.append(f'<line x1="{x_end}" y1="{middle - bar / 2 - 2}" x2="{x_end}" '
                         f'y2="{middle + bar / 2 + 2}" class="{"error" if failed else "end"}"/>')
    info = f"{duration_text(end - conn.start)} · {ending}"
    style = ' class="failed"' if failed else ""
    parts.append(f'<text x="{LABEL + PLOT + 10}" y="{middle + 4}"{style}>{escape(info)}</text></g>')
    return "".join(parts)


def _drawn(conn: Row) -> str:
    """What of a long connection's reads and sends its row draws, where not all of them."""
    parts = [f"{len(points)} of {count} {what}" for points, count, what in (
        (conn.arrivals, conn.arrival_count, "reads"), (conn.emissions, conn.emission_count, "sends"))
             if count > len(points)]
    return f" ({' and '.join(parts)} drawn, spread over its course)" if parts else ""


def _summary_svg(client: ClientPicture, span: float) -> str:
    scale = _Scale(span)
    activity = client.activity
    height = AXIS + 3 * SUMMARY_ROW + 8
    most_open = max(activity.open, default=0) if activity is not None else 0
    described = (_described("summary over time", client)
                 + f", at most {most_open} open at once" * bool(most_open))
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="{escape(described)}">', _axis(scale, height)]
    if activity is None or not activity.open:
        parts.append(f'<text x="{LABEL}" y="{AXIS + 20}" class="tick">no activity recorded</text></svg>')
        return "".join(parts)
    charts = [("open", [float(value) for value in activity.open], "area", "peak {:.0f}"),
              ("arrivals", [float(value) for value in activity.arrivals], "column",
               f"peak {{:.0f}} per {duration_text(activity.slice)}"),
              ("lateness", list(activity.lateness_max), "late", "max {}")]
    for index, (name, values, kind, caption) in enumerate(charts):
        top = AXIS + index * SUMMARY_ROW
        known = [value for value in values if not math.isnan(value)]
        peak = max(known, default=0.0)
        shown = caption.format(duration_text(peak) if name == "lateness" else peak)
        parts.append(f'<g class="summary" data-client="{escape(client.client)}" data-series="{name}">'
                     f'<text x="6" y="{top + SUMMARY_ROW / 2}">{name}</text>'
                     f'<text x="{LABEL + PLOT + 10}" y="{top + SUMMARY_ROW / 2}" class="tick">'
                     f"{escape(shown) if peak > 0 else 'none'}</text>")
        bottom = top + SUMMARY_ROW - 8
        if peak > 0:
            parts.append(_series(values, peak, activity.slice, scale, top + 6, bottom, kind))
        parts.append("</g>")
    if not math.isnan(client.ideal):
        x = scale.x(client.ideal)
        parts.append(f'<line x1="{x}" y1="{AXIS - 4}" x2="{x}" y2="{height - 4}" class="ideal">'
                     f"<title>ideal end of the run: {duration_text(client.ideal)}</title></line>")
    parts.append(_changes_svg(client, scale, height))
    parts.append("</svg>")
    return "".join(parts)


def _changes_svg(client: ClientPicture, scale: _Scale, height: float) -> str:
    """A line across the timeline where each server change came, marked above the rows."""
    parts = []
    for change in client.changes:
        x = scale.x(change.t)
        label = f"{duration_text(change.t)} {change.text}"
        parts.append(f'<g class="server-change" data-server="{escape(change.server)}">'
                     f'<line x1="{x}" y1="{AXIS - 4}" x2="{x}" y2="{height - 2}" class="change"/>'
                     f'<path d="M{x - 4} {AXIS - 8} h8 l-4 6 Z" class="change-mark"/>'
                     f"<title>{escape(label)}</title></g>")
    return "".join(parts)


def _changes_list(client: ClientPicture) -> str:
    """The server changes, in words, under the timeline."""
    if not client.changes:
        return ""
    items = "".join(f'<li data-server="{escape(change.server)}">{escape(duration_text(change.t))} '
                    f"{escape(change.text)}</li>" for change in client.changes)
    return f'<ul class="changes" aria-label="server changes">{items}</ul>'


def _series(values: Sequence[float], peak: float, width: float, scale: _Scale, top: float, bottom: float,
            kind: str) -> str:
    """One series of an Activity: an area (``area``) or a column per slice."""

    def y(value: float) -> float:
        return round(bottom - value / peak * (bottom - top), 2)

    if kind == "area":
        points = [f"{scale.x(0)},{bottom}"]
        for index, value in enumerate(values):
            points += [f"{scale.x(index * width)},{y(value)}", f"{scale.x((index + 1) * width)},{y(value)}"]
        points.append(f"{scale.x(len(values) * width)},{bottom}")
        return f'<polygon points="{" ".join(points)}" class="area"/>'
    columns = []
    for index, value in enumerate(values):
        if math.isnan(value) or value <= 0:
            continue
        x0, x1 = scale.x(index * width), scale.x((index + 1) * width)
        columns.append(f'<rect x="{x0}" y="{y(value)}" width="{max(x1 - x0 - 0.3, 0.6):.2f}" '
                       f'height="{round(bottom - y(value), 2)}" class="{kind}"/>')
    return "".join(columns)


def _histogram_width(bins: int) -> int:
    """How wide (SVG units, drawn at 1:1 where the page has room) each histogram is for ``bins``
    bins: room for every bin's labels side by side, at least HISTOGRAM_WIDTH."""
    return max(HISTOGRAM_WIDTH, 2 * HISTOGRAM_MARGIN + bins * HISTOGRAM_STEP)


def _histogram_svg(client: ClientPicture, shown: range) -> str:
    bins = [client.lateness_bins[index] for index in shown if index < len(client.lateness_bins)]
    title = f"<h3>{escape(client.client)}</h3>"
    if not any(count for _, count in bins):
        return f'<div data-client="{escape(client.client)}">{title}<p class="muted">no chunk sent</p></div>'
    width, base, height = _histogram_width(len(bins)), 118, 140
    step = (width - 2 * HISTOGRAM_MARGIN) / len(bins)
    peak = max(count for _, count in bins)
    # Its labels keep a readable size: on a narrow screen it scrolls sideways rather than shrink.
    parts = [f'<div data-client="{escape(client.client)}">{title}<div class="scroll">'
             f'<svg viewBox="0 0 {width} {height}" '
             f'style="min-width: {width * 0.8:.0f}px; max-width: {width * 1.25:.0f}px" role="img" '
             f'aria-label="{escape(_lateness_described(client, bins))}">']
    for index, (upper, count) in enumerate(bins):
        x = HISTOGRAM_MARGIN + index * step
        tall = count / peak * (base - 18)
        label = "more" if math.isinf(upper) else seconds_label(upper, upper)
        parts.append(f'<rect x="{x + 2:.1f}" y="{base - tall:.1f}" width="{step - 4:.1f}" '
                     f'height="{tall:.1f}" class="hist"><title>{count:,} chunks up to {escape(label)}'
                     "</title></rect>")
        if count:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{base - tall - 4:.1f}" text-anchor="middle" '
                         f'class="tick count">{count_label(count)}</text>')
        parts.append(f'<text x="{x + step / 2:.1f}" y="{base + 14}" text-anchor="middle" class="tick bound" '
                     f'font-size="10">{escape(label)}</text>')
    parts.append(f'<line x1="{HISTOGRAM_MARGIN}" y1="{base}" x2="{width - HISTOGRAM_MARGIN}" y2="{base}" '
                 'class="grid"/></svg></div></div>')
    return "".join(parts)
