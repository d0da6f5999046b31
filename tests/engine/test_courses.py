"""The general planner: slices, corruption, time limits, and courses planned anew when a
server's conditions change midway (``plan_course``, ``replan``)."""

from __future__ import annotations

import dataclasses
import math
import random
import time

import pytest

from netsim.conditions import (
    AHEAD_BATCH,
    Conditions,
    Planner,
    Resume,
    Streams,
    Timeline,
    pause_stream,
    plan_course,
    plan_timeline,
    replan,
)

LINES = [b"1111\n", b"2222\n", b"3333\n", b"4444\n"]  # four chunks of 5 bytes


def writes(timeline: Timeline, start: float = 0.0) -> list[tuple[float, bytes]]:
    """A timeline's writes as (when, bytes), its ending left out."""
    return [(start + offset, bytes(piece)) for offset, piece in zip(timeline.offsets, timeline.pieces,
                                                                     strict=False)]


@pytest.mark.parametrize("case", range(300))
def test_the_general_planner_keeps_the_shortcuts_floats(case: int) -> None:
    """Without slices, corruption or time limits, plan_course plans what plan_timeline does, exactly."""
    rng = random.Random(case)
    chunks = [bytes(rng.randrange(0, 6)) for _ in range(rng.randrange(1, 8))]
    total = sum(map(len, chunks))
    fault = rng.choice([None, "reset", "close", "stall"]) if total else None
    conditions = Conditions(delay=rng.choice([0.0, 0.1, 0.25]), jitter=rng.choice([0.0, 0.05, 0.3]),
                            initial_delay=rng.choice([0.0, 0.2]), close_delay=rng.choice([0.0, 0.5]),
                            rate=rng.choice([None, None, 7.0]), fault=fault,
                            fault_after=rng.randrange(0, total) if fault else 0)
    quick = plan_timeline(chunks, conditions, fault=fault, pauses=pause_stream(case, "s", 1))
    general = plan_course(chunks, conditions, fault=fault, streams=Streams(case, "s", 1))
    assert list(general.offsets) == list(quick.offsets)
    assert [bytes(piece) for piece in general.pieces] == [bytes(piece) for piece in quick.pieces]
    assert (general.chunks, general.fault) == (quick.chunks, quick.fault)


def test_slices_cut_each_chunk_into_seeded_sizes_a_delay_apart() -> None:
    """slice 3..6 cuts every chunk into pieces of 3 to 6 bytes (its last what remains), the
    pieces of a chunk slice_delay apart and the chunks `delay` apart; a seed repeats them."""
    chunks = [b"abcdefghijklmnopqrstuvwxyz\n", b"0123456789\n"]
    conditions = Conditions(delay=1.0, slice_bytes=(3, 6), slice_delay=0.01)
    timeline = plan_course(chunks, conditions, fault=None, streams=Streams(1, "s", 1))
    first = [bytes(piece) for piece, number in zip(timeline.pieces, timeline.chunks, strict=True)]
    assert b"".join(first) == b"".join(chunks)
    assert all(len(piece) <= 6 for piece in first)
    starts = [index for index, number in enumerate(timeline.chunks) if number >= 0]
    assert [timeline.chunks[index] for index in starts] == [0, 1]
    cuts = [first[starts[0]:starts[1]], first[starts[1]:]]
    assert all(len(piece) >= 3 for cut in cuts for piece in cut[:-1])
    begin_second = timeline.offsets[starts[1]]
    assert begin_second == pytest.approx(1.0 + 0.01 * (starts[1] - 1))
    for earlier, later in zip(timeline.offsets[:starts[1] - 1], timeline.offsets[1:starts[1]], strict=True):
        assert later - earlier == pytest.approx(0.01)
    again = plan_course(chunks, conditions, fault=None, streams=Streams(1, "s", 1))
    other = plan_course(chunks, conditions, fault=None, streams=Streams(2, "s", 1))
    assert [bytes(piece) for piece in again.pieces] == first
    assert [bytes(piece) for piece in other.pieces] != first


def test_corruption_flips_every_byte_from_after_on_and_repeats_with_the_seed() -> None:
    """corrupt after 7 sends 7 bytes as they are and every later byte changed; the course and
    its close are those of a clean connection; the same seed corrupts alike."""
    conditions = Conditions(delay=0.5, fault="corrupt", fault_after=7)
    timeline = plan_course(LINES, conditions, fault="corrupt", streams=Streams(3, "s", 1))
    clean = plan_timeline(LINES, dataclasses.replace(conditions, fault=None))
    sent = b"".join(bytes(piece) for piece in timeline.pieces)
    payload = b"".join(LINES)
    assert sent[:7] == payload[:7]
    assert all(got != want for got, want in zip(sent[7:], payload[7:], strict=True))
    assert list(timeline.offsets) == list(clean.offsets)
    assert timeline.fault == "corrupt"
    again = plan_course(LINES, conditions, fault="corrupt", streams=Streams(3, "s", 1))
    assert [bytes(piece) for piece in again.pieces] == [bytes(piece) for piece in timeline.pieces]


def test_a_time_limit_cuts_the_course_at_its_moment_after_the_accept() -> None:
    """A reset at 1.2 s (accept_delay 200 ms) sends the chunks due before it and strikes at
    1.2 s after the accept; a connection over before its limit is not struck."""
    conditions = Conditions(delay=0.5, accept_delay=0.2, fault="reset", fault_at=1.2)
    timeline = plan_timeline(LINES, conditions, fault="reset")
    assert writes(timeline) == [(0.0, b"1111\n"), (0.5, b"2222\n")]
    assert (timeline.end, timeline.fault) == (pytest.approx(1.0), "reset")  # from the start: 1.2 - 0.2
    long = plan_timeline(LINES, dataclasses.replace(conditions, fault_at=10.0), fault="reset")
    assert (long.fault, len(long.pieces), long.end) == (None, 4, 2.0)


def test_a_new_delay_counts_from_the_pause_under_way() -> None:
    """Changed at 1.3 s from a 1 s delay to 100 ms, the pause that began at 1 s is over: the
    next chunk goes at once, and the rest 100 ms apart; to 3 s, it waits until 4 s."""
    old = Conditions(delay=1.0)
    timeline = plan_timeline(LINES, old)
    shorter = replan(LINES, timeline, 2, old, Conditions(delay=0.1), fault=None,
                     streams=Streams(0, "s", 1, 1), now=1.3, accepted=0.0)
    assert writes(shorter) == [(1.3, b"3333\n"), (pytest.approx(1.4), b"4444\n")]
    assert shorter.end == pytest.approx(1.5)
    longer = replan(LINES, timeline, 2, old, Conditions(delay=3.0), fault=None,
                    streams=Streams(0, "s", 1, 1), now=1.3, accepted=0.0)
    assert writes(longer) == [(4.0, b"3333\n"), (7.0, b"4444\n")]
    assert longer.end == 10.0


def test_a_connection_not_yet_begun_waits_the_new_delays_from_its_accept() -> None:
    """Accepted at 0 with accept_delay 1 s, changed at 0.5 s to accept_delay 0.2 s and
    initial_delay 0.5 s: its first chunk goes at 0.7 s after the accept."""
    old = Conditions(delay=1.0, accept_delay=1.0)
    timeline = plan_timeline(LINES, old)  # offsets count from the start: the accept + 1 s
    new = Conditions(delay=1.0, accept_delay=0.2, initial_delay=0.5)
    course = replan(LINES, timeline, 0, old, new, fault=None, streams=Streams(0, "s", 1, 1),
                    now=0.5 - 1.0, accepted=-1.0)
    assert course.offsets[0] + 1.0 == pytest.approx(0.7)


def test_a_rate_capped_chunk_goes_on_at_the_new_rate() -> None:
    """Halfway through a 10-byte chunk at 10 B/s, a rate of 100 B/s sends its other 5 bytes
    ten times faster, from the moment of the change."""
    chunks = [b"0123456789"]
    old = Conditions(rate=10.0)
    timeline = plan_timeline(chunks, old)
    done = sum(1 for offset in timeline.offsets[:-1] if offset < 0.5)
    course = replan(chunks, timeline, done, old, Conditions(rate=100.0), fault=None,
                    streams=Streams(0, "s", 1, 1), now=0.5, accepted=0.0)
    assert b"".join(bytes(piece) for piece in course.pieces) == b"56789"
    assert course.chunks[0] == -1  # the chunk was logged as sent when it began
    assert course.offsets[0] == 0.5
    assert course.end == pytest.approx(0.55)


def test_a_fault_brought_in_counts_the_bytes_already_sent() -> None:
    """A reset after 12 bytes brought in once 10 have gone strikes when the 13th is due."""
    old = Conditions(delay=1.0)
    timeline = plan_timeline(LINES, old)
    new = Conditions(delay=1.0, fault="reset", fault_after=12)
    course = replan(LINES, timeline, 2, old, new, fault="reset", streams=Streams(0, "s", 1, 1),
                    now=1.5, accepted=0.0)
    assert writes(course) == [(2.0, b"33")]
    assert (course.end, course.fault) == (2.0, "reset")


def test_planning_anew_twice_keeps_the_pause_under_way() -> None:
    """Two changes in one pause, nothing written between them: the pause still counts from
    the end of the last chunk written."""
    old = Conditions(delay=1.0)
    timeline = plan_timeline(LINES, old)
    once = replan(LINES, timeline, 2, old, Conditions(delay=3.0), fault=None,
                  streams=Streams(0, "s", 1, 1), now=1.2, accepted=0.0)
    twice = replan(LINES, once, 0, Conditions(delay=3.0), Conditions(delay=2.0), fault=None,
                   streams=Streams(0, "s", 1, 2), now=1.5, accepted=0.0)
    assert writes(twice)[0] == (3.0, b"3333\n")


def test_a_course_whose_bytes_are_all_written_gets_a_new_close() -> None:
    """Every chunk written, a change of close_delay moves the close (never before the change)."""
    old = Conditions(delay=0.5)
    timeline = plan_timeline(LINES, old)
    course = replan(LINES, timeline, 4, old, Conditions(delay=0.5, close_delay=1.0), fault=None,
                    streams=Streams(0, "s", 1, 1), now=1.8, accepted=0.0)
    assert (course.pieces, course.end) == ((), 3.0)
    late = replan(LINES, timeline, 4, old, Conditions(delay=0.0), fault=None,
                  streams=Streams(0, "s", 1, 1), now=1.8, accepted=0.0)
    assert late.end == 1.8


def test_the_planner_plans_slices_and_corruption_per_connection() -> None:
    """Sliced or corrupted connections each get their own draws; the planner shares nothing."""
    conditions = Conditions(delay=0.1, slice_bytes=(1, 4))
    planner = Planner("s", LINES, conditions, seed=5)
    first, second = planner.plan(1), planner.plan(2)
    assert [len(piece) for piece in first.pieces] != [len(piece) for piece in second.pieces]
    assert first == plan_course(LINES, conditions, fault=None, streams=Streams(5, "s", 1))


def test_resuming_from_the_start_is_planning_from_the_start() -> None:
    """A Resume at the start (nothing written, the wait begun at the start) is a fresh plan."""
    conditions = Conditions(delay=0.3, jitter=0.1, initial_delay=0.2)
    fresh = plan_course(LINES, conditions, fault=None, streams=Streams(9, "s", 1))
    resumed = plan_course(LINES, conditions, fault=None, streams=Streams(9, "s", 1),
                          resume=Resume(0, 0, 0, 0.0, -math.inf, 0.0))
    assert list(fresh.offsets) == list(resumed.offsets)


def _courses(planner: Planner, indices: range) -> list[tuple[list[float], list[bytes], str | None]]:
    courses = []
    for index in indices:
        timeline, offsets = planner.course(index)
        courses.append((list(offsets), [bytes(piece) for piece in timeline.pieces], timeline.fault))
    return courses


@pytest.mark.parametrize("conditions", [
    Conditions(delay=0.25, jitter=0.1),
    Conditions(delay=0.1, jitter=0.05, fault="reset", fault_after=7, fault_probability=0.5),
    Conditions(delay=0.1, slice_bytes=(1, 4), slice_delay=0.01),
    Conditions(delay=0.1, fault="corrupt", fault_after=3, fault_probability=0.5),
], ids=["jitter", "jitter-and-some-resets", "slices", "some-corrupted"])
def test_a_course_planned_ahead_is_the_one_planned_at_the_accept(conditions: Conditions) -> None:
    """Planning ahead changes when a connection's course is planned, never what it is."""
    ahead = Planner("s", LINES, conditions, seed=3)
    assert ahead.plans_each
    planned = ahead.plan_ahead(1, 20, math.inf, time.monotonic, lambda: False)
    assert (planned, ahead.planned_ahead) == (20, 20)
    assert _courses(ahead, range(1, 31)) == _courses(Planner("s", LINES, conditions, seed=3), range(1, 31))
    assert ahead.planned_ahead == 0


def test_planning_ahead_stops_at_the_most_the_deadline_or_when_busy() -> None:
    planner = Planner("s", LINES, Conditions(delay=0.1, jitter=0.05), seed=1)
    assert planner.plan_ahead(1, 5, math.inf, time.monotonic, lambda: False) == 5
    assert planner.plan_ahead(1, 5, math.inf, time.monotonic, lambda: False) == 0  # planned already
    ticks = iter(range(100))
    assert planner.plan_ahead(1, 50, 3, lambda: next(ticks), lambda: False) == 3  # clock 0, 1, 2 < 3
    asked: list[int] = []

    def busy() -> bool:
        asked.append(planner.planned_ahead)
        return True

    planner.plan_ahead(1, 100, math.inf, time.monotonic, busy)
    assert asked == [8 + AHEAD_BATCH]  # asked after a batch; busy, it stopped there


def test_courses_planned_ahead_for_connections_that_came_meanwhile_are_dropped() -> None:
    """Connections accepted while none was planned ahead (or out of order) get the courses
    of their own numbers, and the next plan ahead starts after them."""
    conditions = Conditions(delay=0.25, jitter=0.1)
    fresh = Planner("s", LINES, conditions, seed=2)
    planner = Planner("s", LINES, conditions, seed=2)
    planner.plan_ahead(1, 4, math.inf, time.monotonic, lambda: False)
    assert _courses(planner, range(3, 5)) == _courses(fresh, range(3, 5))  # 1 and 2 came unplanned
    planner.plan_ahead(10, 4, math.inf, time.monotonic, lambda: False)  # 5-9 came meanwhile
    assert planner.planned_ahead == 4
    assert _courses(planner, range(10, 16)) == _courses(fresh, range(10, 16))


def test_a_planner_without_a_course_of_each_connections_own_plans_nothing_ahead() -> None:
    """Without jitter, slices or corruption, connections share their timeline: nothing to plan."""
    planner = Planner("s", LINES, Conditions(delay=0.25, fault="reset", fault_probability=0.5), seed=1)
    assert not planner.plans_each
