"""When each byte of a connection goes out: pauses, jitter, rate and faults, without I/O.

The server engine carries a ``StreamSchedule`` out on a socket; the ideal-timing model
reads the same schedule without any socket. Both draw their random numbers from the
same seeded streams, so a scenario's ``seed`` fixes every pause and every fault, and the
ideal time of a run is computed from the very schedule its servers keep.

The rules, for one direction of one connection, starting when it is served:

* the first chunk may go after ``initial_delay``;
* chunk *i* begins when it is available and the previous one is done: at
  ``max(arrival, end of chunk i-1 + pause)``; under a ``rate`` it takes ``size / rate``
  to send, in pieces of ``SLICE`` seconds each, every piece on its own deadline;
* each pause is ``delay``, or drawn uniformly from ``delay ± jitter`` (never below zero);
* after the last chunk and its pause, the connection closes ``close_delay`` later;
* a fault strikes when the first byte beyond ``after`` is due: that byte, and everything
  after it, never goes.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

try:  # CPython's own BLAKE2: importing hashlib would also map OpenSSL, 4 MB a server process
    from _blake2 import blake2b
except ImportError:  # pragma: no cover (another Python)
    from hashlib import blake2b

if TYPE_CHECKING:
    from netsim.scenario import Server

# A rate-capped chunk goes out in pieces of this much time each: fine enough that the
# rate holds over any window a client can measure, coarse enough to cost few wake-ups.
SLICE = 0.01  # seconds


@dataclass(frozen=True)
class Conditions:
    """A server's network conditions in seconds and bytes per second (time scale applied)."""

    delay: float = 0.0
    jitter: float = 0.0
    initial_delay: float = 0.0
    accept_delay: float = 0.0
    close_delay: float = 0.0
    rate: float | None = None  # bytes per second; None: as fast as the socket takes it
    fault: str | None = None  # refuse | reset | close | stall | blackhole
    fault_after: int = 0  # bytes
    fault_probability: float = 1.0

    @classmethod
    def of(cls, server: Server) -> Conditions:
        """A scenario server's conditions, in scenario seconds."""
        fault = server.fault
        return cls(
            delay=server.delay, jitter=server.jitter, initial_delay=server.initial_delay,
            accept_delay=server.accept_delay, close_delay=server.close_delay, rate=server.rate,
            fault=fault.kind if fault else None, fault_after=fault.after if fault else 0,
            fault_probability=fault.probability if fault else 1.0)

    def without_fault(self) -> Conditions:
        return dataclasses.replace(self, fault=None)

    def scaled(self, time_scale: float) -> Conditions:
        """The same conditions with every duration times ``time_scale`` (rates divided)."""
        return dataclasses.replace(
            self, delay=self.delay * time_scale, jitter=self.jitter * time_scale,
            initial_delay=self.initial_delay * time_scale,
            accept_delay=self.accept_delay * time_scale, close_delay=self.close_delay * time_scale,
            rate=None if self.rate is None else self.rate / time_scale)


# A block of the draw stream: one BLAKE2b digest, read as sixteen 32-bit numbers.
_BLOCK = struct.Struct("<16I")
_UNIT = 2.0**-32  # a 32-bit number times this is a draw in [0, 1)


class Draws:
    """A seeded stream of uniform numbers in [0, 1), the same wherever it is read.

    Block *k* of the stream is the BLAKE2b digest of ``key/k``, read as sixteen 32-bit
    numbers. A server plans each connection's pauses when it accepts it, ten thousand a
    second at scale: hashing takes about 1 µs for sixteen draws, where seeding a
    ``random.Random`` takes 4-6 µs before the first one.
    """

    __slots__ = ("_block", "_key", "_numbers")

    def __init__(self, key: str) -> None:
        self._key = key.encode() + b"/"
        self._block = 0
        self._numbers: list[int] = []

    def __repr__(self) -> str:
        return f"<Draws {self._key.decode()}{self._block} left={len(self._numbers)}>"

    def take(self, count: int) -> list[float]:
        """The next ``count`` draws."""
        return [number * _UNIT for number in self.numbers(count)]

    def numbers(self, count: int) -> list[int]:
        """The next ``count`` draws as the 32-bit numbers they are made of (draw = n / 2**32)."""
        numbers = self._numbers
        while len(numbers) < count:
            digest = blake2b(self._key + str(self._block).encode(), digest_size=64).digest()
            numbers.extend(_BLOCK.unpack(digest))
            self._block += 1
        taken, self._numbers = numbers[:count], numbers[count:]
        return taken

    def uniform(self, low: float, high: float) -> float:
        """The next draw, spread over [low, high)."""
        return low + (high - low) * self.take(1)[0]


def pause_stream(seed: int, server: str, conn: int, direction: str = "downstream") -> Draws:
    """The draws behind one direction's pauses of connection ``conn`` of ``server``."""
    return Draws(f"netsim/{seed}/{server}/{conn}/{direction}/pauses")


def fault_of(conditions: Conditions, seed: int, server: str, conn: int) -> str | None:
    """The fault that strikes connection ``conn`` (1-based, in accept order), if any."""
    if conditions.fault is None:
        return None
    if conditions.fault_probability >= 1:
        return conditions.fault
    draw = Draws(f"netsim/{seed}/{server}/{conn}/fault").take(1)[0]
    return conditions.fault if draw < conditions.fault_probability else None


class Emission(NamedTuple):
    """One write: ``size`` bytes due at ``due`` (seconds, on the caller's clock).

    A named tuple: a server makes ten of these per connection, and a tuple is made in a
    fifth of the time a frozen dataclass is.
    """

    due: float
    size: int
    chunk: int  # which chunk (0-based) the bytes belong to
    first: bool  # the chunk's first piece: the moment the chunk is logged as sent
    scheduled: float  # when the chunk was due to begin


class StreamSchedule:
    """Decides, chunk by chunk, when each byte of one direction may go."""

    def __init__(self, conditions: Conditions, pauses: Draws | None, start: float,
                 fault_after: int | None = None) -> None:
        self.conditions = conditions
        self.emissions: deque[Emission] = deque()
        self.fault_at: float | None = None  # when the fault strikes, once it is known
        self._pauses = pauses
        self._fault_after = fault_after
        self._next_free = start + conditions.initial_delay
        self._accepted = 0  # bytes scheduled so far
        self._chunks = 0

    def __repr__(self) -> str:
        return (f"<StreamSchedule chunks={self._chunks} bytes={self._accepted} "
                f"next_free={self._next_free:.6f} fault_at={self.fault_at}>")

    def add(self, size: int, arrival: float) -> int:
        """Schedule a chunk of ``size`` bytes available from ``arrival``.

        Returns how many of its bytes will go: fewer than ``size`` when the fault cuts it,
        none once the fault has struck.
        """
        if self.fault_at is not None:
            return 0
        begin = max(arrival, self._next_free)
        allowed = size
        if self._fault_after is not None:
            allowed = min(size, self._fault_after - self._accepted)
        rate = self.conditions.rate
        self._emit(begin, allowed, rate)
        self._accepted += allowed
        if allowed < size:  # the first byte beyond `after` is due now: the fault strikes
            self.fault_at = begin + (allowed / rate if rate else 0.0)
            return allowed
        end = begin + (size / rate if rate else 0.0)
        self._next_free = end + self._pause()
        self._chunks += 1
        return size

    def close_time(self, input_ended: float) -> float:
        """When the connection closes, if its input ended (EOF) at ``input_ended``."""
        return max(input_ended, self._next_free) + self.conditions.close_delay

    def _emit(self, begin: float, size: int, rate: float | None) -> None:
        if size == 0:
            return
        if rate is None:
            self.emissions.append(Emission(begin, size, self._chunks, True, begin))
            return
        piece = max(1, round(rate * SLICE))
        for offset in range(0, size, piece):
            self.emissions.append(Emission(begin + offset / rate, min(piece, size - offset),
                                           self._chunks, offset == 0, begin))

    def _pause(self) -> float:
        delay, jitter = self.conditions.delay, self.conditions.jitter
        if jitter == 0:
            return delay
        if self._pauses is None:
            raise ValueError("a schedule with jitter needs its stream of pauses (pause_stream)")
        return max(0.0, delay + self._pauses.uniform(-jitter, jitter))


@dataclass(frozen=True, slots=True)
class Timeline:
    """The whole course of one connection to a poem server, planned when it is accepted.

    Times are seconds from the connection's start: its accept, plus ``accept_delay``.
    Write *i* sends ``pieces[i]`` at ``offsets[i]``; the last offset is the ending's:
    the close, or the moment ``fault`` strikes (``reset``, ``close`` or ``stall``; a
    ``blackhole`` connection has no writes at all). A rate is more writes, each a slice
    of a chunk; a fault is a timeline cut short.
    """

    # One per write, then the ending's. A jittered connection's own are an array of
    # doubles: 8 bytes an offset, where a tuple of floats takes 32.
    offsets: Sequence[float]
    pieces: tuple[bytes | memoryview, ...]
    chunks: tuple[int, ...]  # the chunk (0-based) a write begins; -1: the rest of a rate-capped chunk
    fault: str | None = None

    @property
    def end(self) -> float:
        return self.offsets[-1]


BLACKHOLE = Timeline((0.0,), (), (), "blackhole")


def plan_timeline(chunks: Sequence[bytes], conditions: Conditions, *, fault: str | None = None,
                  pauses: Draws | None = None) -> Timeline:
    """Plan a poem connection: the rules above, with every chunk available from the start.

    ``fault`` is the fault this connection meets (see ``fault_of``); ``pauses`` the draws
    of its jitter (``pause_stream``), needed only with jitter.
    """
    if fault == "blackhole":
        return BLACKHOLE
    fault_after = conditions.fault_after if fault is not None else None
    if conditions.rate is not None:
        return _plan_rated(chunks, conditions, fault, fault_after, pauses)
    # Without a rate every chunk is one write: the same arithmetic as StreamSchedule's,
    # without its objects (a test holds the two to the same floats). At scale a server
    # plans thousands of jittered connections a second, and this is a fifth of the cost.
    delay, jitter = conditions.delay, conditions.jitter
    if jitter:
        if pauses is None:
            raise ValueError("a schedule with jitter needs its stream of pauses (pause_stream)")
        span = jitter - -jitter
        drawn = [max(0.0, delay + (-jitter + span * draw)) for draw in pauses.take(len(chunks))]
    else:
        drawn = [delay] * len(chunks)
    offsets: list[float] = []
    pieces: list[bytes | memoryview] = []
    numbers: list[int] = []
    free = conditions.initial_delay
    sent = 0
    for number, chunk in enumerate(chunks):
        begin = max(0.0, free)
        size = len(chunk)
        allowed = size if fault_after is None else min(size, fault_after - sent)
        if allowed:
            offsets.append(begin)
            pieces.append(chunk if allowed == size else memoryview(chunk)[:allowed])
            numbers.append(number)
        sent += allowed
        if allowed < size:  # the first byte beyond `after` is due now: the fault strikes
            offsets.append(begin)
            return Timeline(tuple(offsets), tuple(pieces), tuple(numbers), fault)
        free = begin + 0.0 + drawn[number]
    offsets.append(max(0.0, free) + conditions.close_delay)
    return Timeline(tuple(offsets), tuple(pieces), tuple(numbers))


def _plan_rated(chunks: Sequence[bytes], conditions: Conditions, fault: str | None,
                fault_after: int | None, pauses: Draws | None) -> Timeline:
    schedule = StreamSchedule(conditions, pauses, 0.0, fault_after=fault_after)
    offsets: list[float] = []
    pieces: list[bytes | memoryview] = []
    numbers: list[int] = []
    for chunk in chunks:
        schedule.add(len(chunk), 0.0)
        position = 0
        for emission in schedule.emissions:
            offsets.append(emission.due)
            pieces.append(memoryview(chunk)[position:position + emission.size])
            numbers.append(emission.chunk if emission.first else -1)
            position += emission.size
        schedule.emissions.clear()
        if schedule.fault_at is not None:
            offsets.append(schedule.fault_at)
            return Timeline(tuple(offsets), tuple(pieces), tuple(numbers), fault)
    offsets.append(schedule.close_time(0.0))
    return Timeline(tuple(offsets), tuple(pieces), tuple(numbers))


class Planner:
    """Plans the connections of one poem server, in accept order.

    Connections without jitter share one timeline (two with a fault that strikes only
    some of them): at ten thousand connections, a plan each would cost memory and time
    for nothing.
    """

    def __init__(self, name: str, chunks: Sequence[bytes], conditions: Conditions, seed: int) -> None:
        self._name = name
        self._chunks = tuple(chunks)
        self._conditions = conditions
        self._seed = seed
        self._shared: dict[str | None, Timeline] = {}
        # What every connection without a fault writes, whatever its pauses: only the
        # offsets differ with jitter (see _jittered).
        plain = plan_timeline(self._chunks, dataclasses.replace(conditions, jitter=0.0))
        self._pieces, self._numbers = plain.pieces, plain.chunks

    def __repr__(self) -> str:
        return f"<Planner {self._name} shared={len(self._shared)}>"

    def plan(self, index: int) -> Timeline:
        """The timeline of connection ``index`` (1-based, in accept order)."""
        conditions = self._conditions
        fault = fault_of(conditions, self._seed, self._name, index)
        if not conditions.jitter:
            timeline = self._shared.get(fault)
            if timeline is None:
                timeline = self._shared[fault] = plan_timeline(self._chunks, conditions, fault=fault)
            return timeline
        pauses = pause_stream(self._seed, self._name, index)
        if fault is None and conditions.rate is None:
            return self._jittered(pauses)
        return plan_timeline(self._chunks, conditions, fault=fault, pauses=pauses)

    def _jittered(self, pauses: Draws) -> Timeline:
        """plan_timeline's floats for a jittered connection without rate or fault, at a
        third of its cost: this is what a server does at every accept of a jittered ramp.

        Each pause is ``max(0, delay + (-jitter + 2 jitter u))`` with ``u = n / 2**32``,
        written so that the rounding is the same (a power of two scales exactly), and
        each chunk begins when the previous pause ends: a running sum from initial_delay.
        """
        conditions = self._conditions
        delay, jitter = conditions.delay, conditions.jitter
        scale = (jitter - -jitter) * _UNIT
        numbers = pauses.numbers(len(self._chunks))
        if jitter <= delay:  # no pause can fall below zero (rounding is monotonic)
            drawn = [delay + (-jitter + scale * number) for number in numbers]
        else:
            drawn = [max(0.0, delay + (-jitter + scale * number)) for number in numbers]
        begins = list(itertools.accumulate(drawn, initial=conditions.initial_delay))
        offsets = array.array("d", [begins[number] for number in self._numbers])
        offsets.append(begins[-1] + conditions.close_delay)
        return Timeline(offsets, self._pieces, self._numbers)


def mean_pause(delay: float, jitter: float) -> float:
    """The average of ``max(0, uniform(delay - jitter, delay + jitter))``."""
    if jitter <= delay:
        return delay
    return (delay + jitter) ** 2 / (4 * jitter)


def cut(data: bytes, chunk: str | int) -> list[bytes]:
    """Cut forwarded bytes into chunks without waiting for more: at each newline
    (``"line"``), into pieces of at most N bytes (``int``), or as they came (``"all"``)."""
    if chunk == "all" or not data:
        return [data] if data else []
    if isinstance(chunk, int):
        return [data[start:start + chunk] for start in range(0, len(data), chunk)]
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


__all__ = ["BLACKHOLE", "SLICE", "Conditions", "Draws", "Emission", "Planner", "StreamSchedule",
           "Timeline", "cut", "fault_of", "mean_pause", "pause_stream", "plan_timeline"]

