"""The streaming shaper: a proxy's bytes, on the deadlines of a StreamSchedule, as they come.

A poem server knows its bytes when it accepts a connection and plans them once
(``_poems.py``); a proxy learns its bytes only as its upstream (or its client) sends
them, so each direction of a proxied connection feeds them to a ``Shaper``, which
schedules each chunk as it arrives and writes it to the other side's transport on its
absolute deadline, run by the process's one ``TimerQueue``: a late wake-up never delays
the pieces after it, and every chunk's emission records how late it was.

Writes respect backpressure: a shaper hands the transport at most ``WRITE_PIECE`` at a
time and only while it is below its high-water mark, and a proxy stops reading from
one side while the other side's shaper holds more than ``READ_PAUSE``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from netsim.conditions import Corruption, Draws, Emission, StreamSchedule, cut, slice_sizes
from netsim.engine._timers import TimerQueue

ChunkSent = Callable[[Emission, float, bool], None]  # the emission, when it went, held?

# Largest piece handed to the transport at once, so buffering stays bounded whatever
# the chunk size, while keeping writes few for ordinary chunks.
WRITE_PIECE = 64 * 1024  # 64 KiB

# A proxy stops reading from one side while the other side's shaper holds more than
# this, and reads again once it is down to a quarter.
READ_PAUSE = 256 * 1024  # 256 KiB


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
        self._data: collections.deque[bytes | memoryview] = collections.deque()  # what waits to go
        self._partial: memoryview | None = None  # the rest of a piece the sink could not take yet
        self.buffered = 0  # bytes waiting here, not yet handed to the sink
        self._waiting = False  # a step is queued on the timers
        self._paused = False
        self._held_since: float | None = None
        self._input_ended: float | None = None
        self.finished = False
        self.sent = 0  # bytes handed to the sink
        self.first_write: float | None = None  # when the first of them was

    def __repr__(self) -> str:
        return (f"<Shaper buffered={self.buffered}B pending={len(self.schedule.emissions)} "
                f"paused={self._paused} finished={self.finished}>")

    def feed(self, data: bytes | memoryview) -> None:
        """Bytes to send, available now, cut into chunks."""
        now = self._loop.time()
        for piece in cut(bytes(data), self._chunking):
            self.feed_chunk(piece, arrival=now)

    def feed_chunk(self, chunk: bytes, *, arrival: float) -> None:
        """One chunk: in the slices the conditions cut it into, if any; a pause follows it."""
        schedule = self.schedule
        sizes = [len(chunk)] if self._slices is None else slice_sizes(len(chunk), schedule.conditions,
                                                                       self._slices)
        position = 0
        for number, size in enumerate(sizes):
            taken = schedule.add(size, arrival, begins=number == 0, ends=number == len(sizes) - 1)
            if taken:
                data = chunk[position:position + taken] if len(sizes) > 1 or taken < size else chunk
                if self._corruption is not None:
                    data = self._masked(data, self._fed)
                self._data.append(data)
                self.buffered += taken
                self._fed += taken
            if taken < size:
                break
            position += size
        self._arm()

    def _masked(self, data: bytes, position: int) -> bytes:
        """``data``, the stream's bytes from ``position`` on, with those past ``after`` corrupted."""
        assert self._corruption is not None
        mask, after = self._corruption
        if position + len(data) <= after:
            return data
        clean = max(0, after - position)
        return data[:clean] + mask.apply(data[clean:], position + clean)

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
        dropped = schedule.cut_queued(fault_after, sent=self._fed - self.buffered)
        if not dropped:
            return  # the queue is within the limit: a chunk to come meets it
        keep = self.buffered - dropped
        data: collections.deque[bytes | memoryview] = collections.deque()
        left = keep
        for item in self._data:
            if not left:
                break
            data.append(item if len(item) <= left else memoryview(item)[:left])
            left -= len(data[-1])
        self._data, self.buffered, self._fed = data, keep, self._fed - dropped
        self._arm()

    def corrupt(self, corruption: tuple[Corruption, int] | None) -> None:
        """Corrupt the stream's bytes past its ``after`` from now on, those queued here
        included (None: no longer, for the bytes fed from now on)."""
        corrupting = corruption is not None and self._corruption is None
        self._corruption = corruption
        if corrupting:
            position = self._fed - self.buffered
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
        self._timers.call_at(when, self._step)

    def _step(self) -> None:
        self._waiting = False
        if self.finished:
            return
        if self._sink.is_closing():  # the client went away: connection_lost follows
            self.finished = True
            return
        now = self._loop.time()
        emissions = self.schedule.emissions
        while not self._paused and self._partial is None and emissions and emissions[0].due <= now:
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
        if emissions:
            self._later(emissions[0].due)
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
        self.buffered -= len(piece)
        if self._on_drain is not None and self.buffered < READ_PAUSE // 4:
            self._on_drain()
        return piece

    def _write(self, data: bytes | memoryview) -> None:
        self._partial = None
        if self.first_write is None and data:
            self.first_write = self._loop.time()
        if len(data) <= WRITE_PIECE:  # the common case: a line, a small chunk
            self.sent += len(data)
            self._sink.write(data)
            return
        # A large piece goes in slices, and stops as soon as the transport pushes back.
        view = memoryview(data)
        for start in range(0, len(view), WRITE_PIECE):
            if self._paused:
                self._partial = view[start:]
                return
            piece = view[start:start + WRITE_PIECE]
            self.sent += len(piece)
            self._sink.write(piece)
