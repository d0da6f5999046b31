"""The scenario format, version 1, as frozen pydantic models.

A scenario is what a user wrote in YAML, checked and with units resolved: every
duration is float seconds and every size int bytes. Each key carries its description
and an example beside its field; ``_schema.py`` makes the JSON Schema, the reference of
docs/scenarios.md and the hints of the loader from them, so a new key is one edit here
and a regenerate. Loading from a file, with line numbers in errors and the reading of
``poem_file``, lives in ``_loader.py``; the rules that span several parts of a document
(unique names, known targets) close this module, one small function each.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from netsim import _placeholders, _plugins
from netsim._faults import CUTTING_FAULTS, LISTENER_FAULTS
from netsim._names import NAME_MAX, NAME_PATTERN
from netsim._poem_files import DEFAULT_MAX_POEM_TEXT
from netsim._units import parse_duration, parse_rate, parse_size
from netsim.expectations import METRICS, OPERATORS, Expectation, parse_expectation

FORMAT_VERSION = 1
ALL = "all"  # the `expect` key that applies to every client

# The key of ``json_schema_extra`` that says how a default reads in the reference, where
# the model's own value says little (`seed: null` means "other choices in every run").
# _schema.py moves it from the JSON Schema into the reference tables.
DEFAULT_TEXT = "x-default-text"


def default_reads(text: str) -> JsonDict:
    """``json_schema_extra`` for a key whose default is best said in words."""
    return {DEFAULT_TEXT: text}


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^\s*[0-9.]+\s*(us|µs|ms|s|m|min|h)?\s*$"},
                   {"type": "number", "minimum": 0}],
         "description": "a duration: a number with a unit (250ms, 1.5s); a bare number is seconds"}
    ),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^\s*[0-9.]+\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$"},
                   {"type": "integer", "minimum": 0}],
         "description": "a size: bytes, or a number with a unit (4KB = 4000, 4KiB = 4096)"}
    ),
]
Rate = Annotated[
    float,
    BeforeValidator(lambda value: parse_rate(value)),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^\s*[0-9.]+\s*(B|KB|MB|GB|KiB|MiB|GiB)?(/s)?\s*$"},
                   {"type": "number", "exclusiveMinimum": 0}],
         "description": "bytes per second: a size, optionally with /s (10KB/s, 1MiB)"}
    ),
]


def _share_from_percent(value: object) -> object:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a share: write 0.25 or 25%") from None
    return value


Share = Annotated[
    float,
    Field(ge=0.0, le=1.0),
    BeforeValidator(_share_from_percent),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0.0, "maximum": 1.0},
                              {"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"}]}),
]


def _expectation_pattern() -> str:
    """A loose check that an expectation starts with a metric and an operator.

    The loader checks the rest; an editor underlines a misspelt metric at once.
    """
    names = sorted((re.escape(name) for name in METRICS if name != "speedup"), key=len, reverse=True)
    ops = "|".join(re.escape(op) for op in sorted(OPERATORS, key=len, reverse=True))
    return rf"^\s*(speedup\s*\([^()]*\)|(?:{'|'.join(names)}))\s*({ops})"


EXPECTATION_PATTERN = _expectation_pattern()
ExpectationText = Annotated[
    Expectation,
    BeforeValidator(lambda value: _parse_expectation_field(value)),
    PlainSerializer(lambda expectation: expectation.text, return_type=str),
    WithJsonSchema({
        "type": "string",
        "pattern": EXPECTATION_PATTERN,
        "description": "METRIC OP VALUE [± TOLERANCE] [in N% of runs], like "
                       "`elapsed <= ideal + 250ms` or `speedup(blocking) >= 2.5`.",
        "examples": ["elapsed == 12s ± 5%", "elapsed <= ideal + 250ms", "speedup(blocking) >= 2.5",
                     "intact == 100%", "elapsed <= 4.2s in 90% of runs"],
    }),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX)]


def _model_name_schema() -> JsonSchemaValue:
    # The installed models are suggestions that editors complete, not the only names the
    # schema takes: a model installed after the schema was written must not be underlined.
    return {"anyOf": [{"type": "string", "enum": list(_plugins.client_model_names())},
                      {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX}],
            "description": "A client model's name: `netsim clients` lists them."}


class _ModelNameSchema:
    """In the JSON Schema, a client model's name: the installed ones offered, any name taken."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return _model_name_schema()


class _ShorthandSchema:
    """In the JSON Schema, a client's entry: a model's name alone, or the mapping."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"anyOf": [_model_name_schema(), handler(core_schema)]}


# A client's label defaults to its model's name, so a model's name is a name too.
ModelName = Annotated[Name, _ModelNameSchema()]


def _parse_expectation_field(value: object) -> Expectation:
    if isinstance(value, Expectation):
        return value
    if not isinstance(value, str):
        raise ValueError(f"an expectation is a string like 'elapsed <= 4s', got {value!r}")
    return parse_expectation(value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ByteChunks(_Model):
    """Cut the poem into pieces of ``bytes`` bytes (the last may be shorter)."""

    bytes: Annotated[Size, Field(gt=0)] = Field(
        description="The size of each piece (the last may be shorter): a number of bytes, or a "
                    "number with a unit (4KB = 4000, 4KiB = 4096).",
        examples=[64])



class Fault(_Model):
    """What goes wrong on a share of a server's connections."""

    kind: Literal["refuse", "reset", "close", "stall", "blackhole", "syn_drop", "corrupt"] = Field(
        description="`refuse`: no connection is accepted; `reset`: the connection is reset; "
                    "`close`: it is closed cleanly, cut short; `stall`: it stays open and sends "
                    "nothing more; `blackhole`: it is accepted, then nothing is ever read, sent "
                    "or closed; `syn_drop`: the handshake is never answered, so a connect waits "
                    "for its own timeout; `corrupt`: every byte from `after` on arrives with "
                    "bits flipped (seeded), and the connection ends as usual.",
        examples=["reset"])
    after: Size = Field(
        default=0,
        description="The bytes sent before the fault strikes, or, for `corrupt`, before the "
                    "first corrupted byte (not for `refuse`, `syn_drop` or `blackhole`).",
        examples=["10B"])
    at: Duration | None = Field(
        default=None,
        description="For `reset`, `close` and `stall`: strike this long after the connection "
                    "was accepted, whatever has been sent, instead of after a number of bytes. "
                    "A connection that has ended by then is not struck.",
        examples=["2s"], json_schema_extra=default_reads("none: strike after `after` bytes"))
    probability: Share = Field(
        default=1.0,
        description="The share of connections the fault strikes, chosen by the scenario's "
                    "`seed`: a fraction, or a percentage (`refuse` and `syn_drop` take only 1).",
        examples=["33%"])

    @model_validator(mode="after")
    def _makes_sense(self) -> Fault:
        if self.kind in LISTENER_FAULTS and self.probability < 1:
            raise ValueError(
                f"{self.kind} applies to every connection: the kernel answers every connect to a "
                f"listening socket alike, so it cannot {self.kind} only some of them; for a share "
                f"of failing connections use kind: reset with after: 0")
        if self.kind in ("refuse", "blackhole", "syn_drop") and self.after:
            raise ValueError(f"`after` does not apply to {self.kind}: it never sends a byte")
        if self.at is not None:
            if self.kind not in CUTTING_FAULTS:
                raise ValueError(f"`at` applies to reset, close and stall, not to {self.kind}")
            if self.after:
                raise ValueError("give `after` (bytes) or `at` (a time limit), not both")
        return self


def _span(value: object) -> object:
    """`10..100`, or one size (`64`) for pieces all of one size."""
    if isinstance(value, Span):
        return value
    if isinstance(value, str) and ".." in value:
        low_text, _, high_text = value.partition("..")
        low, high = parse_size(low_text), parse_size(high_text)
    else:
        low = high = parse_size(value)
    if not 0 < low <= high:
        raise ValueError(f"{value!r}: give sizes from 1 up, the smaller first, like 10..100")
    return Span(low, high)


@dataclass(frozen=True)
class Span:
    """A range of sizes in bytes, both ends included."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"{self.low}..{self.high}"


_SIZE_PATTERN = r"[0-9.]+\s*(B|KB|MB|KiB|MiB)?"
SizeSpan = Annotated[
    Span,
    BeforeValidator(_span),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"anyOf": [{"type": "string",
                    "pattern": rf"^\s*{_SIZE_PATTERN}\s*(\.\.\s*{_SIZE_PATTERN}\s*)?$"},
                   {"type": "integer", "minimum": 1}],
         "description": "sizes from A to B bytes, written A..B (10..100), or one size"}
    ),
]


class Slice(_Model):
    """Cut every chunk into pieces of seeded random sizes, as toxiproxy's slicer does."""

    bytes: SizeSpan = Field(
        description="The size of each piece, drawn uniformly from A to B bytes (`A..B`) with "
                    "the scenario's `seed`; a chunk's last piece is what remains of it.",
        examples=["10..100"])
    delay: Duration = Field(
        default=0.0,
        description="The pause between the pieces of one chunk (the server's `delay` still "
                    "follows the whole chunk); with 0 they go back to back, each its own write.",
        examples=["5ms"])


class Down(_Model):
    """How a server goes down in a phase."""

    reset: bool = Field(
        default=False,
        description="Also reset every connection still open, rather than let them finish.",
        examples=[True])


class _BooleanOrMappingSchema:
    """In the JSON Schema, `down`: true or false, or the mapping."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"anyOf": [{"type": "boolean"}, handler(core_schema)]}


def _down_from_boolean(value: object) -> object:
    # `down: true` is a Down with its defaults, `down: false` none; a union of bool and Down
    # would report a mistake in the mapping twice, once as "not a boolean".
    if isinstance(value, bool):
        return {} if value else None
    return value


DownOrNot = Annotated[Annotated[Down, _BooleanOrMappingSchema()] | None, BeforeValidator(_down_from_boolean)]


def _no_null(value: object, info: ValidationInfo) -> object:
    if value is None:
        raise ValueError(f"`{info.field_name}` takes a value here; to go back to the server's "
                         f"own, give that value")
    return value


# Only `rate`, `fault` and `slice` can be set to null (none) in a change.
_Changed = Annotated[Duration | None, BeforeValidator(_no_null)]


def _unchanged(meaning: str) -> JsonDict:
    return default_reads(f"unchanged: {meaning}")


class ConditionChanges(_Model):
    """Condition keys that change a server's conditions from a moment on: a phase's, or a
    live change's (``PATCH /servers/NAME``, ``net.set()``). A key left out stays as it was."""

    delay: _Changed = Field(
        default=None, description="As `servers[].delay`, from then on.", examples=["500ms"],
        json_schema_extra=_unchanged("as before"))
    jitter: _Changed = Field(
        default=None, description="As `servers[].jitter`, from then on.", examples=["50ms"],
        json_schema_extra=_unchanged("as before"))
    rate: Rate | None = Field(
        default=None, description="As `servers[].rate`, from then on; null lifts the cap.",
        examples=["1KB/s"], json_schema_extra=_unchanged("as before"))
    initial_delay: _Changed = Field(
        default=None, description="As `servers[].initial_delay`, for connections not yet begun.",
        examples=["1s"], json_schema_extra=_unchanged("as before"))
    accept_delay: _Changed = Field(
        default=None, description="As `servers[].accept_delay`, for connections not yet begun.",
        examples=["250ms"], json_schema_extra=_unchanged("as before"))
    close_delay: _Changed = Field(
        default=None, description="As `servers[].close_delay`, from then on.", examples=["3s"],
        json_schema_extra=_unchanged("as before"))
    latency: _Changed = Field(
        default=None, description="As `servers[].latency` (a proxy's), for the bytes not yet under way.",
        examples=["250ms"], json_schema_extra=_unchanged("as before"))
    handshake_delay: _Changed = Field(
        default=None,
        description="As `servers[].handshake_delay`: handshakes go unanswered for this long "
                    "from then on.",
        examples=["3s"], json_schema_extra=_unchanged("as before"))
    slice: Slice | None = Field(
        default=None, description="As `servers[].slice`, from then on; null stops slicing.",
        examples=[{"bytes": "1..8"}], json_schema_extra=_unchanged("as before"))
    fault: Fault | None = Field(
        default=None,
        description="As `servers[].fault`, from then on, open connections included (the "
                    "bytes they have been sent count toward `after`); null: no fault.",
        examples=[{"kind": "stall", "after": 5}], json_schema_extra=_unchanged("as before"))


class _Begins(_Model):
    at: Duration = Field(
        description="When the phase begins: this long after the servers are ready (the `ready` "
                    "line of `netsim serve`; the start of a `netsim run` client's servers).",
        examples=["4s"])


class Phase(ConditionChanges, _Begins):
    """From ``at`` on, a server's conditions change, or it goes down or comes back."""

    down: DownOrNot = Field(
        default=None,
        description="Take the server down: new connections are refused (its socket stops "
                    "listening), until a later phase without `down` brings it back on the same "
                    "port. `{reset: true}` also resets the connections still open.",
        examples=[True, {"reset": True}],
        json_schema_extra=default_reads("false: a phase without `down` brings the server back up"))

    @property
    def resets(self) -> bool:
        return self.down is not None and self.down.reset

    @property
    def is_down(self) -> bool:
        return self.down is not None


class Server(_Model):
    """A slow TCP server that sends a poem chunk by chunk, then closes; or, with
    ``upstream``, a proxy that forwards a real service's bytes under the same conditions."""

    name: Name = Field(
        description="The server's name, unique among the servers; `targets`, logs, reports and "
                    "results use it.",
        examples=["a"])
    host: str = Field(
        default="127.0.0.1",
        description="The address to listen on. An address outside loopback needs "
                    "`--allow-external`.",
        examples=["127.0.0.1"])
    # strict: YAML reads `yes` as true, and pydantic would take that as port 1
    port: int = Field(
        default=0, ge=0, le=65535, strict=True,
        description="The TCP port; 0 takes any free one. `--free-ports` and the pytest plugin "
                    "replace fixed ports with free ones.",
        examples=[10000], json_schema_extra=default_reads("0: any free port"))
    poem: str | None = Field(
        default=None,
        description="The text to serve. Give either `poem` or `poem_file`.",
        examples=["1111\n2222\n3333\n"],
        json_schema_extra=default_reads("none: give `poem` or `poem_file`"))
    poem_file: Path | None = Field(
        default=None,
        description=f"A file of UTF-8 text to serve, relative to the scenario file's folder; "
                    f"its bytes are sent as they are, line endings included. It must be a "
                    f"regular file of at most "
                    f"{DEFAULT_MAX_POEM_TEXT} (more with `--max-poem-size`), in the scenario's "
                    f"folder or below it (anywhere with `--allow-paths`).",
        examples=["poems/harbour.txt"],
        json_schema_extra=default_reads("none: give `poem` or `poem_file`"))
    chunk: Literal["line", "all"] | ByteChunks = Field(
        default="line",
        description="How the text is cut into the pieces that are sent one at a time: `line` (a "
                    "line each), `all` (the whole text at once) or `{bytes: N}` (N bytes each).",
        examples=[{"bytes": 64}])
    newline: Literal["keep", "strip"] = Field(
        default="keep",
        description="`keep` sends every line with its newline; `strip` sends the lines without it.",
        examples=["strip"])
    delay: Duration = Field(
        default=0.0,
        description="The pause after every chunk, the last one included: chunk i of a connection "
                    "is due i × delay after it was accepted.",
        examples=["1s"])
    mode: Literal["concurrent", "serial"] = Field(
        default="concurrent",
        description="`concurrent` serves every connection at once; `serial` serves one at a time "
                    "while the others wait in the listen backlog, like a single-threaded accept "
                    "loop.",
        examples=["serial"])
    jitter: Duration = Field(
        default=0.0,
        description="Makes each pause vary: it is drawn uniformly from delay ± jitter (never below "
                    "zero); `seed` makes the draws repeatable.",
        examples=["100ms"])
    initial_delay: Duration = Field(
        default=0.0,
        description="A wait before the first chunk of every connection, as on a link with a long "
                    "round trip.",
        examples=["2s"])
    rate: Rate | None = Field(
        default=None,
        description="A bandwidth cap in bytes per second, within chunks and across them: a size, "
                    "optionally with /s.",
        examples=["28B/s"], json_schema_extra=default_reads("none: no cap"))
    accept_delay: Duration = Field(
        default=0.0,
        description="How long a new connection waits before it is served, as behind a slow "
                    "accept loop.",
        examples=["500ms"])
    close_delay: Duration = Field(
        default=0.0,
        description="How long the server keeps a connection open after the pause that follows "
                    "its last chunk, before it closes it.",
        examples=["1s"])
    latency: Duration = Field(
        default=0.0,
        description="For a proxy: every byte goes no sooner than this after it came, as on a "
                    "long link (toxiproxy's latency); bytes that come one after another stay "
                    "that close, where `delay` is a pause after each chunk. The close follows "
                    "its upstream's as late.",
        examples=["100ms"])
    fault: Fault | None = Field(
        default=None,
        description="What goes wrong on this server's connections: a mapping with the keys of "
                    "`servers[].fault` below.",
        examples=[{"kind": "reset", "after": 10}],
        json_schema_extra=default_reads("none: every connection is served whole"))
    upstream: str | None = Field(
        default=None,
        description="Makes the server a proxy: it forwards what a real service sends (HOST:PORT, "
                    "or the name of another server of the scenario, a proxy too if need be) under "
                    "its own conditions, instead of serving a poem. A HOST outside loopback needs "
                    "`--allow-external`.",
        examples=["127.0.0.1:8080"], json_schema_extra=default_reads("none: serve the poem"))
    handshake_delay: Duration = Field(
        default=0.0,
        description="Handshakes go unanswered for this long once the server is ready (or once "
                    "a phase sets it), so connects made meanwhile hang; each completes at the "
                    "client's first SYN retransmission after it (1 s, 3 s, 7 s... after its "
                    "connect, on Linux, whatever the time scale).",
        examples=["2s"])
    slice: Slice | None = Field(
        default=None,
        description="Cuts every chunk into pieces of seeded random sizes, each its own write: "
                    "a mapping with the keys of `servers[].slice` below.",
        examples=[{"bytes": "10..100"}], json_schema_extra=default_reads("none: a chunk is one write"))
    phases: list[Phase] = Field(
        default_factory=list,
        description="Changes over time, in order: each sets condition keys from its `at` on, "
                    "or takes the server down (`down: true`) until the next phase.",
        examples=[[{"at": "2s", "down": True}, {"at": "4s"}]],
        json_schema_extra=default_reads("none: the conditions hold throughout"))
    direction: Literal["downstream", "upstream", "both"] | None = Field(
        default=None,
        description="For a proxy: which way its conditions apply: `downstream` (the service's "
                    "bytes to the client), `upstream` (the client's bytes to the service) or "
                    "`both`.",
        examples=["both"], json_schema_extra=default_reads("`downstream` (proxies only)"))

    @field_validator("upstream")
    @classmethod
    def _upstream_is_an_address_or_a_name(cls, upstream: str) -> str:
        if ":" not in upstream:
            if not re.fullmatch(NAME_PATTERN, upstream):
                raise ValueError(f"{upstream!r} is neither HOST:PORT nor a server's name")
            return upstream
        host, _, port = upstream.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{upstream!r}: the port must be a number from 1 to 65535")
        if host != "localhost":
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{upstream!r}: the host must be an IP address or localhost") from None
        return upstream

    @field_validator("host")
    @classmethod
    def _host_is_an_address(cls, host: str) -> str:
        if host == "localhost":
            return host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{host!r} is not an IP address: write one like 127.0.0.1 or ::1, or localhost"
            ) from None
        return host

    @model_validator(mode="after")
    def _has_one_poem(self) -> Server:
        if self.upstream is not None:
            if self.poem is not None or self.poem_file is not None:
                raise ValueError("a proxy (`upstream:`) forwards what its upstream sends: "
                                 "give no `poem:` or `poem_file:`")
            if self.newline == "strip":
                raise ValueError("a proxy forwards bytes exactly: `newline: strip` does not apply")
            return self
        if self.direction is not None:
            raise ValueError("`direction:` applies to proxies only: add `upstream: HOST:PORT`")
        if self.latency or any(phase.latency for phase in self.phases):
            raise ValueError("`latency:` applies to proxies only: a poem server knows its bytes from "
                             "the start; `initial_delay:` delays them all")
        if self.poem is not None and self.poem_file is not None:
            raise ValueError("give either `poem:` or `poem_file:`, not both")
        if self.poem is None and self.poem_file is None:
            raise ValueError("give the text to serve as `poem:` or `poem_file:`")
        if self.poem == "":
            raise ValueError("the poem is empty: give it at least one line")
        return self

    @field_validator("phases")
    @classmethod
    def _phases_in_order(cls, phases: list[Phase]) -> list[Phase]:
        for number in range(1, len(phases)):
            if phases[number].at <= phases[number - 1].at:
                # `within`: the loader points at that phase's `at`, not at the list
                raise PydanticCustomError(
                    "out_of_order", "phases[{number}] begins at {at}, not after phases[{previous}] "
                    "({previous_at}): list the phases in the order of their `at`",
                    {"number": number, "at": f"{phases[number].at:g}s", "previous": number - 1,
                     "previous_at": f"{phases[number - 1].at:g}s", "within": (number, "at")})
        return phases

    @property
    def text(self) -> str:
        """The poem; for a ``poem_file`` the loader has read it into ``poem``."""
        if self.poem is None:
            raise ValueError(f"server {self.name!r}: poem_file {self.poem_file} was not read; "
                             f"load scenarios with netsim.load_scenario")
        return self.poem

    def chunks(self) -> list[bytes]:
        """The pieces the server sends, in order; a pause of ``delay`` follows each."""
        # Lines end at "\n" only: str.splitlines() would also cut at \r, \f, \x1c, \u2028
        # and others, which are text in a poem, and `strip` would then leave them in.
        pieces = self.text.split("\n")
        lines = [piece + "\n" for piece in pieces[:-1]]
        if pieces[-1]:
            lines.append(pieces[-1])
        if self.newline == "strip":
            lines = [line.rstrip("\r\n") for line in lines]
        if self.chunk == "line":
            return [line.encode() for line in lines]
        payload = "".join(lines).encode()
        if self.chunk == "all":
            return [payload]
        size = self.chunk.bytes
        return [payload[start : start + size] for start in range(0, len(payload), size)] or [b""]

    @property
    def is_proxy(self) -> bool:
        return self.upstream is not None

    @property
    def draws(self) -> bool:
        """Does the seed decide anything of its course: jitter, a fault's share, slices or
        corrupted bits, its own or a phase's?"""
        def drawing(jitter: float | None, fault: Fault | None, sliced: Slice | None) -> bool:
            return bool(jitter) or sliced is not None or (
                fault is not None and (fault.probability < 1 or fault.kind == "corrupt"))

        return drawing(self.jitter, self.fault, self.slice) or any(
            drawing(phase.jitter, phase.fault, phase.slice) for phase in self.phases)

    def payload(self) -> bytes:
        """Every byte a connection to this server receives, in order."""
        return b"".join(self.chunks())

    def change_problem(self, changes: ConditionChanges) -> str | None:
        """Why this server cannot take a live change, if it cannot (the rules its own keys
        and its phases are held to when the scenario loads)."""
        if changes.latency and self.upstream is None:
            return f"`latency:` applies to proxies only, and {self.name!r} is a poem server"
        fault = changes.fault
        if (fault is not None and fault.kind in (*CUTTING_FAULTS, "corrupt") and fault.at is None
                and self.poem is not None and fault.after >= len(self.payload())):
            return (f"the poem of {self.name!r} is {len(self.payload())} bytes, so a {fault.kind} after "
                    f"{fault.after} bytes would never happen; give `after:` below {len(self.payload())}")
        return None

    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    def upstream_is_loopback(self) -> bool:
        """Does this server connect only to this machine: a proxy to a loopback HOST:PORT or
        to a server of the scenario, or no proxy at all?"""
        if self.upstream is None or ":" not in self.upstream:
            return True
        host = self.upstream.rpartition(":")[0].strip("[]")
        return host == "localhost" or ipaddress.ip_address(host).is_loopback

    def reaches_outside(self) -> tuple[str, str] | None:
        """Where this server reaches beyond this machine, which a run needs
        ``--allow-external`` for: the key (``host`` or ``upstream``) and what it does, or
        None when it stays on loopback."""
        if not self.is_loopback():
            return "host", f"binds {self.host}, outside loopback: other machines could connect to it"
        # A scenario that forwards to any address it names could reach into the network
        # of whoever runs it (or serves it), as a listener could be reached from outside.
        if not self.upstream_is_loopback():
            return "upstream", (f"forwards to {self.upstream}, outside loopback: every client of the "
                                f"proxy makes netsim connect to another machine")
        return None


def _split_command(value: object) -> object:
    """`run:` given as one string is split as a shell would split it (it is never run by one)."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        raise ValueError("is empty: give the program to run and its arguments")
    try:
        return shlex.split(value)
    except ValueError as error:
        raise ValueError(f"cannot split {value!r} into arguments: {error}") from None


def _no_nul(argument: str) -> str:
    if "\0" in argument:
        raise ValueError(f"{argument!r} holds a NUL character (\\0), which no program's argument can "
                         f"hold: an argument ends at it")
    return argument


Argument = Annotated[str, AfterValidator(_no_nul)]

# A program and its arguments: a list, or one string split as a shell would.
Command = Annotated[
    list[Argument], Field(min_length=1), BeforeValidator(_split_command),
    WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1},
                              {"type": "string", "minLength": 1}]}),
]


class Client(_Model):
    """A client model to run, with the servers it connects to."""

    model: ModelName = Field(
        description="The client model: one of those `netsim clients` lists.",
        examples=["select"])
    name: Name | None = Field(
        default=None,
        description="A label of its own, unique in the scenario, for `expect` and reports; "
                    "needed when a model is listed twice.",
        examples=["asyncio-ab"], json_schema_extra=default_reads("the model's name"))
    targets: list[Name] | None = Field(
        default=None, min_length=1,
        description="The servers to connect to, in order, one connection per entry: a server "
                    "listed twice gets two connections.",
        examples=[["a", "b"]], json_schema_extra=default_reads("every server, one connection each"))
    timeout: Duration | None = Field(
        default=None,
        description="The longest a connection waits for its next byte (connecting included) "
                    "before it ends as a timeout, counted by `errors.timeout`. For a `command` "
                    "client, whose waits are its program's own: the longest the program may run "
                    "(by default `run --timeout`, or three times its ideal plus 10 s of wall "
                    "time; a `timeout` here is cut to `run --timeout` when that is shorter); then "
                    "its whole process group is ended, and the connections it still had open are "
                    "timeouts.",
        examples=["2s"],
        json_schema_extra=default_reads("twice the longest silence the scenario expects, plus 1s"))
    connections: int = Field(
        default=1, ge=1, le=100_000, strict=True,
        description="How many connections to make to each target, interleaved (a, b, a, b...): "
                    "`targets: [a, b]` with `connections: 3` makes six. Not for `model: command`, "
                    "whose program makes its own (list a target once per connection).",
        examples=[100])
    ramp: Duration = Field(
        default=0.0,
        description="Spreads the starts of the connections evenly over this long, instead of "
                    "opening them all at once (not for `model: command`).",
        examples=["1s"])
    run: Command | None = Field(
        default=None,
        description="For `model: command`: the program to run, as a list of arguments or one "
                    "string split as a shell would (never run through a shell). Placeholders: "
                    "`{ports}` and `{addresses}` (an argument each per target, when they are the "
                    "whole argument; within a longer one, as in `--ports={ports}`, joined by "
                    "spaces), `{port:NAME}`, `{host}`; the environment has `NETSIM_ADDRESSES`: each "
                    "target's `HOST:PORT`, in target order, separated by spaces (no names: "
                    "`127.0.0.1:40001 127.0.0.1:40002`). It runs in the scenario file's folder.",
        examples=[["python3", "my_client.py", "{ports}"]],
        json_schema_extra=default_reads("none (required by `model: command`)"))
    concurrent: bool | None = Field(
        default=None,
        description="For `model: command`: do the program's connections overlap? The ideal "
                    "time is worked out that way.",
        examples=[False], json_schema_extra=default_reads("true (`model: command` only)"))
    output: Literal["poems", "lines"] | None = Field(
        default=None,
        description="For `model: command`: what the program's standard output must hold of each "
                    "poem it read (the whole output is searched, however long), once for each "
                    "connection: three servers sending one poem want it three times; a "
                    "connection whose poem is missing is not intact. `poems`: each poem's text "
                    "in one piece, no two copies overlapping. `lines`: each poem's lines in "
                    "order, each on a line of its own, where the lines of different poems may "
                    "come between them (a client that prints lines as they arrive); an output "
                    "line may begin with a label, such as `a: 1111`, which is not read: a line "
                    "that two poems share counts for whichever makes both whole. Either reads the "
                    "output without its terminal escapes (colours), and `\\r\\n` ends a line as `\\n` "
                    "does. Without it, "
                    "`intact` and `bytes` judge what the program's kernel acknowledged, which it "
                    "does whether or not the program reads: a program that never reads passes them.",
        examples=["poems", "lines"], json_schema_extra=default_reads("none: the output is not checked"))
    retry: Duration | None = Field(
        default=None,
        description="For `model: command`: the program tries a refused connect again after "
                    "this long, until it connects (a server that is down, then up again); the "
                    "ideal time is worked out that way.",
        examples=["300ms"], json_schema_extra=default_reads("none: a refused connect is final"))

    @model_validator(mode="after")
    def _command_keys_go_together(self) -> Client:
        if self.model == COMMAND:
            if self.run is None:
                raise ValueError("`model: command` runs your program: give it as `run: [PROGRAM, "
                                 "ARGUMENT, ...]` (placeholders: {ports}, {addresses}, {port:NAME}, "
                                 "{host})")
            # The program makes its own connections, when it likes: it is told the targets
            # ({ports}), not how many times to connect to each, nor when.
            if self.connections != 1 or self.ramp:
                keys = " and ".join(f"`{key}`" for key, given in (
                    ("connections", self.connections != 1), ("ramp", bool(self.ramp))) if given)
                raise ValueError(f"{keys} shape the connections of netsim's own models; a `command` "
                                 f"client's program makes its own: list a server in `targets` once for "
                                 f"each connection it is to make (`{{ports}}` gives a port for each)")
            return self
        given = [key for key in ("run", "concurrent", "output", "retry") if getattr(self, key) is not None]
        if given:
            raise ValueError(f"`{'`, `'.join(given)}` {'applies' if len(given) == 1 else 'apply'} to "
                             f"`model: command` only")
        return self

    @field_validator("timeout")
    @classmethod
    def _timeout_is_some_time(cls, timeout: float | None) -> float | None:
        if timeout is not None and timeout <= 0:
            raise ValueError("a timeout must be more than 0: with none at all every connection is given "
                             "up before it starts; leave it out for the default")
        return timeout

    @field_validator("model")
    @classmethod
    def _model_is_known(cls, model: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("client_models")
        if known is not None and model not in known:
            from difflib import get_close_matches

            close = get_close_matches(model, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown client model {model!r}{hint}; known models: {', '.join(known)}"
            )
        return model

    @property
    def label(self) -> str:
        return self.name or self.model


COMMAND = "command"  # the model that runs the user's own program


def _client_from_shorthand(value: object) -> object:
    return {"model": value} if isinstance(value, str) else value


ClientEntry = Annotated[Client, BeforeValidator(_client_from_shorthand), _ShorthandSchema()]


class Scenario(_Model):
    """A whole experiment: the servers, the client models, and what to expect."""

    netsim: Literal[1] = Field(
        description="The version of the format: always 1, the first key of every scenario. It "
                    "also marks a YAML file as a scenario for the pytest plugin.",
        examples=[1])
    name: Name = Field(
        description="The scenario's name, shown in reports, results and baselines: letters, "
                    "digits, `_`, `-` and `.`, starting with a letter or `_`.",
        examples=["three-ports"])
    description: str = Field(
        default="",
        description="What the scenario shows, in a sentence or two; printed above the results.",
        examples=["Three slow servers, a blocking and a select() client."])
    seed: Annotated[int, Field(strict=True)] | None = Field(  # strict, as Server.port
        default=None,
        description="Makes jitter and random faults reproducible: the same seed gives the same "
                    "choices in every run.",
        examples=[7], json_schema_extra=default_reads("none: other choices in every run"))
    servers: list[Server] = Field(
        min_length=1,
        description="The slow TCP servers, at least one; each is a mapping with the keys of "
                    "`servers[]` below.",
        examples=[[{"name": "a", "port": 10000, "poem": "1111\n2222\n", "delay": "1s"}]])
    clients: list[ClientEntry] = Field(
        default_factory=list,
        description="The client models to run: a model's name, or a mapping with the keys of "
                    "`clients[]` below. Each runs alone, against fresh servers. A scenario "
                    "meant only for `netsim serve` or `netsim.serving()` needs none.",
        examples=[["blocking", "select", {"model": "asyncio", "targets": ["a"]}]],
        json_schema_extra=default_reads("none: serve only"))
    expect: dict[str, list[ExpectationText]] = Field(
        default_factory=dict,
        description="Timing expectations per client (by its name); those under `all` apply to "
                    "every client. Each reads `METRIC OP VALUE [± TOLERANCE] [in N% of runs]`.",
        examples=[{"blocking": ["elapsed == 12s ± 5%"], "all": ["errors == 0"]}],
        json_schema_extra=default_reads("none: the run is measured, nothing is checked"))

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def client(self, label: str) -> Client:
        for client in self.clients:
            if client.label == label:
                return client
        raise KeyError(label)

    def targets_of(self, client: Client) -> list[Server]:
        """The servers a client connects to, one entry per connection, in order.

        With ``connections: N`` the targets repeat N times, interleaved (a, b, a, b, ...)
        so that a ramp spreads every server's connections over its whole length.
        """
        chosen = self.servers if client.targets is None else [self.server(name) for name in client.targets]
        return list(chosen) * client.connections

    def connection_count(self, client: Client) -> int:
        """How many connections ``client`` makes."""
        return client.connections * len(self.servers if client.targets is None else client.targets)

    def start_offsets(self, client: Client) -> list[float]:
        """When each connection of ``client`` starts, in seconds after the client does."""
        count = self.connection_count(client)
        return [index * client.ramp / count for index in range(count)]

    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path:
        """Where the scenario's file is (its relative paths and commands start there); for a
        scenario given as text, the current directory."""
        return self._folder if self._folder is not None else Path.cwd()

    def expectations_for(self, label: str) -> list[Expectation]:
        """The expectations of the client called ``label``, then those under ``all`` that it
        does not have already (judged once, and one test case in a JUnit report)."""
        own = self.expect.get(label, [])
        meant = {expectation.meaning for expectation in own}
        runs_program = self.client(label).model == COMMAND
        # Under `all`, what only a program has (exit_code, extra_connections) is for the
        # `command` clients: a teacher's reference model beside thirty students runs none.
        return [*own, *(expectation for expectation in self.expect.get(ALL, [])
                        if expectation.meaning not in meant
                        and (runs_program or expectation.metric not in _PROGRAMS_OWN))]


# --- rules across the parts of a document ------------------------------------------------

Location = tuple[str | int, ...]
Finding = tuple[Location, str]  # where a problem stands in the document, and what it is


@dataclass(frozen=True)
class Parts:
    """The parts of a document that the rules look at, each by its index in its list.

    For a scenario that failed validation, only the parts that are valid on their own.
    """

    servers: Mapping[int, Server]
    clients: Mapping[int, Client]
    expect: Mapping[str, Mapping[int, Expectation]]
    # Of a document that failed validation: each server's name and each client's label
    # that could be read from its entry, valid or not, by index (None: the valid parts').
    names: Mapping[int, str] | None = None
    labels: Mapping[int, str] | None = None

    def server_names(self) -> Mapping[int, str]:
        return self.names if self.names is not None else {
            index: server.name for index, server in self.servers.items()}

    def client_labels(self) -> Mapping[int, str]:
        return self.labels if self.labels is not None else {
            index: client.label for index, client in self.clients.items()}


Rule = Callable[[Parts], Iterator[Finding]]


def server_names_are_unique(parts: Parts) -> Iterator[Finding]:
    first: dict[str, int] = {}
    for index, name in sorted(parts.server_names().items()):
        if name in first:
            yield (("servers", index, "name"),
                   f"server name {name!r} is already used by servers[{first[name]}]")
        else:
            first[name] = index


def ports_are_unique_per_address(parts: Parts) -> Iterator[Finding]:
    """Two servers cannot listen on one port of one address; port 0 takes a free one each."""
    # Grouped by port and address family, so that a scenario of 10,000 servers on their
    # own ports is not 10,000 x 10,000 comparisons.
    listening: dict[tuple[int, int], list[tuple[int, Server, _Address]]] = {}
    for index, server in parts.servers.items():
        if server.port == 0:
            continue
        address = _bound_address(server.host)
        group = listening.setdefault((server.port, address.version), [])
        clash = next(((other_index, other) for other_index, other, other_address in group
                      if _overlap(address, other_address)), None)
        if clash is None:
            group.append((index, server, address))
            continue
        other_index, other = clash
        yield (("servers", index, "port"),
               f"port {server.port} on {server.host} is already used by servers[{other_index}] "
               f"({other.host}); give each server its own port, or 0 for any free one")


def faults_strike_within_the_poem(parts: Parts) -> Iterator[Finding]:
    """A fault that counts bytes (the server's, or a phase's) strikes before the poem ends."""
    for index, server in parts.servers.items():
        if server.poem is None:
            continue
        faults: list[tuple[Location, Fault | None]] = [(("servers", index, "fault", "after"), server.fault)]
        faults += [(("servers", index, "phases", number, "fault", "after"), phase.fault)
                   for number, phase in enumerate(server.phases)]
        for where, fault in faults:
            if fault is None or fault.kind not in (*CUTTING_FAULTS, "corrupt") or fault.at is not None:
                continue
            size = len(server.payload())
            if fault.after >= size:
                yield (where, f"the poem is {size} bytes, so a {fault.kind} after {fault.after} bytes "
                              f"would never happen; give `after:` below {size}")


def upstreams_are_known(parts: Parts) -> Iterator[Finding]:
    """A proxy's upstream given as a name names a server of the scenario."""
    names = _server_names(parts)
    for index, server in parts.servers.items():
        upstream = _upstream_name(server)
        if upstream is not None and upstream not in names:
            yield (("servers", index, "upstream"),
                   f"unknown server {upstream!r}{_suggest(upstream, names)}; name a server of this "
                   f"scenario or give HOST:PORT")


def upstreams_lead_somewhere(parts: Parts) -> Iterator[Finding]:
    """A proxy forwards a poem server, another proxy (one condition in front of another:
    a latency upstream, a rate downstream) or HOST:PORT, never itself, nor in a circle."""
    by_name = {server.name: server for server in parts.servers.values()}
    for index, server in parts.servers.items():
        upstream = by_name.get(_upstream_name(server) or "")
        # (at its own fixed port, each connection would make another, without end)
        if upstream is server or server_at(server, [server]) is server:
            yield ("servers", index, "upstream"), "a proxy cannot forward to itself"
        elif upstream is not None and upstream.is_proxy:
            names, seen = [server.name], {server.name}
            while upstream is not None and upstream.name not in seen:
                names.append(upstream.name)
                seen.add(upstream.name)
                upstream = by_name.get(_upstream_name(upstream) or "")
            if upstream is not None:
                yield (("servers", index, "upstream"),
                       f"these proxies forward in a circle: {' -> '.join([*names, upstream.name])}; "
                       f"one of them must forward a poem server or HOST:PORT")


def no_client_is_named_all(parts: Parts) -> Iterator[Finding]:
    for index, client in parts.clients.items():
        if client.label == ALL:
            yield (("clients", index, "name"),
                   "'all' is reserved in `expect`; give this client another name")


def client_labels_are_unique(parts: Parts) -> Iterator[Finding]:
    first: dict[str, int] = {}
    for index, label in sorted(parts.client_labels().items()):
        if label in first:
            yield (("clients", index),
                   f"client {label!r} is already listed as clients[{first[label]}]; "
                   f"give one of them a `name:` of its own")
        else:
            first[label] = index


def targets_are_known(parts: Parts) -> Iterator[Finding]:
    names = _server_names(parts)
    for index, client in parts.clients.items():
        for position, target in enumerate(client.targets or []):
            if target not in names:
                yield (("clients", index, "targets", position),
                       f"unknown server {target!r}{_suggest(target, names)}")


def expect_keys_name_clients(parts: Parts) -> Iterator[Finding]:
    labels = _client_labels(parts)
    for key in parts.expect:
        if key != ALL and key not in labels:
            yield (("expect", key),
                   f"no client named {key!r}{_suggest(key, labels)}; use a client's name, or 'all'")


def speedups_name_clients(parts: Parts) -> Iterator[Finding]:
    labels = _client_labels(parts)
    for key, expectations in parts.expect.items():
        for position, expectation in expectations.items():
            other = expectation.other
            if other is None:
                continue
            if other not in labels:
                yield (("expect", key, position),
                       f"speedup({other}) names no client of this scenario{_suggest(other, labels)}")
            elif key == other:
                yield (("expect", key, position),
                       f"speedup({other}) under {other} compares it with itself, which is always 1: "
                       f"name another client, or put it under the client to compare with {other}")
            elif key == ALL:
                yield (("expect", key, position),
                       f"speedup({other}) under `all` applies to {other} too, comparing it with itself "
                       f"(always 1): put it under each client to compare with {other}")


def expectations_are_not_repeated(parts: Parts) -> Iterator[Finding]:
    """An expectation written twice in one list is a copy that was meant to be changed: the
    same check twice says nothing more, and would be two test cases of one name in a JUnit
    report, which CI servers merge. (One under a client and under `all` too restates a rule
    for every client: ``Scenario.expectations_for`` judges it once.)"""
    for key, expectations in parts.expect.items():
        first: dict[tuple[object, ...], tuple[int, str]] = {}
        for position, expectation in sorted(expectations.items()):
            text, meaning = expectation.text, expectation.meaning
            if meaning in first:
                at, said = first[meaning]
                also = "" if said == text else f" ({said!r})"
                yield (("expect", key, position),
                       f"{text!r} is already expect.{key}[{at}]{also}: the same check twice; "
                       f"remove one, or change it to the check that was meant")
            else:
                first[meaning] = (position, text)


# The metrics of a program's run, and what each is of it.
_PROGRAMS_OWN = {"exit_code": "the exit code of",
                 "extra_connections": "the count of the connections beyond its targets made by"}


def exit_codes_are_of_programs(parts: Parts) -> Iterator[Finding]:
    """``exit_code`` and ``extra_connections`` are judged for a client that runs a program
    (``model: command``) alone."""
    models = {client.label: client.model for client in parts.clients.values()}
    where = ("list it under the command client's name" if COMMAND in models.values()
             else "this scenario has no `command` client: remove it")
    for key, expectations in parts.expect.items():
        # Under `all` they are for the `command` clients alone (Scenario.expectations_for):
        # a problem only where the scenario has none.
        programs = COMMAND in models.values()
        others = sorted(label for label, model in models.items()
                        if model != COMMAND and (key == label or (key == ALL and not programs)))
        for position, expectation in expectations.items():
            if expectation.metric in _PROGRAMS_OWN and others:
                yield (("expect", key, position),
                       f"{expectation.metric} is {_PROGRAMS_OWN[expectation.metric]} a `command` "
                       f"client's program, and {_clients(others)} run{'s' * (len(others) == 1)} no "
                       f"program; {where}")


def outside_services_are_not_judged_on_what_is_unknown(parts: Parts) -> Iterator[Finding]:
    """A client that reads a proxy to a service outside the scenario (``upstream:
    HOST:PORT``) has no ideal, and no poem to call its bytes intact by when that is all it
    reads: an expectation on either could never pass."""
    # A proxy that refuses or ignores every handshake, or goes down and up on its phases,
    # has an ideal after all (the connect's own), or one this rule cannot tell: left alone.
    by_name = {server.name: server for server in parts.servers.values()}
    outside = {server.name for server in parts.servers.values()
               if server.is_proxy and not any(each.phases or (each.fault is not None and each.fault.kind in (
                   "refuse", "syn_drop")) for each in chain_of(server, by_name))
               and chain_of(server, by_name)[-1].is_proxy}
    if not outside:
        return
    every = set(parts.server_names().values())  # a failed entry's name counts, not as outside
    reads = {client.label: set(client.targets if client.targets is not None else every)
             for client in parts.clients.values()}
    models = {client.label: client.model for client in parts.clients.values()}
    for key, expectations in parts.expect.items():
        judged = {label: targets for label, targets in reads.items() if key in (ALL, label)}
        for position, expectation in expectations.items():
            proxies = f"{', '.join(sorted(outside))}, a proxy to a service outside the scenario"
            if expectation.uses_ideal or expectation.metric in ("ideal", "overhead"):
                unknown = sorted(label for label, targets in judged.items() if targets & outside)
                what = f"{proxies}: there is no ideal to compare with; compare elapsed with a duration"
            elif expectation.metric == "intact":
                # (A `command` client is judged from the proxy's side, which can tell.)
                unknown = sorted(label for label, targets in judged.items()
                                 if targets and targets <= outside and models.get(label) != COMMAND)
                what = (f"only {proxies}: netsim has no poem to judge those bytes by, so intact is "
                        f"not judged there")
            else:
                continue
            if unknown:
                yield (("expect", key, position),
                       f"{_clients(unknown)} read{'s' * (len(unknown) == 1)} {what}")


def _clients(labels: Sequence[str]) -> str:
    return f"client{'s' * (len(labels) > 1)} {', '.join(map(repr, labels))}"


def command_placeholders_are_known(parts: Parts) -> Iterator[Finding]:
    """A command's placeholders are ones netsim fills in, naming servers of the scenario."""
    found = _server_names(parts)
    names = sorted(found, key=found.__getitem__)  # in the scenario's order
    for index, client in parts.clients.items():
        for problem in _placeholders.problems(client.run or [], names):
            yield (("clients", index, "run"), problem)


# The rules that hold whatever else in the document failed validation.
RULES: tuple[Rule, ...] = (
    server_names_are_unique,
    ports_are_unique_per_address,
    faults_strike_within_the_poem,
    upstreams_lead_somewhere,
    no_client_is_named_all,
    client_labels_are_unique,
    expectations_are_not_repeated,
)
# The rules that call a name unknown: they apply only when no server (no client) failed,
# since the name may be that of the one that failed.
RULES_NAMING_SERVERS: tuple[Rule, ...] = (upstreams_are_known, targets_are_known,
                                          command_placeholders_are_known)
RULES_NAMING_CLIENTS: tuple[Rule, ...] = (expect_keys_name_clients, speedups_name_clients,
                                          exit_codes_are_of_programs,
                                          outside_services_are_not_judged_on_what_is_unknown)


def check_references(scenario: Scenario) -> list[Finding]:
    """Problems that span parts of the document, each with where it stands.

    Returns an empty list for a consistent scenario.
    """
    return check_parts(
        dict(enumerate(scenario.servers)),
        dict(enumerate(scenario.clients)),
        {key: dict(enumerate(expectations)) for key, expectations in scenario.expect.items()},
    )


def check_parts(
    servers: Mapping[int, Server],
    clients: Mapping[int, Client],
    expect: Mapping[str, Mapping[int, Expectation]],
    *,
    every_server: bool = True,
    every_client: bool = True,
    names: Mapping[int, str] | None = None,
    labels: Mapping[int, str] | None = None,
) -> list[Finding]:
    """``check_references`` over the parts of a document that are valid, by their index.

    The loader uses it to report these problems beside those of a document that failed
    validation: ``every_server`` (``every_client``) says that the name (label) of every
    server (client) is known, and only then may a name be called unknown. ``names`` and
    ``labels`` give them, by index, read from every entry that has one, valid or not.
    """
    parts = Parts(servers, clients, expect, names, labels)
    rules = [*RULES, *(RULES_NAMING_SERVERS if every_server else ()),
             *(RULES_NAMING_CLIENTS if every_client else ())]
    return [finding for rule in rules for finding in rule(parts)]


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _bound_address(host: str) -> _Address:
    # The server engine binds localhost as 127.0.0.1.
    return ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)


def _overlap(one: _Address, two: _Address) -> bool:
    """Would listening sockets of one family, on one port, take the same address?"""
    # An unspecified address (0.0.0.0, ::) takes the port on every address of its family.
    return one == two or one.is_unspecified or two.is_unspecified


def server_at(proxy: Server, servers: Iterable[Server]) -> Server | None:
    """The server of ``servers`` that a proxy's ``upstream: HOST:PORT`` would reach: its fixed
    port, on the address it binds (``localhost`` is 127.0.0.1) or, for a server bound to
    every address of a family (0.0.0.0, ::), on any of them; None for an upstream given by
    name, or elsewhere."""
    if proxy.upstream is None or ":" not in proxy.upstream:
        return None
    host, _, port = proxy.upstream.rpartition(":")
    try:
        target = _bound_address(host.strip("[]"))
    except ValueError:  # (not an address: a scenario's upstream names none of its servers so)
        return None
    return next((server for server in servers if server.port and str(server.port) == port
                 and _reaches(target, _bound_address(server.host))), None)


def _reaches(target: _Address, bound: _Address) -> bool:
    """Does a connect to ``target`` reach a socket listening on ``bound`` (same port)?"""
    return target == bound or (bound.is_unspecified and bound.version == target.version)


def needed_servers(targets: Iterable[Server], by_name: Mapping[str, Server]) -> list[Server]:
    """The servers a client's run needs: its targets, and the servers their bytes come
    through (a proxy's upstream, that one's if it is a proxy too), or whose fixed port a
    proxy names (``HOST:PORT``: without it, the proxy would find nothing there)."""
    needed: dict[str, Server] = {}
    waiting = list(targets)
    while waiting:
        for server in chain_of(waiting.pop(), by_name):
            if server.name in needed:
                continue
            needed[server.name] = server
            named = server_at(server, by_name.values())
            if named is not None and named.name not in needed:
                waiting.append(named)
    return list(needed.values())


def chain_of(server: Server, by_name: Mapping[str, Server]) -> list[Server]:
    """``server`` and, for a proxy, the servers of the scenario its bytes come through, in
    turn: its upstream, that one's if it is a proxy too, down to a poem server (or a proxy
    to HOST:PORT, outside the scenario). A circle (refused when a scenario loads) is
    followed once round."""
    chain = [server]
    while (upstream := by_name.get(_upstream_name(chain[-1]) or "")) is not None and upstream not in chain:
        chain.append(upstream)
    return chain


def _upstream_name(server: Server) -> str | None:
    """The name of the server a proxy forwards, or None for HOST:PORT and for poem servers."""
    if server.upstream is None or ":" in server.upstream:
        return None
    return server.upstream


def _server_names(parts: Parts) -> dict[str, int]:
    return {name: index for index, name in sorted(parts.server_names().items(), reverse=True)}


def _client_labels(parts: Parts) -> dict[str, int]:
    return {label: index for index, label in sorted(parts.client_labels().items(), reverse=True)}


def _suggest(word: str, candidates: Mapping[str, int]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
