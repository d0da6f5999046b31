"""Tests of the scenario model: how a server cuts its poem, units, and client lookups."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from netsim._units import format_duration, parse_duration, parse_size
from netsim.scenario import Scenario, Server


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
    (" 3 s ", 3.0), (".5s", 0.5), ("1.s", 1.0), ("0ms", 0.0),
])
def test_parse_duration(text: object, seconds: float) -> None:
    """A duration is a number with a unit, or a bare number of seconds."""
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
])
def test_parse_size_rejects(text: object, words: str) -> None:
    """Text that is not a whole, non-negative number of bytes is refused."""
    with pytest.raises(ValueError, match="size") as caught:
        parse_size(text)
    assert words in str(caught.value)


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
])
def test_expectations_for(expect: dict[str, list[str]], label: str, texts: list[str]) -> None:
    """A client's expectations are its own, in order, then those under `all`."""
    assert [e.text for e in demo(expect=expect).expectations_for(label)] == texts


def test_scenario_defaults() -> None:
    """Description, seed and expectations are optional."""
    scenario = demo()
    assert (scenario.description, scenario.seed, scenario.expect) == ("", None, {})
