"""The scenario format, version 1, as frozen pydantic models.

A scenario is what a user wrote in YAML, checked and with units resolved: every
duration is float seconds and every size int bytes. Loading from a file, with line
numbers in errors and the reading of ``poem_file``, lives in ``_loader.py``; the checks
that span several parts of a document (unique names, known targets) live in
``check_references`` below.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from netsim._units import parse_duration, parse_rate, parse_size
from netsim.expectations import Expectation, parse_expectation

FORMAT_VERSION = 1
ALL = "all"  # the `expect` key that applies to every client

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
ExpectationText = Annotated[
    Expectation,
    BeforeValidator(lambda value: _parse_expectation_field(value)),
    PlainSerializer(lambda expectation: expectation.text, return_type=str),
    WithJsonSchema({"type": "string", "description": "METRIC OP VALUE [± TOLERANCE]"}),
]
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]


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

    bytes: Annotated[Size, Field(gt=0)]


class Fault(_Model):
    """What goes wrong on a share of a server's connections."""

    kind: Literal["refuse", "reset", "close", "stall", "blackhole"]
    after: Size = 0  # bytes sent before the fault strikes
    probability: float = Field(default=1.0, ge=0.0, le=1.0)  # share of connections affected

    @field_validator("probability", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(f"{value!r} is not a share: write 0.25 or 25%") from None
        return value

    @model_validator(mode="after")
    def _makes_sense(self) -> Fault:
        if self.kind == "refuse" and self.probability < 1:
            raise ValueError(
                "refuse applies to every connection: a listening socket cannot refuse only some "
                "of them; for a share of failing connections use kind: reset with after: 0")
        if self.kind in ("refuse", "blackhole") and self.after:
            raise ValueError(f"`after` does not apply to {self.kind}: it never sends a byte")
        return self


class Server(_Model):
    """A slow TCP server that sends a poem chunk by chunk, then closes; or, with
    ``upstream``, a proxy that forwards a real service's bytes under the same conditions."""

    name: Name
    host: str = "127.0.0.1"
    # strict: YAML reads `yes` as true, and pydantic would take that as port 1
    port: int = Field(default=0, ge=0, le=65535, strict=True)
    poem: str | None = None
    poem_file: Path | None = None
    chunk: Literal["line", "all"] | ByteChunks = "line"
    newline: Literal["keep", "strip"] = "keep"
    delay: Duration = 0.0
    mode: Literal["concurrent", "serial"] = "concurrent"
    jitter: Duration = 0.0  # each pause is drawn from delay ± jitter (never below zero)
    initial_delay: Duration = 0.0  # before the first chunk
    rate: Rate | None = None  # bytes per second, within and across chunks
    accept_delay: Duration = 0.0  # a new connection waits this long before it is served
    close_delay: Duration = 0.0  # after the pause that follows the last chunk
    fault: Fault | None = None
    upstream: str | None = None  # HOST:PORT, or the name of a server of this scenario
    direction: Literal["downstream", "upstream", "both"] | None = None  # proxies only

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
        if self.poem is not None and self.poem_file is not None:
            raise ValueError("give either `poem:` or `poem_file:`, not both")
        if self.poem is None and self.poem_file is None:
            raise ValueError("give the text to serve as `poem:` or `poem_file:`")
        if self.poem == "":
            raise ValueError("the poem is empty: give it at least one line")
        return self

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

    def payload(self) -> bytes:
        """Every byte a connection to this server receives, in order."""
        return b"".join(self.chunks())

    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback


class Client(_Model):
    """A client model to run, with the servers it connects to."""

    model: str
    name: Name | None = None  # a label, unique in the scenario; default: the model's name
    targets: list[Name] | None = Field(default=None, min_length=1)
    # Longest a connection may wait for its next byte (connecting included) before it
    # ends as a timeout; default: derived from the ideal timeline.
    timeout: Duration | None = None
    connections: int = Field(default=1, ge=1, le=100_000, strict=True)  # per target
    ramp: Duration = 0.0  # connection starts spread evenly over this long

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


def _client_from_shorthand(value: object) -> object:
    return {"model": value} if isinstance(value, str) else value


ClientEntry = Annotated[Client, BeforeValidator(_client_from_shorthand)]


class Scenario(_Model):
    """A whole experiment: the servers, the client models, and what to expect."""

    netsim: Literal[1]
    name: Name
    description: str = ""
    seed: Annotated[int, Field(strict=True)] | None = None  # strict, as Server.port
    servers: list[Server] = Field(min_length=1)
    clients: list[ClientEntry] = Field(min_length=1)
    expect: dict[str, list[ExpectationText]] = Field(default_factory=dict)

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

    def expectations_for(self, label: str) -> list[Expectation]:
        """The expectations of the client called ``label``, then those under ``all``."""
        return [*self.expect.get(label, []), *self.expect.get(ALL, [])]


Location = tuple[str | int, ...]


def check_references(scenario: Scenario) -> list[tuple[Location, str]]:
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
) -> list[tuple[Location, str]]:
    """``check_references`` over the parts of a document that are valid, by their index.

    The loader uses it to report these problems beside those of a document that failed
    validation. A name counts as unknown only when ``every_server`` (``every_client``)
    says that no server (client) is missing from the parts: otherwise it may belong to
    one that failed.
    """
    problems: list[tuple[Location, str]] = []
    seen: dict[str, int] = {}
    for index, server in servers.items():
        if server.name in seen:
            problems.append(((("servers", index, "name")),
                             f"server name {server.name!r} is already used by servers[{seen[server.name]}]"))
        seen.setdefault(server.name, index)
    bound: list[tuple[int, Server]] = []
    for index, server in servers.items():
        if server.port == 0:
            continue
        for other_index, other in bound:
            if other.port == server.port and _same_address(other.host, server.host):
                problems.append((("servers", index, "port"),
                                 f"port {server.port} on {server.host} is already used by "
                                 f"servers[{other_index}] ({other.host}); give each server its own "
                                 f"port, or 0 for any free one"))
                break
        else:
            bound.append((index, server))
    for index, server in servers.items():
        fault = server.fault
        if fault is not None and fault.kind in ("reset", "close", "stall") and server.poem is not None:
            size = len(server.payload())
            if fault.after >= size:
                problems.append((("servers", index, "fault", "after"),
                                 f"the poem is {size} bytes, so a {fault.kind} after {fault.after} "
                                 f"bytes would never happen; give `after:` below {size}"))
    by_name = {server.name: server for server in servers.values()}
    for index, server in servers.items():
        if server.upstream is None or ":" in server.upstream:
            continue
        upstream = by_name.get(server.upstream)
        if upstream is None:
            if every_server:
                problems.append((("servers", index, "upstream"),
                                 f"unknown server {server.upstream!r}{_suggest(server.upstream, seen)}; "
                                 f"name a server of this scenario or give HOST:PORT"))
        elif upstream is server:
            problems.append((("servers", index, "upstream"), "a proxy cannot forward to itself"))
        elif upstream.is_proxy:
            problems.append((("servers", index, "upstream"),
                             f"{server.upstream!r} is a proxy itself; a proxy's upstream must be a "
                             f"poem server or HOST:PORT"))

    labels: dict[str, int] = {}
    for index, client in clients.items():
        if client.label == ALL:
            problems.append((("clients", index, "name"),
                             "'all' is reserved in `expect`; give this client another name"))
        if client.label in labels:
            problems.append((("clients", index),
                             f"client {client.label!r} is already listed as clients[{labels[client.label]}]; "
                             f"give one of them a `name:` of its own"))
        labels.setdefault(client.label, index)
        for position, target in enumerate(client.targets or []):
            if every_server and target not in seen:
                problems.append((("clients", index, "targets", position),
                                 f"unknown server {target!r}{_suggest(target, seen)}"))

    for key, expectations in expect.items():
        if every_client and key != ALL and key not in labels:
            problems.append((("expect", key),
                             f"no client named {key!r}{_suggest(key, labels)}; "
                             f"use a client's name, or 'all'"))
        for position, expectation in expectations.items():
            if every_client and expectation.other is not None and expectation.other not in labels:
                problems.append((("expect", key, position),
                                 f"speedup({expectation.other}) names no client of this scenario"
                                 f"{_suggest(expectation.other, labels)}"))
    return problems


def _same_address(one: str, two: str) -> bool:
    """Would listening sockets on these hosts, with one port, take the same address?"""
    # The server engine binds localhost as 127.0.0.1, and an unspecified address
    # (0.0.0.0, ::) takes the port on every address of its family.
    first = ipaddress.ip_address("127.0.0.1" if one == "localhost" else one)
    second = ipaddress.ip_address("127.0.0.1" if two == "localhost" else two)
    return first.version == second.version and (
        first == second or first.is_unspecified or second.is_unspecified
    )


def _suggest(word: str, candidates: dict[str, int]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
