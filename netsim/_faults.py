"""The families of fault kinds, for the scenario's checks and the schedules alike.

Kept apart from both, so that the schedules (which a server process imports without
pydantic) and the scenario's models read one list.
"""

from __future__ import annotations

# Faults that strike at the listener, for every connection: the kernel refuses the
# connect (`refuse`: bound, not listening) or never answers its SYN (`syn_drop`).
LISTENER_FAULTS = frozenset({"refuse", "syn_drop"})
# Faults that end a connection early, when the first byte beyond `after` is due or `at`
# after its accept.
CUTTING_FAULTS = frozenset({"reset", "close", "stall"})

__all__ = ["CUTTING_FAULTS", "LISTENER_FAULTS"]
