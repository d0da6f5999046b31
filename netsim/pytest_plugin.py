"""A pytest plugin: scenario files are tests.

``pytest scenarios/`` collects every YAML file whose top level has a ``netsim:`` key
and a ``clients:`` key (other YAML files, and scenarios meant only for serving, are left
alone) and makes each client model of the scenario a test item, named like
``three_ports.yaml::select``. The item passes when every expectation of that client
(its own and those under ``all``) held, and, against a baseline, when its overhead did
not regress.

Each item runs its own client model, against fresh servers, when its turn comes: its
time is its own in ``--durations`` and in the JUnit XML, ``-x`` stops before the rest
run, and a run that cannot be carried out (a timeout, a crash) is an error of the items
that need it. A client that another's ``speedup()`` compares with runs with the first
item that needs it, once; every client of a file shares the file's seed. Every server
takes a free port, since CI machines may have the fixed ones taken. An invalid scenario
is a collection error with ``file:line:col``.

Options (and ini keys):

- ``--netsim-time-scale F`` (``netsim_time_scale``; default 1) multiplies every
  duration, as ``netsim run --time-scale`` does;
- ``--netsim-repeat N`` (``netsim_repeat``; default 1) runs each client N times, as
  ``netsim run --repeat`` does: an expectation must hold in every run, or in the share
  its pass rate names (``elapsed <= 4.2s in 90% of runs``);
- ``--netsim-seed N`` (``netsim_seed``; default: the scenario's ``seed``, else one drawn
  for each file) draws jitter and faults from N, as ``netsim run --seed`` does; a failed
  item whose run drew from a seed netsim chose names it, so that this option draws that
  run again;
- ``--netsim-baseline PATH`` compares each client's overhead ratio with a baseline
  that ``netsim run --save-baseline`` wrote: PATH is one such file (for the scenario it
  names) or a folder of them, ``NAME.json`` for ``NAME.yaml``; ``--netsim-max-regression
  PCT`` (default 10%) is the growth that fails an item, as with ``netsim run``;
- ``netsim_allow_paths`` (ini only; default false) lets ``poem_file`` reach outside a
  scenario's folder, and ``netsim_max_poem_size`` (default 10MB) bounds it. These are
  settings of a repository, not of one run: its maintainers know whether its scenarios
  share poems across folders, while a scenario file itself, which anyone may add, can
  never widen what it may read.

The fixture ``netsim_servers`` serves a scenario for a test's own client code::

    def test_my_client_survives_a_reset(netsim_servers):
        net = netsim_servers("scenarios/faults.yaml")        # or the YAML text itself
        my_client.fetch(*net.address("reset"))
        assert net.result().check(["errors.reset == 1"]).passed

It is a factory (``netsim_servers(path_or_text, time_scale=1.0, seed=None, ...)``
returns a started ``netsim.Serving``); every server it started stops when the test
ends. A failed ``check()`` shows its verdicts in pytest's report.

pytest finds this module through the ``pytest11`` entry point that installing
netsim registers; ``-p no:netsim`` turns it off.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from netsim._poem_files import DEFAULT_MAX_POEM_BYTES, DEFAULT_MAX_POEM_TEXT

if TYPE_CHECKING:
    from netsim._serving import Serving
    from netsim.baseline import Baseline, Comparison
    from netsim.repeat import ClientTally, ExpectationTally, RepeatResult
    from netsim.results import ScenarioResult
    from netsim.scenario import Scenario

# The top-level key of a scenario with its value (`netsim: 1`; a `netsim:` section of
# another tool's file is left alone): at the start of a line (block style, quoted or
# not), or the first key of a flow mapping that opens the document (`{netsim: 1, ...}`,
# after `---` too). A UTF-8 byte order mark, which some editors write, may come first.
_BOM = rb"(?:\xef\xbb\xbf)?"
_SCENARIO_KEY = re.compile(
    rb"^" + _BOM + rb"""["']?netsim["']?[ \t]*:[ \t]*[^\s#]"""
    rb"|\A" + _BOM + rb"(?:[ \t]*(?:#[^\n]*|---[^\n]*|%[^\n]*)?\r?\n)*"
    rb"""[ \t]*(?:---[ \t]+)?\{\s*["']?netsim["']?[ \t]*:""",
    re.MULTILINE)
_SUFFIXES = (".yaml", ".yml")
# How much of a YAML file is looked at for those keys: the loader takes 4 MiB of text,
# at most 16 MiB of UTF-8; a longer file with the keys is collected, and refused by it.
_MOST_BYTES = 16 * 1024 * 1024


class NetsimWarning(UserWarning):
    """The machine was too busy for a scenario's timings to mean much, or a client was not
    compared with the baseline."""


@dataclass(frozen=True)
class Settings:
    """The plugin's options, read and checked once when pytest starts."""

    time_scale: float = 1.0
    repeat: int = 1
    seed: int | None = None  # None: the scenario's, else one drawn for each file
    baseline: Path | None = None  # a baseline file, or a folder of them
    reference: Baseline | None = None  # the baseline file's contents, when it is a file
    max_regression: float = 0.10
    allow_paths: bool = False
    max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES


_SETTINGS = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netsim", "netsim scenario files")
    group.addoption("--netsim-time-scale", dest="netsim_time_scale", metavar="F", default=None,
                    help="multiply every duration of the scenarios by F (0.1 runs them ten times "
                         "faster); expectations stay in scenario time. Default: the ini key "
                         "netsim_time_scale, else 1.")
    group.addoption("--netsim-repeat", dest="netsim_repeat", metavar="N", default=None,
                    help="run each client model N times; an expectation must hold in every run, "
                         "or in the share its pass rate names. Default: the ini key netsim_repeat, "
                         "else 1.")
    group.addoption("--netsim-seed", dest="netsim_seed", metavar="N", default=None,
                    help="draw jitter and faults from seed N, as `netsim run --seed` does. Default: the "
                         "ini key netsim_seed, else the scenario's seed, else one drawn for each file "
                         "(a failed item names it).")
    group.addoption("--netsim-baseline", dest="netsim_baseline", metavar="PATH", default=None,
                    help="compare each client's overhead ratio with this baseline (made by `netsim "
                         "run --save-baseline`), or with NAME.json in this folder for NAME.yaml")
    group.addoption("--netsim-max-regression", dest="netsim_max_regression", metavar="PCT",
                    default=None,
                    help="with --netsim-baseline: fail a client whose overhead ratio grew by more "
                         "than PCT of its ideal (default 10%%)")
    parser.addini("netsim_time_scale", "time scale of netsim scenario runs (default 1)", default="1")
    parser.addini("netsim_repeat", "runs of each netsim client model (default 1)", default="1")
    parser.addini("netsim_seed", "seed of jitter and faults of netsim scenario runs (default: the "
                  "scenario's, else one drawn for each file)", default="")
    parser.addini("netsim_allow_paths", "let a scenario's poem_file name files outside its folder "
                  "(default false)", type="bool", default=False)
    parser.addini("netsim_max_poem_size", f"the largest poem_file a scenario may read (default "
                  f"{DEFAULT_MAX_POEM_TEXT})", default=DEFAULT_MAX_POEM_TEXT)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netsim: a client model of a netsim scenario file")
    # A bad value stops the session before anything runs.
    config.stash[_SETTINGS] = _settings(config)


def _settings(config: pytest.Config) -> Settings:
    from netsim._units import parse_size

    repeat_text = _option(config, "netsim_repeat")
    try:
        repeat = int(repeat_text)
    except ValueError:
        repeat = 0
    if repeat < 1:
        raise pytest.UsageError(f"netsim: the repeat count must be a whole number of 1 or more, "
                                f"got {repeat_text!r}")
    size_text = str(config.getini("netsim_max_poem_size"))
    try:
        max_poem_bytes = parse_size(size_text)
    except ValueError as error:
        raise pytest.UsageError(f"netsim: netsim_max_poem_size: {error}") from None
    if max_poem_bytes < 1:
        raise pytest.UsageError(f"netsim: netsim_max_poem_size must be greater than 0, got {size_text!r}")
    baseline, reference, max_regression = _baseline_settings(config)
    return Settings(time_scale=_time_scale(config), repeat=repeat, seed=_seed(config), baseline=baseline,
                    reference=reference, max_regression=max_regression,
                    allow_paths=bool(config.getini("netsim_allow_paths")), max_poem_bytes=max_poem_bytes)


def _option(config: pytest.Config, name: str) -> str:
    """A setting from the command line, else from the ini key of the same name."""
    option = config.getoption(name, None)
    return str(option if option is not None else config.getini(name))


def _time_scale(config: pytest.Config) -> float:
    text = _option(config, "netsim_time_scale")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise pytest.UsageError(f"netsim: the time scale must be a number greater than 0, got {text!r}")
    return value


def _seed(config: pytest.Config) -> int | None:
    text = _option(config, "netsim_seed").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(f"netsim: the seed must be a whole number, like 7, got {text!r}") from None


def _baseline_settings(config: pytest.Config) -> tuple[Path | None, Baseline | None, float]:
    given = config.getoption("netsim_baseline", None)
    regression_text = config.getoption("netsim_max_regression", None)
    if given is None:
        if regression_text is not None:
            raise pytest.UsageError("netsim: --netsim-max-regression needs --netsim-baseline PATH "
                                    "to compare with")
        return None, None, 0.10
    from netsim.baseline import DEFAULT_MAX_REGRESSION, BaselineError, load_baseline, parse_regression

    max_regression = DEFAULT_MAX_REGRESSION
    if regression_text is not None:
        try:
            max_regression = parse_regression(regression_text)
        except ValueError as error:
            raise pytest.UsageError(f"netsim: --netsim-max-regression: {error}") from None
    path = Path(given)
    if path.is_dir():
        return path, None, max_regression  # each scenario's file is read when it runs
    try:
        return path, load_baseline(path), max_regression
    except BaselineError as error:
        raise pytest.UsageError(f"netsim: --netsim-baseline: {error}") from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix in _SUFFIXES and _is_scenario(file_path):
        file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return file
    return None


def _is_scenario(path: Path) -> bool:
    """A file with a scenario's top-level key: collected, so that a broken one is an error
    rather than a test that silently never ran (a valid one meant only for serving, with
    no clients, has no items).

    Only the first _MOST_BYTES are looked at: a YAML file of gigabytes is not read whole
    to find a key. (pytest offers regular files only: a FIFO never gets here.)
    """
    try:
        with path.open("rb") as handle:
            text = handle.read(_MOST_BYTES)
    except OSError:
        return False
    return _SCENARIO_KEY.search(text) is not None


@pytest.fixture
def netsim_servers(pytestconfig: pytest.Config) -> Iterator[Callable[..., Serving]]:
    """A factory: ``netsim_servers(scenario, time_scale=1.0, seed=None, allow_external=False,
    allow_paths=..., max_poem_bytes=..., free_ports=True)`` serves a scenario (a path, YAML text, a
    mapping of its keys, or a loaded one) on free ports for the test's own client; every server
    it started stops when the test ends. ``allow_paths`` and ``max_poem_bytes`` default to the ini keys."""
    from netsim._errors import NetsimError
    from netsim._serving import serving

    settings = pytestconfig.stash[_SETTINGS]
    started: list[Serving] = []

    def serve(scenario: str | Path | Scenario | Mapping[str, Any], *, time_scale: float = 1.0,
              seed: int | None = None,
              allow_external: bool = False, allow_paths: bool = settings.allow_paths,
              max_poem_bytes: int = settings.max_poem_bytes, free_ports: bool = True) -> Serving:
        __tracebackhide__ = True
        try:
            net = serving(scenario, time_scale=time_scale, seed=seed, allow_external=allow_external,
                          allow_paths=allow_paths, max_poem_bytes=max_poem_bytes,
                          free_ports=free_ports).start()
        except NetsimError as error:
            # The message says what is wrong and where; netsim's frames would only bury it.
            raise error.with_traceback(None) from None
        started.append(net)
        return net

    try:
        yield serve
    finally:
        # A test that asked nothing of its servers after they died would pass without a word.
        failures = [net.failure for net in started if net.failure is not None]
        for net in reversed(started):
            net.stop()
    if failures:
        pytest.fail("netsim_servers: the servers did not serve the whole test: " + "; ".join(failures),
                    pytrace=False)


@dataclass(frozen=True)
class Judged:
    """A client model's verdict over its runs, and how it compares with the baseline."""

    tally: ClientTally
    runs: list[ScenarioResult]  # each run of this client alone, with its verdicts
    comparison: Comparison | None  # None: no baseline, or none for this client
    baseline_note: str | None  # why it was not compared, when a baseline was asked for
    baseline_source: str  # the baseline file and when it was saved, for the report


class ScenarioFile(pytest.File):
    """A scenario file: its client models are the items; each runs when its item does."""

    scenario: Scenario
    positions: dict[tuple[str | int, ...], tuple[int, int]]
    _runs: dict[str, list[ScenarioResult] | str]  # by client: its runs alone, or why they failed
    _seeds: list[int]  # one per repeat, drawn when the first client runs

    def collect(self) -> Iterator[ClientItem]:
        from netsim._errors import ScenarioError
        from netsim._loader import MAX_TEXT, format_problem, load_scenario_text, value_positions

        settings = self.settings
        try:
            with self.path.open(encoding="utf-8") as handle:
                text = handle.read(MAX_TEXT + 1)  # one more, so that the loader calls it too long
            # Its runs never allow external addresses: a server outside loopback is a problem
            # of the file, with its line, not an error of each run.
            self.scenario = load_scenario_text(text, filename=self.shown, base_dir=self.path.parent,
                                               allow_paths=settings.allow_paths,
                                               max_poem_bytes=settings.max_poem_bytes, allow_external=False)
            self.positions = value_positions(self.path)
        except ScenarioError as error:
            problems = "\n".join(format_problem(problem) for problem in error.problems)
            count = len(error.problems)
            raise self.CollectError(
                f"{problems}\nnetsim: {count} problem{'s' * (count != 1)} in this scenario") from None
        except (OSError, UnicodeDecodeError) as error:
            raise self.CollectError(f"{self.shown}: cannot be read: {error}") from None
        self._runs, self._seeds = {}, []
        for index, client in enumerate(self.scenario.clients):
            item: ClientItem = ClientItem.from_parent(self, name=client.label)
            item.line = self.positions.get(("clients", index), (1, 1))[0]
            item.add_marker("netsim")
            yield item

    @property
    def settings(self) -> Settings:
        return self.config.stash[_SETTINGS]

    @property
    def shown(self) -> str:
        """The file's path as the user sees it: relative to where pytest was started."""
        try:
            return os.path.relpath(self.path, self.config.invocation_params.dir)
        except ValueError:
            return str(self.path)

    def judge(self, label: str) -> Judged | str:
        """The verdict on the client ``label``, or why its run could not be carried out.

        Runs it, and the clients its ``speedup()`` compares with that have not run yet.
        """
        from netsim import runner
        from netsim.repeat import tally
        from netsim.results import ScenarioResult

        others = {expectation.other for expectation in self.scenario.expectations_for(label)}
        needed = [client.label for client in self.scenario.clients
                  if client.label == label or client.label in others]
        runs: dict[str, list[ScenarioResult]] = {}
        for name in needed:
            found = self._runs_of(name)
            if isinstance(found, str):
                return found
            runs[name] = found
        judged = []
        for index, alone in enumerate(runs[label]):
            elapsed_of = {name: runs[name][index].runs[0].elapsed for name in needed}
            run = runner.judge(self.scenario, alone.runs[0], elapsed_of)
            # Its warnings again, now that it is judged: those that explain a failed timing
            # expectation (a program's start, the hypervisor's steal, phases come early) could
            # not be given by the run, which judged none of this client's expectations.
            warnings = [*runner.unread_warnings(self.scenario, [label]), *runner.fidelity_warnings(run)]
            judged.append(ScenarioResult(alone.scenario, alone.time_scale, [run], warnings, alone.seed))
        tallied = tally(judged)
        compared = self._compare(tallied)
        if isinstance(compared, str):
            return compared
        comparison, note, source = compared
        return Judged(tallied.clients[0], judged, comparison, note, source)

    def _runs_of(self, label: str) -> list[ScenarioResult] | str:
        """The runs of the client ``label`` alone, unjudged; run the first time they are asked for."""
        if label not in self._runs:
            self._runs[label] = self._run(label)
        return self._runs[label]

    def _run(self, label: str) -> list[ScenarioResult] | str:
        from netsim import runner
        from netsim._errors import RunError, UsageError

        settings = self.settings
        if not self._seeds:
            # One seed per repeat for the whole file: a speedup() compares runs of one schedule.
            self._seeds = [runner.seed_for(self.scenario, settings.seed) for _ in range(settings.repeat)]
        # Without its expectations, the runner runs this client alone (not those its
        # speedup() names: they run in their own items); judge() gives the verdicts.
        alone = self.scenario.model_copy(update={"expect": {}})
        results = []
        seed = self._seeds[0]
        try:
            for seed in self._seeds:
                # Looked up at run time, so that a conftest.py can wrap it.
                results.append(runner.run_scenario(alone, clients=[label], time_scale=settings.time_scale,
                                                   free_ports=True, seed=seed))
        except RunError as error:
            from netsim.report import seeds_line

            why = f"{self.shown}: the run could not be carried out: {error}"
            drawn = seeds_line(self.scenario, [seed], "run", "--netsim-seed")  # where it drew its course
            return f"{why}\n{drawn}" if drawn else why
        except UsageError as error:  # what the machine does not allow (too few file descriptors)
            return f"{self.shown}: cannot be run here: {error}"
        # A program netsim could not start is a run not carried out (netsim run's exit 3).
        from netsim.outcome import judged_instead, unstarted

        for result in results:
            (run,) = result.runs
            unstartable = unstarted(run, self.scenario)
            if unstartable is not None:
                return f"{self.shown}: the run could not be carried out: {unstartable}; {judged_instead(run)}"
        return results

    def _compare(self, tallied: RepeatResult) -> tuple[Comparison | None, str | None, str] | str:
        """The client's overhead ratio against the baseline: the comparison (None where there is
        none), why it was not compared, and the baseline's source; or why the baseline cannot
        be used."""
        from netsim.baseline import BaselineError, baseline_of, check_fits, compare, load_baseline

        settings = self.settings
        if settings.baseline is None:
            return None, None, ""
        path, reference = settings.baseline, settings.reference
        if reference is None:  # a folder: this scenario's own file in it
            path = settings.baseline / f"{self.path.stem}.json"
            if not path.exists():
                return None, f"no baseline for {self.shown}: {path} does not exist", ""
            try:
                reference = load_baseline(path)
            except BaselineError as error:
                return f"{self.shown}: {error}"
        elif reference.scenario != self.scenario.name:
            return None, None, ""  # the one baseline given is another scenario's
        try:
            check_fits(reference, scenario=self.scenario.name, time_scale=settings.time_scale, path=path,
                       time_scale_option="--netsim-time-scale")
        except BaselineError as error:
            return f"{self.shown}: {error}"
        report = compare(reference, baseline_of(tallied, self.scenario),
                         max_regression=settings.max_regression, path=path)
        source = (f"{path} (saved {reference.created} by netsim {reference.netsim_version}, "
                  f"{reference.runs} run{'s' * (reference.runs != 1)}, time scale {reference.time_scale:g})")
        if report.skipped:
            return None, f"not compared with baseline {path}: {report.skipped[0]}", source
        return report.comparisons[0], None, source


class ExpectationsFailed(Exception):
    """Some expectations of a client model did not hold, or its overhead regressed; the
    message says which and by how much."""


class ClientItem(pytest.Item):
    """One client model of a scenario: passes when all its expectations held (often enough,
    with repeats) and its overhead did not regress past the baseline's."""

    line = 1
    judged: Judged

    @property
    def scenario_file(self) -> ScenarioFile:
        assert isinstance(self.parent, ScenarioFile)
        return self.parent

    def setup(self) -> None:
        self._name_class_in_junit_xml()
        # The client runs here, so that a run that cannot be carried out is an error of the
        # item (not a failure), reported with this text alone.
        judged = self.scenario_file.judge(self.name)
        if isinstance(judged, str):
            pytest.fail(judged, pytrace=False)
        self.judged = judged

    def _name_class_in_junit_xml(self) -> None:
        """Give ``--junitxml`` the file's dotted path without its suffix as this item's
        classname (``scenarios.three_ports``), as a Python test module's is named.

        pytest's own, made from the node id as a Python module's path, keeps ``.yaml``: CI
        servers take the part after the last dot for the class, and Jenkins showed every
        scenario as class ``yaml`` of package ``scenarios.three_ports``. An attribute set
        before the report is what pytest keeps over its own (as ``record_xml_attribute``
        sets one); the node id, and so ``-k``, stay as they are.
        """
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # a pytest that keeps it elsewhere: its own classname then
            return
        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        path = self.scenario_file.nodeid
        dotted = path.removesuffix(self.scenario_file.path.suffix).replace("/", ".")
        classname = f"{xml.prefix}.{dotted}" if xml.prefix else dotted
        xml.node_reporter(self.nodeid).add_attribute("classname", classname)

    def runtest(self) -> None:
        from netsim.runner import time_scale_warnings

        judged = self.judged
        # As `netsim run` gives them: the time scale's, then each run's, each once.
        notes = list(dict.fromkeys([*time_scale_warnings(judged.runs[0].time_scale, "--netsim-time-scale"),
                                    *(warning for result in judged.runs for warning in result.warnings)]))
        if judged.baseline_note is not None:
            notes.append(judged.baseline_note)
        lines = self._failed_expectations(judged.tally)
        if judged.comparison is not None and not judged.comparison.passed:
            lines += _regression(judged.comparison, judged.baseline_source)
        if lines:
            # The warnings go with the failure they may explain (a busy machine), not to
            # the summary at the end, where -W error would have raised them first.
            raise ExpectationsFailed("\n".join([*lines, self._summary(judged), *self._why(judged),
                                                *self._seeds(judged),
                                                *(f"warning: {note}" for note in notes)]))
        for note in notes:
            self.warn(NetsimWarning(note))

    def _why(self, judged: Judged) -> list[str]:
        """What went wrong in the first run that failed: its troubled connections, and how
        its program ended."""
        from netsim.report import connection_problems, program_lines, program_to_explain

        run = next((run for result in judged.runs for run in result.runs
                    if run.client == self.name and not run.passed), None)
        if run is None:
            return []
        lines = [f"  {line}" for line in connection_problems(run)]
        if lines:
            lines.insert(0, "connections:")
        program = program_to_explain(run)
        if program is not None:
            lines += program_lines("program: ", program)
        return lines

    def _seeds(self, judged: Judged) -> list[str]:
        """The seeds netsim chose that its failed runs drew from, as `netsim run` names them."""
        from netsim.report import seeds_line

        failed = [result.seed for result in judged.runs if not result.passed and result.seed is not None]
        line = seeds_line(self.scenario_file.scenario, failed, "failed run", "--netsim-seed")
        return [line] if line else []

    def _failed_expectations(self, tallied: ClientTally) -> list[str]:
        lines = []
        for tallied_one in tallied.expectations:
            if tallied_one.passed:
                continue
            line = tallied_one.expectation.line
            where = f"{self.scenario_file.shown}:{line}" if line else self.scenario_file.shown
            lines.append(f"expectation failed: {tallied_one.expectation.text}")
            if tallied_one.runs > 1:
                lines.append(f"  held:     in {tallied_one.passes} of {tallied_one.runs} runs "
                             f"(needs {tallied_one.required})")
            lines += [f"  measured: {_measured(tallied_one)}",
                      f"  bound:    {tallied_one.bound}",
                      f"  at:       {where}"]
        return lines

    def _summary(self, judged: Judged) -> str:
        from netsim._units import format_duration

        tallied = judged.tally
        held = sum(one.passed for one in tallied.expectations)
        count = len(tallied.expectations)
        time_scale = judged.runs[0].time_scale
        elapsed, ideal = tallied.metrics["elapsed"].median, tallied.metrics["ideal"].median
        if tallied.runs == 1:
            return (f"{self.name}: {held} of {count} expectations held; elapsed "
                    f"{format_duration(elapsed)}, ideal {format_duration(ideal)} "
                    f"(scenario time, time scale {time_scale:g})")
        return (f"{self.name}: {held} of {count} expectations held in enough of {tallied.runs} runs "
                f"({tallied.runs_passed} runs passed every one); elapsed {format_duration(elapsed)} "
                f"(the median), ideal {format_duration(ideal)} (scenario time, time scale {time_scale:g})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ExpectationsFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, NetsimWarning):  # a warning made an error (-W error)
            return f"{excinfo.value}\n(a NetsimWarning, which this run's warning filters make an error)"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        # Not the node id itself: pytest would take that for a Python name and write its
        # dots as `::` (first::yaml::select) in verbose output.
        return self.path, self.line - 1, f"netsim {self.scenario_file.name}::{self.name}"


def _measured(tallied: ExpectationTally) -> str:
    """The measured value (the median of several runs, with their range where it differs)."""
    expectation, actual = tallied.expectation, tallied.actual
    median = expectation.format_measured(actual.median)
    if tallied.runs == 1:
        return median
    low, high = expectation.format_measured(actual.min), expectation.format_measured(actual.max)
    spread = "" if low == high else f"; range {low} .. {high}"
    return f"{median} (the median of {tallied.runs} runs{spread})"


def _regression(comparison: Comparison, source: str) -> list[str]:
    limit = f"{comparison.max_regression * 100:g} points"
    return [f"overhead regressed: {comparison.regression * 100:.2f} points of the ideal, more than {limit}",
            f"  overhead: {comparison.ratio * 100:+.2f}% of the ideal, baseline "
            f"{comparison.baseline_ratio * 100:+.2f}%",
            f"  baseline: {source}"]
