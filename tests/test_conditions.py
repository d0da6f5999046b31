"""Tests of the stream schedule: when each byte of one direction goes under pauses,
jitter, a rate cap and faults, and which connections a fault strikes."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pytest

from netsim.conditions import Conditions, StreamSchedule, cut, fault_of, mean_pause, pause_stream
from netsim.scenario import Server


def schedule(conditions: Conditions, sizes: Sequence[int], *, start: float = 0.0, arrival: float = 0.0,
             seed: int = 0, fault_after: int | None = None) -> StreamSchedule:
    """A schedule with every chunk of ``sizes`` available from ``arrival``."""
    plan = StreamSchedule(conditions, pause_stream(seed, "a", 1), start, fault_after=fault_after)
    for size in sizes:
        plan.add(size, arrival)
    return plan


def writes(plan: StreamSchedule) -> list[tuple[float, int]]:
    """Every emission as (due, size)."""
    return [(emission.due, emission.size) for emission in plan.emissions]


def begins(plan: StreamSchedule) -> list[float]:
    """When each chunk that has bytes begins."""
    return [emission.due for emission in plan.emissions if emission.first]


def gaps(times: Sequence[float]) -> list[float]:
    return [later - earlier for earlier, later in pairwise(times)]


# Pauses, initial delay, arrivals.

def test_no_conditions_sends_everything_at_once() -> None:
    """Without conditions every chunk goes at the start, whole, and the connection closes then."""
    plan = schedule(Conditions(), [5, 5, 5], start=2.0)
    assert writes(plan) == [(2.0, 5), (2.0, 5), (2.0, 5)]
    assert plan.close_time(2.0) == 2.0


@pytest.mark.parametrize(("delay", "chunks", "start"), [(1.0, 4, 0.0), (0.25, 3, 0.0), (0.5, 2, 10.0)])
def test_delay_spaces_chunks(delay: float, chunks: int, start: float) -> None:
    """Chunk i begins at start + i * delay and the connection closes at start + n * delay."""
    plan = schedule(Conditions(delay=delay), [5] * chunks, start=start)
    assert begins(plan) == pytest.approx([start + i * delay for i in range(chunks)])
    assert plan.close_time(start) == pytest.approx(start + chunks * delay)


def test_initial_delay_shifts_everything() -> None:
    """initial_delay moves the first chunk, and every one after it, that much later."""
    plan = schedule(Conditions(delay=1.0, initial_delay=0.5), [5, 5, 5], start=2.0)
    assert begins(plan) == [2.5, 3.5, 4.5]
    assert plan.close_time(2.0) == 5.5


def test_a_late_arrival_begins_when_it_arrives() -> None:
    """A chunk that arrives after the previous one's pause begins at its arrival (a proxy's case)."""
    plan = StreamSchedule(Conditions(delay=1.0), pause_stream(0, "a", 1), 0.0)
    plan.add(5, 0.0)  # next free at 1
    plan.add(5, 3.0)  # arrives late: begins at 3, next free at 4
    plan.add(5, 3.5)  # arrives early: waits for the pause, begins at 4
    assert begins(plan) == [0.0, 3.0, 4.0]


@pytest.mark.parametrize(("input_ended", "close"), [(0.0, 2.5), (1.9, 2.5), (5.0, 5.5)])
def test_close_time(input_ended: float, close: float) -> None:
    """The connection closes close_delay after the last chunk's pause, or after a later end of input."""
    plan = schedule(Conditions(delay=1.0, close_delay=0.5), [5, 5])
    assert plan.close_time(input_ended) == close


# Rate.

@pytest.mark.parametrize(("rate", "size", "expected"), [
    (1000.0, 25, [(0.0, 10), (0.01, 10), (0.02, 5)]),  # pieces of 10 ms = 10 bytes
    (100_000.0, 2500, [(0.0, 1000), (0.01, 1000), (0.02, 500)]),
    (10.0, 3, [(0.0, 1), (0.1, 1), (0.2, 1)]),  # under 1 byte per slice: single bytes
])
def test_rate_cuts_a_chunk_into_timed_pieces(rate: float, size: int,
                                              expected: list[tuple[float, int]]) -> None:
    """Under a rate a chunk goes in pieces of round(rate * SLICE) bytes, each due at offset / rate."""
    plan = schedule(Conditions(rate=rate), [size])
    assert [due for due, _ in writes(plan)] == pytest.approx([due for due, _ in expected])
    assert [size for _, size in writes(plan)] == [size for _, size in expected]
    assert [emission.first for emission in plan.emissions] == [True] + [False] * (len(expected) - 1)
    assert plan.close_time(0.0) == pytest.approx(size / rate)


@pytest.mark.parametrize(("delay", "begins_at", "close"), [(0.25, [0.0, 0.75], 1.5), (0.0, [0.0, 0.5], 1.0)])
def test_rate_holds_across_chunks(delay: float, begins_at: list[float], close: float) -> None:
    """The next chunk begins after the previous one's end (size / rate) plus the pause."""
    plan = schedule(Conditions(rate=10.0, delay=delay), [5, 5])
    assert begins(plan) == pytest.approx(begins_at)
    assert plan.close_time(0.0) == pytest.approx(close)


def test_a_big_chunk_takes_size_over_rate() -> None:
    """A chunk of 123457 bytes at 1000 B/s takes 123.457 s, and every byte is scheduled once."""
    plan = schedule(Conditions(rate=1000.0), [123_457])
    assert sum(size for _, size in writes(plan)) == 123_457
    assert plan.emissions[-1].due < 123.457
    assert plan.close_time(0.0) == pytest.approx(123.457, abs=1e-9)


# Jitter.

@pytest.mark.parametrize(("delay", "jitter"), [(1.0, 0.5), (0.2, 1.0)])
def test_jitter_keeps_pauses_in_range(delay: float, jitter: float) -> None:
    """Each pause lies in delay ± jitter and is never negative, even when jitter exceeds delay."""
    pauses = gaps(begins(schedule(Conditions(delay=delay, jitter=jitter), [1] * 400, seed=3)))
    assert all(max(0.0, delay - jitter) - 1e-9 <= pause <= delay + jitter + 1e-9 for pause in pauses)
    assert len(set(pauses)) > 100  # drawn, not fixed
    if jitter > delay:
        assert 0.0 in pauses  # the draws below zero are cut to zero


@pytest.mark.parametrize(("seed", "server", "conn", "direction"), [
    (8, "a", 1, "downstream"), (7, "b", 1, "downstream"), (7, "a", 2, "downstream"), (7, "a", 1, "upstream"),
])
def test_pauses_come_from_the_seed(seed: int, server: str, conn: int, direction: str) -> None:
    """The same seed, server, connection and direction give the same pauses; any change, others."""
    conditions = Conditions(delay=1.0, jitter=0.5)

    def drawn(seed: int, server: str, conn: int, direction: str) -> list[float]:
        plan = StreamSchedule(conditions, pause_stream(seed, server, conn, direction), 0.0)
        for _ in range(10):
            plan.add(1, 0.0)
        return begins(plan)

    assert drawn(7, "a", 1, "downstream") == drawn(7, "a", 1, "downstream")
    assert drawn(7, "a", 1, "downstream") != drawn(seed, server, conn, direction)


@pytest.mark.parametrize(("delay", "jitter", "mean"), [
    (1.0, 0.5, 1.0),  # never cut at zero: the mean is the delay
    (1.0, 1.0, 1.0),
    (0.0, 1.0, 0.25),  # half the draws are cut to zero, the others average 0.5
    (0.1, 0.3, 0.4 ** 2 / 1.2),
])
def test_mean_pause(delay: float, jitter: float, mean: float) -> None:
    """mean_pause gives the average pause, and many drawn pauses average close to it."""
    assert mean_pause(delay, jitter) == pytest.approx(mean)
    draws = 20_000
    plan = schedule(Conditions(delay=delay, jitter=jitter), [0] * draws, seed=5)  # empty chunks: pauses only
    assert plan.close_time(0.0) / draws == pytest.approx(mean, rel=0.03)


def test_scaled_schedule_scales_every_pause() -> None:
    """At time scale 0.5 the same seed gives every chunk at half the time, jitter included."""
    conditions = Conditions(delay=1.0, jitter=0.5, initial_delay=0.25)
    normal = schedule(conditions, [1] * 20, seed=2)
    fast = schedule(conditions.scaled(0.5), [1] * 20, seed=2)
    assert begins(fast) == pytest.approx([0.5 * begin for begin in begins(normal)])
    assert fast.close_time(0.0) == pytest.approx(0.5 * normal.close_time(0.0))


# Faults.

@pytest.mark.parametrize(("conditions", "after", "taken", "sent", "fault_at"), [
    # at a chunk boundary: when the next chunk would begin, after the pause
    (Conditions(delay=1.0), 5, [5, 0, 0], [(0.0, 5)], 1.0),
    (Conditions(delay=1.0), 10, [5, 5, 0], [(0.0, 5), (1.0, 5)], 2.0),
    # before the first byte: when the first chunk would begin
    (Conditions(delay=1.0, initial_delay=0.5), 0, [0, 0, 0], [], 0.5),
    # mid-chunk, no rate: the chunk's part goes and the fault strikes at the same instant
    (Conditions(delay=1.0), 7, [5, 2, 0], [(0.0, 5), (1.0, 2)], 1.0),
    # mid-chunk under 10 B/s: chunk 1 begins at 0.5 + 1, byte 8 would be due 0.2 s later
    (Conditions(delay=1.0, rate=10.0), 7, [5, 2, 0],
     [(0.0, 1), (0.1, 1), (0.2, 1), (0.3, 1), (0.4, 1), (1.5, 1), (1.6, 1)], 1.7),
])
def test_fault_strikes_when_the_first_byte_beyond_after_is_due(
        conditions: Conditions, after: int, taken: list[int], sent: list[tuple[float, int]],
        fault_at: float) -> None:
    """Bytes are cut at `after`, and the fault strikes when the first byte beyond it is due."""
    plan = StreamSchedule(conditions, pause_stream(0, "a", 1), 0.0, fault_after=after)
    assert [plan.add(5, 0.0) for _ in range(3)] == taken
    assert [due for due, _ in writes(plan)] == pytest.approx([due for due, _ in sent])
    assert [size for _, size in writes(plan)] == [size for _, size in sent]
    assert plan.fault_at == pytest.approx(fault_at)


def test_nothing_is_scheduled_after_the_fault() -> None:
    """Once the fault has struck, later chunks take no bytes and change nothing."""
    plan = schedule(Conditions(delay=1.0), [5, 5], fault_after=5)
    before = (writes(plan), plan.fault_at, repr(plan))
    assert [plan.add(5, 10.0), plan.add(0, 10.0)] == [0, 0]
    assert (writes(plan), plan.fault_at, repr(plan)) == before


def test_empty_chunks_pause_but_never_fault() -> None:
    """An empty chunk takes its pause and no bytes, and even past `after` it triggers no fault."""
    plain = schedule(Conditions(delay=1.0), [5, 0, 5])
    assert writes(plain) == [(0.0, 5), (2.0, 5)]
    assert plain.close_time(0.0) == 3.0

    plan = StreamSchedule(Conditions(delay=1.0), pause_stream(0, "a", 1), 0.0, fault_after=5)
    assert [plan.add(5, 0.0), plan.add(0, 0.0), plan.add(0, 0.0)] == [5, 0, 0]
    assert plan.fault_at is None  # at 1 and 2 only empty chunks came due
    assert plan.add(5, 0.0) == 0
    assert plan.fault_at == 3.0


@pytest.mark.parametrize(("probability", "struck"), [(0.0, 0), (1.0, 1000)])
def test_fault_probability_bounds(probability: float, struck: int) -> None:
    """A fault of probability 0 strikes no connection, one of probability 1 every one."""
    conditions = Conditions(fault="reset", fault_probability=probability)
    kinds = [fault_of(conditions, 1, "a", conn) for conn in range(1, 1001)]
    assert kinds.count("reset") == struck
    assert kinds.count(None) == 1000 - struck


def test_fault_probability_half() -> None:
    """A fault of probability 0.5 strikes about half the connections, the same ones for the same seed."""
    conditions = Conditions(fault="stall", fault_probability=0.5)

    def struck(seed: int) -> set[int]:
        return {conn for conn in range(1, 1001) if fault_of(conditions, seed, "a", conn) == "stall"}

    assert 450 <= len(struck(1)) <= 550
    assert struck(1) == struck(1)
    assert struck(1) != struck(2)


def test_no_fault_never_strikes() -> None:
    """Conditions without a fault give no connection one, and without_fault removes it."""
    assert fault_of(Conditions(), 1, "a", 1) is None
    assert fault_of(Conditions(fault="reset").without_fault(), 1, "a", 1) is None


# The conditions themselves.

def test_conditions_of_a_server() -> None:
    """A server's keys, units resolved, become its conditions in seconds and bytes per second."""
    server = Server.model_validate({
        "name": "a", "poem": "1111\n", "delay": "1s", "jitter": "250ms", "initial_delay": "2s",
        "accept_delay": "500ms", "close_delay": "3s", "rate": "10KB/s",
        "fault": {"kind": "reset", "after": 5, "probability": "25%"}})
    assert Conditions.of(server) == Conditions(
        delay=1.0, jitter=0.25, initial_delay=2.0, accept_delay=0.5, close_delay=3.0, rate=10_000.0,
        fault="reset", fault_after=5, fault_probability=0.25)


@pytest.mark.parametrize(("rate", "scaled_rate"), [(100.0, 200.0), (None, None)])
def test_scaled_multiplies_durations_and_divides_rate(rate: float | None, scaled_rate: float | None) -> None:
    """scaled(F) multiplies every duration by F, divides the rate by F, and keeps the fault."""
    conditions = Conditions(delay=1.0, jitter=0.5, initial_delay=2.0, accept_delay=3.0, close_delay=4.0,
                            rate=rate, fault="close", fault_after=5, fault_probability=0.25)
    assert conditions.scaled(0.5) == Conditions(
        delay=0.5, jitter=0.25, initial_delay=1.0, accept_delay=1.5, close_delay=2.0, rate=scaled_rate,
        fault="close", fault_after=5, fault_probability=0.25)


# Cutting forwarded bytes.

@pytest.mark.parametrize(("data", "chunk", "pieces"), [
    (b"ab\ncd\n", "line", [b"ab\n", b"cd\n"]),
    (b"ab\ncd", "line", [b"ab\n", b"cd"]),  # the rest of a line goes without waiting for its end
    (b"\n\n", "line", [b"\n", b"\n"]),
    (b"no newline", "line", [b"no newline"]),
    (b"ab\ncd", "all", [b"ab\ncd"]),
    (b"abcde", 2, [b"ab", b"cd", b"e"]),
    (b"abcd", 4, [b"abcd"]),
    (b"ab", 10, [b"ab"]),
    (b"", "line", []),
    (b"", "all", []),
    (b"", 3, []),
])
def test_cut(data: bytes, chunk: str | int, pieces: list[bytes]) -> None:
    """cut() splits what has arrived at newlines, into N-byte pieces, or not at all, keeping every byte."""
    assert cut(data, chunk) == pieces
    assert b"".join(cut(data, chunk)) == data
