"""The vocabulary of a run: events pickle as themselves, and packed accounts unpack exactly."""

from __future__ import annotations

import pickle

from netsim.events import Accounts, ChunkSent, ConnEnded, Finished


def test_events_and_messages_cross_a_pipe_unchanged() -> None:
    """An event and a message without fields pickle and unpickle to equal objects."""
    sent = ChunkSent(1.5, "a", 40000, 2, 5, 1.25, 0.0003, True, "downstream", "select", 3)
    assert pickle.loads(pickle.dumps(sent)) == sent
    assert pickle.loads(pickle.dumps(Finished())) == Finished()
    assert sent.name == "chunk_sent" and sent.fields()["event"] == "chunk_sent"


def test_packed_accounts_unpack_to_the_same_events() -> None:
    """Accounts packed as rows of doubles come back as the very ConnEnded events, None fields included."""
    accounts = Accounts()
    ended = [ConnEnded(2.5, "a", 50001, "127.0.0.1", 1, 0.25, 0.2500125, 2.5, 16, 16, "closed"),
             ConnEnded(3.0, "b", 50002, "::1", 7, 1.0, None, 3.0, 0, None, "client_reset", "blackhole")]
    for event in ended:
        accounts.add(event)
    batch = accounts.take()
    assert batch is not None and accounts.take() is None
    assert pickle.loads(pickle.dumps(batch)).events() == ended
