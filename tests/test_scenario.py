"""Tests of the scenario model: how a server cuts its poem, units, and client lookups."""

from __future__ import annotations

import datetime
import math
import re
import time
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import netsim
from netsim import scenario as rules
from netsim._units import format_duration, parse_duration, parse_rate, parse_size
from netsim.expectations import parse_expectation
from netsim.scenario import Client, ClientEntry, Parts, Scenario, Server, check_parts, check_references


def server(poem: str = "1111\n2222\n", **fields: Any) -> Server:
    return Server.model_validate({"name": "a", "poem": poem, **fields})


@pytest.mark.parametrize(("poem", "chunk", "newline", "chunks"), [
    ("1111\n2222\n", "line", "keep", [b"1111\n", b"2222\n"]),
    ("1111\n2222\n", "line", "strip", [b"1111", b"2222"]),
    ("1111\n2222\n", "all", "keep", [b"1111\n2222\n"]),
    ("1111\n2222\n", "all", "strip", [b"11112222"]),
    ("1111\n2222\n", {"bytes": 4}, "keep", [b"1111", b"\n222", b"2\n"]),
    ("1111\n2222\n", {"bytes": 3}, "strip", [b"111", b"122", b"22"]),
    ("1111\n2222\n", {"bytes": "1KB"}, "keep", [b"1111\n2222\n"]),
    ("one\ntwo", "line", "keep", [b"one\n", b"two"]),
    ("one\ntwo", "line", "strip", [b"one", b"two"]),
    ("one\n\nthree\n", "line", "keep", [b"one\n", b"\n", b"three\n"]),
    ("one\n\nthree\n", "line", "strip", [b"one", b"", b"three"]),
    ("\n", "line", "strip", [b""]),
    ("\n", {"bytes": 2}, "strip", [b""]),
    ("one\r\ntwo\r\n", "line", "keep", [b"one\r\n", b"two\r\n"]),
    ("one\r\ntwo\r\n", "line", "strip", [b"one", b"two"]),
    ("page\x0cbreak\n", "line", "keep", [b"page\x0cbreak\n"]),
    ("a\u2028b\rc\n", "line", "strip", ["a\u2028b\rc".encode()]),
    ("h\u00e9\u00e9\n", {"bytes": 2}, "keep", [b"h\xc3", b"\xa9\xc3", b"\xa9\n"]),
    ("\u00e9t\u00e9\n", "line", "strip", ["\u00e9t\u00e9".encode()]),
], ids=[
    "line-keep", "line-strip", "all-keep", "all-strip", "bytes-keep", "bytes-strip", "bytes-larger-than-poem",
    "no-final-newline-keep", "no-final-newline-strip", "blank-line-keep", "blank-line-strip",
    "only-a-newline-stripped", "only-a-newline-stripped-in-bytes", "crlf-keep", "crlf-strip",
    "form-feed-is-text", "unicode-line-separators-are-text", "utf8-cut-mid-character", "utf8-line",
])
def test_chunks(poem: str, chunk: object, newline: str, chunks: list[bytes]) -> None:
    """A server cuts its poem by line, whole or by bytes, keeping or stripping each line's newline."""
    cut = server(poem, chunk=chunk, newline=newline)
    assert cut.chunks() == chunks
    assert cut.payload() == b"".join(chunks)


def test_byte_chunks_rejoin_into_the_encoded_poem() -> None:
    """Byte chunks may split a UTF-8 character, but together they are the poem's UTF-8 bytes."""
    poem = "\u00e9\u00e8\u20ac\U0001f600\n" * 3
    for size in range(1, 9):
        chunks = server(poem, chunk={"bytes": size}).chunks()
        assert all(len(piece) == size for piece in chunks[:-1])
        assert 0 < len(chunks[-1]) <= size
        assert b"".join(chunks) == poem.encode()
        assert b"".join(chunks).decode() == poem


def test_default_server() -> None:
    """A server with only a name and a poem sends lines with their newlines, at once, to all at once."""
    plain = server()
    assert (plain.host, plain.port, plain.chunk, plain.newline, plain.delay, plain.mode) == (
        "127.0.0.1", 0, "line", "keep", 0.0, "concurrent")
    assert plain.is_loopback()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("0.0.0.0", False), ("192.168.1.10", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    """A server knows whether its host stays on this machine."""
    assert server(host=host).is_loopback() is loopback


def test_unread_poem_file_has_no_text() -> None:
    """A server built outside the loader keeps its poem_file unread and says how to read it."""
    unread = Server.model_validate({"name": "a", "poem_file": "poem.txt"})
    with pytest.raises(ValueError, match="load_scenario"):
        _ = unread.text


@pytest.mark.parametrize("fields", [
    {"port": "80"}, {"port": True}, {"port": 80.0}, {"delay": True}, {"chunk": {"bytes": 0}},
    {"chunk": {"bytes": "1.5B"}}, {"newline": "trim"}, {"mode": "parallel"},
], ids=str)
def test_server_rejects(fields: dict[str, object]) -> None:
    """A server field given in the wrong type or out of range is refused, not coerced."""
    with pytest.raises(ValidationError):
        Server.model_validate({"name": "a", "poem": "x\n", **fields})


def test_models_are_frozen() -> None:
    """A loaded scenario cannot be changed by accident."""
    with pytest.raises(ValidationError):
        server().delay = 2.0


# Durations and sizes.


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("1s", 1.0), ("1.5s", 1.5), ("2", 2.0), (2, 2.0), (0.5, 0.5), (0, 0.0),
    ("100us", 1e-4), ("100\u00b5s", 1e-4), ("1m", 60.0), ("1min", 60.0), ("1h", 3600.0),
    (" 3 s ", 3.0), (".5s", 0.5), ("1.s", 1.0), ("0ms", 0.0), (datetime.timedelta(milliseconds=250), 0.25),
])
def test_parse_duration(text: object, seconds: float) -> None:
    """A duration is a number with a unit, a bare number of seconds, or (from Python) a timedelta."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "words"), [
    ("1 sec", "'1 sec' is not a duration"),
    ("soon", "'soon' is not a duration"),
    ("", "is not a duration"),
    ("1S", "is not a duration"),
    ("1e3", "is not a duration"),
    ("1s 2ms", "is not a duration"),
    (-1, "zero or more"),
    (-0.5, "zero or more"),
    (math.inf, "at most 168h"),
    (math.nan, "nan is not a duration"),
    ("169h", "at most 168h"),
    (604_801, "at most 168h"),
    (10**400, "at most 168h"),
    ("9" * 400 + "s", "at most 168h"),
    (True, "expected a duration"),
    (None, "expected a duration"),
    ([1], "expected a duration"),
])
def test_parse_duration_rejects(text: object, words: str) -> None:
    """Text that is not a duration, or a negative or endless one, is refused with an example."""
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(text)
    assert words in str(caught.value)


def test_parse_duration_negative_text_says_negative() -> None:
    """'-1s' is refused because it is negative, not because it is not a duration."""
    with pytest.raises(ValueError, match="zero or more"):
        parse_duration("-1s")


@pytest.mark.parametrize(("text", "count"), [
    ("512", 512), (512, 512), ("512B", 512), ("4KB", 4000), ("4KiB", 4096), ("1MB", 1_000_000),
    ("1MiB", 1_048_576), ("1GB", 10**9), ("1GiB", 2**30), ("1.5KB", 1500), ("0.5KiB", 512), ("0", 0),
    ("1000GB", 10**12), (10**12, 10**12), ("0.001KB", 1),
])
def test_parse_size(text: object, count: int) -> None:
    """A size is bytes, or a number with a 1000-based (KB) or 1024-based (KiB) unit."""
    assert parse_size(text) == count


@pytest.mark.parametrize(("text", "words"), [
    ("4 kilobytes", "is not a size"),
    ("4kb", "is not a size"),
    ("four", "is not a size"),
    ("1.5B", "whole number of bytes"),
    ("1.0001KB", "whole number of bytes"),
    (-1, "whole number of bytes"),
    (1.5, "expected a size"),
    (True, "expected a size"),
    ("1.0000000000000000001KB", "whole number of bytes"),
    ("1001GB", "at most 1000GB"),
    (10**12 + 1, "at most 1000GB"),
    (10**400, "at most 1000GB"),
    ("9" * 400 + "B", "at most 1000GB"),
])
def test_parse_size_rejects(text: object, words: str) -> None:
    """Text that is not a whole, non-negative number of bytes is refused."""
    with pytest.raises(ValueError, match="size") as caught:
        parse_size(text)
    assert words in str(caught.value)


@pytest.mark.parametrize(("text", "words"), [
    (1e308, "at most 1000GB/s"),
    (math.inf, "at most 1000GB/s"),
    (10**400, "at most 1000GB/s"),
    ("9" * 400 + "B/s", "at most 1000GB/s"),
    (math.nan, "above zero"),
    ("0B/s", "above zero"),
    ("fast", "is not a rate"),
])
def test_parse_rate_rejects(text: object, words: str) -> None:
    """A rate that is no size per second, not above zero or beyond 1000GB/s is refused, never overflows."""
    with pytest.raises(ValueError, match="rate") as caught:
        parse_rate(text)
    assert words in str(caught.value)


def test_long_numbers_are_shown_cut_short() -> None:
    """A message about a 400-digit value shows its start and its length, not every digit."""
    with pytest.raises(ValueError, match="at most") as caught:
        parse_duration(10**400)
    assert len(str(caught.value)) < 150 and "401 characters" in str(caught.value)


@pytest.mark.parametrize(("seconds", "text"), [
    (12.004, "12.004s"), (1.0, "1.000s"), (0.0, "0.000s"), (0.25, "250ms"), (0.0123, "12.3ms"),
    (0.005, "5ms"), (8e-5, "80\u00b5s"), (-0.25, "-250ms"), (math.nan, "n/a"),
])
def test_format_duration(seconds: float, text: str) -> None:
    """A duration is shown with the unit that fits its size."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [12.004, 1.5, 0.25, 0.0123, 0.005, 8e-5, 0.0])
def test_format_duration_reads_back(seconds: float) -> None:
    """What format_duration writes, parse_duration reads back to the same duration."""
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-3)


# Lookups on a scenario.


def demo(**fields: Any) -> Scenario:
    return Scenario.model_validate({
        "netsim": 1, "name": "demo",
        "servers": [{"name": "a", "poem": "x\n"}, {"name": "b", "poem": "y\n"}],
        "clients": ["blocking", {"model": "select", "name": "pair", "targets": ["b", "a", "b"]}],
        **fields,
    })


def test_targets_of() -> None:
    """A client without targets connects once to every server; with targets, once per entry, in order."""
    scenario = demo()
    blocking, pair = scenario.clients
    assert [s.name for s in scenario.targets_of(blocking)] == ["a", "b"]
    assert [s.name for s in scenario.targets_of(pair)] == ["b", "a", "b"]


def test_server_and_client_lookups() -> None:
    """Servers are found by name and clients by label; an unknown one is a KeyError."""
    scenario = demo()
    assert scenario.server("b").text == "y\n"
    assert scenario.client("pair").model == "select"
    assert scenario.client("blocking").label == "blocking"
    with pytest.raises(KeyError):
        scenario.server("z")
    with pytest.raises(KeyError):
        scenario.client("select")


@pytest.mark.parametrize(("expect", "label", "texts"), [
    ({}, "blocking", []),
    ({"all": ["errors == 0"]}, "blocking", ["errors == 0"]),
    ({"blocking": ["elapsed <= 4s"]}, "pair", []),
    ({"all": ["errors == 0", "intact == 100%"], "pair": ["elapsed <= 4s", "speedup(blocking) >= 2"]},
     "pair", ["elapsed <= 4s", "speedup(blocking) >= 2", "errors == 0", "intact == 100%"]),
    ({"all": ["errors == 0", "elapsed < 1s"], "pair": ["elapsed < 1s"]},
     "pair", ["elapsed < 1s", "errors == 0"]),
])
def test_expectations_for(expect: dict[str, list[str]], label: str, texts: list[str]) -> None:
    """A client's expectations are its own, in order, then those under `all` that it does not
    have already."""
    assert [e.text for e in demo(expect=expect).expectations_for(label)] == texts


def test_scenario_defaults() -> None:
    """Description, seed and expectations are optional."""
    scenario = demo()
    assert (scenario.description, scenario.seed, scenario.expect) == ("", None, {})


# Rules across the parts of a document.


def parts(servers: list[dict[str, Any]] | None = None, clients: list[Any] | None = None,
          expect: dict[str, list[str]] | None = None) -> Parts:
    """The parts the rules see, from plain data: servers by default a single poem server `a`."""
    return Parts(
        dict(enumerate(Server.model_validate(data) for data in servers or [{"name": "a", "poem": "x\n"}])),
        dict(enumerate(TypeAdapter(ClientEntry).validate_python(data) for data in clients or ["blocking"])),
        {key: dict(enumerate(parse_expectation(text) for text in texts))
         for key, texts in (expect or {}).items()},
    )


def poem(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "poem": "1111\n2222\n", **fields}


def test_server_names_are_unique() -> None:
    """A server name used twice is reported at the second use, naming the first."""
    found = list(rules.server_names_are_unique(parts([poem("a"), poem("b"), poem("a")])))
    assert found == [(("servers", 2, "name"), "server name 'a' is already used by servers[0]")]
    assert list(rules.server_names_are_unique(parts([poem("a"), poem("b")]))) == []


@pytest.mark.parametrize(("first", "second"), [
    ({"port": 9000}, {"port": 9000}),
    ({"port": 9000}, {"port": 9000, "host": "localhost"}),
    ({"port": 9000, "host": "0.0.0.0"}, {"port": 9000}),
    ({"port": 9000}, {"port": 9000, "host": "0.0.0.0"}),
    ({"port": 9000, "host": "::1"}, {"port": 9000, "host": "::"}),
], ids=["same-address", "localhost-is-127.0.0.1", "any-address-first", "any-address-second", "ipv6-any"])
def test_ports_clash_on_one_address(first: dict[str, Any], second: dict[str, Any]) -> None:
    """Two servers on one fixed port of one address clash; the second is reported, naming the first."""
    servers = [poem("a", **first), poem("b", **second)]
    [(location, message)] = rules.ports_are_unique_per_address(parts(servers))
    assert location == ("servers", 1, "port")
    assert "port 9000" in message and "already used by servers[0]" in message
    assert "0 for any free one" in message


@pytest.mark.parametrize(("first", "second"), [
    ({"port": 0}, {"port": 0}),
    ({"port": 9000}, {"port": 9001}),
    ({"port": 9000}, {"port": 9000, "host": "127.0.0.2"}),
    ({"port": 9000, "host": "0.0.0.0"}, {"port": 9000, "host": "::1"}),
], ids=["both-port-0", "two-ports", "two-addresses", "two-families"])
def test_ports_side_by_side(first: dict[str, Any], second: dict[str, Any]) -> None:
    """Port 0, different ports, different addresses and different families never clash."""
    assert list(rules.ports_are_unique_per_address(parts([poem("a", **first), poem("b", **second)]))) == []


def test_ports_clash_with_the_first_server_that_took_them() -> None:
    """A third server on a taken port names the server that holds it, not another that clashed."""
    servers = [poem("a", port=9000), poem("b", port=9000), poem("c", port=9000)]
    found = [message for _, message in rules.ports_are_unique_per_address(parts(servers))]
    assert ["servers[0]" in message for message in found] == [True, True]


@pytest.mark.timeout(10)
def test_ten_thousand_servers_are_checked_at_once() -> None:
    """A scenario of 10,000 servers on their own ports is checked in a blink, not pair by pair."""
    servers = dict(enumerate(Server.model_construct(name=f"s{index}", port=10_000 + index, host="127.0.0.1")
                             for index in range(10_000)))
    started = time.perf_counter()
    assert list(rules.ports_are_unique_per_address(Parts(servers, {}, {}))) == []
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("fault", "found"), [
    ({"kind": "reset", "after": 10}, True),
    ({"kind": "close", "after": 11}, True),
    ({"kind": "stall", "after": 9}, False),
    ({"kind": "refuse"}, False),
])
def test_faults_strike_within_the_poem(fault: dict[str, Any], found: bool) -> None:
    """A fault after as many bytes as the poem has, or more, is reported: it would never strike."""
    findings = list(rules.faults_strike_within_the_poem(parts([poem("a", fault=fault)])))
    assert bool(findings) is found
    if found:
        [(location, message)] = findings
        assert location == ("servers", 0, "fault", "after")
        assert message.startswith("the poem is 10 bytes") and "below 10" in message


def test_a_fault_on_an_unread_poem_file_waits_for_the_text() -> None:
    """A server whose poem_file is not read yet has no size to check its fault against."""
    unread = {"name": "a", "poem_file": "poem.txt", "fault": {"kind": "reset", "after": 10**6}}
    assert list(rules.faults_strike_within_the_poem(parts([unread]))) == []


def test_upstreams_are_known() -> None:
    """A proxy naming no server of the scenario is reported, with the name it probably meant."""
    servers = [poem("origin"), {"name": "p", "upstream": "origni"}, {"name": "q", "upstream": "127.0.0.1:80"},
               {"name": "r", "upstream": "origin"}]
    [(location, message)] = rules.upstreams_are_known(parts(servers))
    assert location == ("servers", 1, "upstream")
    assert message == ("unknown server 'origni' (did you mean 'origin'?); name a server of this scenario "
                       "or give HOST:PORT")


def test_upstreams_lead_somewhere() -> None:
    """A proxy cannot forward to itself, nor proxies to one another in a circle; a poem
    server, HOST:PORT or another proxy that leads to one is fine."""
    servers = [poem("origin"), {"name": "p", "upstream": "p"}, {"name": "q", "upstream": "origin"},
               {"name": "r", "upstream": "q"}, {"name": "s", "upstream": "nowhere"},
               {"name": "t", "upstream": "u"}, {"name": "u", "upstream": "t"}]
    assert list(rules.upstreams_lead_somewhere(parts(servers))) == [
        (("servers", 1, "upstream"), "a proxy cannot forward to itself"),
        (("servers", 5, "upstream"), "these proxies forward in a circle: t -> u -> t; one of them must "
                                     "forward a poem server or HOST:PORT"),
        (("servers", 6, "upstream"), "these proxies forward in a circle: u -> t -> u; one of them must "
                                     "forward a poem server or HOST:PORT"),
    ]


@pytest.mark.parametrize(("host", "upstream", "reached"), [
    ("127.0.0.1", "127.0.0.1:5000", True),
    ("127.0.0.1", "localhost:5000", True),
    ("127.0.0.1", "127.0.0.2:5000", False),  # another loopback address: nobody listens there
    ("127.0.0.1", "127.0.0.1:5001", False),
    ("127.0.0.1", "[::1]:5000", False),  # another family
    ("0.0.0.0", "127.0.0.2:5000", True),  # every address of its family
    ("::1", "[::1]:5000", True),
    ("::", "127.0.0.1:5000", False),
])
def test_a_proxy_reaches_the_server_listening_where_its_upstream_points(
        host: str, upstream: str, reached: bool) -> None:
    server = rules.Server.model_validate({"name": "s", "poem": "x", "host": host, "port": 5000})
    proxy = rules.Server.model_validate({"name": "p", "upstream": upstream})
    assert (rules.server_at(proxy, [server]) is server) is reached


def test_no_client_is_named_all() -> None:
    """A client labelled `all` is reported: `all` in `expect` means every client."""
    found = list(rules.no_client_is_named_all(parts(clients=["select", {"model": "select", "name": "all"}])))
    assert found == [(("clients", 1, "name"), "'all' is reserved in `expect`; give this client another name")]


def test_client_labels_are_unique() -> None:
    """A label used twice, by name or by model, is reported at the second client."""
    clients = ["select", {"model": "asyncio", "name": "select"}, {"model": "select", "name": "other"}]
    assert list(rules.client_labels_are_unique(parts(clients=clients))) == [
        (("clients", 1), "client 'select' is already listed as clients[0]; "
                         "give one of them a `name:` of its own")]


def test_targets_are_known() -> None:
    """Each target naming no server is reported at its place in the list."""
    found = list(rules.targets_are_known(parts(clients=[{"model": "select", "targets": ["a", "b", "aa"]}])))
    assert found == [(("clients", 0, "targets", 1), "unknown server 'b'"),
                     (("clients", 0, "targets", 2), "unknown server 'aa' (did you mean 'a'?)")]


def test_expect_keys_name_clients() -> None:
    """An `expect` key that is neither a client's label nor `all` is reported, with a suggestion."""
    found = list(rules.expect_keys_name_clients(
        parts(clients=["blocking"], expect={"blockng": ["errors == 0"], "all": ["errors == 0"],
                                            "blocking": ["errors == 0"]})))
    assert found == [(("expect", "blockng"),
                      "no client named 'blockng' (did you mean 'blocking'?); use a client's name, or 'all'")]


def test_speedups_name_clients() -> None:
    """speedup(OTHER) naming no client, or its own client (always 1), under it or under
    `all`, is reported at its expectation."""
    found = list(rules.speedups_name_clients(
        parts(clients=["blocking", "select"],
              expect={"select": ["errors == 0", "speedup(blockin) >= 2", "speedup(blocking) >= 2"],
                      "blocking": ["speedup(blocking) == 1 ± 5%"], "all": ["speedup(select) <= 1"]})))
    assert found == [
        (("expect", "select", 1),
         "speedup(blockin) names no client of this scenario (did you mean 'blocking'?)"),
        (("expect", "blocking", 0), "speedup(blocking) under blocking compares it with itself, which is "
                                    "always 1: name another client, or put it under the client to compare "
                                    "with blocking"),
        (("expect", "all", 0), "speedup(select) under `all` applies to select too, comparing it with "
                               "itself (always 1): put it under each client to compare with select")]


def test_an_expectation_written_twice_in_one_list_is_reported_at_the_second() -> None:
    """The same expectation twice under one key (whitespace aside) is a problem at the copy;
    once under a client and once under `all` is not."""
    found = list(rules.expectations_are_not_repeated(
        parts(clients=["blocking", "select"],
              expect={"blocking": ["elapsed < 1s", "errors == 0", "elapsed  < 1s"],
                      "select": ["elapsed < 1s"], "all": ["errors == 0", "elapsed < 1s"]})))
    assert found == [(("expect", "blocking", 2), "'elapsed < 1s' is already expect.blocking[0]: the same "
                                                 "check twice; remove one, or change it to the check that "
                                                 "was meant")]


def test_a_timeout_of_no_time_is_refused() -> None:
    """A client's timeout of 0 (every connection given up before it starts) is a problem."""
    with pytest.raises(ValidationError, match="a timeout must be more than 0"):
        Client.model_validate({"model": "select", "timeout": 0})


def test_exit_codes_are_of_programs() -> None:
    """exit_code under a client that runs no program is reported at its expectation; under a
    `command` client it is fine, and under `all` too where the scenario has one (it is then
    for the `command` clients alone); under `all` with no `command` client it is reported."""
    found = list(rules.exit_codes_are_of_programs(
        parts(clients=["select", "blocking", {"model": "command", "run": ["true"]}],
              expect={"all": ["errors == 0", "exit_code == 0"], "select": ["exit_code == 0"],
                      "command": ["exit_code == 0"]})))
    assert found == [
        (("expect", "select", 0), "exit_code is the exit code of a `command` client's program, and "
                                  "client 'select' runs no program; list it under the command "
                                  "client's name")]
    (alone,) = rules.exit_codes_are_of_programs(
        parts(clients=["select"], expect={"select": ["exit_code == 0"]}))
    assert alone[1].endswith("runs no program; this scenario has no `command` client: remove it")
    (under_all,) = rules.exit_codes_are_of_programs(
        parts(clients=["select"], expect={"all": ["extra_connections == 0"]}))
    assert under_all[0] == ("expect", "all", 0)


def test_under_all_what_only_a_program_has_is_for_the_command_clients() -> None:
    """`all: [exit_code == 0, extra_connections == 0]` beside a reference model applies to the
    `command` clients alone; an expectation written otherwise but meaning the same as the
    client's own is judged once."""
    scenario = netsim.load_scenario_text(
        "netsim: 1\nname: class\nservers: [{name: a, poem: \"1\\n\"}]\n"
        "clients: [blocking, {model: command, name: eve, run: [\"true\"]}]\n"
        "expect:\n  eve: [errors==0]\n  all: [exit_code == 0, extra_connections == 0, errors == 0]\n")
    assert [e.text for e in scenario.expectations_for("blocking")] == ["errors == 0"]
    assert [e.text for e in scenario.expectations_for("eve")] == ["errors==0", "exit_code == 0",
                                                                   "extra_connections == 0"]


def test_outside_services_are_not_judged_on_what_is_unknown() -> None:
    """A client reading a proxy to HOST:PORT has no ideal (so an expectation over it is
    reported), and no poem to judge intact by when that proxy is all it reads; a proxy to
    a server of the scenario, and other metrics, are fine."""
    servers = [poem("a"), {"name": "out", "upstream": "127.0.0.1:9"}, {"name": "in", "upstream": "a"}]
    clients = [{"model": "select", "targets": ["out"]}, {"model": "blocking", "targets": ["a", "in"]},
               {"model": "asyncio", "name": "mixed", "targets": ["a", "out"]}]
    found = list(rules.outside_services_are_not_judged_on_what_is_unknown(parts(
        servers, clients=clients,
        expect={"all": ["elapsed <= ideal + 1s", "intact == 100%", "errors == 0", "elapsed < 2s"],
                "blocking": ["overhead < 1s"]})))
    assert found == [
        (("expect", "all", 0), "clients 'mixed', 'select' read out, a proxy to a service outside the "
                               "scenario: there is no ideal to compare with; compare elapsed with a "
                               "duration"),
        (("expect", "all", 1), "client 'select' reads only out, a proxy to a service outside the "
                               "scenario: netsim has no poem to judge those bytes by, so intact is not "
                               "judged there")]
    # A program reading it is judged from the proxy's side, which can tell intact.
    program = [{"model": "command", "name": "prog", "run": ["true"], "targets": ["out"]}]
    assert not list(rules.outside_services_are_not_judged_on_what_is_unknown(parts(
        servers, clients=program, expect={"all": ["intact == 100%"]})))
    # A proxy that ignores every handshake has the connect's ideal: nothing to report.
    servers[1]["fault"] = {"kind": "syn_drop"}
    assert not list(rules.outside_services_are_not_judged_on_what_is_unknown(parts(
        servers, clients=clients, expect={"all": ["elapsed <= ideal + 1s"]})))


@pytest.mark.parametrize(("every_server", "every_client", "paths"), [
    (True, True, [("servers", 1, "name"), ("clients", 0, "targets", 0), ("expect", "nobody")]),
    (False, True, [("servers", 1, "name"), ("expect", "nobody")]),
    (True, False, [("servers", 1, "name"), ("clients", 0, "targets", 0)]),
    (False, False, [("servers", 1, "name")]),
])
def test_check_parts_calls_a_name_unknown_only_when_no_part_failed(
        every_server: bool, every_client: bool, paths: list[tuple[str | int, ...]]) -> None:
    """Unknown names are reported only when every server (client) is among the parts; the rest always."""
    document = parts([poem("a"), poem("a")], [{"model": "select", "targets": ["zz"]}],
                     {"nobody": ["errors == 0"]})
    found = check_parts(document.servers, document.clients, document.expect,
                        every_server=every_server, every_client=every_client)
    assert sorted((location for location, _ in found), key=str) == sorted(paths, key=str)


def test_a_consistent_scenario_has_no_findings() -> None:
    """check_references finds nothing in a scenario whose parts agree."""
    assert check_references(demo(expect={"pair": ["speedup(blocking) >= 1"], "all": ["errors == 0"]})) == []


# Conditions over time, handshake and stream faults.


@pytest.mark.parametrize(("fields", "words"), [
    ({"fault": {"kind": "syn_drop", "probability": 0.5}}, "syn_drop applies to every connection"),
    ({"fault": {"kind": "syn_drop", "after": 3}}, "does not apply to syn_drop"),
    ({"fault": {"kind": "reset", "after": 3, "at": "1s"}}, "not both"),
    ({"fault": {"kind": "corrupt", "at": "1s"}}, "`at` applies to reset, close and stall"),
    ({"slice": {"bytes": "10..5"}}, "the smaller first"),
    ({"slice": {"bytes": "0..5"}}, "from 1 up"),
    ({"phases": [{"at": "2s"}, {"at": "1s"}]}, "phases[1] begins at 1s, not after phases[0]"),
    ({"phases": [{"at": "1s", "delay": None}]}, "`delay` takes a value here"),
    ({"phases": [{"at": "1s", "dealy": "1s"}]}, "Extra inputs"),
], ids=str)
def test_conditions_over_time_reject(fields: dict[str, object], words: str) -> None:
    """A handshake fault on a share, `after` with `at`, a span upside down, phases out of
    order or a null duration in a phase are refused with a message that says why."""
    with pytest.raises(ValidationError, match=re.escape(words)):
        Server.model_validate({"name": "a", "poem": "1111\n2222\n", **fields})


def test_a_span_of_sizes_reads_as_written() -> None:
    """`slice: {bytes: 10..1KB}` takes units at both ends; one size is a span of one."""
    assert server(slice={"bytes": "10..1KB"}).slice.bytes == rules.Span(10, 1000)  # type: ignore[union-attr]
    assert server(slice={"bytes": 64}).slice.bytes == rules.Span(64, 64)  # type: ignore[union-attr]


def test_a_phase_knows_which_keys_it_sets() -> None:
    """A phase changes only the keys it names; `rate: null` and `fault: null` are changes too."""
    from netsim.conditions import Conditions, changes_of

    phase = rules.Phase.model_validate({"at": "1s", "delay": "250ms", "rate": None, "down": {"reset": True}})
    assert (phase.is_down, phase.resets) == (True, True)
    fields, written = changes_of(phase, 0.5)
    assert fields == {"delay": 0.125, "rate": None}
    assert written == {"delay": "250ms", "rate": None}
    assert Conditions(delay=1.0, rate=10.0, jitter=0.2).changed(phase) == Conditions(delay=0.25, jitter=0.2)


def test_a_phases_fault_strikes_within_the_poem() -> None:
    """A phase's fault after more bytes than the poem has is reported where it stands."""
    findings = list(rules.faults_strike_within_the_poem(parts([poem(
        "a", phases=[{"at": "1s", "fault": {"kind": "corrupt", "after": 10}}])])))
    assert [location for location, _ in findings] == [("servers", 0, "phases", 0, "fault", "after")]


def test_retry_belongs_to_a_command() -> None:
    """`retry` says what a program does: another model is refused it."""
    with pytest.raises(ValidationError, match="`retry`"):
        TypeAdapter(ClientEntry).validate_python({"model": "blocking", "retry": "1s"})
