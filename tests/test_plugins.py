"""The names of the installed client models, read from entry points without importing a model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from netsim import _plugins


def entry(name: str) -> EntryPoint:
    # A value no import could satisfy: reading the names must never load a model.
    return EntryPoint(name=name, value="no.such.module:MODEL", group=_plugins.CLIENT_MODELS_GROUP)


def test_without_entry_points_the_built_in_models_are_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no entry point in the group netsim.clients, the five built-in names are the known models."""
    monkeypatch.setattr(_plugins, "entry_points", lambda group: [])
    assert _plugins.client_model_names() == ("blocking", "select", "selectors", "asyncio", "threads")


def test_entry_points_name_the_models_built_in_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered names come back built-in first in their own order, then the others sorted, each once."""
    registered = [entry("twisted"), entry("select"), entry("blocking"), entry("trio"), entry("select")]
    asked: list[str] = []

    def entry_points(group: str) -> list[EntryPoint]:
        asked.append(group)
        return registered

    monkeypatch.setattr(_plugins, "entry_points", entry_points)
    assert _plugins.client_model_names() == ("blocking", "select", "trio", "twisted")
    assert asked == ["netsim.clients"]


def test_loading_a_scenario_imports_no_client_model() -> None:
    """Loading a scenario and making its schema leave netsim.clients unimported: the layers point one way."""
    code = textwrap.dedent("""\
        import sys
        import netsim
        from netsim import _schema
        netsim.load_scenario_text('netsim: 1\\nname: s\\nservers: [{name: a, poem: "x"}]\\n'
                                  'clients: [blocking]\\n')
        _schema.schema_text()
        _schema.reference_markdown()
        print(sorted(name for name in sys.modules if name.startswith("netsim.clients")))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
