"""Pictures of a run: each connection's course in the result, the terminal timeline, the
HTML report and the trace, drawn from one real run of the demo."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from netsim._measure import activity_of, measure
from netsim.events import BytesReceived, ChunkSent, ClientFinished, ClientStarted, ConnStarted, EofReceived
from netsim.report import duration_text
from netsim.results import KEPT_CONNECTIONS, KEPT_POINTS, LATENESS_BINS, ConnectionResult, histogram
from netsim.session import Outputs, run_session
from netsim.views._picture import MAX_ROWS, ResultFormatError, picture_of
from netsim.views.html import html_report
from netsim.views.timeline import AUTO_CONNECTIONS, render, wanted
from tests.conftest import ScenarioWriter, demo_text

SCALE = 0.02  # the demo's 12 s in a quarter of a second

EXPECT = """\
expect:
  blocking: [elapsed == 12s ± 50%]
  select: [speedup(blocking) >= 1.5, elapsed < 1s]
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the demo (blocking, then select) with its JSON result, HTML report and trace."""
    folder = tmp_path_factory.mktemp("demo")
    scenario = folder / "demo.yaml"
    scenario.write_text(demo_text(expect=EXPECT), encoding="utf-8")
    outputs = Outputs(json=folder / "result.json", html=folder / "report.html", trace=folder / "trace.json")
    run_session(scenario, time_scale=SCALE, outputs=outputs)
    return {"folder": folder, "result": json.loads(outputs.json.read_text()),  # type: ignore[union-attr]
            "html": outputs.html.read_text(), "trace": json.loads(outputs.trace.read_text())}  # type: ignore[union-attr]


def run_of(result: dict[str, Any], client: str) -> dict[str, Any]:
    return next(run for run in result["runs"] if run["client"] == client)


# --- the course of each connection, in the result ----------------------------------------------


def test_each_connection_keeps_its_course_in_scenario_seconds(demo: dict[str, Any]) -> None:
    """Blocking's connections follow one another (each starts once the last ended); select's all start
    at once; each has its four arrivals and its server's four emissions, and its ideal end."""
    blocking, select = run_of(demo["result"], "blocking"), run_of(demo["result"], "select")
    ends = [conn["end"] for conn in blocking["connections"]]
    for before, after in zip(blocking["connections"], blocking["connections"][1:], strict=False):
        assert after["start"] >= before["end"]
    assert [conn["ideal_end"] for conn in blocking["connections"]] == pytest.approx([4.0, 8.0, 12.0])
    # At time scale 0.02 a scenario second is 20 ms of wall time, what a loaded machine's
    # scheduler can take from a client between two connections (a CI run once took 12 ms).
    assert ends == pytest.approx([4.0, 8.0, 12.0], abs=1.0)
    assert max(conn["start"] for conn in select["connections"]) < 0.5
    for conn in blocking["connections"] + select["connections"]:
        assert conn["start"] <= conn["connected"] <= conn["arrivals"][0][0] <= conn["end"]
        assert [size for _, size in conn["arrivals"]] == [4, 4, 4, 4] and conn["arrival_count"] == 4
        assert [size for _, size, _ in conn["emissions"]] == [4, 4, 4, 4] and conn["emission_count"] == 4
        assert all(late >= 0 for _, _, late in conn["emissions"])
    assert blocking["detail"] is True


def test_the_result_keeps_every_documented_key(demo: dict[str, Any]) -> None:
    """The keys scripts rely on (DESIGN.md) are all still there beside the new ones."""
    result = demo["result"]
    assert {"scenario", "time_scale", "passed", "runs", "source"} <= set(result)
    assert result["source"]["text"].startswith("netsim: 1")
    run = result["runs"][0]
    assert {"client", "elapsed", "ideal", "wall_elapsed", "connections", "lateness", "expectations",
            "activity"} <= set(run)
    assert {"server", "port", "bytes", "intact", "error", "ttfb", "duration"} <= set(run["connections"][0])
    assert {"p50", "p99", "max", "histogram"} <= set(run["lateness"])
    assert {"text", "passed", "actual"} <= set(run["expectations"][0])


def test_the_activity_counts_what_happened_in_each_slice(demo: dict[str, Any]) -> None:
    """Blocking has one connection open at a time (two only in the slices where one hands over to the
    next), select three at once; every arrival and byte is counted."""
    blocking, select = run_of(demo["result"], "blocking"), run_of(demo["result"], "select")
    assert max(blocking["activity"]["open"]) <= 2 and blocking["activity"]["open"].count(2) <= 2
    assert select["activity"]["open"].count(3) > 150  # of 200 slices: nearly the whole run
    for run in (blocking, select):
        assert sum(run["activity"]["arrivals"]) == 12 and sum(run["activity"]["bytes"]) == 48
        assert sum(run["activity"]["emissions"]) == 12
        assert sum(count for _, count in run["lateness"]["histogram"]) == run["lateness"]["count"] == 12


def test_a_connection_keeps_arrivals_spread_over_its_course_and_counts_them_all() -> None:
    """Past KEPT_POINTS arrivals a connection keeps KEPT_POINTS of them spread evenly from its
    first to its last (a picture shows it busy to its end) and counts them all; past
    KEPT_CONNECTIONS none are kept per connection, and the activity still counts them all."""
    from netsim._measure import Slot

    def events(connections: int, reads: int) -> list[Any]:
        made: list[Any] = [ClientStarted(0.0, "c", "m", connections)]
        for conn in range(1, connections + 1):
            made.append(ConnStarted(0.0, "c", "s", conn, 1))
            made += [BytesReceived(0.001 * read, "c", "s", conn, 1) for read in range(1, reads + 1)]
            made.append(ChunkSent(0.0005, "s", 2, 0, reads, 0.0, 0.0001, conn=conn))
            made.append(EofReceived(0.001 * reads + 0.001, "c", "s", conn, reads, True))
        made.append(ClientFinished(1.0, "c"))
        return made

    long = measure(events(1, 4 * KEPT_POINTS), [], [Slot("s", 1, None)], 1.0)
    [conn] = long.connections
    assert len(conn.arrivals) == KEPT_POINTS and conn.arrival_count == 4 * KEPT_POINTS
    times = [t for t, _ in conn.arrivals]
    assert times[0] == pytest.approx(0.001) and times[-1] == pytest.approx(0.001 * 4 * KEPT_POINTS)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert max(gaps) < 0.0051 and min(gaps) > 0.0029  # three to five reads apart, every one
    many = KEPT_CONNECTIONS + 1
    wide = measure(events(many, 2), [], [Slot("s", 1, None)] * many, 1.0)
    assert all(conn.arrivals == () and conn.arrival_count == 2 for conn in wide.connections)
    assert wide.activity is not None and sum(wide.activity.arrivals) == 2 * many
    assert max(wide.activity.open) == many


def test_activity_counts_a_connection_open_in_every_slice_it_spans() -> None:
    """A connection from 0.25 s to 0.55 s of a 1 s run in ten slices is open in slices 2 to 5."""
    conn = ConnectionResult(1, "s", 1, 0, True, None, math.nan, 0.3, start=0.25, end=0.55)
    arrivals, emissions = [(0.33, 4), (0.35, 4)], [(0.25, 0.002), (0.35, 0.001)]
    activity = activity_of([conn], arrivals, emissions, span=1.0, slices=10)
    assert activity is not None
    assert activity.open == (0, 0, 1, 1, 1, 1, 0, 0, 0, 0)
    assert activity.arrivals[3] == 2 and activity.bytes[3] == 8
    assert activity.emissions[2:4] == (1, 1) and activity.lateness_max[2] == 0.002
    assert math.isnan(activity.lateness_max[0])


def test_the_lateness_histogram_puts_each_value_in_its_bin() -> None:
    """A value equal to a bound counts in that bound's bin; beyond the last finite bound, in the last."""
    counts = histogram(sorted([1e-5, 1.5e-5, 0.001, 0.0011, 100.0]), LATENESS_BINS)
    bins = dict(zip(LATENESS_BINS, counts, strict=True))
    assert bins[1e-5] == 1 and bins[2e-5] == 1 and bins[0.001] == 1 and bins[0.002] == 1
    assert bins[math.inf] == 1 and sum(counts) == 5


# --- the terminal timeline ----------------------------------------------------------------------


def connection_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"  #\d+ ", line)]


def test_the_timeline_shows_the_staircase_against_the_overlap(demo: dict[str, Any]) -> None:
    """One row per connection on one axis: blocking's rows start one after another, select's together."""
    text = render(picture_of(demo["result"]), width=100)
    rows = connection_rows(text)
    assert len(rows) == 6
    starts = [re.search(r"[├●]", row).start() for row in rows]  # type: ignore[union-attr]
    ends = [row.index("┤") for row in rows]
    assert starts[0] < starts[1] < starts[2] and ends[0] < ends[1] < ends[2]  # blocking: a staircase
    # select: all at once, from 0 (a column is 3 ms of wall time here, and a loaded machine
    # can hold a connect back a few: blocking's next start is 33 columns on)
    assert all(abs(start - starts[0]) <= 5 for start in starts[3:])
    assert ends[3] < ends[1]  # select is done before blocking's second connection is
    assert all(row.count("●") == 4 and row.rstrip().endswith("eof") for row in rows)
    assert "ideal end" in text and "blocking" in text and "select" in text


@pytest.mark.parametrize("width", [60, 80, 140])
def test_the_timeline_fits_the_width_it_is_given(demo: dict[str, Any], width: int) -> None:
    """No line is wider than the terminal; a wider terminal gets a longer axis; a line cut
    to fit says so with "…"."""
    text = render(picture_of(demo["result"]), width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert len(connection_rows(text)) == 6



def test_a_line_cut_to_a_narrow_terminal_ends_with_an_ellipsis(demo: dict[str, Any]) -> None:
    """Too narrow for a row's end (its duration and how it ended), the row is cut with "…"."""
    lines = render(picture_of(demo["result"]), width=40).splitlines()
    cut = [line for line in connection_rows("\n".join(lines)) if len(line) == 40]
    assert cut and all(line.endswith("…") for line in cut)


def test_a_long_server_name_is_cut_and_every_row_keeps_its_end(demo: dict[str, Any]) -> None:
    """A 64-character server name loses its middle to "…" in the timeline's labels, so that at 80
    columns every row still shows its duration and how it ended."""
    result = json.loads(json.dumps(demo["result"]))
    long_name = "the-primary-authoritative-poetry-server-of-the-eastern-district-1"
    for run in result["runs"]:
        for conn in run["connections"]:
            if conn["server"] == "a":
                conn["server"] = long_name
    text = render(picture_of(result), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    rows = connection_rows(text)
    assert len(rows) == 6 and all(row.rstrip().endswith("eof") for row in rows)
    assert any("#1 the-prima…istrict-1" in row for row in rows)


def test_the_timeline_has_colour_only_when_asked(demo: dict[str, Any]) -> None:
    """Plain text off a terminal; ANSI colours when asked for."""
    picture = picture_of(demo["result"])
    assert "\x1b[" not in render(picture, width=100)
    assert "\x1b[" in render(picture, width=100, color=True)


def with_connections(result: dict[str, Any], count: int, *, error: str | None = None) -> dict[str, Any]:
    """The demo's result with its first client's first connection repeated ``count`` times."""
    changed = copy.deepcopy(result)
    run = changed["runs"][0]
    first = run["connections"][0]
    run["connections"] = [{**first, "conn": number, "error": error} for number in range(1, count + 1)]
    return changed


def test_many_connections_are_drawn_as_a_summary(demo: dict[str, Any]) -> None:
    """Past MAX_ROWS connections a client model gets three sparklines instead of a row each."""
    text = render(picture_of(with_connections(demo["result"], MAX_ROWS + 1)), width=100)
    lines = text.splitlines()
    assert sum(line.startswith("  open ") for line in lines) == 1
    assert any(line.startswith("  arrivals ") for line in lines)
    assert any(line.startswith("  lateness ") for line in lines)
    assert "a summary over time" in text
    assert len(connection_rows(text)) == 3  # select's, still a row each


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_summarys_captions_keep_their_units_at_any_width(demo: dict[str, Any], width: int) -> None:
    """A summary's captions fit beside its sparklines, the arrivals' time unit included, where
    the terminal's width used to cut it (`peak 64 per 300.8m`)."""
    result = with_connections(demo["result"], MAX_ROWS + 1)
    activity = result["runs"][0]["activity"]
    activity["arrivals"] = [count * 1000 for count in activity["arrivals"]]  # peaks in the thousands
    text = render(picture_of(result), width=width)
    (arrivals,) = [line for line in text.splitlines() if line.startswith("  arrivals ")]
    assert re.search(r"peak \d+ per [0-9.]+(ms|s|µs)$", arrivals.rstrip()), arrivals
    assert all(len(line) <= width for line in text.splitlines())


def test_a_summary_marks_where_connections_failed_and_keeps_only_the_marks_it_draws(
        demo: dict[str, Any]) -> None:
    """A summarised run's failed connections get a row of ✕ with their count and kinds; with
    every run summarised, the legend leaves out the per-connection marks none of them shows."""
    result = with_connections(demo["result"], MAX_ROWS + 1)
    result["runs"] = result["runs"][:1]
    run = result["runs"][0]
    for conn in run["connections"][:3]:
        conn["error"] = "reset"
    text = render(picture_of(result), width=100)
    (errors,) = [line for line in text.splitlines() if line.startswith("  errors ")]
    assert "✕" in errors and errors.rstrip().endswith("3 (reset)")
    assert "bytes arrived" not in text and "error" in text.splitlines()[-1]


def test_the_legend_explains_the_handshake_mark_where_one_is_drawn(demo: dict[str, Any]) -> None:
    """`╌` (connecting) is in the legend when a row draws a handshake, and only then."""
    assert "connecting" not in render(picture_of(demo["result"]), width=100)
    result = copy.deepcopy(demo["result"])
    conn = run_of(result, "select")["connections"][0]
    conn["connected"] = conn["start"] + (conn["end"] - conn["start"]) / 2  # half its course
    text = render(picture_of(result), width=100)
    assert "╌" in "".join(connection_rows(text)) and "╌ connecting" in text


def test_a_row_without_reads_of_its_own_draws_its_servers_sends(demo: dict[str, Any]) -> None:
    """A connection whose client reports no reads (a `command` client's program) is drawn with
    its server's sends, `○`, named in the legend; rows with reads draw only those."""
    text = render(picture_of(demo["result"]), width=100)
    assert "○" not in text
    result = copy.deepcopy(demo["result"])
    conn = run_of(result, "select")["connections"][0]
    assert conn["emissions"]
    conn.update(arrivals=[], arrival_count=0)
    rows = connection_rows(render(picture_of(result), width=100))
    assert sum("○" in row for row in rows) == 1 and sum("●" in row for row in rows) == 5
    assert "○ server sent (no reads reported)" in render(picture_of(result), width=100)


def test_an_error_is_marked_and_named(demo: dict[str, Any]) -> None:
    """A connection that ended in an error ends on ✕ and says which error."""
    text = render(picture_of(with_connections(demo["result"], 1, error="reset")), width=100)
    [row] = [line for line in connection_rows(text) if "reset" in line]
    assert "✕" in row and "┤" not in row


@pytest.mark.parametrize(("choice", "connections", "drawn"), [
    (None, AUTO_CONNECTIONS, True), (None, AUTO_CONNECTIONS + 1, False),
    (True, 10_000, True), (False, 3, False),
])
def test_the_timeline_is_drawn_for_small_runs_unless_told(choice: bool | None, connections: int,
                                                           drawn: bool) -> None:
    """By default up to AUTO_CONNECTIONS connections; --timeline and --no-timeline decide for any run."""
    assert wanted(choice, connections) is drawn


# --- the result, read back -----------------------------------------------------------------------


@pytest.mark.parametrize(("data", "message"), [
    ([], "the result: expected an object, got list"),
    ({"scenario": "x"}, "the result: missing the list 'runs'"),
    ({"scenario": "x", "runs": [{"client": "a", "elapsed": "soon", "connections": [], "expectations": []}]},
     "runs[0].elapsed: expected a number"),
    ({"scenario": "x", "runs": [{"client": "a", "elapsed": 1, "ideal": 1, "connections": [{}],
                                 "expectations": []}]}, "runs[0].connections[0]: missing the number 'conn'"),
])
def test_a_result_that_is_not_one_is_refused_naming_the_key(data: object, message: str) -> None:
    """picture_of says which key is wrong, instead of drawing nonsense or raising a KeyError."""
    with pytest.raises(ResultFormatError, match=re.escape(message)):
        picture_of(data)


def test_a_result_from_before_the_course_still_draws(demo: dict[str, Any]) -> None:
    """A result without start, end and arrivals draws its table and verdicts, and says so of the course."""
    old = copy.deepcopy(demo["result"])
    for run in old["runs"]:
        run.pop("activity")
        for conn in run["connections"]:
            for key in ("start", "connected", "end", "ideal_start", "ideal_end", "arrivals", "emissions"):
                conn.pop(key)
    assert "no course recorded" in render(picture_of(old), width=100)
    assert html_report(old).count("no course recorded") == 6


def test_a_poem_the_program_did_not_print_is_not_drawn_as_cut_short(write_scenario: ScenarioWriter,
                                                                    tmp_path: Path) -> None:
    """With `output: poems`, a connection whose every byte arrived but whose poem the program
    did not print ends as "not in its output", not as cut short."""
    result = tmp_path / "result.json"
    (tmp_path / "reads.py").write_text(
        "import socket, sys\n"
        "sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "while sock.recv(9):\n"
        "    pass\n")
    path = write_scenario(f"""\
netsim: 1
name: silent
servers: [{{name: a, poem: "1\\n2\\n"}}]
clients:
  - {{model: command, run: [{sys.executable}, {tmp_path / "reads.py"}, "{{port:a}}"], output: poems}}
""")
    run_session(path, outputs=Outputs(json=result))
    picture = picture_of(json.loads(result.read_text()))
    (row,) = picture.clients[0].rows
    assert (row.intact, row.ending) == (False, "eof, not in its output")


def test_a_handshake_that_never_completed_is_drawn_as_connecting_not_open(demo: dict[str, Any]) -> None:
    """A connection that never connected (an unanswered handshake) is the dashed connecting
    line from its start to its end, with why, and no bar, which would read as connected."""
    result = json.loads(json.dumps(demo["result"]))
    conn = run_of(result, "select")["connections"][0]
    conn.update(connected=None, error="timeout", bytes=0, intact=False, arrivals=[], arrival_count=0,
                message="no handshake within the timeout", phase="connect")
    page = html_report(result)
    group = page[page.index(f'data-client="select" data-conn="{conn["conn"]}"'):]
    group = group[:group.index("</g>")]
    assert 'class="bar"' not in group
    assert 'class="connecting"><title>connecting: ' in group and ": no handshake within the timeout" in group


def test_a_row_that_draws_part_of_its_reads_says_so(demo: dict[str, Any]) -> None:
    """A connection whose result keeps part of its reads and sends says on its bar how many
    of how many are drawn; one that keeps them all says nothing of it."""
    result = json.loads(json.dumps(demo["result"]))
    first, second = run_of(result, "select")["connections"][:2]
    first.update(arrival_count=len(first["arrivals"]) + 300)
    page = html_report(result)
    bars = {conn["conn"]: page[page.index(f'data-client="select" data-conn="{conn["conn"]}"'):]
            for conn in (first, second)}
    bars = {number: group[group.index('class="bar"><title>'):] for number, group in bars.items()}
    bars = {number: bar[:bar.index("</title></rect>")] for number, bar in bars.items()}
    assert bars[first["conn"]].endswith(
        f"({len(first['arrivals'])} of {len(first['arrivals']) + 300} reads drawn, spread over its course)")
    assert "drawn" not in bars[second["conn"]]


def test_a_report_of_a_run_that_did_not_finish_says_so_first(demo: dict[str, Any]) -> None:
    """The report of a result whose run did not finish says why at the top, counts the client
    models that finished, and does not claim the scenario has no expectations."""
    assert 'id="unfinished"' not in html_report(demo["result"])
    result = copy.deepcopy(demo["result"])
    result.update(passed=False, error="client 'select' did not finish within 500ms", runs=result["runs"][:0])
    page = html_report(result)
    assert ("The run did not finish: client &#x27;select&#x27; did not finish within 500ms. "
            "Nothing finished.") in page
    assert "0 client models finished · no expectations judged" in page
    assert "No expectations: the scenario has no" not in page
    assert "None judged: the run did not finish" in page


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo (select, then blocking, each with expectations) stopped by --timeout once select
    had finished: its JSON result."""
    from netsim._errors import RunTimeoutError

    folder = tmp_path_factory.mktemp("unfinished")
    scenario = folder / "demo.yaml"
    scenario.write_text(demo_text(clients="select, blocking", expect=EXPECT), encoding="utf-8")
    outputs = Outputs(json=folder / "result.json")
    with pytest.raises(RunTimeoutError):  # select: 0.4 s; blocking: 1.2 s at the least
        run_session(scenario, time_scale=0.1, timeout=1.0, outputs=outputs)
    return json.loads(outputs.json.read_text())  # type: ignore[union-attr,no-any-return]


def test_a_model_that_finished_before_the_run_stopped_is_not_judged_nor_failed(
        unfinished: dict[str, Any]) -> None:
    """A client model measured before the run stopped reads "not judged (the run stopped)" in the
    summary, is not styled as failed, and the banner does not deny that it finished."""
    assert [run["client"] for run in unfinished["runs"]] == ["select"]
    page = html_report(unfinished)
    summary = page[page.index('<section id="summary">'):page.index("</section>")]
    row = summary[summary.index('data-client="select"') - 30:]
    row = row[:row.index("</tr>")]
    assert '<tr class="unjudged"' in row and "<td>not judged (the run stopped)</td>" in row
    assert "0 of 0" not in page and 'class="fail"' not in summary
    assert '<figure class="client unjudged" data-client="select">' in page
    assert "no client model with expectations finished before" not in page
    assert ("None judged: the run did not finish (see above), and the client models that finished "
            "before it stopped are measured above, not judged.") in page
    # Headed as what it is: not judged, so not a failed expectation.
    assert '<span class="badge" id="verdict">DID NOT FINISH</span>' in page
    assert "did not finish" in page[:page.index("</title>")]


def test_a_model_run_only_for_a_speedup_says_so(demo: dict[str, Any], tmp_path: Path) -> None:
    """With only select asked for, blocking runs as the baseline of select's speedup(): its row
    reads "ran for comparison", not "0 of 0", and is not failed."""
    scenario = tmp_path / "demo.yaml"
    scenario.write_text(demo_text(expect=EXPECT), encoding="utf-8")
    outputs = Outputs(json=tmp_path / "result.json")
    run_session(scenario, time_scale=SCALE, clients=["select"], outputs=outputs)
    page = html_report(json.loads(outputs.json.read_text()))  # type: ignore[union-attr]
    summary = page[page.index('<section id="summary">'):page.index("</section>")]
    row = summary[summary.index('data-client="blocking"') - 30:]
    row = row[:row.index("</tr>")]
    assert '<tr class="pass"' in row and "<td>ran for comparison</td>" in row
    assert "0 of 0" not in summary


def test_a_repeated_runs_report_shows_the_spread_over_the_runs(demo: dict[str, Any]) -> None:
    """With repeats, the summary says it is the first run's, and a table beside it gives each
    client's runs passed and the min / median / max the terminal prints (an overhead with
    its sign); one run has none."""
    assert 'id="spreads"' not in html_report(demo["result"])
    result = json.loads(json.dumps(demo["result"]))
    spread = {"elapsed": {"min": 4.0, "median": 4.5, "max": 5.0},
              "overhead": {"min": -0.001, "median": 0.002, "max": 0.25},
              "lateness.p99": {"min": 0.0001, "median": 0.0002, "max": 0.0003}}
    result["repeat"] = {"count": 3, "runs_passed": 2, "clients": [
        {"client": "select", "passed": True, "runs": 3, "runs_passed": 2, "metrics": spread,
         "expectations": []}]}
    page = html_report(result)
    assert "<h2>Summary of the first of 3 runs</h2>" in page
    table = page[page.index('id="spreads"'):]
    assert ('<tr data-client="select"><td>select</td><td>2 of 3</td><td>4.000s / 4.500s / 5.000s</td>'
            "<td>-1ms / +2ms / +250ms</td><td>300µs</td></tr>") in table  # signed, as the terminal


def test_a_repeated_runs_report_gives_each_runs_seed(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """With --repeat and no seed given, each run draws its own: the header lists them, one per run,
    not the first as if it drew them all again; with one seed for every run, it gives that one."""
    path = write_scenario(demo_text(clients="select"))
    result = tmp_path / "result.json"
    run_session(path, repeat=2, time_scale=SCALE, outputs=Outputs(json=result))
    data = json.loads(result.read_text())
    first, second = (run["seed"] for run in data["repeat"]["results"])
    assert first != second
    page = html_report(data)
    assert f"a seed per run: {first}, {second}" in page and f"seed {first}" not in page
    run_session(path, repeat=2, time_scale=SCALE, seed=7, outputs=Outputs(json=result))
    page = html_report(json.loads(result.read_text()))
    assert "seed 7" in page and "a seed per run" not in page


def test_a_repeated_runs_report_gives_the_verdicts_over_every_run(demo: dict[str, Any]) -> None:
    """With repeats, the report's verdicts are those over every run (held in 2 of 3: FAIL,
    with the median measured), not the first run's, and the header says so."""
    result = json.loads(json.dumps(demo["result"]))
    first = run_of(result, "blocking")["expectations"][0]
    assert first["passed"] is True  # the first run alone passed it
    result["repeat"] = {"count": 3, "runs_passed": 2, "clients": [
        {"client": "blocking", "passed": False, "runs": 3, "runs_passed": 2, "expectations": [
            {"text": first["text"], "passed": False, "passes": 2, "runs": 3, "pass_rate": None,
             "actual": {"min": 11.9, "median": 12.1, "max": 19.0}, "bound": first["bound"]}]}]}
    page = html_report(result)
    section = page[page.index('<section id="expectations">'):]
    row = section[section.index('data-client="blocking"'):]
    row = row[:row.index("</tr>")]
    assert '"fail"' in row and ">FAIL<" in row and "held in 2 of 3 runs" in row and ">12.100s<" in row
    assert "3 runs (verdicts over them all, pictures of the first)" in page


def test_the_report_shows_each_programs_argv_ending_and_streams(write_scenario: ScenarioWriter,
                                                                  tmp_path: Path) -> None:
    """A `command` client's program has its own part of the report: how it was run, how it
    ended (with what it left running), the end of its stderr and the start of its stdout."""
    result = tmp_path / "result.json"
    path = write_scenario("""\
netsim: 1
name: programs
servers: [{name: a, poem: "1\\n"}]
clients:
  - {model: command, name: crashes,
     run: [sh, -c, "echo 'a<b>' ; sleep 30 & printf '\\\\033[31mTraceback: boom\\\\n' >&2; exit 3"]}
  - {model: blocking}
""")
    run_session(path, outputs=Outputs(json=result))
    page = html_report(json.loads(result.read_text()))
    section = page[page.index('<section id="programs">'):]
    section = section[:section.index("</section>")]
    assert '<div class="program fail" data-client="crashes">' in section
    assert "data-client=\"blocking\"" not in section  # no program, no part
    code = section[section.index("<code>"):section.index("</code>")]
    assert code.startswith("<code>sh -c ") and "a&lt;b&gt;" in code and "sleep 30 &amp; printf" in code
    assert "<p>exit 3, leaving 1 process running, which netsim ended</p>" in section
    # (an escape sequence shown as the terminal shows it, not drawn as nothing)
    assert "<h4>stderr</h4><pre>\\x1b[31mTraceback: boom</pre>" in section
    assert "<pre>a&lt;b&gt;</pre>" in section


@pytest.mark.parametrize(("received", "served", "ending"), [
    (20, {"bytes": 20, "fault": "corrupt"}, "eof, corrupted"),
    (10, {"bytes": 10, "fault": "close"}, "eof, cut short"),  # the server closed early
    (10, {"bytes": 20, "fault": None}, "eof, cut short"),
    (10, None, "eof, cut short"),  # no server's account to tell by
])
def test_a_connection_that_is_not_intact_says_how(demo: dict[str, Any], received: int,
                                                   served: dict[str, Any] | None, ending: str) -> None:
    """A connection that is not intact because a corrupt fault garbled it ends "corrupted";
    one that got less than the poem, "cut short"."""
    data = copy.deepcopy(demo["result"])
    conn = data["runs"][0]["connections"][0]
    conn.update(bytes=received, intact=False, error=None)
    if served is None:
        conn.pop("served", None)
    else:
        conn["served"] = {**(conn.get("served") or {}), **served}
    assert picture_of(data).clients[0].rows[0].ending == ending


def test_a_long_label_is_cut_to_stay_out_of_the_plot(demo: dict[str, Any]) -> None:
    """A server name longer than the label column loses its middle to an ellipsis in the HTML
    timeline, and is given whole in the label's title (shown on hover)."""
    data = copy.deepcopy(demo["result"])
    name = "a-server-whose-name-runs-on-and-on"
    data["runs"][0]["connections"][0]["server"] = name
    page = html_report(data)
    assert f"<title>#1 {name}</title>#1 a-server…and-on</text>" in page


def test_long_names_that_differ_at_their_end_stay_apart(demo: dict[str, Any]) -> None:
    """Two long server names alike but for their last character keep it in the terminal's and the
    HTML's labels, where both read `#1 a-really-long-serv…`."""
    data = copy.deepcopy(demo["result"])
    first, second = "a-really-long-server-name-chr", "a-really-long-server-name-ch2"
    for conn, name in zip(data["runs"][0]["connections"], (first, second, first), strict=False):
        conn["server"] = name
    rows = connection_rows(render(picture_of(data), width=100))
    assert [row[:24] for row in rows[:2]] == ["  #1 a-really-…-name-chr", "  #2 a-really-…-name-ch2"]
    labels = re.findall(r"</title>(#\d a[^<]*)</text>", html_report(data))
    assert labels[:2] == ["#1 a-really…me-chr", "#2 a-really…me-ch2"]


def test_a_connection_its_server_never_saw_says_so(demo: dict[str, Any]) -> None:
    """A program's connection with no server account (it never connected) is named as that,
    not taken for a result from an older netsim."""
    missing = copy.deepcopy(demo["result"])
    conn = missing["runs"][0]["connections"][0]
    for key in ("start", "connected", "end", "arrivals"):
        conn.pop(key)
    conn["error"], conn["served"] = "missing", None
    assert "(missing: its server saw no connection)" in render(picture_of(missing), width=100)
    assert "missing: its server saw no connection" in html_report(missing)
    del conn["served"]  # a result from before servers' accounts: no telling, so it says so
    assert "(no course recorded: a result from an older netsim)" in render(picture_of(missing), width=100)


def test_the_words_of_a_connection_that_never_happened_stay_clear_of_its_ideal_course(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A program that could not be started made no connection: its row's words begin past its
    dotted ideal course and the ideal end's line (where they overflowed both), on a halo that
    keeps the grid's lines out of them."""
    path = write_scenario("""\
netsim: 1
name: nocmd
servers:
  - {name: a, poem: "one\\ntwo\\n", delay: 100ms}
  - {name: b, poem: "one\\ntwo\\n", delay: 500ms}
clients:
  - {model: command, name: ghost, run: [./does-not-exist, "{ports}"]}
  - {model: select, targets: [b]}  # 1 s: the shared axis goes on past ghost's ideal
""")
    result = tmp_path / "result.json"
    run_session(path, time_scale=SCALE, outputs=Outputs(json=result))
    page = html_report(json.loads(result.read_text()))
    row = re.search(r'<g class="row" data-client="ghost" data-conn="1".*?</g>', page)
    assert row is not None
    ghost = re.search(r'<rect x="([\d.]+)" [^>]*width="([\d.]+)"[^>]*class="ghost"', row[0])
    note = re.search(r'<text x="([\d.]+)"[^>]*class="tick note">missing: its server saw no connection</text>',
                     row[0])
    ideal = re.search(r'<line x1="([\d.]+)"[^>]*class="ideal"', page)
    assert ghost is not None and note is not None and ideal is not None
    assert float(note[1]) > float(ghost[1]) + float(ghost[2]) and float(note[1]) > float(ideal[1])
    assert re.search(r"svg \.note \{ paint-order: stroke; stroke: var\(--bg\)", page)


# --- the HTML report ------------------------------------------------------------------------------


def test_the_report_is_self_contained(demo: dict[str, Any]) -> None:
    """No script, no stylesheet or font or image from elsewhere: the page opens without a network."""
    page = demo["html"]
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|src=", page, re.IGNORECASE)
    assert not re.search(r"https?://", page)


def test_the_report_has_a_row_per_connection_and_every_verdict(demo: dict[str, Any]) -> None:
    """Each client model a timeline, each connection a row, each expectation its verdict and measurement."""
    page = demo["html"]
    assert page.count('<g class="row" data-client="blocking"') == 3
    assert page.count('<g class="row" data-client="select"') == 3
    assert page.count('<figure class="client') == 2
    assert page.count("data-verdict=") == 3
    assert 'data-verdict="fail"' in page and "elapsed &lt; 1s" in page  # select cannot take under 1 s
    assert "FAILED" in page and "speedup(blocking) &gt;= 1.5" in page


def test_the_report_escapes_what_the_scenario_says(demo: dict[str, Any]) -> None:
    """A scenario's text with markup in it is shown as text, never run."""
    result = copy.deepcopy(demo["result"])
    result["source"]["text"] = "description: <script>alert(1)</script>"
    result["runs"][0]["client"] = "<i>a</i>"
    page = html_report(result)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<i>a</i>" not in page and "&lt;i&gt;a&lt;/i&gt;" in page


def test_a_large_run_is_a_summary_in_the_report(demo: dict[str, Any]) -> None:
    """Past HTML_ROWS connections a client model's figure draws three series over time instead of rows."""
    from netsim.views.html import HTML_ROWS

    page = html_report(with_connections(demo["result"], HTML_ROWS + 1))
    assert page.count('<g class="row" data-client="blocking"') == 0
    assert page.count('<g class="summary" data-client="blocking"') == 3


def test_the_legend_explains_a_summarys_series_where_one_is_drawn(demo: dict[str, Any]) -> None:
    """A run drawn as a summary over time adds the legend's entries for its three series; with every
    run summarised, the per-connection marks none of them draws are left out; without one, none."""
    from netsim.views.html import HTML_ROWS

    def legend(result: dict[str, Any]) -> str:
        page = html_report(result)
        start = page.index('<div class="legend">')
        return page[start:page.index("</div>", start)]

    series = ("connections open", "arrivals in each slice",
              "the servers&#x27; lateness, the most in each slice")
    assert not any(name in legend(demo["result"]) for name in series)
    mixed = legend(with_connections(demo["result"], HTML_ROWS + 1))
    assert all(name in mixed for name in series) and "bytes arrived" in mixed  # select has rows
    alone = with_connections(demo["result"], HTML_ROWS + 1)
    alone["runs"] = alone["runs"][:1]
    summarised = legend(alone)
    assert all(name in summarised for name in series) and "bytes arrived" not in summarised
    assert "ideal end" in summarised


def contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two colours (#rrggbb)."""
    def luminance(colour: str) -> float:
        channels = [int(colour[index:index + 2], 16) / 255 for index in (1, 3, 5)]
        red, green, blue = (value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
                            for value in channels)
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_reports_marks_keep_three_to_one_against_what_they_are_drawn_on(demo: dict[str, Any]) -> None:
    """WCAG's non-text contrast: an arrival against a connection's bar, the ideal's marks and the
    lateness bars against the page, 3:1 at least; and lateness no longer wears the ideal's colour."""
    page = demo["html"]
    colours = dict(re.findall(r"--([a-z]+): (#[0-9a-f]{6})", page))
    bar = re.search(r"svg \.bar \{ fill: (#[0-9a-f]{6});", page)
    assert bar is not None
    assert contrast(colours["arrival"], bar[1]) >= 3
    assert contrast(colours["ideal"], colours["bg"]) >= 3 and contrast(colours["late"], colours["bg"]) >= 3
    assert colours["late"] != colours["ideal"]
    assert "svg .late { fill: var(--late); }" in page
    assert "opacity" not in page[page.index("svg .ghost"):][:80]  # (which faded the ideal's course)


def test_a_run_stopped_before_any_model_finished_draws_no_empty_sections(demo: dict[str, Any]) -> None:
    """Nothing finished: no summary, timelines or lateness sections with nothing in them."""
    result = copy.deepcopy(demo["result"])
    result.update(passed=False, error="stopped before it finished (Ctrl-C or SIGTERM)", runs=[])
    page = html_report(result)
    for section in ("summary", "timelines", "lateness"):
        assert f'<section id="{section}">' not in page
        assert f'<section id="{section}">' in demo["html"]
    assert '<section id="expectations">' in page


def test_each_picture_says_what_it_shows_to_a_screen_reader(demo: dict[str, Any]) -> None:
    """Each SVG's aria-label summarises it: connections, elapsed and ideal; a summary's peak; a
    histogram's chunks and lateness."""
    from netsim.views.html import HTML_ROWS

    blocking = run_of(demo["result"], "blocking")
    page = demo["html"]
    assert re.search(r'aria-label="timeline of blocking: 3 connections, elapsed [0-9.]+s, ideal 12\.000s"',
                     page)
    p99 = duration_text(blocking["lateness"]["p99"])
    assert f'aria-label="lateness of blocking: 12 chunks, p99 {p99}, max ' in page
    summary = html_report(with_connections(demo["result"], HTML_ROWS + 1))
    assert re.search(r'aria-label="summary over time of blocking: 101 connections, elapsed [0-9.]+s, '
                     r'ideal 12\.000s, at most \d+ open at once"', summary)


# --- the trace ----------------------------------------------------------------------------------------


def test_the_trace_has_a_process_per_client_model_and_one_for_the_servers(demo: dict[str, Any]) -> None:
    """Processes named for the servers and each client model, a track per connection in each."""
    records = demo["trace"]["traceEvents"]
    processes = {record["args"]["name"]: record["pid"]
                 for record in records if record["name"] == "process_name"}
    assert set(processes) == {"servers", "client blocking", "client select"}
    tracks = Counter(record["pid"] for record in records if record["name"] == "thread_name" and record["tid"])
    assert tracks[processes["client blocking"]] == 3 and tracks[processes["client select"]] == 3
    assert tracks[processes["servers"]] == 6


def test_the_trace_marks_each_change_of_the_servers_across_their_process(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A phase (and any live change or outage) is a process-wide instant on the servers'
    process, at its scenario time, with what changed and why."""
    path = write_scenario("""\
        netsim: 1
        name: phased
        servers:
          - {name: a, poem: "1\\n2\\n3\\n4\\n", delay: 250ms, phases: [{at: 500ms, delay: 100ms}]}
        clients: [asyncio]
        """)
    trace = tmp_path / "trace.json"
    run_session(path, time_scale=0.2, outputs=Outputs(trace=trace))
    records = json.loads(trace.read_text())["traceEvents"]
    (changed,) = [record for record in records if record.get("cat") == "conditions_changed"]
    assert (changed["ph"], changed["s"], changed["pid"]) == ("i", "p", 1)
    assert changed["name"] == "a: delay 100ms" and changed["args"]["kind"] == "conditions_changed"
    # A phase counts from when the servers were ready; the trace, from the run's start.
    (listening,) = [record for record in records if record["name"] == "server_listening"]
    assert changed["ts"] - listening["ts"] == pytest.approx(500_000, abs=50_000)  # µs of scenario time
    assert changed["args"]["server"] == "a" and changed["args"]["source"] == "phase 1"
    assert "delay" in changed["args"]["changes"]


def test_the_trace_has_spans_arrivals_emissions_and_counters(demo: dict[str, Any]) -> None:
    """Per connection a span and its handshake; an instant per arrival and emission with bytes,
    scheduled and lateness; counters of bytes received that only grow."""
    records = demo["trace"]["traceEvents"]
    names = Counter((record["ph"], record["name"]) for record in records)
    assert names[("X", "connecting")] == 6 and names[("X", "a: eof")] == 2 and names[("X", "served")] == 6
    assert names[("i", "bytes_received")] == 24 and names[("i", "chunk_sent")] == 24
    for record in records:
        if record["name"] in ("bytes_received", "chunk_sent"):
            assert {"bytes", "scheduled", "lateness"} <= set(record["args"])
            assert record["args"]["lateness"] >= 0
    for pid in {record["pid"] for record in records if record["name"] == "bytes received"}:
        counted = [record["args"]["bytes"] for record in records
                   if record["name"] == "bytes received" and record["pid"] == pid]
        assert counted[-1] == 48 and counted == sorted(counted)
    assert all(record["dur"] >= 0 for record in records if record["ph"] == "X")
    spans = [record for record in records if record["ph"] == "X" and record["name"].endswith(": eof")]
    blocking = spans[:3]
    assert blocking[0]["ts"] + blocking[0]["dur"] <= blocking[1]["ts"]  # in scenario µs: one after another
    assert blocking[2]["ts"] + blocking[2]["dur"] - blocking[0]["ts"] == pytest.approx(12e6, rel=0.1)


def test_a_connections_span_is_written_before_the_handshake_it_holds(demo: dict[str, Any]) -> None:
    """On every connection's track the whole connection's span comes before its `connecting` span,
    which starts at the same time: chrome://tracing nests spans that start together in the order
    it reads them."""
    records = demo["trace"]["traceEvents"]
    spans = [(index, record) for index, record in enumerate(records)
             if record["ph"] == "X" and record["tid"] and record["name"] != "served"]
    tracks = {(record["pid"], record["tid"]) for _, record in spans}
    assert len(tracks) == 6
    for track in tracks:
        (whole_at, whole), (handshake_at, handshake) = [(index, record) for index, record in spans
                                                        if (record["pid"], record["tid"]) == track]
        assert whole["name"].endswith(": eof") and handshake["name"] == "connecting"
        assert whole["ts"] == handshake["ts"] and whole["dur"] > handshake["dur"]
        assert whole_at < handshake_at


def test_a_timed_out_runs_trace_ends_what_was_open_where_it_stopped(write_scenario: ScenarioWriter,
                                                                     tmp_path: Path) -> None:
    """A connection to a blackhole, still open when --timeout stopped the run, is a span to the stop
    (about the timeout after the client began) marked `stopped`, on both sides, not a bare
    `connecting`; so is the client model's own span."""
    from netsim._errors import RunTimeoutError

    path = write_scenario("""\
        netsim: 1
        name: hung
        servers: [{name: hole, poem: "a\\n", fault: {kind: blackhole}}]
        clients: [select]
        """)
    trace = tmp_path / "trace.json"
    with pytest.raises(RunTimeoutError):
        run_session(path, timeout=0.5, outputs=Outputs(trace=trace))
    records = json.loads(trace.read_text())["traceEvents"]
    spans = {record["name"]: record for record in records if record["ph"] == "X"}
    hung, model = spans["hole: open when the run stopped"], spans["select"]
    served = spans["served (open when the run stopped)"]
    assert hung["args"]["ending"] == model["args"]["ending"] == served["args"]["how"] == "stopped"
    stopped = hung["ts"] + hung["dur"]
    assert model["ts"] + model["dur"] == pytest.approx(stopped, abs=0.01)  # (µs, each rounded to ns)
    assert served["ts"] + served["dur"] == pytest.approx(stopped, abs=0.01)
    assert stopped - model["ts"] == pytest.approx(500_000, abs=100_000)  # µs: the timeout, from its start
    assert spans["connecting"]["ts"] == hung["ts"]
    assert records.index(hung) < records.index(spans["connecting"])


def test_outputs_land_where_asked(demo: dict[str, Any]) -> None:
    """--json, --html and --trace each wrote their own file, and nothing else was left beside them."""
    folder: Path = demo["folder"]
    assert sorted(path.name for path in folder.iterdir()) == ["demo.yaml", "report.html", "result.json",
                                                               "trace.json"]


# --- the servers' changes --------------------------------------------------------------------


def test_measure_keeps_each_change_of_the_servers_in_words_and_scenario_seconds() -> None:
    """Conditions, outages, resets and held handshakes become changes, timed from the client's start."""
    from netsim.events import (
        ConditionsChanged,
        ConnsReset,
        HandshakesHeld,
        ServerCameUp,
        ServerListening,
        ServerWentDown,
    )

    events: list[Any] = [
        ServerListening(0.9, "a", "127.0.0.1", 1, "concurrent", False),
        ClientStarted(1.0, "c", "m", 0),
        ConditionsChanged(1.1, "a", {"delay": "500ms", "fault": {"kind": "reset", "after": 2}}, "phase 1"),
        ServerWentDown(1.2, "a", "control", 3),
        ServerCameUp(1.3, "a", "phase 2", "port 10000 is in use"),
        ConnsReset(1.4, "a", 2, "control"),
        HandshakesHeld(1.5, "a", None),
        ClientFinished(2.0, "c"),
    ]
    measured = measure(events, [], [], 0.5)
    changes = [(round(change.t, 6), change.server, change.what, change.source) for change in measured.changes]
    assert changes == [
        (0.2, "a", "delay 500ms, fault {kind: reset, after: 2}", "phase 1"),
        (0.4, "a", "down, 3 reset", "control"),
        (0.6, "a", "not up: port 10000 is in use", "phase 2"),
        (0.8, "a", "2 reset", "control"),
        (1.0, "a", "handshakes held", ""),
    ]


def test_a_servers_first_state_of_held_handshakes_is_no_change() -> None:
    """A server that holds handshakes from the start (syn_drop) has no change for it, where
    it had one at a negative time before the client started; answering later is one."""
    from netsim.events import HandshakesAnswered, HandshakesHeld, ServerListening

    events: list[Any] = [
        ServerListening(0.9, "a", "127.0.0.1", 1, "concurrent", False),
        HandshakesHeld(0.95, "a", None),
        ClientStarted(1.0, "c", "m", 0),
        HandshakesAnswered(1.5, "a"),
        ClientFinished(2.0, "c"),
    ]
    measured = measure(events, [], [], 0.5)
    changes = [(round(change.t, 6), change.what) for change in measured.changes]
    assert changes == [(1.0, "handshakes answered")]


PHASED = """\
    netsim: 1
    name: phased
    servers:
      - name: a
        poem: "1\\n2\\n3\\n4\\n"
        delay: 250ms
        # The poem ends at 700 ms: its last chunk at 600 ms, 100 ms before the close.
        phases: [{at: 500ms, delay: 100ms}, {at: 650ms, down: true}]
    clients: [asyncio]
    """


def test_a_run_keeps_its_servers_changes_and_both_pictures_draw_them(
        write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """The JSON result lists each phase's change at its time; the HTML report draws a line and
    names it under the timeline; the terminal timeline marks it on a row and says what it was."""
    path = write_scenario(PHASED)
    outputs = Outputs(json=tmp_path / "result.json", html=tmp_path / "report.html")
    run_session(path, time_scale=0.2, outputs=outputs)
    result = json.loads((tmp_path / "result.json").read_text())
    changes = run_of(result, "asyncio")["changes"]
    assert [(change["server"], change["what"], change["source"]) for change in changes] == [
        ("a", "delay 100ms", "phase 1"), ("a", "down", "phase 2")]
    # A phase counts from when the servers were ready, some ms (a fork) before the client
    # started, from which a result counts: the changes come a little before their `at`.
    first, second = (change["t"] for change in changes)
    assert 0.0 < first <= 0.5 and second - first == pytest.approx(0.15, abs=0.02)

    html = (tmp_path / "report.html").read_text()
    assert html.count('<g class="server-change" data-server="a">') == 2
    listed = re.findall(r'<li data-server="a">([^<]*)</li>', html)
    assert [item.split(" ", 1)[1] for item in listed] == ["a: delay 100ms (phase 1)", "a: down (phase 2)"]

    text = render(picture_of(result), width=100)
    marks = next(line for line in text.splitlines() if line.startswith("  servers"))
    assert marks.count("▼") == 2
    assert re.search(r"▼ \S+\s+a: delay 100ms \(phase 1\)", text)
    assert re.search(r"▼ \S+\s+a: down \(phase 2\)", text)
    assert "▼ server changed" in text


def test_the_timeline_names_an_outage_among_more_changes_than_it_lists(write_scenario: ScenarioWriter,
                                                                        tmp_path: Path) -> None:
    """Past SHOWN_CHANGES changes, the ones listed in words are the outages first: a `down` with
    reset that comes last, after seven changes of delay, is named (and the rest counted)."""
    from netsim.views.timeline import SHOWN_CHANGES

    delays = ", ".join(f"{{at: {100 * step}ms, delay: {100 + step}ms}}" for step in range(1, 8))
    path = write_scenario(f"""\
        netsim: 1
        name: flappy
        servers:
          - name: a
            poem: "1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n9\\n"
            delay: 100ms
            phases: [{delays}, {{at: 800ms, down: {{reset: true}}}}]
        clients: [asyncio]
        """)
    result = tmp_path / "result.json"
    run_session(path, time_scale=0.2, outputs=Outputs(json=result))
    text = render(picture_of(json.loads(result.read_text())), width=100)
    said = [line for line in text.splitlines() if re.match(r"\s+▼ \S+  a: ", line)]
    assert len(said) == SHOWN_CHANGES == 6
    assert re.search(r"a: down, 1 reset \(phase 8\)$", said[-1])
    assert "a: delay 101ms (phase 1)" in said[0]
    assert "and 2 more" in text


def test_a_run_without_changes_draws_none(demo: dict[str, Any]) -> None:
    """No change, no marks: the result's list is empty and neither picture has a change row."""
    assert all(run["changes"] == [] for run in demo["result"]["runs"])
    assert "server-change" not in demo["html"] and 'class="changes"' not in demo["html"]
    assert "servers" not in render(picture_of(demo["result"]), width=100)
