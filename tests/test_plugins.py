"""The names of the installed client models, read from entry points without importing a model."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from netsim import _plugins


def entry(name: str) -> EntryPoint:
    # A value no import could satisfy: reading the names must never load a model.
    return EntryPoint(name=name, value="no.such.module:MODEL", group=_plugins.GROUP)


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """The entry points are read once per process; these tests read them again."""
    caches = (_plugins.entry_points, _plugins.clashes, _plugins.load)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def test_without_entry_points_the_built_in_models_are_known(monkeypatch: pytest.MonkeyPatch,
                                                           fresh_cache: None) -> None:
    """With no entry point in the group netsim.clients (a source tree not installed), the five
    built-in models are still known, in teaching order."""
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [])
    assert _plugins.client_model_names() == ["blocking", "select", "selectors", "asyncio", "threads",
                                             "command"]


def test_entry_points_name_the_models_built_in_first(monkeypatch: pytest.MonkeyPatch,
                                                     fresh_cache: None) -> None:
    """Registered names come back built-in first in their own order, then the others sorted, each once."""
    registered = [entry("twisted"), entry("select"), entry("blocking"), entry("trio"), entry("select")]
    asked: list[str] = []

    def entry_points(group: str) -> list[EntryPoint]:
        asked.append(group)
        return registered

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert _plugins.client_model_names() == ["blocking", "select", "selectors", "asyncio", "threads",
                                             "command", "trio", "twisted"]
    assert asked == ["netsim.clients"]


def test_a_third_party_model_under_a_built_in_name_is_shadowed_and_said_so(
        monkeypatch: pytest.MonkeyPatch, fresh_cache: None) -> None:
    """Netsim's own `blocking` keeps its name whichever order the entry points come in; the
    third party's under that name is never loaded, and shadowed() names it."""
    own = EntryPoint(name="blocking", value="netsim.clients.blocking:MODEL", group=_plugins.GROUP)
    theirs = EntryPoint(name="blocking", value="their_package.model:MODEL", group=_plugins.GROUP)
    for order in ([own, theirs], [theirs, own], [theirs]):  # the last: a source tree, no metadata
        _plugins.entry_points.cache_clear()
        monkeypatch.setattr(importlib.metadata, "entry_points", lambda group, order=order: order)
        assert _plugins.entry_points()["blocking"].value == "netsim.clients.blocking:MODEL"
        assert _plugins.shadowed() == ["blocking = their_package.model:MODEL"]


def test_a_name_two_other_packages_give_is_no_model_of_either(monkeypatch: pytest.MonkeyPatch,
                                                              fresh_cache: None) -> None:
    """Two third-party packages registering `pooled` for different models: loading it fails
    naming both (which one a scenario means cannot be told), whatever their order; the same
    entry point met twice, or a third party's under a built-in name, is no such clash."""
    ours = EntryPoint(name="pooled", value="extra_models.pooled:MODEL", group=_plugins.GROUP)
    theirs = EntryPoint(name="pooled", value="dup_models:TWIN", group=_plugins.GROUP)
    for order in ([ours, theirs], [theirs, ours]):
        for cache in (_plugins.entry_points, _plugins.clashes, _plugins.load):
            cache.cache_clear()
        monkeypatch.setattr(importlib.metadata, "entry_points", lambda group, order=order: [*order, order[0]])
        assert "pooled" in _plugins.client_model_names()
        with pytest.raises(_plugins.PluginError, match=r"'pooled' is given by 2 packages: "
                                                       r"(extra_models\.pooled:MODEL, dup_models:TWIN|"
                                                       r"dup_models:TWIN, extra_models\.pooled:MODEL); "
                                                       r"which one a scenario means cannot be told"):
            _plugins.load("pooled")
        assert _plugins.shadowed() == []  # said once, by the model's own line
    _plugins.clashes.cache_clear()
    theirs_blocking = EntryPoint(name="blocking", value="their_package.model:MODEL", group=_plugins.GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [theirs_blocking, ours])
    assert _plugins.clashes() == {}


def test_listing_the_models_imports_none_of_them() -> None:
    """Listing the model names (what the schema does) leaves every model's module unimported."""
    code = textwrap.dedent("""\
        import sys
        from netsim import _plugins, _schema
        _plugins.client_model_names()
        _schema.schema_text()
        _schema.reference_markdown()
        print(sorted(name for name in sys.modules if name.startswith("netsim.clients")))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_server_process_imports_no_plugin_machinery() -> None:
    """What a fresh server process imports (netsim._fresh_server) leaves importlib.metadata and
    importlib.util out: only finding or failing to load a model needs them, and every module
    is memory the server's peak RSS (32 MB at 10,000 connections) pays for."""
    code = ("import sys\nimport netsim._fresh_server\n"
            "wanted = ('importlib.metadata', 'importlib.util')\n"
            "print(sorted(name for name in wanted if name in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
