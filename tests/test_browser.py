"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, which .ci/run
installs) renders it, and the tests read the DOM it rendered and take screenshots."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import struct
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from netsim.session import Outputs, run_session
from tests.conftest import ScenarioWriter, demo_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# CI installs Chromium (.ci/run): there a missing browser is a failure, elsewhere a skip.
if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must have Chromium for the browser tests: apt-get install -y chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install -y chromium)")

SCALE = 0.02
EXPECT = """\
expect:
  blocking: [elapsed == 12s ± 50%]
  select: [speedup(blocking) >= 1.5, elapsed < 1s]
  all: [errors == 0]
"""


def chromium(page: Path, profile: Path, *args: str) -> str:
    """Run headless Chromium on ``page``, with no network and a profile of its own; its stdout."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}",
         *args, page.as_uri()],
        capture_output=True, text=True, timeout=90, check=True)
    return done.stdout


def screenshot(page: Path, png: Path, profile: Path, *, width: int = 1280,
               height: int = 1400) -> tuple[int, int]:
    """A PNG of the page's first ``height`` pixels; its size as the file says."""
    chromium(page, profile, f"--screenshot={png}", f"--window-size={width},{height}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    size: tuple[int, int] = struct.unpack(">II", data[16:24])  # the IHDR chunk's width and height
    return size


class Elements(HTMLParser):
    """Every element of a document, as (tag, attributes)."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def count(self, tag: str, **wanted: str) -> Counter[str | None]:
        """Elements ``tag`` with every attribute given (``class_``: a class), by their data-client."""
        matched: Counter[str | None] = Counter()
        for name, attrs in self.found:
            classes = (attrs.get("class") or "").split()
            if name == tag and all(
                    (value in classes) if key == "class_" else attrs.get(key.replace("_", "-")) == value
                    for key, value in wanted.items()):
                matched[attrs.get("data-client")] += 1
        return matched


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of one run of the demo: blocking, then select (which fails one expectation)."""
    folder = tmp_path_factory.mktemp("browser")
    scenario = folder / "demo.yaml"
    scenario.write_text(demo_text(expect=EXPECT), encoding="utf-8")
    page = folder / "report.html"
    run_session(scenario, time_scale=SCALE, outputs=Outputs(html=page, json=folder / "result.json"))
    return page


def test_chromium_renders_a_row_per_connection_every_client_and_every_verdict(report: Path,
                                                                             tmp_path: Path) -> None:
    """In the DOM Chromium rendered: a timeline per client model, a row per connection, a verdict per
    expectation, with the failed one marked."""
    dom = Elements(chromium(report, tmp_path / "profile", "--dump-dom"))
    assert dom.count("figure", class_="client") == {"blocking": 1, "select": 1}
    assert dom.count("g", class_="row") == {"blocking": 3, "select": 3}
    assert dom.count("tr", data_verdict="pass") == {"blocking": 2, "select": 2}
    assert dom.count("tr", data_verdict="fail") == {"select": 1}
    assert dom.count("circle", class_="arrival")[None] == 6 * 4 + 1  # four on each row, one in the legend
    assert sum(dom.count("svg").values()) >= 4  # two timelines, two histograms (and the legend's marks)


def test_chromium_takes_a_screenshot_of_the_report(report: Path, tmp_path: Path) -> None:
    """The report renders to a PNG of the window's size, with something drawn on it."""
    png = tmp_path / "report.png"
    assert screenshot(report, png, tmp_path / "profile", width=1280, height=1400) == (1280, 1400)
    assert png.stat().st_size > 40_000  # a blank page of that size compresses to a few KB


def test_chromium_renders_a_large_run_as_a_summary(write_scenario: ScenarioWriter, tmp_path: Path) -> None:
    """A client model with more connections than rows fit is drawn as three series over time."""
    path = write_scenario("""\
        netsim: 1
        name: many
        servers: [{name: s, poem: "a\\nb\\nc\\n", delay: 100ms}]
        clients: [{model: selectors, connections: 150, ramp: 200ms}]
        """)
    page = tmp_path / "many.html"
    run_session(path, time_scale=0.2, outputs=Outputs(html=page))
    dom = Elements(chromium(page, tmp_path / "profile", "--dump-dom"))
    assert dom.count("g", class_="summary") == {"selectors": 3}
    assert dom.count("g", class_="row") == {}
    png = tmp_path / "many.png"
    assert screenshot(page, png, tmp_path / "profile", height=900) == (1280, 900)


MEASURE = """<script>
const label = document.querySelector("figure.client svg text").getBoundingClientRect();
document.body.dataset.label = label.height.toFixed(1);
document.body.dataset.page = String(document.documentElement.scrollWidth);
document.body.dataset.window = String(window.innerWidth);
</script></body>"""


@pytest.mark.parametrize("width", [375, 700, 1280, 1920])
def test_the_timelines_text_stays_readable_at_every_width(report: Path, tmp_path: Path, width: int) -> None:
    """A timeline's labels render at about the page's own small text (9 to 16 px tall) on a
    phone and on a wide screen alike, where they shrank to 3 px and grew to 20; and the page
    itself is no wider than the window (a wide table or timeline scrolls in its own box)."""
    page = tmp_path / "measured.html"  # the report, with a script that writes what it measures
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE), encoding="utf-8")
    dom = Elements(chromium(page, tmp_path / "profile", "--dump-dom", f"--window-size={width},900"))
    (body,) = [attrs for tag, attrs in dom.found if tag == "body"]
    assert 9.0 <= float(body["data-label"] or 0) <= 16.0
    # (Headless Chromium lays a page out 500 pixels wide at least, whatever the window.)
    assert int(body["data-page"] or 0) <= int(body["data-window"] or 0) <= max(width, 500)


# Every histogram label's box, and its chart's: "left,right,top,bottom" each, ";" between labels.
MEASURE_HISTOGRAMS = """<script>
const boxes = [];
for (const chart of document.querySelectorAll("#lateness svg")) {
  const outer = chart.getBoundingClientRect();
  document.body.dataset.chart = [outer.left, outer.right].map(v => v.toFixed(1)).join(",");
  for (const text of chart.querySelectorAll("text")) {
    const box = text.getBoundingClientRect();
    boxes.push([text.classList.contains("count") ? "count" : "bound", box.left, box.right, box.top,
                box.bottom, text.textContent].join(","));
  }
}
document.body.dataset.labels = boxes.join(";");
</script></body>"""


@pytest.mark.parametrize("width", [375, 1280])
def test_a_lateness_histogram_of_thousands_keeps_its_labels_apart(report: Path, tmp_path: Path,
                                                                  width: int) -> None:
    """At c10k's sizes (16 bins, counts in the tens of thousands) every count is compact ("30.4k")
    and no two of a histogram's labels overlap or leave its chart, on a phone and a desktop."""
    from netsim.results import LATENESS_BINS
    from netsim.views.html import html_report

    result = json.loads((report.parent / "result.json").read_text())
    counts = [152, 242, 801, 954, 1484, 2622, 4058, 9046, 5345, 1200, 4086, 17671, 5135, 16822, 30381]
    for run in result["runs"]:
        run["lateness"]["histogram"] = [[bound if bound != math.inf else None, count] for bound, count
                                        in itertools.zip_longest(LATENESS_BINS, counts, fillvalue=0)]
    page = tmp_path / "measured.html"
    page.write_text(html_report(result).replace("</body>", MEASURE_HISTOGRAMS), encoding="utf-8")
    dom = Elements(chromium(page, tmp_path / "profile", "--dump-dom", f"--window-size={width},900"))
    (body,) = [attrs for tag, attrs in dom.found if tag == "body"]
    left, right = (float(value) for value in (body["data-chart"] or "").split(","))
    labels = [(kind, float(x0), float(x1), float(y0), float(y1), text) for kind, x0, x1, y0, y1, text
              in (label.split(",") for label in (body["data-labels"] or "").split(";"))]
    last_chart = labels[-(2 * len(counts) + 1):]  # each count over its bar, each bin's bound
    assert [text for kind, *_, text in last_chart if kind == "count"][-3:] == ["5.1k", "16.8k", "30.4k"]
    for kind in ("count", "bound"):
        row = [label for label in last_chart if label[0] == kind]
        assert all(left <= x0 and x1 <= right for _, x0, x1, *_ in row), row
        assert all(one[2] <= two[1] for one, two in itertools.pairwise(row)), row  # side by side, apart
        assert all(y1 - y0 >= 9 for *_, y0, y1, _ in row)  # readable text, not shrunk to fit
