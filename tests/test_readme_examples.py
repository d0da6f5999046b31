"""The README's "Test your own client" examples, run as they are written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import netsim
from netsim.testing import check_client_model

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytest_plugins = ["pytester"]


def example(name: str) -> str:
    """The code block that follows ``<!-- example: NAME -->`` in the README."""
    match = re.search(rf"<!-- example: {name} -->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"the README has no example {name!r}"
    return match.group(1)


def test_the_client_model_example_keeps_the_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model written out in docs/client-models.md passes check_client_model as it is."""
    text = (ROOT / "docs" / "client-models.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: model -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/client-models.md has its example model"
    (tmp_path / "doc_example_model.py").write_text(match.group(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    from doc_example_model import MODEL  # type: ignore[import-not-found]

    assert check_client_model(MODEL).passed


def test_the_command_example_grades_a_program(tmp_path: Path) -> None:
    """The command example, with the students' asyncio client as my_client.py, passes."""
    (tmp_path / "my_client.py").write_text((ROOT / "examples" / "async_poetry_client.py").read_text())
    (tmp_path / "scenario.yaml").write_text(example("command"))
    result = netsim.run_scenario(netsim.load_scenario(tmp_path / "scenario.yaml"), time_scale=0.5)
    (run,) = result.runs
    failed = [f"{verdict.expectation.text}: {verdict.actual_text()}" for verdict in run.expectations
              if not verdict.passed]
    assert not failed
    assert result.runs[0].program is not None and "1111" in result.runs[0].program.stdout


def test_the_serving_example_runs_and_its_checks_hold() -> None:
    """The serving example runs from the repository's root and prints passing verdicts."""
    done = subprocess.run([sys.executable, "-c", example("serving")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "PASS  errors.timeout == 1  measured 1  bound == 1",
        "PASS  bytes == 20B  measured 20B  bound == 20B",
        "PASS  intact == 0%  measured 0%  bound == 0%"]


def test_the_fixture_example_is_a_passing_test(pytester: pytest.Pytester) -> None:
    """The fixture example, as a test file of its own, passes under pytest with netsim installed."""
    pytester.makepyfile(test_my_client=example("fixture"))
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def test_a_failed_check_in_the_fixture_shows_its_verdicts(pytester: pytest.Pytester) -> None:
    """When the fixture example's check fails, pytest's report shows the verdicts, measured values
    included."""
    pytester.makepyfile(test_my_client=example("fixture").replace('"bytes == 5B"', '"bytes == 6B"'))
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL  bytes == 6B  measured 5B  bound == 6B*"])


def test_the_live_control_example_meets_each_change() -> None:
    """The live example runs: its client times out while SYNs are dropped and is refused while
    the server is down, then reads it again."""
    done = subprocess.run([sys.executable, "-c", example("live")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the connect timed out", "refused while down"]
