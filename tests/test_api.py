"""The public API: what `import netsim` promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

import netsim


def test_every_public_name_resolves() -> None:
    """Each name in netsim.__all__ is importable from the package itself."""
    for name in netsim.__all__:
        assert getattr(netsim, name) is not None, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name outside the API raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        netsim.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_the_version_needs_no_heavy_imports() -> None:
    """`netsim --version` imports neither pydantic, yaml nor asyncio, so it answers at once."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['netsim', '--version']\n"
        "try:\n"
        "    runpy.run_module('netsim', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(name for name in ('pydantic', 'yaml', 'asyncio') if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [f"netsim {netsim.__version__}", "[]"]


def test_asking_for_a_run_that_is_not_there_names_the_runs() -> None:
    """ScenarioResult.run of an unknown label is a KeyError naming the labels there are."""
    from netsim.results import ScenarioResult

    result = ScenarioResult("s", 1.0, [])
    with pytest.raises(KeyError, match="no run of client 'nope'; the runs are of: no client"):
        result.run("nope")
