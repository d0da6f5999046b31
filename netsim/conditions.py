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
  after it, never goes; a fault with a time limit (``at``) strikes ``at`` after the accept,
  unless the connection has ended by then;
* ``slice`` cuts every chunk into pieces of seeded sizes, ``slice_delay`` apart;
* ``corrupt`` sends every byte from ``after`` on with some of its bits flipped (seeded).

Conditions may change while a connection is open (a phase, a live change). Its course is
then planned anew from where it is (``replan``): what was written stays written; the
wait under way (before the first chunk, a pause, between slices, before the close) is
the new conditions' wait, counted from when it began, so it may be over already and
the next byte goes at once; every deadline stays absolute.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import math
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from netsim._faults import CUTTING_FAULTS, LISTENER_FAULTS

try:  # CPython's own BLAKE2: importing hashlib would also map OpenSSL, 4 MB a server process
    from _blake2 import blake2b
except ImportError:  # pragma: no cover (another Python)
    from hashlib import blake2b

if TYPE_CHECKING:
    from netsim.scenario import ConditionChanges, Server

# A rate-capped chunk goes out in pieces of this much time each: fine enough that the
# rate holds over any window a client can measure, coarse enough to cost few wake-ups.
SLICE = 0.01  # seconds

# Planner.plan_ahead asks whether its caller has something better to do after this many
# courses: 40-80 µs of work.
AHEAD_BATCH = 8



# The keys of a scenario that are conditions: what a phase or a live change may set.
CONDITION_KEYS = ("delay", "jitter", "rate", "initial_delay", "accept_delay", "close_delay",
                  "handshake_delay", "latency", "slice", "fault")
_DURATION_KEYS = ("delay", "jitter", "initial_delay", "accept_delay", "close_delay", "handshake_delay",
                  "latency")


@dataclass(frozen=True)
class Conditions:
    """A server's network conditions in seconds and bytes per second (time scale applied)."""

    delay: float = 0.0
    jitter: float = 0.0
    initial_delay: float = 0.0
    accept_delay: float = 0.0
    close_delay: float = 0.0
    rate: float | None = None  # bytes per second; None: as fast as the socket takes it
    # refuse | syn_drop (at the listener); reset | close | stall | blackhole | corrupt
    fault: str | None = None
    fault_after: int = 0  # bytes
    fault_probability: float = 1.0
    fault_at: float | None = None  # seconds after the accept: a time limit instead of `after`
    handshake_delay: float = 0.0  # SYNs go unanswered for this long once it is set
    slice_bytes: tuple[int, int] | None = None  # each chunk cut into pieces of A..B bytes
    slice_delay: float = 0.0  # between the pieces of one chunk
    latency: float = 0.0  # a proxy's: each byte goes no sooner than this after it came

    @classmethod
    def of(cls, server: Server) -> Conditions:
        """A scenario server's conditions, in scenario seconds."""
        return cls().changed(server, CONDITION_KEYS)

    def changed(self, changes: Server | ConditionChanges, keys: Iterable[str] | None = None) -> Conditions:
        """These conditions with the condition keys of ``changes`` (a scenario server, a
        phase or a live change, in scenario seconds): those in ``keys``, by default those
        it sets (all of a server's)."""
        if keys is None:
            keys = [key for key in CONDITION_KEYS if key in changes.model_fields_set]
        fields: dict[str, Any] = {}
        for key in keys:
            value = getattr(changes, key)
            if key == "fault":
                fields.update(fault=value.kind if value else None, fault_after=value.after if value else 0,
                              fault_probability=value.probability if value else 1.0,
                              fault_at=value.at if value else None)
            elif key == "slice":
                fields.update(slice_bytes=(value.bytes.low, value.bytes.high) if value else None,
                              slice_delay=value.delay if value else 0.0)
            else:
                fields[key] = value
        return dataclasses.replace(self, **fields)

    def without_fault(self) -> Conditions:
        return dataclasses.replace(self, fault=None)

    def scaled(self, time_scale: float) -> Conditions:
        """The same conditions with every duration times ``time_scale`` (rates divided)."""
        return dataclasses.replace(
            self, delay=self.delay * time_scale, jitter=self.jitter * time_scale,
            initial_delay=self.initial_delay * time_scale,
            accept_delay=self.accept_delay * time_scale, close_delay=self.close_delay * time_scale,
            rate=None if self.rate is None else self.rate / time_scale,
            fault_at=None if self.fault_at is None else self.fault_at * time_scale,
            handshake_delay=self.handshake_delay * time_scale, slice_delay=self.slice_delay * time_scale,
            latency=self.latency * time_scale)

    def difference(self, other: Conditions) -> dict[str, Any]:
        """The fields of ``other`` that differ from these, by name."""
        return {field.name: getattr(other, field.name) for field in dataclasses.fields(self)
                if getattr(other, field.name) != getattr(self, field.name)}

    def described(self, *, every: bool = False) -> dict[str, Any]:
        """These conditions as a scenario writes them (durations and rates with units):
        every key, or only those not at their defaults."""
        shown: dict[str, Any] = {}
        for key in _DURATION_KEYS:
            if every or getattr(self, key):
                shown[key] = written_duration(getattr(self, key))
        if every:
            shown.update(rate=None, slice=None, fault=None)
        if self.rate is not None:
            shown["rate"] = f"{self.rate:g}B/s"
        if self.slice_bytes is not None:
            low, high = self.slice_bytes
            shown["slice"] = {"bytes": f"{low}..{high}", "delay": written_duration(self.slice_delay)}
        if self.fault is not None:
            fault: dict[str, Any] = {"kind": self.fault}
            if self.fault_at is not None:
                fault["at"] = written_duration(self.fault_at)
            elif self.fault_after:
                fault["after"] = self.fault_after
            if self.fault_probability < 1:
                fault["probability"] = f"{self.fault_probability * 100:.6g}%"
            shown["fault"] = fault
        return shown


# The fields of Conditions behind a scenario's key, where they are not the key itself.
_FIELDS_OF_KEY = {"fault": ("fault", "fault_after", "fault_probability", "fault_at"),
                  "slice": ("slice_bytes", "slice_delay")}


def changes_of(changes: ConditionChanges, time_scale: float = 1.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a phase or a live change sets: the fields of Conditions, with ``time_scale``
    applied, and the same keys as a scenario writes them (for the log)."""
    keys = [key for key in CONDITION_KEYS if key in changes.model_fields_set]
    written = Conditions().changed(changes, keys)
    scaled = written.scaled(time_scale)
    fields = {name: getattr(scaled, name) for key in keys for name in _FIELDS_OF_KEY.get(key, (key,))}
    shown = written.described()
    return fields, {key: shown.get(key, "0s" if key in _DURATION_KEYS else None) for key in keys}


def written_duration(seconds: float) -> str:
    """A duration as a scenario writes it: ``1.5s``, ``250ms`` (six significant digits, so
    that the rounding of a time scale and back does not show)."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.6g}s"
    return f"{seconds * 1e3:.6g}ms"


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


def pause_stream(seed: int, server: str, conn: int, direction: str = "downstream",
                 generation: int = 0) -> Draws:
    """The draws behind one direction's pauses of connection ``conn`` of ``server``; a
    ``generation`` above 0 is the stream after that many changes of the server's conditions."""
    key = f"netsim/{seed}/{server}/{conn}/{direction}/pauses"
    return Draws(f"{key}/{generation}" if generation else key)


def fault_of(conditions: Conditions, seed: int, server: str, conn: int) -> str | None:
    """The fault that strikes connection ``conn`` (1-based, in accept order), if any; a
    fault at the listener (``refuse``, ``syn_drop``) strikes no connection it accepted."""
    if conditions.fault is None or conditions.fault in LISTENER_FAULTS:
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

    @property
    def next_free(self) -> float:
        """When the next chunk may begin: after the last one scheduled and its pause."""
        return self._next_free

    def begin_of(self, arrival: float) -> float:
        """When bytes available from ``arrival`` would begin: after the chunks before them
        and their pauses, and a proxy's ``latency`` after they came."""
        return max(arrival + self.conditions.latency, self._next_free)

    def add(self, size: int, arrival: float, *, begins: bool = True, ends: bool = True,
            joined: bool = False) -> int:
        """Schedule a chunk of ``size`` bytes available from ``arrival``, or a slice of one:
        one that ``begins`` no chunk is not logged as a chunk sent, and one that ``ends``
        none is followed by ``slice_delay`` rather than a pause; one ``joined`` to the next
        part, by nothing (a streaming proxy schedules a long chunk at a rate in parts).

        Returns how many of its bytes will go: fewer than ``size`` when the fault cuts it,
        none once the fault has struck.
        """
        if self.fault_at is not None:
            return 0
        begin = self.begin_of(arrival)
        allowed = size
        if self._fault_after is not None:  # (a limit brought in later may be behind already)
            allowed = max(0, min(size, self._fault_after - self._accepted))
        rate = self.conditions.rate
        self._emit(begin, allowed, rate, begins)
        self._accepted += allowed
        if allowed < size:  # the first byte beyond `after` is due now: the fault strikes
            self.fault_at = begin + (allowed / rate if rate else 0.0)
            return allowed
        end = begin + (size / rate if rate else 0.0)
        if joined:
            self._next_free = end
            return size
        if not ends:
            self._next_free = end + self.conditions.slice_delay
            return size
        self._next_free = end + self._pause()
        self._chunks += 1
        return size

    def limit(self, fault_after: int | None) -> None:
        """Cut the chunks added from now on after ``fault_after`` bytes from the stream's
        start (None: no more): a fault brought in while it runs. A limit already passed
        cuts the next chunk. (``Shaper.limit`` cuts what is queued.)"""
        if self.fault_at is None:
            self._fault_after = fault_after

    def cut_queued(self, fault_after: int, sent: int, first_queued: int = 0) -> int:
        """Cut the emissions still queued (from ``first_queued`` on, ``sent`` bytes having
        gone before them) after ``fault_after`` bytes of the stream: a limit brought in
        while they wait. The fault strikes when the first byte dropped was due. Returns how
        many bytes are dropped (0: the queue is within the limit, or it was cut already)."""
        emissions = self.emissions
        if self.fault_at is not None or first_queued >= len(emissions):
            return 0
        left = max(0, fault_after - sent)
        kept = deque(itertools.islice(emissions, first_queued))
        dropped, cut_at = 0, None
        for emission in itertools.islice(emissions, first_queued, None):
            if cut_at is None and emission.size <= left:
                kept.append(emission)
                left -= emission.size
                continue
            if cut_at is None:
                cut_at = emission.due
                if left:
                    kept.append(emission._replace(size=left))
                dropped += emission.size - left
                left = 0
            else:
                dropped += emission.size
        if cut_at is None:
            return 0
        self.emissions, self.fault_at = kept, cut_at
        self._accepted -= dropped
        return dropped

    def close_time(self, input_ended: float) -> float:
        """When the connection closes, if its input ended (EOF) at ``input_ended``."""
        return max(input_ended + self.conditions.latency, self._next_free) + self.conditions.close_delay

    def _emit(self, begin: float, size: int, rate: float | None, begins: bool) -> None:
        if size == 0:
            return
        if rate is None:
            self.emissions.append(Emission(begin, size, self._chunks, begins, begin))
            return
        piece = max(1, round(rate * SLICE))
        for offset in range(0, size, piece):
            self.emissions.append(Emission(begin + offset / rate, min(piece, size - offset),
                                           self._chunks, begins and offset == 0, begin))

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
    chunks: tuple[int, ...]  # the chunk (0-based) a write begins; -1: the rest of a chunk cut in pieces
    fault: str | None = None
    # Where the first write stands: its chunk, the bytes of that chunk and of the whole
    # poem written before it, and when the wait before it began. Zeros but for a course
    # planned anew midway (``replan``).
    origin: tuple[int, int, int, float] = (0, 0, 0, 0.0)

    @property
    def end(self) -> float:
        return self.offsets[-1]

    def at(self, offsets: Sequence[float]) -> Timeline:
        """This timeline with ``offsets`` (itself when they are its own): how a connection
        that shares a timeline but has offsets of its own (``Planner.course``) is whole."""
        return self if offsets is self.offsets else dataclasses.replace(self, offsets=offsets)


BLACKHOLE = Timeline((0.0,), (), (), "blackhole")


def plan_timeline(chunks: Sequence[bytes], conditions: Conditions, *, fault: str | None = None,
                  pauses: Draws | None = None, streams: Streams | None = None) -> Timeline:
    """Plan a poem connection: the rules above, with every chunk available from the start.

    ``fault`` is the fault this connection meets (see ``fault_of``); ``pauses`` the draws
    of its jitter (``pause_stream``), needed only with jitter; ``streams`` all of its
    draws, needed with ``slice`` or ``corrupt``.
    """
    if fault == "blackhole":
        return BLACKHOLE
    if fault == "corrupt" or conditions.slice_bytes is not None:
        if streams is None:
            raise ValueError("slices and corruption are drawn from the connection's Streams")
        return plan_course(chunks, conditions, fault=fault, streams=streams)
    if fault is not None and conditions.fault_at is not None:
        return plan_course(chunks, conditions, fault=fault,
                           streams=streams or Streams.of_pauses(pauses))
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


class Resume(NamedTuple):
    """Where a connection's course is planned from: its start, or where it stands when its
    conditions change. Times are offsets from the connection's start (accept + accept_delay)."""

    chunk: int = 0  # the chunk the next byte belongs to (len(chunks): every byte is written)
    skip: int = 0  # bytes of that chunk written already
    sent: int = 0  # bytes written over the whole connection
    since: float = 0.0  # when the wait before the next byte began (see _gap)
    now: float = -math.inf  # nothing is planned before this
    accepted: float | None = None  # the accept (a time limit counts from it); None: -accept_delay


FROM_START = Resume()


class Streams:
    """The seeded draws of one connection: pauses and slice sizes, drawn anew after each
    change of its server's conditions (``generation``), and the mask that corrupts its bytes."""

    __slots__ = ("_corruption", "_key", "_pauses", "_slices", "generation")

    def __init__(self, seed: int, server: str, conn: int, generation: int = 0) -> None:
        self._key = (seed, server, conn)
        self.generation = generation
        self._pauses: Draws | None = None
        self._slices: Draws | None = None
        self._corruption: Corruption | None = None

    def __repr__(self) -> str:
        return f"<Streams {self._key} generation={self.generation}>"

    @classmethod
    def of_pauses(cls, pauses: Draws | None) -> Streams:
        """Streams whose pauses are these draws (the rest keyed to a connection 0 of no server)."""
        streams = cls(0, "", 0)
        streams._pauses = pauses
        return streams

    @property
    def pauses(self) -> Draws:
        if self._pauses is None:
            seed, server, conn = self._key
            self._pauses = pause_stream(seed, server, conn, generation=self.generation)
        return self._pauses

    @property
    def slices(self) -> Draws:
        if self._slices is None:
            seed, server, conn = self._key
            suffix = f"/{self.generation}" if self.generation else ""
            self._slices = Draws(f"netsim/{seed}/{server}/{conn}/slices{suffix}")
        return self._slices

    @property
    def corruption(self) -> Corruption:
        if self._corruption is None:
            self._corruption = Corruption(*self._key)
        return self._corruption


# Mask bytes are never 0: every corrupted byte differs from the one it replaces.
_NONZERO = bytes(byte % 255 + 1 for byte in range(256))


class Corruption:
    """The seeded mask that ``corrupt`` XORs with a connection's bytes, one byte per byte of
    the poem: the same at every position, however the course was planned."""

    __slots__ = ("_blocks", "_key")

    def __init__(self, seed: int, server: str, conn: int) -> None:
        self._key = f"netsim/{seed}/{server}/{conn}/corrupt/".encode()
        self._blocks: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"<Corruption {self._key.decode()} blocks={len(self._blocks)}>"

    def mask(self, start: int, length: int) -> bytes:
        """The mask of the poem's bytes ``start`` to ``start + length``."""
        first, last = start // 64, (start + length - 1) // 64
        joined = b"".join(self._block(number) for number in range(first, last + 1))
        return joined[start - first * 64:start - first * 64 + length]

    def apply(self, data: bytes | memoryview, start: int) -> bytes:
        """``data``, the poem's bytes from ``start`` on, with the mask applied."""
        if not data:
            return bytes(data)
        mask = self.mask(start, len(data))
        flipped = int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")
        return flipped.to_bytes(len(data), "big")

    def _block(self, number: int) -> bytes:
        block = self._blocks.get(number)
        if block is None:
            digest = blake2b(self._key + str(number).encode(), digest_size=64).digest()
            block = self._blocks[number] = digest.translate(_NONZERO)
        return block


def _pause(conditions: Conditions, streams: Streams) -> float:
    """The pause after a chunk: ``delay``, or drawn from ``delay ± jitter`` (as StreamSchedule)."""
    delay, jitter = conditions.delay, conditions.jitter
    if jitter == 0:
        return delay
    return max(0.0, delay + streams.pauses.uniform(-jitter, jitter))


def slice_sizes(size: int, conditions: Conditions, draws: Draws) -> list[int]:
    """A chunk's ``size`` bytes cut as ``slice`` says: sizes from A to B drawn from
    ``draws``, the last what remains; the whole as one piece without ``slice``."""
    if conditions.slice_bytes is None or size == 0:
        return [size]
    low, high = conditions.slice_bytes
    sizes: list[int] = []
    left = size
    while left > 0:
        piece = min(left, low + int(draws.take(1)[0] * (high - low + 1)))
        sizes.append(piece)
        left -= piece
    return sizes


def _slice_sizes(size: int, conditions: Conditions, streams: Streams) -> list[int]:
    if conditions.slice_bytes is None:  # no draw stream to make
        return [size]
    return slice_sizes(size, conditions, streams.slices)


def plan_course(chunks: Sequence[bytes], conditions: Conditions, *, fault: str | None, streams: Streams,
                resume: Resume = FROM_START) -> Timeline:
    """Plan a poem connection from ``resume`` on, every rule of this module included.

    ``plan_timeline`` takes shortcuts for the common conditions (a test holds the two to
    the same floats); this is the one planner of slices, corruption, time limits and
    courses planned anew (``replan``). The writes of a chunk after its first are marked
    -1 in ``chunks``; so is the first write of a course resumed within a chunk, which
    was logged as sent when it began.
    """
    if fault == "blackhole":
        return BLACKHOLE
    rate = conditions.rate
    budget = conditions.fault_after if fault in CUTTING_FAULTS and conditions.fault_at is None else None
    accepted = -conditions.accept_delay if resume.accepted is None else resume.accepted
    limit = (accepted + conditions.fault_at
             if fault in CUTTING_FAULTS and conditions.fault_at is not None else math.inf)
    corrupt_from = conditions.fault_after if fault == "corrupt" else None
    offsets: list[float] = []
    pieces: list[bytes | memoryview] = []
    numbers: list[int] = []
    sent = resume.sent
    since = resume.since
    now = resume.now

    origin = (resume.chunk, resume.skip, resume.sent, resume.since)

    def cut_short(when: float) -> Timeline:
        offsets.append(when)
        return Timeline(tuple(offsets), tuple(pieces), tuple(numbers), fault, origin)

    for number in range(resume.chunk, len(chunks)):
        chunk = chunks[number]
        skip = resume.skip if number == resume.chunk else 0
        if skip:  # within a chunk: the gap between its slices
            gap = conditions.slice_delay if conditions.slice_bytes is not None else 0.0
        elif number == 0:
            gap = conditions.initial_delay
        else:
            gap = _pause(conditions, streams)
        begin = max(now, since + gap)
        position = skip
        for index, size in enumerate(_slice_sizes(len(chunk) - skip, conditions, streams)):
            if index:
                begin = since + conditions.slice_delay
            allowed = size if budget is None else max(0, min(size, budget - sent))
            step = max(1, size) if rate is None else max(1, round(rate * SLICE))
            for offset in range(0, allowed, step):
                due = begin + (offset / rate if rate else 0.0)
                if due >= limit:
                    return cut_short(limit)
                length = min(step, allowed - offset)
                data: bytes | memoryview = memoryview(chunk)[position:position + length]
                if position == 0 and length == len(chunk):
                    data = chunk
                if corrupt_from is not None and sent + length > corrupt_from:
                    clean = max(0, corrupt_from - sent)
                    data = bytes(data[:clean]) + streams.corruption.apply(data[clean:], sent + clean)
                offsets.append(due)
                pieces.append(data)
                numbers.append(number if position == 0 else -1)
                position += length
                sent += length
            if allowed < size:  # the first byte beyond `after` is due now: the fault strikes
                struck = begin + (allowed / rate if rate else 0.0)
                return cut_short(min(struck, limit))
            since = begin + (size / rate if rate else 0.0)
    close = max(now, since + _pause(conditions, streams) + conditions.close_delay)
    if close >= limit:
        return cut_short(limit)
    offsets.append(close)
    return Timeline(tuple(offsets), tuple(pieces), tuple(numbers),
                    fault if corrupt_from is not None else None, origin)


def replan(chunks: Sequence[bytes], timeline: Timeline, done: int, planned: Conditions,
           conditions: Conditions, *, fault: str | None, streams: Streams, now: float,
           accepted: float) -> Timeline:
    """The rest of a connection's course under new ``conditions``, from where it stands.

    ``done`` of the writes of ``timeline`` (planned under ``planned``) are made; ``now``
    is the moment of the change and ``accepted`` the connection's accept, both offsets
    from the connection's start. Offsets of the new course count from that same start.
    """
    chunk, skip, sent, since = timeline.origin
    for index in range(done):
        piece = timeline.pieces[index]
        if timeline.chunks[index] >= 0:
            chunk, skip = timeline.chunks[index], 0
        skip += len(piece)
        sent += len(piece)
        since = timeline.offsets[index] + (len(piece) / planned.rate if planned.rate else 0.0)
    if chunk < len(chunks) and skip >= len(chunks[chunk]) and done:
        chunk, skip = chunk + 1, 0
    if (chunk, skip) == (0, 0):  # nothing written yet: the wait counts from the (new) accept_delay
        since = accepted + conditions.accept_delay
    resume = Resume(chunk, skip, sent, since, now, accepted)
    return plan_course(chunks, conditions, fault=fault, streams=streams, resume=resume)


class Planner:
    """Plans the connections of one poem server, in accept order.

    Connections without jitter share one timeline (two with a fault that strikes only
    some of them): at ten thousand connections, a plan each would cost memory and time
    for nothing.

    A connection's own course (jitter, slices, corruption: drawn per connection) costs
    5-10 µs to plan, at the accept, where a ramp of ten thousand connections a second
    has the least time to spare. It depends on nothing but the connection's number, so a
    server can plan the next ones ahead while it waits (``plan_ahead``); ``course`` then
    hands out what was planned, the same as it would have planned there and then.
    """

    def __init__(self, name: str, chunks: Sequence[bytes], conditions: Conditions, seed: int) -> None:
        self.conditions = conditions
        self._name = name
        self._chunks = tuple(chunks)
        self._conditions = conditions
        self._seed = seed
        self._shared: dict[str | None, Timeline] = {}
        # What every connection without a fault writes, whatever its pauses: only the
        # offsets differ with jitter (see _jittered).
        plain = plan_timeline(self._chunks, dataclasses.replace(conditions, jitter=0.0, slice_bytes=None,
                                                                fault=None))
        # What a jittered connection without rate or fault shares with every other: all
        # but its offsets (``course``); these are the unjittered ones.
        self._template = plain
        # Does each connection get a course of its own? (Else course() is a lookup, and
        # nothing is worth planning ahead.) A fault's draw alone is cheap.
        self.plans_each = bool(conditions.jitter or conditions.slice_bytes is not None
                               or conditions.fault == "corrupt")
        # Courses planned ahead (plan_ahead), connection _ahead_from's first: their
        # timelines and offsets apart, which saves the collector thousands of young
        # tuples to look through (an array of offsets is not a container to it).
        self._ahead: deque[Timeline] = deque()
        self._ahead_offsets: deque[Sequence[float]] = deque()
        self._ahead_from = 1

    def __repr__(self) -> str:
        return f"<Planner {self._name} shared={len(self._shared)} ahead={len(self._ahead)}>"

    @property
    def planned_ahead(self) -> int:
        """How many courses are planned ahead, waiting for their connections."""
        return len(self._ahead)

    def plan_ahead(self, first: int, most: int, until: float, clock: Callable[[], float],
                   busy: Callable[[], bool]) -> int:
        """Plan the courses of connections ``first`` on, until ``most`` are planned ahead,
        the ``clock`` says ``until`` (asked before each), or ``busy()`` says the caller has
        something better to do (asked after every AHEAD_BATCH); how many it planned."""
        ahead, offsets = self._ahead, self._ahead_offsets
        if first > self._ahead_from:  # those before ``first`` were planned without us
            for _ in range(min(first - self._ahead_from, len(ahead))):
                ahead.popleft()
                offsets.popleft()
            self._ahead_from = first
        if not ahead:
            self._ahead_from = first
        planned = 0
        while len(ahead) < most and clock() < until:
            timeline, course_offsets = self._course(self._ahead_from + len(ahead))
            ahead.append(timeline)
            offsets.append(course_offsets)
            planned += 1
            if planned % AHEAD_BATCH == 0 and busy():
                break
        return planned

    def plan(self, index: int) -> Timeline:
        """The timeline of connection ``index`` (1-based, in accept order)."""
        timeline, offsets = self.course(index)
        return timeline.at(offsets)

    def course(self, index: int) -> tuple[Timeline, Sequence[float]]:
        """``plan(index)`` in two parts, for a server that keeps thousands of them: a
        timeline that may be shared with other connections, and this connection's offsets
        (its own with jitter: a jittered connection without rate or fault shares the rest
        of its timeline, ``offsets`` aside, with every other)."""
        ahead = self._ahead
        if ahead:
            if index == self._ahead_from:
                self._ahead_from += 1
                return ahead.popleft(), self._ahead_offsets.popleft()
            if index > self._ahead_from:  # (not in accept order: what was planned is stale)
                ahead.clear()
                self._ahead_offsets.clear()
        return self._course(index)

    def _course(self, index: int) -> tuple[Timeline, Sequence[float]]:
        conditions = self._conditions
        fault = fault_of(conditions, self._seed, self._name, index)
        if conditions.slice_bytes is not None or fault == "corrupt":  # drawn per connection
            timeline = plan_course(self._chunks, conditions, fault=fault,
                                   streams=Streams(self._seed, self._name, index))
            return timeline, timeline.offsets
        if not conditions.jitter:
            shared = self._shared.get(fault)
            if shared is None:
                shared = self._shared[fault] = plan_timeline(self._chunks, conditions, fault=fault)
            return shared, shared.offsets
        pauses = pause_stream(self._seed, self._name, index)
        if fault is None and conditions.rate is None:
            return self._template, self._jittered(pauses)
        timeline = plan_timeline(self._chunks, conditions, fault=fault, pauses=pauses)
        return timeline, timeline.offsets

    def _jittered(self, pauses: Draws) -> array.array[float]:
        """plan_timeline's offsets for a jittered connection without rate or fault, at a
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
        offsets = [begins[number] for number in self._template.chunks]
        offsets.append(begins[-1] + conditions.close_delay)
        return array.array("d", offsets)  # exactly as long: appending would leave room to spare


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


__all__ = ["BLACKHOLE", "CONDITION_KEYS", "CUTTING_FAULTS", "LISTENER_FAULTS", "SLICE", "Conditions",
           "Corruption", "Draws", "Emission", "Planner", "Resume", "StreamSchedule", "Streams", "Timeline",
           "changes_of", "cut", "fault_of", "mean_pause", "pause_stream", "plan_course", "plan_timeline",
           "replan", "slice_sizes", "written_duration"]

