"""Durations and sizes as people write them in scenarios, and back.

In code a duration is always ``float`` seconds and a size always ``int`` bytes; units
exist only at the edges (YAML, expectations, reports).
"""

from __future__ import annotations

import datetime
import math
import re
from decimal import Context, Decimal, localcontext

Seconds = float
Bytes = int

# The largest values a scenario may give. No scenario needs more, and past them the
# engine would fail mid-run rather than at load: timers, socket timeouts and thread
# waits overflow near 2**63 ns (292 years), and a pause of 1e308 s already overflows
# the arithmetic of a schedule. A week leaves room for sums over long poems.
MAX_DURATION: Seconds = 7 * 24 * 3600.0  # 168h
MAX_DURATION_TEXT = "168h (a week)"
MAX_SIZE: Bytes = 1000**4  # 1000GB, beyond any poem, chunk or loopback rate
MAX_SIZE_TEXT = "1000GB"

# A sign is accepted here only so that "-1s" is refused for being negative, which is
# the real problem, rather than for not looking like a duration.
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-zµ]*)\s*$")

DURATION_UNITS: dict[str, Seconds] = {
    "": 1.0,  # a bare number is seconds
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}

SIZE_UNITS: dict[str, Bytes] = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_duration(value: object) -> Seconds:
    """Return seconds for ``250ms``, ``1.5s``, ``2`` (seconds), a ``timedelta`` and the like.

    Raises ValueError with a message fit for users when the text is not a duration,
    is negative or is longer than ``MAX_DURATION``.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 250ms or 1s, got {value!r}")
    if isinstance(value, int):
        # Compared as an int: float() of a 400-digit number raises OverflowError.
        seconds = float(min(max(value, -1), math.ceil(MAX_DURATION) + 1))
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, datetime.timedelta):  # from Python: serving().set(delay=timedelta(...))
        seconds = value.total_seconds()
    elif isinstance(value, str):
        match = _QUANTITY.match(value)
        if match is None or match.group(2) not in DURATION_UNITS:
            raise ValueError(
                f"{value!r} is not a duration: write a number with a unit "
                f"(us, ms, s, m, h), like 250ms or 1.5s"
            )
        # float() of a numeral too large for a float is inf, never an error.
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 250ms or 1s, got {value!r}")
    if math.isnan(seconds):
        raise ValueError(f"{value!r} is not a duration: write a number with a unit, like 250ms")
    if seconds < 0:
        raise ValueError(f"a duration must be zero or more, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"{_shown(value)} is longer than netsim takes: a duration is at most "
                         f"{MAX_DURATION_TEXT}")
    return seconds


def parse_size(value: object) -> Bytes:
    """Return bytes for ``512``, ``4KB`` (4000), ``4KiB`` (4096) and the like.

    Raises ValueError when the text is not a size, is negative, is not a whole
    number of bytes or is larger than ``MAX_SIZE``.
    """
    amount = _size(value)
    if amount < 0 or amount != amount.to_integral_value():
        raise ValueError(f"a size must be a whole number of bytes, got {_shown(value)}")
    if amount > MAX_SIZE:
        raise ValueError(f"{_shown(value)} is larger than netsim takes: a size is at most {MAX_SIZE_TEXT}")
    return int(amount)


def _size(value: object) -> Decimal:
    """The exact amount of bytes of a size, unchecked; raises ValueError for what is no size."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512B or 4KiB, got {value!r}")
    if isinstance(value, int):
        # Clamped first: Decimal takes any int, but a 400-digit one is of no use beyond here.
        return Decimal(min(max(value, -1), MAX_SIZE + 1))
    if not isinstance(value, str):
        raise ValueError(f"expected a size like 512B or 4KiB, got {value!r}")
    match = _QUANTITY.match(value)
    if match is None or match.group(2) not in SIZE_UNITS:
        raise ValueError(
            f"{value!r} is not a size: write a number with a unit "
            f"(B, KB, MB, GB, KiB, MiB, GiB), like 512B or 4KiB"
        )
    # Decimal, exactly: a float would call 1.0000000000000001KB a whole 1000 bytes, and
    # turn a 400-digit number into an infinity that int() refuses.
    number = match.group(1)
    with localcontext(Context(prec=len(number) + 20)):  # digits enough for an exact product
        return Decimal(number) * SIZE_UNITS[match.group(2)]


def format_duration(seconds: Seconds) -> str:
    """Render seconds with a unit a reader takes in at a glance: 12.004s, 250ms, 80µs."""
    if math.isnan(seconds):
        return "n/a"
    magnitude = abs(seconds)
    if magnitude >= 1.0 or magnitude == 0.0:
        return f"{seconds:.3f}s"
    if magnitude >= 1e-3:
        if magnitude < 0.01:
            return f"{seconds * 1e3:.3g}ms"
        return f"{seconds * 1e3:.1f}".removesuffix(".0") + "ms"
    return f"{seconds * 1e6:.0f}µs"


def format_address(host: str, port: int) -> str:
    """``HOST:PORT``, an IPv6 host in brackets (``[::1]:8080``) so that its port stands apart."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_share(fraction: float) -> str:
    """A share as a percentage of three figures (one of three: 33.3%), more where three
    would round a share short of the whole up to it (99.99%); ``n/a`` for NaN."""
    if math.isnan(fraction):
        return "n/a"
    shown = f"{fraction * 100:.3g}"
    if float(shown) == 100 and fraction < 1:
        shown = f"{fraction * 100:.6g}"
    return f"{shown}%"


def format_size(count: float) -> str:
    """Render a byte count: 16B, 4.1KB, 2.0MB (1000-based, as the scenario writes them)."""
    if count < 1000:
        return f"{count:g}B"
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if count >= factor:
            return f"{count / factor:.1f}{unit}"
    raise AssertionError("unreachable")


def parse_rate(value: object) -> float:
    """Return bytes per second for ``10KB/s``, ``1MiB``, ``2000`` and the like.

    Raises ValueError when the text is not a rate, is not above zero or is more than
    ``MAX_SIZE`` per second.
    """
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.endswith("/s"):
        text = text[:-2]
    try:
        amount = text if isinstance(text, float) else float(_size(text))
    except ValueError:
        raise ValueError(f"{value!r} is not a rate: write bytes per second like 10KB/s "
                         f"or 1MiB/s") from None
    if not amount > 0:  # NaN included
        raise ValueError(f"a rate must be above zero, got {value!r}")
    if amount > MAX_SIZE:
        raise ValueError(f"{_shown(value)} is more than netsim takes: a rate is at most {MAX_SIZE_TEXT}/s")
    return amount


def _shown(value: object) -> str:
    """``value`` for a message, cut short: a 5,000-digit number would fill the terminal."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} characters)"


def printable(text: str) -> str:
    """``text`` safe for a terminal: what a program wrote that is not printable (an escape
    sequence that could retitle the window or recolour the rest, a bell) shown as its
    escape (``\\x1b``), tabs kept."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == "\t"
                   else char.encode("unicode_escape").decode("ascii") for char in text)
