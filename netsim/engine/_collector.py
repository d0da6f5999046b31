"""Python's cyclic garbage collector, kept out of a schedule's way.

The collector runs when enough objects have been allocated, wherever the program is. A
server accepting thousands of connections allocates their state at a steady clip, and
every tenth young collection also walks all that survived the ones before: at ten
thousand connections, a pause of 1-3 ms in which a hundred writes fall due and go late.
None of it is garbage: a connection's state is freed by reference counting when the
connection ends.

So a server process leaves the young generation's collections where they fall (a few
hundred objects each, tens of microseconds), and moves the older generations' into the
gaps of its schedule: its selector calls ``collect_in_gap(room)`` before each wait, with
how long it may wait, and a collection that is owed is made there when the gap is wide
enough. A schedule without a gap still gets its collections, only later: the thresholds
are raised, not removed, so memory stays bounded.
"""

from __future__ import annotations

import gc
import math

# An older generation is owed a collection after this many collections of the one below
# (Python's own default thresholds).
OWED = 10
# Without a gap, the middle generation is collected anyway after this many young
# collections (at Python's 700 allocations each: after 140,000 objects more than freed).
FALLBACK = 200
# The least wait that has room for a collection of the middle generation (everything
# allocated since the last: at most FALLBACK young collections' worth), and of all of it.
MIDDLE_GAP = 0.010  # seconds
FULL_GAP = 0.050  # seconds


def defer_old_generations() -> None:
    """Let the older generations be collected in the gaps (see ``collect_in_gap``)."""
    young, _, _ = gc.get_threshold()
    gc.set_threshold(young, FALLBACK, OWED)


def collect_in_gap(room: float | None) -> None:
    """Make the collection that is owed, if ``room`` (seconds free, None: no deadline) allows."""
    _, middle, old = gc.get_count()
    room = math.inf if room is None else room
    if old >= OWED and room >= FULL_GAP:
        gc.collect(2)
    elif middle >= OWED and room >= MIDDLE_GAP:
        gc.collect(1)
