"""The deadlines of a multiplexing model: each read moves one on, and the earliest is always known."""

from __future__ import annotations

import time

from netsim.clients._base import Deadlines


def test_a_read_moves_the_deadline_on() -> None:
    """After a read, the connection's deadline counts from the read, and nothing expires before it."""
    deadlines = Deadlines()
    deadlines.set(5, 10.0)
    first = deadlines.earliest()
    time.sleep(0.01)
    deadlines.set(5, 10.0)  # a read
    moved = deadlines.earliest()
    assert first is not None and moved is not None and moved >= first + 0.01
    assert deadlines.expired(first + 0.001) == []  # its first deadline has passed, not its deadline
    assert deadlines.expired(moved) == [5]
    assert deadlines.earliest() is None


def test_the_earliest_deadline_is_of_the_connection_silent_longest() -> None:
    """Of two connections, the one that read last is not the next to time out."""
    deadlines = Deadlines()
    deadlines.set(5, 1.0)
    deadlines.set(6, 1.0)
    time.sleep(0.01)
    deadlines.set(5, 1.0)
    now = time.monotonic()
    assert deadlines.expired(now + 0.995) == [6]
    assert deadlines.expired(now + 1.001) == [5]


def test_a_reused_descriptor_has_its_new_connections_deadline() -> None:
    """A descriptor forgotten and given to a new connection times out on the new one's deadline only."""
    deadlines = Deadlines()
    deadlines.set(7, 0.5)
    deadlines.forget(7)
    assert deadlines.earliest() is None
    deadlines.set(7, 5.0)
    now = time.monotonic()
    assert deadlines.expired(now + 1.0) == []  # not at the old connection's deadline
    assert deadlines.expired(now + 5.0) == [7]
    deadlines.set(8, 5.0)
    deadlines.forget(8)
    deadlines.set(8, 0.5)  # a new connection with a shorter timeout
    assert deadlines.expired(time.monotonic() + 0.5) == [8]


def test_reads_do_not_pile_up_entries() -> None:
    """A hundred thousand reads over a thousand connections keep one entry each."""
    deadlines = Deadlines()
    for _ in range(100):
        for fd in range(1000):
            deadlines.set(fd, 10.0)
    assert repr(deadlines) == "<Deadlines watching=1000 entries=1000>"
