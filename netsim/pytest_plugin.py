"""A pytest plugin: scenario files are tests.

``pytest scenarios/`` collects every YAML file whose top level has a ``netsim:`` key
and a ``clients:`` key (other YAML files, and scenarios meant only for serving, are left
alone) and makes each client model of the scenario a test item, named like
``three_ports.yaml::select``. The item passes when every expectation
of that client (its own and those under ``all``) held.

The scenario runs once per file, the first time one of its items runs: only the
clients selected (``-k``, ``::select``) and those their ``speedup()`` compares
against, each against fresh servers. Every server takes a free port, since CI
machines may have the fixed ones taken. An invalid scenario is a collection error
with ``file:line:col``; a run that cannot be carried out (a timeout, a crash) is an
error of its items.

Options: ``--netsim-time-scale F`` (or the ini key ``netsim_time_scale``; default 1)
multiplies every duration, as ``netsim run --time-scale`` does.

The fixture ``netsim_servers`` serves a scenario for a test's own client code::

    def test_my_client_survives_a_reset(netsim_servers):
        net = netsim_servers("scenarios/faults.yaml")        # or the YAML text itself
        my_client.fetch(*net.address("reset"))
        assert net.result().check(["errors.reset == 1"]).passed

It is a factory (``netsim_servers(path_or_text, time_scale=1.0, seed=None)`` returns a
started ``netsim.Serving``); every server it started stops when the test ends. A failed
``check()`` shows its verdicts in pytest's report.

pytest finds this module through the ``pytest11`` entry point that installing
netsim registers; ``-p no:netsim`` turns it off.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from netsim._serving import Serving
    from netsim.expectations import Verdict
    from netsim.results import RunResult, ScenarioResult
    from netsim.scenario import Scenario

# Top-level keys: at the start of a line, outside any indentation.
_SCENARIO_KEY = re.compile(rb"^netsim[ \t]*:", re.MULTILINE)
_CLIENTS_KEY = re.compile(rb"^clients[ \t]*:", re.MULTILINE)
_SUFFIXES = (".yaml", ".yml")


class NetsimWarning(UserWarning):
    """The machine was too busy for a scenario's timings to mean much."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netsim", "netsim scenario files")
    group.addoption("--netsim-time-scale", dest="netsim_time_scale", metavar="F", default=None,
                    help="multiply every duration of the scenarios by F (0.1 runs them ten times "
                         "faster); expectations stay in scenario time. Default: the ini key "
                         "netsim_time_scale, else 1.")
    parser.addini("netsim_time_scale", "time scale of netsim scenario runs (default 1)", default="1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netsim: a client model of a netsim scenario file")
    _time_scale(config)  # a bad value stops the session before anything runs


def _time_scale(config: pytest.Config) -> float:
    option = config.getoption("netsim_time_scale", None)
    text = str(option if option is not None else config.getini("netsim_time_scale"))
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise pytest.UsageError(f"netsim: the time scale must be a number greater than 0, got {text!r}")
    return value


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix in _SUFFIXES and _is_scenario(file_path):
        file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return file
    return None


def _is_scenario(path: Path) -> bool:
    """A scenario with clients to run (one meant only for serving has no items)."""
    try:
        text = path.read_bytes()
    except OSError:
        return False
    return _SCENARIO_KEY.search(text) is not None and _CLIENTS_KEY.search(text) is not None


@pytest.fixture
def netsim_servers() -> Iterator[Callable[..., Serving]]:
    """A factory: ``netsim_servers(scenario, time_scale=1.0, seed=None)`` serves a scenario
    (a path, YAML text, or a loaded one) on free ports for the test's own client; every
    server it started stops when the test ends."""
    from netsim._serving import serving

    started: list[Serving] = []

    def serve(scenario: str | Path | Scenario, *, time_scale: float = 1.0,
              seed: int | None = None) -> Serving:
        net = serving(scenario, time_scale=time_scale, seed=seed).start()
        started.append(net)
        return net

    try:
        yield serve
    finally:
        for net in reversed(started):
            net.stop()


class ScenarioFile(pytest.File):
    """A scenario file: its client models are the items, its run is shared by them."""

    scenario: Scenario
    positions: dict[tuple[str | int, ...], tuple[int, int]]
    _outcome: ScenarioResult | str | None = None

    def collect(self) -> Iterator[ClientItem]:
        from netsim._errors import ScenarioError
        from netsim._loader import format_problem, load_scenario_text, value_positions

        try:
            text = self.path.read_text(encoding="utf-8")
            self.scenario = load_scenario_text(text, filename=self.shown, base_dir=self.path.parent)
            self.positions = value_positions(self.path)
        except ScenarioError as error:
            problems = "\n".join(format_problem(problem) for problem in error.problems)
            count = len(error.problems)
            raise self.CollectError(
                f"{problems}\nnetsim: {count} problem{'s' * (count != 1)} in this scenario") from None
        except (OSError, UnicodeDecodeError) as error:
            raise self.CollectError(f"{self.shown}: cannot be read: {error}") from None
        for index, client in enumerate(self.scenario.clients):
            item: ClientItem = ClientItem.from_parent(self, name=client.label)
            item.line = self.positions.get(("clients", index), (1, 1))[0]
            item.add_marker("netsim")
            yield item

    @property
    def shown(self) -> str:
        """The file's path as the user sees it: relative to where pytest was started."""
        try:
            return os.path.relpath(self.path, self.config.invocation_params.dir)
        except ValueError:
            return str(self.path)

    def outcome(self) -> ScenarioResult | str:
        """The run's result, or why it could not be carried out; runs the scenario once."""
        if self._outcome is None:
            self._outcome = self._run()
        return self._outcome

    def _run(self) -> ScenarioResult | str:
        from netsim._errors import RunError, UsageError
        from netsim.runner import run_scenario

        mine = [item.name for item in self.session.items if item.parent is self]
        everyone = len(mine) == len(self.scenario.clients)
        try:
            return run_scenario(self.scenario, clients=None if everyone else mine,
                                time_scale=_time_scale(self.config), free_ports=True)
        except (RunError, UsageError) as error:
            return f"{self.shown}: the run could not be carried out: {error}"


class ExpectationsFailed(Exception):
    """Some expectations of a client model did not hold; the message says which and by how much."""


class ClientItem(pytest.Item):
    """One client model of a scenario: passes when all its expectations held."""

    line = 1

    @property
    def scenario_file(self) -> ScenarioFile:
        assert isinstance(self.parent, ScenarioFile)
        return self.parent

    def setup(self) -> None:
        outcome = self.scenario_file.outcome()
        if isinstance(outcome, str):
            # Raised in setup, so pytest reports an error (not a failure) with this text alone.
            pytest.fail(outcome, pytrace=False)

    def runtest(self) -> None:
        result = self.scenario_file.outcome()
        assert not isinstance(result, str)
        run = result.run(self.name)
        for warning in result.warnings:
            if warning.startswith(f"{self.name}:"):
                self.warn(NetsimWarning(warning))
        failed = [verdict for verdict in run.expectations if not verdict.passed]
        if failed:
            raise ExpectationsFailed(self._report(run, failed, result.time_scale))

    def _report(self, run: RunResult, failed: list[Verdict], time_scale: float) -> str:
        from netsim._units import format_duration

        lines = []
        for verdict in failed:
            line = verdict.expectation.line
            where = f"{self.scenario_file.shown}:{line}" if line else self.scenario_file.shown
            lines += [f"expectation failed: {verdict.expectation.text}",
                      f"  measured: {verdict.actual_text()}",
                      f"  bound:    {verdict.bound}",
                      f"  at:       {where}"]
        held = len(run.expectations) - len(failed)
        lines.append(f"{self.name}: {held} of {len(run.expectations)} expectations held; elapsed "
                     f"{format_duration(run.elapsed)}, ideal {format_duration(run.ideal)} "
                     f"(scenario time, time scale {time_scale:g})")
        return "\n".join(lines)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ExpectationsFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        # Not the node id itself: pytest would take that for a Python name and write its
        # dots as `::` (first::yaml::select) in verbose output.
        return self.path, self.line - 1, f"netsim {self.scenario_file.name}::{self.name}"
