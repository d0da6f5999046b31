"""The README's promises: its two commands, and that CI runs the one for the tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import netsim
from netsim.clients import MODELS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def first_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert block is not None, "the README starts with a sh block of commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands() -> None:
    """The first code block holds two commands: install and run the demo, and run the tests."""
    install, tests = first_commands()
    assert "netsim run scenarios/three_ports.yaml" in install
    assert "pytest" in tests


def test_ci_runs_the_readmes_test_command() -> None:
    """.ci/run contains the README's test command verbatim, so the two cannot drift apart."""
    _, tests = first_commands()
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_lists_every_client_model() -> None:
    """Each client model has a row in the README's table of models."""
    for name in MODELS:
        assert f"| `{name}` |" in README


def test_every_shipped_scenario_loads_and_is_listed() -> None:
    """Every scenario in scenarios/ is valid and named in the README."""
    paths = sorted((ROOT / "scenarios").glob("*.yaml"))
    assert paths
    for path in paths:
        netsim.load_scenario(path)
        assert f"`scenarios/{path.name}`" in README


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_scenario_passes_at_a_tenth_of_its_time(path: Path) -> None:
    """Each shipped scenario's expectations hold at time scale 0.1 (on free ports)."""
    result = netsim.run_scenario(netsim.load_scenario(path), time_scale=0.1, free_ports=True)
    failed = [f"{run.client}: {v.expectation.text} (measured {v.actual_text()}, bound {v.bound})"
              for run in result.runs for v in run.expectations if not v.passed]
    assert not failed
