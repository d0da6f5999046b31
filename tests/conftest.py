"""Shared fixtures: scenario files on port 0, and a guard against leaked processes."""

from __future__ import annotations

import multiprocessing
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# A small version of the classic demo: every server on any free port, four lines with a
# pause after each. At time scale 1 the blocking client needs 12 x DELAY.
DEMO = """\
netsim: 1
name: demo
servers:
  - {{name: a, poem: "1111\\n2222\\n3333\\n4444\\n", newline: strip, delay: {delay}, mode: serial}}
  - {{name: b, poem: "1111\\n2222\\n3333\\n4444\\n", newline: strip, delay: {delay}, mode: serial}}
  - {{name: c, poem: "1111\\n2222\\n3333\\n4444\\n", newline: strip, delay: {delay}, mode: serial}}
clients: [{clients}]
"""

ScenarioWriter = Callable[..., Path]


@pytest.fixture
def write_scenario(tmp_path: Path) -> ScenarioWriter:
    """Write a scenario file into the test's folder and return its path."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def demo_text(*, delay: str = "1s", clients: str = "blocking, select", expect: str = "") -> str:
    """The three-server demo on free ports, with the given clients and `expect:` block."""
    return DEMO.format(delay=delay, clients=clients) + textwrap.dedent(expect)


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    """Fail a test that leaves a server or client process running."""
    yield
    leaked = multiprocessing.active_children()
    for child in leaked:
        child.kill()
    assert not leaked, f"processes left running: {leaked}"
