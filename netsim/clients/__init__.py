"""Client models: ways of writing a client that reads slow servers, side by side.

Each model lives in a module of its own and is written the way its concurrency model
is idiomatically written; ``MODELS`` lists them from the simplest to the most
concurrent, the order in which ``netsim clients`` shows them.
"""

from __future__ import annotations

from netsim.clients import asyncio, blocking, select, selectors, threads
from netsim.clients._base import (
    ClientModel,
    ConnectionRecord,
    Event,
    EventSink,
    Recorder,
    Target,
)

MODELS: dict[str, ClientModel] = {
    model.name: model
    for model in (
        blocking.MODEL,
        select.MODEL,
        selectors.MODEL,
        asyncio.MODEL,
        threads.MODEL,
    )
}


def get_model(name: str) -> ClientModel:
    """Return the client model called ``name``.

    Raises:
        KeyError: no model has that name; the message lists the known ones.
    """
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise KeyError(f"unknown client model {name!r}; known models: {known}") from None


__all__ = [
    "MODELS",
    "ClientModel",
    "ConnectionRecord",
    "Event",
    "EventSink",
    "Recorder",
    "Target",
    "get_model",
]
