"""The runner ties the servers' events to the client's connections, live or at the end of a run."""

from __future__ import annotations

from netsim._measure import Correlator
from netsim.events import ChunkSent, ConnEstablished, Event, EventBatch, Outbox


def _batches() -> tuple[EventBatch, EventBatch]:
    """A server's batch (a chunk to port 50001, packed) that comes before the client's (its connect)."""
    servers = Outbox(ChunkSent)
    servers.add(ChunkSent(0.30, "a", 50001, 0, 5, 0.30, 0.0001, False))
    server_batch = servers.take()
    assert server_batch is not None
    client_batch = EventBatch([ConnEstablished(0.25, "select", "a", 1, 50001)])
    return server_batch, client_batch


def test_without_an_observer_batches_are_unpacked_when_the_run_ends() -> None:
    """Nothing is unpacked while the run goes on; at the end every event is there, tied and in time order."""
    correlator = Correlator("select", None)
    for batch in _batches():
        correlator.take(batch)
    assert correlator.events == []
    events = correlator.finish()
    assert [type(event) for event in events] == [ConnEstablished, ChunkSent]
    chunk = events[1]
    assert isinstance(chunk, ChunkSent) and (chunk.client, chunk.conn) == ("select", 1)


def test_an_observer_hears_each_event_once_it_can_be_tied_to_its_connection() -> None:
    """A live observer gets the chunk as soon as the client's connect has named its connection."""
    heard: list[Event] = []
    correlator = Correlator("select", heard.append)
    server_batch, client_batch = _batches()
    correlator.take(server_batch)
    assert heard == []  # held: port 50001 is nobody's yet
    correlator.take(client_batch)
    assert [type(event) for event in heard] == [ConnEstablished, ChunkSent]
    assert isinstance(heard[1], ChunkSent) and heard[1].conn == 1
    assert correlator.finish() == heard
