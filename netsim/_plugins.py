"""What is installed beside netsim: the client models registered by entry point.

The scenario layer asks here for the names of the client models, to check a scenario
and to offer the names in the schema, without importing a single model: the models
sit above the scenario in the layering, and a third-party one may be slow to import.
"""

from __future__ import annotations

from importlib.metadata import entry_points

CLIENT_MODELS_GROUP = "netsim.clients"
# The models netsim ships, simplest first: the order `netsim clients` lists them in.
BUILT_IN_CLIENT_MODELS = ("blocking", "select", "selectors", "asyncio", "threads")


def client_model_names() -> tuple[str, ...]:
    """The names of the client models installed, read from the entry points of the group
    ``netsim.clients`` (names only, nothing is imported).

    The built-in models come first, in their own order, then the others sorted, so that
    the schema made from this list is the same on every machine with the same models.
    Without any entry point of the group (netsim not installed as a distribution), the
    built-in names.
    """
    found = {entry.name for entry in entry_points(group=CLIENT_MODELS_GROUP)}
    if not found:
        return BUILT_IN_CLIENT_MODELS
    built_in = [name for name in BUILT_IN_CLIENT_MODELS if name in found]
    return (*built_in, *sorted(found.difference(BUILT_IN_CLIENT_MODELS)))
