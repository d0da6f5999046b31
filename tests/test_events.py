"""The vocabulary of a run: events pickle as themselves, and packed events unpack exactly, in order."""

from __future__ import annotations

import pickle

from netsim.events import (
    BytesReceived,
    ChunkSent,
    ConnAccepted,
    ConnClosed,
    ConnEnded,
    Event,
    EventBatch,
    Finished,
    Outbox,
)


def test_events_and_messages_cross_a_pipe_unchanged() -> None:
    """An event and a message without fields pickle and unpickle to equal objects."""
    sent = ChunkSent(1.5, "a", 40000, 2, 5, 1.25, 0.0003, True, "downstream", "select", 3)
    assert pickle.loads(pickle.dumps(sent)) == sent
    assert pickle.loads(pickle.dumps(Finished())) == Finished()
    assert sent.name == "chunk_sent" and sent.fields()["event"] == "chunk_sent"


def test_packed_accounts_unpack_to_the_same_events() -> None:
    """Accounts packed as rows of doubles come back as the very ConnEnded events, None fields included."""
    accounts = Outbox(ConnEnded)
    ended = [ConnEnded(2.5, "a", 50001, "127.0.0.1", 1, 0.25, 0.2500125, 2.5, 16, 16, "closed"),
             ConnEnded(3.0, "b", 50002, "::1", 7, 1.0, None, 3.0, 0, None, "client_reset", "blackhole")]
    for event in ended:
        accounts.add(event)
    assert len(accounts) == 2
    batch = accounts.take()
    assert batch is not None and accounts.take() is None and len(accounts) == 0
    assert batch.loose == [] and batch.packed is not None
    assert pickle.loads(pickle.dumps(batch)).events() == ended


def test_packed_events_keep_their_place_among_the_others() -> None:
    """Chunks packed between other events come back between them, each field of its own type."""
    outbox = Outbox(ChunkSent)
    recorded: list[Event] = [ChunkSent(0.5, "a", 40000, 0, 5, 0.5, 0.0001, False),
                ConnAccepted(0.4, "a", 40001, 2, None),
                ChunkSent(0.75, "a", 40001, 0, 5, 0.75, 0.0, True, "downstream"),
                ChunkSent(1.0, "b", 40002, 3, 12, 0.9999, 0.0001, False, None, "select", 4),
                ConnClosed(1.5, "a", 40000, 20),
                ConnClosed(1.6, "a", 40001, 20)]
    for event in recorded:
        outbox.add(event)
    batch = outbox.take()
    assert batch is not None and len(batch.loose) == 3
    unpacked = pickle.loads(pickle.dumps(batch)).events()
    assert unpacked == recorded
    fields = (unpacked[3].peer_port, unpacked[3].conn, unpacked[2].held)
    assert [type(value) for value in fields] == [int, int, bool]


def test_a_batch_without_packed_events_is_its_loose_ones() -> None:
    """A client's batch of other kinds, or a packed kind alone, unpacks to just those."""
    received = [BytesReceived(0.1, "select", "a", 1, 4), BytesReceived(0.2, "select", "a", 1, 4)]
    only_packed = Outbox(BytesReceived)
    for event in received:
        only_packed.add(event)
    batch = only_packed.take()
    assert batch is not None and batch.events() == received
    closed = [ConnClosed(1.5, "a", 40000, 20)]
    assert EventBatch(list(closed)).events() == closed
    assert Outbox(ChunkSent).take() is None
