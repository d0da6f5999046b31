"""The placeholders of a ``command`` client's ``run``: where the servers are, in its argv.

* ``{ports}`` (an argument of its own): each target's port, an argument each, in order;
* ``{addresses}`` (an argument of its own): each target's ``HOST:PORT``, likewise;
* ``{port:NAME}``: the port of the server called NAME;
* ``{host}``: the host the servers listen on (the first target's);
* ``{{`` and ``}}``: a literal brace.

Inside a longer argument, ``{ports}`` and ``{addresses}`` are joined with spaces
(``--servers={addresses}``). The scenario checks the names when it loads; the command
model expands them when the servers' ports are known.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from netsim._units import format_address

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
PLAIN = ("ports", "addresses", "host")


def problems(argv: Sequence[str], servers: Sequence[str]) -> list[str]:
    """What is wrong with the placeholders of ``argv``, given the scenario's server names."""
    found = []
    for argument in argv:
        for match in _PLACEHOLDER.finditer(argument):
            name = match.group(1)
            if name is None or name in PLAIN:
                continue
            kind, colon, server = name.partition(":")
            if kind == "port" and server in servers:
                continue
            if kind == "port" and not colon:
                found.append(f"{{port}} needs a server's name, {{port:NAME}} (NAME one of: "
                             f"{', '.join(servers)}); {{ports}} gives every target's port")
            elif kind == "port":
                close = difflib.get_close_matches(server, servers, n=1)
                found.append(f"{{port:{server}}} names no server of this scenario"
                             + (f" (did you mean {{port:{close[0]}}}?)" if close else "")
                             + f"; its servers are: {', '.join(servers)}")
            else:
                close = difflib.get_close_matches(name, PLAIN, n=1)
                found.append(f"unknown placeholder {{{name}}} in {argument!r}"
                             + (f" (did you mean {{{close[0]}}}?)" if close else "")
                             + ": use {ports}, {addresses}, {port:NAME} or {host} (write {{ for a brace)")
        stray = _PLACEHOLDER.sub("", argument)
        if "{" in stray or "}" in stray:
            found.append(f"an unmatched brace in {argument!r} (write {{{{ or }}}} for a brace)")
    return found


def used(argv: Sequence[str]) -> bool:
    """Does ``argv`` hold a placeholder (a brace written twice is none)?"""
    return any(match.group(1) is not None for argument in argv for match in _PLACEHOLDER.finditer(argument))


def expand(argv: Sequence[str], targets: Sequence[tuple[str, str, int]]) -> list[str]:
    """``argv`` with its placeholders filled in; ``targets`` are (server, host, port) in order."""
    ports = [str(port) for _, _, port in targets]
    addresses = [format_address(host, port) for _, host, port in targets]
    by_name = {server: port for server, _, port in reversed(targets)}  # the first of each server
    host = targets[0][1] if targets else "127.0.0.1"
    expanded: list[str] = []
    for argument in argv:
        if argument == "{ports}":
            expanded += ports
        elif argument == "{addresses}":
            expanded += addresses
        else:
            expanded.append(_PLACEHOLDER.sub(
                lambda match: _fill(match, ports, addresses, by_name, host), argument))
    return expanded


def _fill(match: re.Match[str], ports: list[str], addresses: list[str], by_name: dict[str, int],
          host: str) -> str:
    if match.group(0) in ("{{", "}}"):
        return match.group(0)[0]
    name = match.group(1)
    if name == "ports":
        return " ".join(ports)
    if name == "addresses":
        return " ".join(addresses)
    if name == "host":
        return host
    return str(by_name[name.partition(":")[2]])
