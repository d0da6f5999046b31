"""JUnit XML of a run, for CI systems that show test reports.

One ``<testsuite>`` per client model (named ``SCENARIO.CLIENT``, its time the client's
wall time), one ``<testcase>`` per expectation (named by its text). A failed
expectation carries a ``<failure>`` whose message gives the measured value and the
bound. A baseline comparison adds a test case per client; a run that could not be
carried out is one test case with an ``<error>``.
"""

from __future__ import annotations

import datetime
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from netsim._version import __version__
from netsim.baseline import BaselineReport
from netsim.expectations import Verdict
from netsim.repeat import ExpectationTally, RepeatResult
from netsim.results import ScenarioResult


def junit_xml(
    result: ScenarioResult | RepeatResult,
    *,
    file: str | None = None,
    baseline: BaselineReport | None = None,
) -> str:
    """The JUnit XML of a run (or of repeated runs).

    ``file`` puts a ``file`` attribute on each test case, and an expectation read from
    a scenario file gives its ``line``.
    """
    repeated = result if isinstance(result, RepeatResult) else None
    first = result.first if isinstance(result, RepeatResult) else result
    root = ET.Element("testsuites", name=f"netsim {first.scenario}")
    stamp = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    for run in first.runs:
        runs = [r.run(run.client) for r in repeated.results] if repeated else [run]
        suite = ET.SubElement(root, "testsuite", name=f"{first.scenario}.{run.client}",
                              timestamp=stamp, hostname=socket.gethostname(),
                              time=f"{sum(r.wall_elapsed for r in runs):.3f}")
        properties = ET.SubElement(suite, "properties")
        for name, value in (("netsim_version", __version__), ("time_scale", f"{first.time_scale:g}"),
                            ("model", run.model), ("runs", str(len(runs)))):
            ET.SubElement(properties, "property", name=name, value=value)
        for index, verdict in enumerate(run.expectations):
            case = _case(suite, f"{first.scenario}.{run.client}", verdict.expectation.text,
                         file, verdict.expectation.line)
            if repeated:
                _judge_tally(case, repeated.client(run.client).expectations[index])
            else:
                _judge(case, verdict)
        if baseline is not None:
            for comparison in baseline.comparisons:
                if comparison.client != run.client:
                    continue
                limit = f"{baseline.max_regression * 100:g}%"
                case = _case(suite, f"{first.scenario}.{run.client}",
                             f"overhead regression <= {limit} of ideal (baseline {baseline.path})",
                             None, None)
                if not comparison.passed:
                    message = (f"overhead {comparison.ratio * 100:+.2f}% of ideal against "
                               f"{comparison.baseline_ratio * 100:+.2f}% in the baseline: regressed "
                               f"{comparison.regression * 100:.2f} points, bound {limit}")
                    ET.SubElement(case, "failure", message=message, type="regression").text = message
        _count(suite)
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


def _judge(case: ET.Element, verdict: Verdict) -> None:
    if verdict.passed:
        return
    message = f"measured {verdict.actual_text()}, bound {verdict.bound}"
    failure = ET.SubElement(case, "failure", message=message, type="expectation")
    failure.text = f"{verdict.expectation.text}\nmeasured: {verdict.actual_text()}\nbound: {verdict.bound}\n"


def _judge_tally(case: ET.Element, tally: ExpectationTally) -> None:
    if tally.passed:
        return
    measured = _spread_text(tally)
    message = (f"held in {tally.passes} of {tally.runs} runs (needs {tally.required}); "
               f"measured {measured}, bound {tally.bound}")
    failure = ET.SubElement(case, "failure", message=message, type="expectation")
    failure.text = (f"{tally.expectation.text}\nheld: {tally.passes} of {tally.runs} runs "
                    f"(needs {tally.required})\nmeasured: {measured}\nbound: {tally.bound}\n")


def _spread_text(tally: ExpectationTally) -> str:
    shown = tally.expectation.format_measured
    spread = tally.actual
    return f"min {shown(spread.min)}, median {shown(spread.median)}, max {shown(spread.max)}"


def _count(element: ET.Element) -> None:
    cases: Sequence[ET.Element] = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    element.set("errors", str(sum(case.find("error") is not None for case in cases)))
    element.set("skipped", "0")
    if element.tag == "testsuites":
        element.set("time", f"{sum(float(s.get('time', '0')) for s in element.iter('testsuite')):.3f}")


def _text(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
