"""Client models: ways of writing a client that reads slow servers, side by side.

Each model lives in a module of its own, written the way its concurrency model is
idiomatically written, and is found through the entry-point group ``netsim.clients``:
netsim's own are registered there just as a third party's are, so adding a model means
adding a module and one line of metadata, and ``netsim.testing.check_client_model`` is
the contract it must pass. ``ClientModel`` and ``Recorder`` (``netsim.clients._base``)
are the interface; docs/client-models.md sets it out for a model of one's own.
"""

from __future__ import annotations

import re

from netsim import _plugins
from netsim._names import NAME_MAX, NAME_PATTERN, NAME_RULE
from netsim.clients._base import (
    ClientModel,
    ClientOptions,
    ConnectionRecord,
    EventSink,
    ModelLimitError,
    Recorder,
    Target,
)


class ModelUnavailableError(LookupError):
    """A client model that is installed by name but cannot be used: the message says why."""


def model_names() -> list[str]:
    """Every client model's name, netsim's own first (simplest to most concurrent)."""
    return _plugins.client_model_names()


def get_model(name: str) -> ClientModel:
    """Return the client model called ``name``.

    Raises:
        KeyError: no model has that name; the message lists the known ones.
        ModelUnavailableError: the model cannot be imported (a missing extra, say); the
            message says what to install.
    """
    if name not in _plugins.entry_points():
        known = ", ".join(model_names())
        raise KeyError(f"unknown client model {name!r}; known models: {known}")
    try:
        model = _plugins.load(name)
    except _plugins.PluginError as error:
        raise ModelUnavailableError(str(error)) from None
    origin = _plugins.origin(name)
    if not isinstance(model, ClientModel):
        raise ModelUnavailableError(f"client model {name!r}{origin}: its entry point "
                                    f"names {type(model).__name__}, not a netsim.clients.ClientModel")
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > NAME_MAX:
        raise ModelUnavailableError(f"client model {name!r}{origin}: no scenario can name it: a model's "
                                    f"name (its entry point's) is {NAME_RULE}, at most {NAME_MAX} characters")
    if model.name != name:
        raise ModelUnavailableError(f"client model {name!r}{origin}: its entry point is named {name!r}, "
                                    f"the model it names {model.name!r}; the two must be the same, "
                                    f"as results and reports give the model's own")
    return model


def models() -> dict[str, ClientModel | ModelUnavailableError]:
    """Every installed model by name, or why it cannot be used (for ``netsim clients``)."""
    found: dict[str, ClientModel | ModelUnavailableError] = {}
    for name in model_names():
        try:
            found[name] = get_model(name)
        except ModelUnavailableError as error:
            found[name] = error
    return found


__all__ = [
    "ClientModel",
    "ClientOptions",
    "ConnectionRecord",
    "EventSink",
    "ModelLimitError",
    "ModelUnavailableError",
    "Recorder",
    "Target",
    "get_model",
    "model_names",
    "models",
]
