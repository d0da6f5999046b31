"""The streaming shaper: a proxy's bytes, on the deadlines of a StreamSchedule, as they come.

A poem server knows its bytes when it accepts a connection and plans them once
(``_poems.py``); a proxy learns its bytes only as its upstream (or its client) sends
them, so each direction of a proxied connection feeds them to a ``Shaper``, which
schedules each chunk as it arrives and writes it to the other side's transport on its
absolute deadline, run by the process's one ``TimerQueue``: a late wake-up never delays
the pieces after it, and every chunk's emission records how late it was.

A chunk is scheduled only when its turn is near (``READ_AHEAD``): what has arrived
beyond that waits unscheduled, so that a change of conditions (a rate, a delay, a fault)
reaches every byte not yet under way, as toxiproxy's toxics do, rather than only the
bytes that arrive after it. What a proxy reads ahead can be seconds of data at a low
rate.

Writes respect backpressure: a shaper hands the transport at most ``WRITE_PIECE`` at a
time and only while it is below its high-water mark, and a proxy stops reading from
one side while the other side's shaper holds more than ``READ_PAUSE``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from netsim.conditions import Corruption, Draws, Emission, StreamSchedule, cut, slice_sizes
from netsim.engine._timers import TimerQueue

ChunkSent = Callable[[Emission, float, bool], None]  # the emission, when it went, held?

# Largest piece handed to the transport at once, so buffering stays bounded whatever
# the chunk size, while keeping writes few for ordinary chunks.
WRITE_PIECE = 64 * 1024  # 64 KiB

# A proxy stops reading from one side while the other side's shaper holds more than
# this, and reads again once it is down to a quarter.
READ_PAUSE = 256 * 1024  # 256 KiB

# How far ahead of its turn a chunk is scheduled: a change of conditions reaches every
# chunk whose turn is further off than this.
READ_AHEAD = 0.05  # seconds


@dataclass(slots=True)
class _Unit:
    """Bytes that have arrived and wait to be scheduled: a chunk, one of its slices, or
    the rest of either, and what follows them: the chunk's pause, a slice's delay, or
    (``joined``) more of the same without a gap."""

    data: bytes
    arrival: float
    begins: bool = True  # it begins a chunk (logged as a chunk sent)
    then: Literal["chunk", "slice", "joined"] = "chunk"
    sliced: bool = False  # cut into its slices already


class Shaper:
    """Writes one direction's bytes to ``sink`` on the deadlines of a StreamSchedule."""

    def __init__(self, schedule: StreamSchedule, sink: asyncio.Transport, *, chunking: str | int,
                 timers: TimerQueue, on_chunk: ChunkSent | None, on_fault: Callable[[], None],
                 on_done: Callable[[], None], on_drain: Callable[[], None] | None = None,
                 conditioned: bool = True, slices: Draws | None = None,
                 corruption: tuple[Corruption, int] | None = None) -> None:
        self.schedule = schedule
        self.conditioned = conditioned  # under the server's conditions (else passed straight through)
        self._slices = slices  # the draws of slice sizes, when the conditions slice chunks
        self._corruption = corruption  # the mask, and the bytes that go before it applies
        self._fed = 0  # bytes taken so far: where the next one stands in the stream
        self._timers = timers
        self._sink = sink
        self._chunking = chunking
        self._on_chunk = on_chunk
        self._on_fault = on_fault
        self._on_done = on_done
        self._on_drain = on_drain
        self._loop = asyncio.get_running_loop()
        self._data: collections.deque[bytes | memoryview] = collections.deque()  # scheduled, to go
        self._queued = 0  # the bytes of _data
        # What has arrived and is not scheduled yet (READ_AHEAD), in the order it goes.
        self._pending: collections.deque[_Unit] = collections.deque()
        self._pending_bytes = 0
        self._partial: memoryview | None = None  # the rest of a piece the sink could not take yet
        self._waiting = False  # a step is queued on the timers
        self._wakes = 0  # counts the steps: a wake-up armed before the last is void
        self._paused = False
        self._held_since: float | None = None
        self._input_ended: float | None = None
        self.finished = False
        self.sent = 0  # bytes handed to the sink
        self.last_write = 0  # of those, the bytes of the last write (a reset answers it, if any)
        # Asked before each write, once set: has the reader gone? (Then nothing more goes.)
        self.reader_gone: Callable[[], bool] | None = None
        self._masked_from: int | None = None  # the first position a corruption mask changed
        self.first_write: float | None = None  # when the first of them was

    def __repr__(self) -> str:
        return (f"<Shaper buffered={self.buffered}B scheduled={len(self.schedule.emissions)} "
                f"unscheduled={len(self._pending)} paused={self._paused} finished={self.finished}>")

    @property
    def buffered(self) -> int:
        """Bytes waiting here, scheduled or not, not yet handed to the sink."""
        return self._queued + self._pending_bytes

    def feed(self, data: bytes | memoryview) -> None:
        """Bytes to send, available now, cut into chunks, each scheduled when its turn is near."""
        now = self._loop.time()
        for piece in cut(bytes(data), self._chunking):
            self._pending.append(_Unit(piece, now))
            self._pending_bytes += len(piece)
        self._schedule_ahead(now)
        self._arm()

    def _schedule_ahead(self, now: float) -> None:
        """Schedule what has arrived whose turn comes within READ_AHEAD: a chunk in the slices
        the conditions cut it into, if any, and at a rate no more than READ_AHEAD's worth of
        bytes at a time, so that a new rate reaches a large chunk under way."""
        schedule, pending = self.schedule, self._pending
        horizon = now + READ_AHEAD
        while pending and schedule.fault_at is None and schedule.begin_of(pending[0].arrival) <= horizon:
            unit = pending.popleft()
            if not unit.sliced and self._slices is not None:
                sizes = slice_sizes(len(unit.data), schedule.conditions, self._slices)
                slices, start = [], 0
                for number, size in enumerate(sizes):
                    slices.append(_Unit(unit.data[start:start + size], unit.arrival, begins=number == 0,
                                        then="chunk" if number == len(sizes) - 1 else "slice", sliced=True))
                    start += size
                pending.extendleft(reversed(slices))
                continue
            data, then = unit.data, unit.then
            rate = schedule.conditions.rate
            most = max(1, int(rate * READ_AHEAD)) if rate else 0
            if most and len(data) > most:  # the rest goes on from where this part ends
                pending.appendleft(_Unit(data[most:], unit.arrival, begins=False, then=then, sliced=True))
                data, then = data[:most], "joined"
            self._pending_bytes -= len(data)
            taken = schedule.add(len(data), unit.arrival, begins=unit.begins, ends=then == "chunk",
                                 joined=then == "joined")
            if taken:
                if taken < len(data):
                    data = data[:taken]
                if self._corruption is not None:
                    data = self._masked(data, self._fed)
                self._data.append(data)
                self._queued += taken
                self._fed += taken
        if schedule.fault_at is not None:  # the fault has cut the stream: the rest never goes
            pending.clear()
            self._pending_bytes = 0

    def _masked(self, data: bytes, position: int) -> bytes:
        """``data``, the stream's bytes from ``position`` on, with those past ``after`` corrupted."""
        assert self._corruption is not None
        mask, after = self._corruption
        if position + len(data) <= after:
            return data
        clean = max(0, after - position)
        if self._masked_from is None or position + clean < self._masked_from:
            self._masked_from = position + clean
        return data[:clean] + mask.apply(data[clean:], position + clean)

    @property
    def corrupted(self) -> bool:
        """Has the sink taken a byte that a corruption mask changed?"""
        return self._masked_from is not None and self.sent > self._masked_from

    def end_input(self) -> None:
        """No more bytes will come: close once everything is sent and the pauses are over."""
        if self._input_ended is None:
            self._input_ended = self._loop.time()
            self._arm()

    def pause(self) -> None:
        self._paused = True
        self._held_since = self._loop.time()

    def resume(self) -> None:
        self._paused = False
        self._step()

    def limit(self, fault_after: int | None) -> None:
        """Cut the stream after ``fault_after`` bytes from its start, those queued here
        included (None: no limit for what comes from now on); what the sink has taken
        stays sent. A cut within the queue strikes when the first byte it drops was due."""
        schedule = self.schedule
        schedule.limit(fault_after)
        if fault_after is None:
            return
        dropped = schedule.cut_queued(fault_after, sent=self._fed - self._queued)
        if not dropped:
            return  # the queue is within the limit: a chunk to come meets it (unscheduled ones too)
        self._pending.clear()  # past the cut
        self._pending_bytes = 0
        keep = self._queued - dropped
        data: collections.deque[bytes | memoryview] = collections.deque()
        left = keep
        for item in self._data:
            if not left:
                break
            data.append(item if len(item) <= left else memoryview(item)[:left])
            left -= len(data[-1])
        self._data, self._queued, self._fed = data, keep, self._fed - dropped
        self._arm()

    def corrupt(self, corruption: tuple[Corruption, int] | None) -> None:
        """Corrupt the stream's bytes past its ``after`` from now on, those queued here
        included (None: no longer, for the bytes fed from now on)."""
        corrupting = corruption is not None and self._corruption is None
        self._corruption = corruption  # (unscheduled chunks are masked as they are scheduled)
        if corrupting:
            position = self._fed - self._queued
            masked: collections.deque[bytes | memoryview] = collections.deque()
            for item in self._data:
                masked.append(self._masked(bytes(item), position))
                position += len(item)
            self._data = masked

    def cancel(self) -> None:
        self.finished = True  # a step still queued on the timers will find this and stop

    def _arm(self) -> None:
        if not self._waiting and not self.finished:
            self._step()

    def _later(self, when: float) -> None:
        self._waiting = True
        self._timers.call_at(when, functools.partial(self._wake, self._wakes))

    def _wake(self, wakes: int) -> None:
        if wakes == self._wakes:  # (else a replan has stepped since, and armed its own)
            self._step()

    def replan(self) -> None:
        """The conditions have changed: what is held and not yet scheduled goes by the new
        ones, at once if they make it due (a latency taken away releases what it held)."""
        if not self.finished:
            self._step()  # (which voids the wake-up armed under the old conditions)

    def _step(self) -> None:
        self._waiting = False
        self._wakes += 1
        if self.finished:
            return
        if self._sink.is_closing():  # the client went away: connection_lost follows
            self.finished = True
            return
        now = self._loop.time()
        self._schedule_ahead(now)
        emissions = self.schedule.emissions
        while not self._paused and self._partial is None and emissions and emissions[0].due <= now:
            if self.reader_gone is not None and self.reader_gone():
                self.finished = True
                return
            emission = emissions.popleft()
            # Held: it came due while a slow reader made the transport push back. Its
            # lateness is the reader's doing, not the server's, and is not counted as such.
            if emission.first and self._on_chunk is not None:
                held = self._held_since is not None and self._held_since <= emission.due
                self._on_chunk(emission, now, held)
            self._write(self._take(emission.size))
        if self._partial is not None and not self._paused:
            self._write(self._partial)
        if self._paused or self._partial is not None:
            return  # resume() steps again
        self._held_since = None
        # The next chunk not scheduled yet is, READ_AHEAD before its turn.
        ahead = self.schedule.begin_of(self._pending[0].arrival) - READ_AHEAD if self._pending else math.inf
        if emissions:
            self._later(min(emissions[0].due, ahead))
        elif self._pending:
            self._later(max(now, ahead))
        elif self.schedule.fault_at is not None:
            if now >= self.schedule.fault_at:
                self.finished = True
                self._on_fault()
            else:
                self._later(self.schedule.fault_at)
        elif self._input_ended is not None:
            closing = self.schedule.close_time(self._input_ended)
            if now >= closing:
                self.finished = True
                self._on_done()
            else:
                self._later(closing)

    def _take(self, size: int) -> bytes | memoryview:
        head = self._data[0]
        if len(head) <= size:  # the common case: one chunk, one write
            self._data.popleft()
            piece = head
        else:
            view = memoryview(head)
            piece, self._data[0] = view[:size], view[size:]
        self._queued -= len(piece)
        if self._on_drain is not None and self.buffered < READ_PAUSE // 4:
            self._on_drain()
        return piece

    def _write(self, data: bytes | memoryview) -> None:
        self._partial = None
        self.last_write = len(data)
        if self.first_write is None and data:
            self.first_write = self._loop.time()
        if len(data) <= WRITE_PIECE:  # the common case: a line, a small chunk
            self._sink.write(data)
            self.sent += len(data)
            return
        # A large piece goes in slices, and stops as soon as the transport pushes back.
        view = memoryview(data)
        for start in range(0, len(view), WRITE_PIECE):
            if self._paused:
                self._partial = view[start:]
                return
            piece = view[start:start + WRITE_PIECE]
            self._sink.write(piece)
            self.sent += len(piece)
