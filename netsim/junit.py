"""JUnit XML of a run, for CI systems that show test reports.

One ``<testsuite>`` per client model (named ``SCENARIO.CLIENT``, its time the client's
wall time), one ``<testcase>`` per expectation (named by its text). A failed
expectation carries a ``<failure>`` whose message gives the measured value and the
bound. A baseline comparison adds a test case per client; a run that could not be
carried out is one test case with an ``<error>``. A ``command`` client's suite carries its
program's ending, troubled connections and output (``<system-out>``) and its stderr
(``<system-err>``), of its first failed run.

The warnings ``netsim run`` prints for a client (a busy machine, the hypervisor's steal, a
program's start-up, a time scale too small) go in each of its failures' text, which is
what GitLab shows of a failed case (it ignores ``<system-err>``) and Jenkins shows as its
stack trace, and in its suite's ``<system-err>``, which Jenkins shows on the page of every
case of the suite, passed ones too, as their standard error.
"""

from __future__ import annotations

import datetime
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from functools import partial

from netsim._version import __version__
from netsim.baseline import BaselineReport
from netsim.repeat import ExpectationTally, RepeatResult, tally
from netsim.report import (
    change_text,
    command_line,
    connection_problems,
    measured_text,
    percent_text,
    program_ending,
)
from netsim.results import ScenarioResult


def junit_xml(
    result: ScenarioResult | RepeatResult,
    *,
    file: str | None = None,
    baseline: BaselineReport | None = None,
    notices: Sequence[str] = (),
    unstarted: Mapping[str, str] | None = None,
) -> str:
    """The JUnit XML of a run, or of repeated runs (a single run is a repeat of one).

    ``file`` puts a ``file`` attribute on each test case, and an expectation read from
    a scenario file gives its ``line``. ``notices`` are warnings on the whole run (its
    time scale), given with every client's own. ``unstarted`` gives, by client, why its
    program could not be started: a test case in error, as a run not carried out is.
    """
    repeated = result if isinstance(result, RepeatResult) else tally([result])
    scenario = repeated.scenario
    labels = [client.client for client in repeated.clients]
    root = ET.Element("testsuites", name=f"netsim {scenario}")
    stamp = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    for client in repeated.clients:
        runs = [each.run(client.client) for each in repeated.results]
        classname = f"{scenario}.{client.client}"
        suite = ET.SubElement(root, "testsuite", name=classname, timestamp=stamp,
                              hostname=socket.gethostname(),
                              time=f"{sum(run.wall_elapsed for run in runs):.3f}")
        properties = ET.SubElement(suite, "properties")
        for name, value in (("netsim_version", __version__), ("time_scale", f"{repeated.time_scale:g}"),
                            ("model", runs[0].model), ("runs", str(len(runs)))):
            ET.SubElement(properties, "property", name=name, value=value)
        warned = "".join(f"warning: {warning}\n"
                         for warning in _warnings_of(client.client, labels, [*notices, *repeated.warnings]))
        for expectation in client.expectations:
            case = _case(suite, classname, expectation.expectation.text, file, expectation.expectation.line)
            _judge(case, expectation, warned)
        if baseline is not None:
            _judge_baseline(suite, classname, client.client, baseline)
        if unstarted and client.client in unstarted:
            case = _case(suite, classname, "program", file, None)
            why = unstarted[client.client]
            ET.SubElement(case, "error", message=why, type="run error").text = why
        _count(suite)
        shown = next((run for run in runs if not run.passed), runs[0])
        program = shown.program
        if program is not None:  # what a CI page shows beside the cases: why, in its words
            troubled = connection_problems(shown)
            ended = program_ending(program).removesuffix(":")
            ET.SubElement(suite, "system-out").text = "\n".join(
                [f"program: {command_line(program.argv)}", f"ended: {ended}",
                 *(["connections:", *(f"  {line}" for line in troubled)] if troubled else []),
                 "stdout:", program.stdout])
            ET.SubElement(suite, "system-err").text = (f"{warned}stderr:\n{program.stderr}" if warned
                                                       else program.stderr)
        elif warned:
            ET.SubElement(suite, "system-err").text = warned
    _count(root)
    return _text(root)


def junit_error_xml(scenario: str, message: str, *, file: str | None = None) -> str:
    """The JUnit XML of a run that could not be carried out: one test case, in error."""
    root = ET.Element("testsuites", name=f"netsim {scenario}")
    suite = ET.SubElement(root, "testsuite", name=scenario, time="0",
                          timestamp=datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
                          hostname=socket.gethostname())
    case = _case(suite, scenario, "run", file, None)
    ET.SubElement(case, "error", message=message, type="run error").text = message
    _count(suite)
    _count(root)
    return _text(root)


def _case(suite: ET.Element, classname: str, name: str, file: str | None, line: int | None) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if file is not None:
        case.set("file", file)
    if line is not None:
        case.set("line", str(line))
    return case


# What repeated runs put before a warning: the runs it came from (netsim.repeat).
_RUNS_SAID = re.compile(r"^(?:runs? [0-9, and]+ of [0-9]+|every one of [0-9]+ runs): ")


def _warnings_of(client: str, labels: Sequence[str], warnings: Sequence[str]) -> list[str]:
    """The warnings that concern ``client``: its own, which start with its label (a label
    holds no colon) after the runs they came from, if said, and those that start with no
    client's, on the whole run."""
    others = tuple(f"{label}: " for label in labels if label != client)
    return list(dict.fromkeys(warning for warning in warnings
                              if not _RUNS_SAID.sub("", warning, count=1).startswith(others)))


def _judge(case: ET.Element, tallied: ExpectationTally, warned: str) -> None:
    if tallied.passed:
        return
    measured = _measured(tallied)
    if tallied.runs == 1:
        message = f"measured {measured}, bound {tallied.bound}"
        text = f"{tallied.expectation.text}\nmeasured: {measured}\nbound: {tallied.bound}\n"
    else:
        held = f"{tallied.passes} of {tallied.runs} runs (needs {tallied.required})"
        message = f"held in {held}; measured {measured}, bound {tallied.bound}"
        text = f"{tallied.expectation.text}\nheld: {held}\nmeasured: {measured}\nbound: {tallied.bound}\n"
    # Beside the failure they may explain, where every CI shows it.
    ET.SubElement(case, "failure", message=message, type="expectation").text = text + warned


def _measured(tallied: ExpectationTally) -> str:
    shown = partial(measured_text, tallied.expectation)
    spread = tallied.actual
    if tallied.runs == 1:
        return shown(spread.median)
    return f"min {shown(spread.min)}, median {shown(spread.median)}, max {shown(spread.max)}"


def _judge_baseline(suite: ET.Element, classname: str, client: str, baseline: BaselineReport) -> None:
    """A test case for the client's overhead against the baseline, when it was compared."""
    limit = f"{baseline.max_regression * 100:g}%"
    for comparison in baseline.comparisons:
        if comparison.client != client:
            continue
        # Named the same whatever the baseline file's path, for a CI's history of the case.
        case = _case(suite, classname, f"overhead regression <= {limit} of ideal", None, None)
        if not comparison.passed:
            message = (f"overhead {percent_text(comparison.ratio)} of ideal against "
                       f"{percent_text(comparison.baseline_ratio)} in the baseline ({baseline.path}): "
                       f"{change_text(comparison.regression)}, bound {limit}")
            ET.SubElement(case, "failure", message=message, type="regression").text = message


def _count(element: ET.Element) -> None:
    cases: Sequence[ET.Element] = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    element.set("errors", str(sum(case.find("error") is not None for case in cases)))
    element.set("skipped", "0")
    if element.tag == "testsuites":
        element.set("time", f"{sum(float(s.get('time', '0')) for s in element.iter('testsuite')):.3f}")


# What XML 1.0 cannot hold, even escaped: most control characters (a program's colour codes,
# a NUL), lone surrogates, U+FFFE and U+FFFF. Written as their escapes instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda found: found.group().encode("unicode_escape", "backslashreplace")
                        .decode("ascii"), text)


def _text(root: ET.Element) -> str:
    for element in root.iter():  # a program's output goes in as it wrote it: make it XML
        element.text = None if element.text is None else _xml_safe(element.text)
        element.attrib.update({key: _xml_safe(value) for key, value in element.attrib.items()})
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
