"""Client models are found through the entry-point group netsim.clients, netsim's own too."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from netsim import _plugins
from netsim._errors import ScenarioError
from netsim._loader import load_scenario_text
from netsim.clients import ClientModel, ModelUnavailableError, get_model, model_names, models


@pytest.fixture
def extra_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, importlib.metadata.EntryPoint]]:
    """The installed entry points, plus whatever the test adds (the caches are reset around it)."""
    points = dict(_plugins.entry_points())
    _plugins.load.cache_clear()
    monkeypatch.setattr(_plugins, "entry_points", lambda: points)
    yield points
    _plugins.load.cache_clear()


# Models of a package of the test's own (see odd_models).
MODEL_MODULE = """\
import dataclasses

from netsim.clients import ClientModel, blocking, threads

def run(targets, recorder):
    pass

async def arun(targets, recorder):
    pass

TWO_FAST = ClientModel("2fast", "a name no scenario can write", False, run)
ELSEWHERE = ClientModel("elsewhere", "named otherwise than its entry point", False, run)
AGAIN = dataclasses.replace(blocking.MODEL, name="again")
POOLED = dataclasses.replace(threads.MODEL, name="pooled")
"""


@pytest.fixture
def odd_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module netsim_odd_models, with MODEL_MODULE's models, importable."""
    (tmp_path / "netsim_odd_models.py").write_text(MODEL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_netsims_own_models_are_registered_in_teaching_order() -> None:
    """The five built-in models come first, from blocking to threads, each under its own name."""
    assert model_names()[:5] == ["blocking", "select", "selectors", "asyncio", "threads"]
    installed = {point.name for point in importlib.metadata.entry_points(group=_plugins.GROUP)}
    assert set(model_names()[:5]) <= installed  # registered as entry points, not only known
    assert [get_model(name).name for name in model_names()[:5]] == model_names()[:5]
    assert [name for name in model_names()[:5] if not get_model(name).concurrent] == ["blocking"]


def test_an_unknown_model_is_a_key_error_listing_the_known_ones() -> None:
    """get_model raises KeyError naming the models it knows."""
    with pytest.raises(KeyError, match="known models: blocking, select"):
        get_model("epoll")


def test_a_third_party_model_is_found_by_its_entry_point(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint], odd_models: None) -> None:
    """A model registered under netsim.clients is listed after netsim's own and loads by name."""
    extra_entry_points["again"] = importlib.metadata.EntryPoint(
        "again", "netsim_odd_models:AGAIN", _plugins.GROUP)
    assert model_names()[-1] == "again"
    assert get_model("again").run is get_model("blocking").run


def test_a_model_that_cannot_be_imported_says_what_to_install(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint]) -> None:
    """A model whose module is missing is listed as unavailable, with the module and an install hint."""
    extra_entry_points["ghost"] = importlib.metadata.EntryPoint(
        "ghost", "netsim_ghost_model:MODEL", _plugins.GROUP)
    with pytest.raises(ModelUnavailableError, match=r"needs the module 'netsim_ghost_model'.*pip install"):
        get_model("ghost")
    assert isinstance(models()["ghost"], ModelUnavailableError)
    assert isinstance(models()["blocking"], ClientModel)


def test_an_entry_point_naming_a_module_its_package_lacks_says_so(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint]) -> None:
    """An entry point into an installed package, naming a module that package does not have,
    is called a mistake in that package, with no install hint (installing would not help)."""
    extra_entry_points["broken"] = importlib.metadata.EntryPoint(
        "broken", "netsim.clients.no_such_model:MODEL", _plugins.GROUP)
    with pytest.raises(ModelUnavailableError) as failure:
        get_model("broken")
    message = str(failure.value)
    assert "has no module 'netsim.clients.no_such_model'" in message and "not something to install" in message
    assert "pip install" not in message


def test_a_module_missing_from_a_namespace_package_is_something_to_install(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A namespace package is shared by distributions: a module missing from it may come
    with another one, so the message says to install it rather than blame the package."""
    (tmp_path / "netsim_space").mkdir()  # no __init__.py: a namespace package
    (tmp_path / "netsim_space" / "plug.py").write_text("import netsim_space.core\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    extra_entry_points["spaced"] = importlib.metadata.EntryPoint(
        "spaced", "netsim_space.plug:MODEL", _plugins.GROUP)
    with pytest.raises(ModelUnavailableError, match=r"needs the module 'netsim_space\.core'.*pip install"):
        get_model("spaced")


def test_an_entry_point_that_is_not_a_model_is_refused(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint]) -> None:
    """An entry point naming something other than a ClientModel is unavailable, saying what it named."""
    extra_entry_points["odd"] = importlib.metadata.EntryPoint(
        "odd", "netsim.clients:get_model", _plugins.GROUP)
    with pytest.raises(ModelUnavailableError, match=r"names function, not a netsim\.clients\.ClientModel"):
        get_model("odd")


def test_a_model_whose_import_exits_is_unavailable_and_netsim_goes_on(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model module that calls sys.exit() at import (a missing setting, say) is unavailable
    with what it said, like any other failed import: the listing still lists the others."""
    (tmp_path / "netsim_exiting_model.py").write_text('import sys\nsys.exit("please set FOO_CONFIG")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    extra_entry_points["exiter"] = importlib.metadata.EntryPoint(
        "exiter", "netsim_exiting_model:MODEL", _plugins.GROUP)
    with pytest.raises(ModelUnavailableError,
                       match=r"'exiter' failed to import: SystemExit: please set FOO_CONFIG"):
        get_model("exiter")
    listed = models()
    assert isinstance(listed["exiter"], ModelUnavailableError) and isinstance(listed["blocking"], ClientModel)




@pytest.mark.parametrize(("name", "value", "words"), [
    ("2fast", "netsim_odd_models:TWO_FAST", "'2fast': no scenario can name it: a model's name"),
    ("misnamed", "netsim_odd_models:ELSEWHERE",
     "'misnamed': its entry point is named 'misnamed', the model it names 'elsewhere'"),
])
def test_a_model_that_no_scenario_could_use_is_unavailable(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint], odd_models: None,
        name: str, value: str, words: str) -> None:
    """An entry point whose name is no name a scenario can write, or that names a model
    calling itself otherwise, is listed as unavailable, saying why."""
    extra_entry_points[name] = importlib.metadata.EntryPoint(name, value, _plugins.GROUP)
    with pytest.raises(ModelUnavailableError, match=re.escape(words)):
        get_model(name)
    assert isinstance(models()[name], ModelUnavailableError)


@pytest.mark.parametrize(("fields", "words"), [
    ({"run": "netsim_odd_models.arun"}, "run is a coroutine function (async def), which netsim cannot await"),
    ({"run": None}, "run must be a function run(targets, recorder), not NoneType"),
    ({"limit": 0}, "limit must be a whole number of connections, 1 or more"),
    ({"concurrent": "yes"}, "concurrent must be True or False, not 'yes'"),
])
def test_a_model_made_wrong_says_so_when_it_is_made(odd_models: None, fields: dict[str, Any],
                                                   words: str) -> None:
    """A ClientModel with an async run, no run, a limit below 1 or a concurrent that is no
    bool is refused where it is made (so a package's mistake shows when its model is
    loaded), not in the middle of a run."""
    import netsim_odd_models  # type: ignore[import-not-found]

    given = {"name": "wrong", "summary": "made wrong", "concurrent": False, "run": netsim_odd_models.run}
    given.update({key: netsim_odd_models.arun if value == "netsim_odd_models.arun" else value
                  for key, value in fields.items()})
    with pytest.raises((TypeError, ValueError), match=re.escape(f"client model 'wrong': {words}")):
        ClientModel(**given)


class _Provided(importlib.metadata.EntryPoint):
    """An entry point of an installed package (a plain EntryPoint has no distribution)."""

    @property
    def dist(self) -> Any:
        return SimpleNamespace(name="netsim-extra", requires=[])


def test_netsim_clients_names_the_package_of_a_third_partys_model(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint],
        capsys: pytest.CaptureFixture[str], odd_models: None) -> None:
    """`netsim clients` says which package brings a third party's model, and nothing of the
    kind for netsim's own."""
    from netsim.cli import main

    extra_entry_points["pooled"] = _Provided("pooled", "netsim_odd_models:POOLED", _plugins.GROUP)
    assert main(["clients"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["pooled"].endswith("(from netsim-extra)")
    assert "(from" not in lines["blocking"]


def test_the_install_hint_names_the_extra_that_brings_the_module() -> None:
    """When the model's package has an extra requiring the missing module, the hint installs that extra."""
    dist = SimpleNamespace(name="netsim", requires=['pytest>=8; extra == "test"',
                                                   'Twisted>=23.8; extra == "twisted"'])
    point = SimpleNamespace(dist=dist)
    hint = _plugins._install_hint(point, "twisted.internet")  # type: ignore[arg-type]
    assert hint == "install it with: pip install 'netsim[twisted]'"


def test_without_an_extra_the_hint_does_not_claim_the_packages_name() -> None:
    """A module no extra of the model's package brings is named as such: the package that
    provides it is often, not always, called as the module is (cv2 is opencv-python's)."""
    dist = SimpleNamespace(name="netsim-broken", requires=[])
    hint = _plugins._install_hint(SimpleNamespace(dist=dist), "cv2.dnn")  # type: ignore[arg-type]
    assert hint == ("the netsim-broken package needs it: install the package that provides 'cv2' "
                    "(often: pip install cv2)")


def test_the_install_hint_prefers_the_models_own_extra_to_a_bundle() -> None:
    """An extra that brings many packages (netsim's `test`) is not suggested over the module's own."""
    dist = SimpleNamespace(name="netsim", requires=['pytest>=8; extra == "test"',
                                                   'trio>=0.25; extra == "test"',
                                                   'twisted>=24.3; extra == "test"',
                                                   'trio>=0.25; extra == "trio"'])
    hint = _plugins._install_hint(SimpleNamespace(dist=dist), "trio")  # type: ignore[arg-type]
    assert hint == "install it with: pip install 'netsim[trio]'"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("ghost", "netsim_ghost_model:MODEL", ("needs the module 'netsim_ghost_model'", "pip install")),
    ("odd", "netsim.clients:get_model", ("names function, not a netsim.clients.ClientModel",)),
])
def test_a_scenario_naming_a_model_that_cannot_be_used_is_invalid(
        extra_entry_points: dict[str, importlib.metadata.EntryPoint], name: str, value: str,
        words: tuple[str, ...]) -> None:
    """Loading a scenario whose client names an installed model that fails to import (saying
    what to install), or an entry point that is not a ClientModel, is a problem at the
    model's line (validate says so too)."""
    extra_entry_points[name] = importlib.metadata.EntryPoint(name, value, _plugins.GROUP)
    text = f'netsim: 1\nname: s\nservers: [{{name: a, poem: "x"}}]\nclients:\n  - blocking\n  - {name}\n'
    with pytest.raises(ScenarioError) as failure:
        load_scenario_text(text, client_models=model_names())
    (problem,) = failure.value.problems
    assert (problem.line, problem.path) == (6, "clients[1].model")
    assert all(word in problem.message for word in words)
