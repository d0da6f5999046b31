"""Planned timelines: the same floats as the streaming schedule, cut by faults, shared when
they can be, and the seeded draws behind jitter."""

from __future__ import annotations

import itertools
import random

import pytest

from netsim.conditions import (
    BLACKHOLE,
    Conditions,
    Draws,
    Planner,
    StreamSchedule,
    pause_stream,
    plan_timeline,
)


def scheduled(chunks: list[bytes], conditions: Conditions, fault_after: int | None,
              pauses: Draws | None) -> tuple[list[float], list[bytes], float | None, float]:
    """The streaming schedule's writes for the same chunks: offsets, pieces, fault time, close."""
    schedule = StreamSchedule(conditions, pauses, 0.0, fault_after=fault_after)
    for chunk in chunks:
        schedule.add(len(chunk), 0.0)
    payload = b"".join(chunks)
    offsets, pieces, position = [], [], 0
    for emission in schedule.emissions:
        offsets.append(emission.due)
        pieces.append(payload[position:position + emission.size])
        position += emission.size
    return offsets, pieces, schedule.fault_at, schedule.close_time(0.0)


@pytest.mark.parametrize("case", range(300))
def test_a_planned_timeline_keeps_the_streaming_schedules_floats(case: int) -> None:
    """For random poems and conditions (rate included), planned writes equal the schedule's, exactly."""
    rng = random.Random(case)
    chunks = [bytes(rng.randrange(0, 6)) for _ in range(rng.randrange(1, 8))]
    fault = rng.choice([None, "reset", "close", "stall"])
    total = sum(map(len, chunks))
    conditions = Conditions(delay=rng.choice([0.0, 0.1, 0.25]), jitter=rng.choice([0.0, 0.05, 0.3]),
                            initial_delay=rng.choice([0.0, 0.2]), close_delay=rng.choice([0.0, 0.5]),
                            rate=rng.choice([None, None, 7.0]), fault=fault,
                            fault_after=rng.randrange(0, total) if fault and total else 0)
    fault = fault if total else None
    after = conditions.fault_after if fault else None
    timeline = plan_timeline(chunks, conditions, fault=fault, pauses=pause_stream(case, "s", 1))
    offsets, pieces, fault_at, close = scheduled(chunks, conditions, after, pause_stream(case, "s", 1))
    assert list(timeline.offsets[:-1]) == offsets
    assert [bytes(piece) for piece in timeline.pieces] == pieces
    if fault_at is not None:
        assert (timeline.fault, timeline.end) == (fault, fault_at)
    else:
        assert (timeline.fault, timeline.end) == (None, close)


def test_a_fault_cuts_the_timeline_at_its_byte() -> None:
    """A reset after 7 bytes of 5-byte lines writes 5, then 2 when the second line is due, and
    strikes then."""
    conditions = Conditions(delay=1.0, fault="reset", fault_after=7)
    cut = plan_timeline([b"1111\n", b"2222\n", b"3333\n"], conditions, fault="reset")
    assert [bytes(piece) for piece in cut.pieces] == [b"1111\n", b"22"]
    assert list(cut.offsets) == [0.0, 1.0, 1.0]
    assert cut.fault == "reset"


def test_a_blackhole_has_nothing_to_send() -> None:
    """A blackholed connection's timeline has no writes."""
    assert plan_timeline([b"x"], Conditions(fault="blackhole"), fault="blackhole") is BLACKHOLE
    assert BLACKHOLE.pieces == ()


def test_connections_without_jitter_share_a_timeline() -> None:
    """Without jitter every connection shares one plan (one more for those a fault strikes)."""
    planner = Planner("s", [b"a\n", b"b\n"], Conditions(delay=0.5, fault="close", fault_after=2,
                                                        fault_probability=0.5), seed=3)
    plans = [planner.plan(index) for index in range(1, 41)]
    assert len({id(plan) for plan in plans}) == 2
    assert {plan.fault for plan in plans} == {None, "close"}


def test_jittered_connections_differ_and_repeat_with_the_seed() -> None:
    """With jitter each connection has its own pauses; the same seed plans them the same again."""
    conditions = Conditions(delay=0.25, jitter=0.1)
    chunks = [b"line\n"] * 10
    first = [list(Planner("s", chunks, conditions, seed=7).plan(index).offsets) for index in (1, 2)]
    again = [list(Planner("s", chunks, conditions, seed=7).plan(index).offsets) for index in (1, 2)]
    other = [list(Planner("s", chunks, conditions, seed=8).plan(index).offsets) for index in (1, 2)]
    assert first == again
    assert first[0] != first[1]
    assert first != other
    pauses = [later - earlier for offsets in first for earlier, later in itertools.pairwise(offsets)]
    assert all(0.15 <= pause <= 0.35 for pause in pauses)


def test_draws_are_one_stream_however_they_are_taken() -> None:
    """Taking draws forty at a time or one by one gives the same numbers, all in [0, 1)."""
    together = Draws("k").take(40)
    stream = Draws("k")
    singly = [stream.take(1)[0] for _ in range(40)]
    assert together == singly
    assert all(0.0 <= number < 1.0 for number in together)
    assert len(set(together)) == 40
    assert Draws("other").take(40) != together


@pytest.mark.parametrize("case", range(100))
def test_the_planners_jittered_shortcut_gives_plan_timelines_floats(case: int) -> None:
    """For jittered connections without a fault, the planner's running sum equals plan_timeline, exactly."""
    rng = random.Random(case)
    chunks = [bytes(rng.randrange(0, 6)) for _ in range(rng.randrange(1, 12))]
    conditions = Conditions(delay=rng.choice([0.05, 0.1, 0.25]), jitter=rng.choice([0.01, 0.1, 0.3]),
                            initial_delay=rng.choice([0.0, 0.2]), close_delay=rng.choice([0.0, 0.5]))
    planner = Planner("s", chunks, conditions, seed=case)
    for index in (1, 2, 3):
        quick = planner.plan(index)
        slow = plan_timeline(chunks, conditions, pauses=pause_stream(case, "s", index))
        assert list(quick.offsets) == list(slow.offsets)
        assert [bytes(piece) for piece in quick.pieces] == [bytes(piece) for piece in slow.pieces]
        assert (quick.chunks, quick.fault) == (slow.chunks, slow.fault)
