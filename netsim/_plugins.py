"""Client models found through entry points: netsim's own five and a third party's alike.

A package provides a client model by naming it in the entry-point group
``netsim.clients`` of its metadata::

    [project.entry-points."netsim.clients"]
    mine = "my_package.netsim_model:MODEL"

Listing the names reads only metadata; a model's module is imported when it is first
asked for, so that a model whose dependencies are missing (``twisted`` without the
extra that brings it) costs nothing until a scenario names it, and then says what to
install. This module knows nothing of what a model is (``netsim.clients`` checks it),
so that the scenario loader can ask for names without importing the client layer.
"""

from __future__ import annotations

import collections
import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.metadata

GROUP = "netsim.clients"

# netsim's own models (registered in pyproject.toml), in the order `netsim clients` shows
# them: from the simplest to the most concurrent. Metadata lists entry points in no
# order of ours, and a source tree run without being installed has none at all.
OWN = ("blocking", "select", "selectors", "asyncio", "threads", "command")


class PluginError(Exception):
    """A client model could not be loaded; the message says why and what to install."""


@functools.cache
def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Every client model's entry point by name, netsim's own first, in their order."""
    # Imported here: a server process needs no client model, and importlib.metadata
    # (with the email and zipfile modules it brings) would cost it 2 MB.
    import importlib.metadata

    found: dict[str, importlib.metadata.EntryPoint] = {}
    for point in importlib.metadata.entry_points(group=GROUP):
        if point.name not in found or _own(point):  # netsim's own keeps its name
            found[point.name] = point
    points: dict[str, importlib.metadata.EntryPoint] = {}
    for name in OWN:  # netsim's own, whatever the metadata has (a source tree has none)
        registered = found.pop(name) if name in found else None
        points[name] = registered if registered is not None and _own(registered) else (
            importlib.metadata.EntryPoint(name, f"netsim.clients.{name}:MODEL", GROUP))
    points.update(sorted(found.items()))
    return points


def shadowed() -> list[str]:
    """The entry points of the group that lose their name to netsim's own model, each as
    ``NAME = VALUE (from DIST)``: they are never loaded. (Two other packages giving one
    name is a clash, ``clashes()``: neither is used.)"""
    import importlib.metadata

    kept, clashing = entry_points(), clashes()
    return [f"{point.name} = {_described(point)}" for point in importlib.metadata.entry_points(group=GROUP)
            if point.name in kept and point.name not in clashing and point.value != kept[point.name].value]


@functools.cache
def clashes() -> dict[str, list[importlib.metadata.EntryPoint]]:
    """The names that two or more other packages give different models, none of them
    netsim's own: which one a scenario means cannot be told, so none of them is used."""
    import importlib.metadata

    by_name: dict[str, dict[str, importlib.metadata.EntryPoint]] = {}
    for point in importlib.metadata.entry_points(group=GROUP):
        by_name.setdefault(point.name, {}).setdefault(point.value, point)
    return {name: list(points.values()) for name, points in sorted(by_name.items())
            if len(points) > 1 and name not in OWN}


def provider(name: str) -> str | None:
    """The name of the package that provides the model ``name``, when that is a third
    party's; None for netsim's own, and where it is not known."""
    point = entry_points().get(name)
    if point is None or point.dist is None or _own(point):
        return None
    return point.dist.name


def origin(name: str) -> str:
    """`` (from DIST)`` for a model a third party's package provides, or nothing."""
    dist = provider(name)
    return f" (from {dist})" if dist is not None else ""


def _described(point: importlib.metadata.EntryPoint) -> str:
    """``VALUE (from DIST)``: what an entry point names, and the package it is in."""
    return point.value + (f" (from {point.dist.name})" if point.dist is not None else "")


def _own(point: importlib.metadata.EntryPoint) -> bool:
    return point.name in OWN and point.value == f"netsim.clients.{point.name}:MODEL"


def client_model_names() -> list[str]:
    """The names of every client model installed, without importing any of them."""
    return list(entry_points())


@functools.cache
def load(name: str) -> Any:
    """The object an entry point names. Raises KeyError for an unknown name, PluginError
    when it cannot be imported (with what to install, where that can be told) or when
    two packages give the name to different models."""
    point = entry_points()[name]
    clashing = clashes().get(name)
    if clashing:
        raise PluginError(f"client model {name!r} is given by {len(clashing)} packages: "
                          f"{', '.join(_described(each) for each in clashing)}; which one a scenario "
                          f"means cannot be told: uninstall all but one")
    try:
        return point.load()
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if _within_its_own_package(point, missing):  # installed, yet without that module
            where = f"the {point.dist.name} package" if point.dist is not None else "its package"
            raise PluginError(f"client model {name!r} is {point.value}, but {where} has no module "
                              f"{missing!r}: its entry point names a module that is not there "
                              f"(a mistake in that package, not something to install)") from None
        raise PluginError(f"client model {name!r} needs the module {missing!r}, which is not "
                          f"installed; {_install_hint(point, missing)}") from None
    except (Exception, SystemExit) as error:  # any failure of a third party's import, exit() too
        raise PluginError(f"client model {name!r}{origin(name)} failed to import: "
                          f"{type(error).__name__}: {error}") from None


def _within_its_own_package(point: importlib.metadata.EntryPoint, missing: str) -> bool:
    """Is ``missing`` a module of the very package the entry point is in, which is there?"""
    import importlib.util  # here: only a failed import asks, and a server process imports this module

    top = point.module.split(".")[0]
    if missing.split(".")[0] != top or missing == top:
        return False
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    # A namespace package (no origin) is shared: another distribution may bring the module.
    return spec is not None and spec.origin is not None


def _install_hint(point: importlib.metadata.EntryPoint, missing: str) -> str:
    """``pip install 'dist[extra]'`` when an extra of the model's package brings ``missing``."""
    top = _normal(missing.split(".")[0])
    dist = point.dist
    if dist is not None:
        # An extra may bring others' requirements too (netsim's `test` brings every
        # model's): the extra named after the module wins, then the one that brings least.
        size: collections.Counter[str] = collections.Counter()
        bringing = []
        for requirement in dist.requires or []:
            name = re.match(r"[A-Za-z0-9._-]+", requirement)
            extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
            if extra:
                size[extra.group(1)] += 1
                if name and _normal(name.group()) == top:
                    bringing.append(extra.group(1))
        if bringing:
            best = min(bringing, key=lambda extra: (_normal(extra) != top, size[extra]))
            return f"install it with: pip install '{dist.name}[{best}]'"
        return f"the {dist.name} package needs it: {_provider_hint(missing)}"
    return _provider_hint(missing)


def _provider_hint(missing: str) -> str:
    top = missing.split(".")[0]
    # A distribution is often, not always, named as its module (cv2 comes with opencv-python).
    return f"install the package that provides {top!r} (often: pip install {top})"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
