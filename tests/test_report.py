"""What `netsim run` prints: one set of renderers for one run and for many."""

from __future__ import annotations

import dataclasses
import io
import math
import re

import pytest

from netsim import report
from netsim._loader import load_scenario_text
from netsim.repeat import tally
from netsim.session import Plan
from tests.conftest import demo_text
from tests.test_repeat import fake_results


def test_one_run_reads_as_a_single_run() -> None:
    """A repeat of one: a plain verdict line with the measured value beside the bound, no pass counts."""
    result = tally(fake_results([4.3], "elapsed <= 4.2s", "elapsed <= 5s"))
    assert report.verdicts(result).splitlines() == [
        "expectations",
        "  FAIL  select  elapsed <= 4.2s  measured    4.300s  bound <= 4.200s",
        "  PASS  select  elapsed <= 5s    measured    4.300s  bound <= 5.000s",
    ]
    assert report.summary(result) == "FAILED: 1 of 2 expectations held (1 passed, 1 failed)"


def test_several_runs_add_pass_counts_the_median_and_the_range() -> None:
    """Over three runs each verdict says how often it held, its median and, where they differ, the range."""
    result = tally(fake_results([4.0, 4.5, 4.1], "elapsed <= 4.2s in 50% of runs", "errors == 0"))
    lines = report.verdicts(result).splitlines()
    assert lines[0] == "expectations over 3 runs (measured: the median of the runs)"
    assert lines[1] == ("  PASS  select  elapsed <= 4.2s in 50% of runs  held 2 of 3 (needs 50%)  "
                        "measured    4.100s  range 4.000s .. 4.500s  bound <= 4.200s")
    assert lines[2].startswith("  PASS  select  errors == 0")
    assert "measured         0" in lines[2] and "range" not in lines[2]
    assert report.summary(result) == ("passed: 2 of 2 expectations held in enough of 3 runs "
                                      "(2 of 3 runs passed every expectation)")


def test_the_live_table_prints_its_header_with_the_first_row() -> None:
    """The title comes at the start; the table's header waits for the first row, each repeat is labelled."""
    scenario = load_scenario_text(demo_text(clients="select"))
    results = fake_results([4.0, 4.1])
    out, err = io.StringIO(), io.StringIO()
    table = report.LiveTable(out, err)
    table.started(Plan(scenario, list(scenario.clients), repeat=2, time_scale=0.1))
    table.repeat_started(1)
    assert out.getvalue() == "netsim: demo\n1 client model, 2 runs each, 3 servers, time scale 0.1; " \
                             "times in scenario seconds\n"
    table.measured(results[0].runs[0])
    table.repeat_started(2)
    table.measured(results[1].runs[0])
    lines = out.getvalue().splitlines()[2:]
    assert lines[0] == "" and lines[1].startswith("client ") and lines[2] == "run 1 of 2"
    assert lines[3].startswith("select ") and lines[4] == "run 2 of 2" and len(lines) == 6


def test_a_quiet_live_table_prints_only_warnings() -> None:
    """With quiet, rows and titles are left out; warnings still go to stderr."""
    out, err = io.StringIO(), io.StringIO()
    quiet = report.LiveTable(out, err, quiet=True)
    quiet.measured(fake_results([4.0])[0].runs[0])
    quiet.warn("careful")
    assert out.getvalue() == "" and err.getvalue() == "warning: careful\n"


@pytest.mark.parametrize(("seconds", "shown"), [
    (12.004, "12.004s"), (0.25, "250ms"), (8e-5, "80µs"), (math.nan, "n/a"),
    (2.5e297, "2.5e+297s"), (-3.2e7, "-3.2e+07s"),
])
def test_durations_keep_a_readable_length(seconds: float, shown: str) -> None:
    """Ordinary durations as ever; absurd ones (a time scale of 1e-300) in scientific notation."""
    assert report.duration_text(seconds) == shown


def test_an_absurd_run_prints_no_figure_hundreds_of_digits_long() -> None:
    """Elapsed times of 1e297 seconds fit the table and the verdicts."""
    result = tally(fake_results([2.5e297], "elapsed <= 4.2s"))
    text = report.run_row(result.first.runs[0]) + "\n" + report.verdicts(result)
    assert max(len(token) for token in re.split(r"\s+", text)) < 20
    assert "measured 2.5e+297s" in text


@pytest.mark.parametrize(("regression", "text"), [
    (0.12, "regressed 12.00 points"), (-0.031, "improved 3.10 points"),
    (-0.00001, "unchanged"), (0.0, "unchanged"),
])
def test_a_change_against_the_baseline_reads_as_a_change(regression: float, text: str) -> None:
    """Growth is 'regressed', shrinkage 'improved', and a change that rounds away 'unchanged', never -0.00."""
    assert report.change_text(regression) == text


def test_the_table_widens_for_long_client_names() -> None:
    """A client label longer than the column pushes the header's figures right as far as the row's."""
    scenario = load_scenario_text(demo_text(clients="{model: select, name: select-with-a-very-long-label}"))
    out, err = io.StringIO(), io.StringIO()
    table = report.LiveTable(out, err)
    table.started(Plan(scenario, list(scenario.clients), repeat=1, time_scale=1.0))
    run = fake_results([4.0])[0].runs[0]
    table.measured(dataclasses.replace(run, client="select-with-a-very-long-label"))
    header, row = out.getvalue().splitlines()[-2:]
    assert row.startswith("select-with-a-very-long-label  ")
    assert header.index("elapsed") + len("elapsed") == row.index("4.000s") + len("4.000s")


def test_the_table_gives_intact_as_the_verdicts_do() -> None:
    """One connection of eight intact reads 12.5% in the table, as in the verdict below it,
    not a rounded 12%."""
    from netsim.results import ConnectionResult

    scenario = load_scenario_text(demo_text(clients="select"))
    out, err = io.StringIO(), io.StringIO()
    table = report.LiveTable(out, err)
    table.started(Plan(scenario, list(scenario.clients), repeat=1, time_scale=1.0))
    connections = [ConnectionResult(conn, "a", 1, 4, conn == 1, None, 0.0, 1.0) for conn in range(1, 9)]
    table.measured(dataclasses.replace(fake_results([4.0])[0].runs[0], connections=connections))
    header, row = out.getvalue().splitlines()[-2:]
    assert row.split()[header.split().index("intact")] == "12.5%"


def test_a_client_that_reports_more_bytes_than_were_sent_is_told_so() -> None:
    """A connection whose client counted more bytes than its server sent is listed with both
    counts: no network makes bytes, so the model counted what it did not receive."""
    from netsim.results import ConnectionResult, Served

    served = Served("127.0.0.1:5000", 0.0, 0.0, 1.0, 20, 20, "closed")
    counted = ConnectionResult(1, "a", 1, 24, False, None, 0.0, 1.0, served=served)
    run = dataclasses.replace(fake_results([4.0])[0].runs[0], connections=[counted])
    assert report.connection_problems(run) == [
        "#1 a: not intact (the client reported 24 bytes where its server sent 20: it counted bytes it "
        "did not receive)"]


@pytest.mark.parametrize(("width", "widest"), [(None, 96), (120, 96), (80, 80)])
def test_a_narrow_terminal_gets_a_table_that_fits_it(width: int | None, widest: int) -> None:
    """On a terminal narrower than the table (96 columns), the table tightens to fit 80 with the
    demo's labels, its figures still under their headings; a log (no width known) keeps the
    wide one, and so does a terminal wide enough."""
    scenario = load_scenario_text(demo_text(clients="blocking, selectors"))
    out, err = io.StringIO(), io.StringIO()
    table = report.LiveTable(out, err, width=width)
    table.started(Plan(scenario, list(scenario.clients), repeat=1, time_scale=1.0))
    run = fake_results([12.004])[0].runs[0]
    table.measured(dataclasses.replace(run, client="selectors"))
    header, row = out.getvalue().splitlines()[-2:]
    assert max(len(header), len(row)) == widest
    for heading, figure in (("elapsed", "12.004s"), ("lateness.p99", row.split()[-1])):
        assert header.index(heading) + len(heading) == row.index(figure) + len(figure)


def test_the_description_wraps_at_the_terminals_width_and_never_at_a_hyphen() -> None:
    """The scenario's description is wrapped to the terminal (88 columns at most), keeping an
    option such as --time-scale whole."""
    scenario = load_scenario_text(demo_text(clients="select").replace(
        "name: demo\n", "name: demo\ndescription: " + "word " * 8 + "run it at --time-scale 0.5 or more, "
        + "word " * 20 + "\n"))
    lines = report.title(scenario, 1, 1.0, width=60).splitlines()[1:-1]
    assert len(lines) > 2 and all(len(line) <= 60 for line in lines)
    assert "--time-scale" in " ".join(lines).split()


@pytest.mark.parametrize(("argv", "shown"), [
    (["python3", "-c", "import sys; sys.exit('boom')"], "python3 -c \"import sys; sys.exit('boom')\""),
    (["sh", "-c", "echo $HOME"], "sh -c 'echo $HOME'"),  # double quotes would expand it
    (["a b", "plain"], '"a b" plain'),
])
def test_a_command_line_is_quoted_for_reading_and_still_a_shells(argv: list[str], shown: str) -> None:
    """An argument with spaces or single quotes is shown in double quotes where that needs no
    escape, else as shlex quotes it: either way a shell takes it back as it was."""
    import shlex

    from netsim.report import command_line

    assert command_line(argv) == shown
    assert shlex.split(shown) == argv


@pytest.mark.parametrize(("stderr", "shown"), [
    # long paths give way to the message's words
    ("/root/.pyenv/versions/3.11.7/bin/python3: can't open file "
     "'/home/teacher/grading/2024/class/nosuch.py': [Errno 2] No such file or directory",
     ".../bin/python3: can't open file '.../class/nosuch.py': [Errno 2] No such file or directory"),
    # no path to shorten: cut in the middle, its beginning and its end kept
    ("Error: " + "x" * 150 + " the end", "Error: " + "x" * 33 + " ... " + "x" * 47 + " the end"),
])
def test_a_long_stderr_line_keeps_its_words(stderr: str, shown: str) -> None:
    """A stderr line too long for the lines under the verdicts has its paths shortened to their
    last parts first, so that an error's words ("can't open file") stay; only then is it cut
    in its middle."""
    from netsim.results import Program

    lines = report.program_lines("", Program(["python3", "nosuch.py"], 2, "", stderr))
    assert lines == ["exit 2, its stderr ends:", f"| {shown}"]
