"""The server process's garbage collector: older generations wait for a gap in the schedule."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from netsim.engine import _collector, _precise


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every collection made while the test runs, with the process's
    thresholds put back afterwards (the deferral is meant for a process of its own)."""
    thresholds = gc.get_threshold()
    seen: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    gc.collect()
    gc.callbacks.append(callback)
    try:
        yield seen
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*thresholds)


def allocate_survivors(young_collections: int) -> list[list[object]]:
    """Enough new containers kept alive to set off this many young collections."""
    young = gc.get_threshold()[0]
    return [[] for _ in range(young * young_collections + young // 2)]


def test_deferred_the_middle_generation_is_not_collected_however_much_survives(
        collections: list[int]) -> None:
    _collector.defer_old_generations()
    kept = allocate_survivors(3 * _collector.OWED)
    assert len(kept) > 0
    assert collections.count(0) >= 3 * _collector.OWED  # the young ones go on where they fall
    assert 1 not in collections and 2 not in collections
    assert gc.get_count()[1] >= _collector.OWED  # owed, and waiting for a gap


def test_python_s_own_thresholds_would_have_collected_it(collections: list[int]) -> None:
    """The baseline of the test above: without the deferral, the survivors are walked again."""
    gc.set_threshold(gc.get_threshold()[0], _collector.OWED, _collector.OWED)
    allocate_survivors(3 * _collector.OWED)
    assert 1 in collections


def test_an_owed_collection_is_made_only_in_a_wide_enough_gap(collections: list[int]) -> None:
    _collector.defer_old_generations()
    allocate_survivors(_collector.OWED + 1)
    collections.clear()
    _collector.collect_in_gap(_collector.MIDDLE_GAP / 2)
    assert collections == []
    _collector.collect_in_gap(_collector.MIDDLE_GAP)
    assert collections == [1]
    assert gc.get_count()[1] == 0
    _collector.collect_in_gap(None)  # nothing owed any more
    assert collections == [1]


def test_the_whole_heap_waits_for_a_wider_gap_than_the_middle(collections: list[int]) -> None:
    _collector.defer_old_generations()
    for _ in range(_collector.OWED):  # ten middle collections: the old generation is owed one
        allocate_survivors(_collector.OWED)
        _collector.collect_in_gap(_collector.MIDDLE_GAP)
    assert gc.get_count()[2] >= _collector.OWED
    collections.clear()
    _collector.collect_in_gap(_collector.FULL_GAP / 2)
    assert 2 not in collections
    _collector.collect_in_gap(_collector.FULL_GAP)
    assert collections[-1] == 2


@pytest.mark.skipif(_precise._timerfd_libc() is None, reason="the precise selector is Linux's")
def test_a_server_loop_collects_while_it_waits_for_its_next_deadline(collections: list[int]) -> None:
    loop = _precise.new_event_loop(collect_in_gaps=True)
    try:
        kept = allocate_survivors(_collector.OWED + 1)
        assert 1 not in collections
        loop.run_until_complete(asyncio.sleep(3 * _collector.MIDDLE_GAP))
        assert 1 in collections
        assert len(kept) > 0
    finally:
        loop.close()
