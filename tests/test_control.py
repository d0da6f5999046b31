"""Live control: changes to running servers from a test (``net.set/down/up/reset``) and over
HTTP (``netsim serve --control``), on real sockets."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import netsim
from netsim._control_api import ControlServer
from netsim._serving import Serving
from tests.conftest import ScenarioWriter
from tests.test_cli import netsim_process, run_cli

SLOW = """\
netsim: 1
name: live
servers:
  - {name: a, poem: "1\\n2\\n3\\n4\\n", delay: 10s}
  - {name: b, poem: "1\\n", delay: 100ms}
  - {name: p, upstream: b}
"""


@pytest.fixture
def net() -> Iterator[Serving]:
    with netsim.serving(SLOW) as served:
        yield served


def test_a_change_says_when_in_the_logs_scenario_seconds() -> None:
    """At time scale 0.5, set() returns the log's `t`: twice the wall seconds since the start."""
    with netsim.serving(SLOW, time_scale=0.5) as net:
        before = time.monotonic() - net.t0
        t = net.set("a", delay="0")
        after = time.monotonic() - net.t0
    assert before / 0.5 <= t <= after / 0.5


def first_line(net: Serving, name: str = "a") -> socket.socket:
    """A client of the server ``name`` that has read its first chunk."""
    sock = socket.create_connection(net.address(name), timeout=5)
    assert sock.recv(16) == b"1\n"
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1024):
        data += chunk
    return data


def test_a_change_reaches_an_open_connection_within_5ms(net: Serving) -> None:
    """With 10 s left to wait, `delay: 0` sends the rest at once: the change takes effect (the
    rest of the poem is written) within 5 ms of the request, and the bytes are there by the
    time set() returns. Measured over ten connections, the median is checked; the slowest
    is printed."""
    took, after = [], []
    for _ in range(10):
        net.set("a", delay="10s")
        with first_line(net) as sock:
            asked = time.monotonic()
            effect = net.t0 + net.set("a", delay="0")
            returned = time.monotonic()
            sock.settimeout(1)
            rest = read_all(sock)
            arrived = time.monotonic()
        assert rest == b"2\n3\n4\n"
        took.append(effect - asked)
        after.append(arrived - returned)
    print(f"request to effect: median {statistics.median(took) * 1e3:.2f} ms, max {max(took) * 1e3:.2f} ms; "
          f"return to last byte: median {statistics.median(after) * 1e3:.2f} ms")
    assert statistics.median(took) <= 0.005
    assert statistics.median(after) <= 0.005


def test_down_takes_a_bool_for_reset(net: Serving) -> None:
    """`reset="yes"` is a TypeError, not taken for true; the server stays up."""
    with pytest.raises(TypeError, match="reset takes True or False, not 'yes'"):
        net.down("a", reset="yes")  # type: ignore[arg-type]
    socket.create_connection(net.address("a"), timeout=1).close()


def test_down_refuses_up_serves_again_on_the_same_port_and_reset_resets(net: Serving) -> None:
    """down: connects are refused while an open connection goes on; up: the same port serves
    again; reset: the open connections are reset, and counted."""
    port = net.address("a")[1]
    with first_line(net) as kept:
        net.down("a")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(net.address("a"), timeout=1)
        net.up("a")
        assert net.address("a")[1] == port
        with first_line(net) as second:
            assert net.reset("a") == 2
            for sock in (kept, second):
                with pytest.raises(ConnectionResetError):
                    read_all(sock)
    with first_line(net) as third:
        net.down("a", reset=True)
        with pytest.raises(ConnectionResetError):
            read_all(third)
    net.up("a")


def test_handshakes_can_be_held_and_answered_again(net: Serving) -> None:
    """`fault: {kind: syn_drop}` leaves a connect unanswered until its timeout; `fault: null`
    answers again; `handshake_delay` holds them for that long from the change on."""
    net.set("b", fault={"kind": "syn_drop"})
    assert net.states()[1]["handshakes"] == "held"
    with pytest.raises(TimeoutError):
        socket.create_connection(net.address("b"), timeout=0.3)
    net.set("b", fault=None)
    socket.create_connection(net.address("b"), timeout=1).close()
    net.set("b", handshake_delay="300ms")
    with pytest.raises(TimeoutError):
        socket.create_connection(net.address("b"), timeout=0.2)
    time.sleep(0.2)
    socket.create_connection(net.address("b"), timeout=1).close()


def test_a_proxy_takes_a_change_for_its_new_connections(net: Serving) -> None:
    """A proxy's accept_delay set live delays the connections it accepts from then on."""
    net.set("p", accept_delay="300ms")
    began = time.monotonic()
    with socket.create_connection(net.address("p"), timeout=5) as sock:
        assert read_all(sock) == b"1\n"
    assert time.monotonic() - began >= 0.3


def test_the_state_of_every_server_reads_as_a_scenario(net: Serving) -> None:
    """states() gives each server's conditions in scenario units, and its open connections."""
    net.set("a", rate="1KB/s", fault={"kind": "reset", "after": 5})
    with first_line(net) as sock:
        (a, *_) = net.states()
        assert (a["name"], a["up"], a["handshakes"]) == ("a", True, "answered")
        assert a["conditions"]["delay"] == "10s" and a["conditions"]["rate"] == "1000B/s"
        assert a["conditions"]["fault"] == {"kind": "reset", "after": 5}
        assert [conn["peer_port"] for conn in a["connections"]] == [sock.getsockname()[1]]
    # A proxy says what it forwards to, and which way its conditions go; a poem server neither.
    proxy = next(state for state in net.states() if state["name"] == "p")
    assert (proxy["upstream"], proxy["direction"]) == ("b", "downstream") and "upstream" not in a


@pytest.mark.parametrize(("name", "changes", "error", "words"), [
    ("a", {"dealy": "1s"}, ValueError, "unknown key 'dealy' (did you mean 'delay'?)"),
    ("a", {"fault": {"kind": "reset", "aftr": 5}}, ValueError,
     "unknown key 'fault.aftr' (did you mean 'after'?); `fault` takes kind, after, at, probability"),
    ("a", {"delay": "soon"}, ValueError, "delay: 'soon' is not a duration"),
    ("a", {"fault": {"kind": "reset", "after": 99}}, ValueError, "would never happen"),
    ("a", {}, ValueError, "nothing to change"),
    ("zz", {"delay": "1s"}, KeyError, "no server 'zz'"),
])
def test_a_change_a_scenario_would_refuse_is_refused_naming_the_key(
        net: Serving, name: str, changes: dict[str, Any], error: type[Exception], words: str) -> None:
    """set() checks a change as the loader checks a phase, and says what is wrong with which key."""
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        net.set(name, **changes)


def test_a_change_leaves_an_open_connections_first_byte_where_it_was(net: Serving) -> None:
    """The servers' account of a connection open across a change keeps the time of its first
    write, not that of the first write planned anew after the change."""
    with first_line(net) as sock:
        time.sleep(0.3)
        net.set("a", delay="0")
        sock.settimeout(2)
        assert read_all(sock) == b"2\n3\n4\n"
    time.sleep(0.1)
    (conn,) = [conn for conn in net.result().connections if conn.server == "a"]
    assert conn.ttfb < 0.2  # sent at the accept; the change came 0.3 s later


def test_restore_gives_a_server_back_its_scenarios_conditions(net: Serving) -> None:
    """restore() undoes every change of a server's conditions, and an open connection feels
    it from its next byte on, as with set()."""
    net.set("b", delay="5s")
    net.set("a", delay="0", fault={"kind": "reset", "after": 3})
    t = net.restore("a")
    assert t > 0
    (a, b, _) = net.states()
    assert a["conditions"]["delay"] == "10s" and a["conditions"]["fault"] is None
    assert b["conditions"]["delay"] == "5s"  # another server's change stays
    # What it changed back, in the log and `changes`, not every key it set.
    assert net.result().changes[-1].what == "delay 10s, fault null"
    net.restore("a")
    assert net.result().changes[-1].what == "no change"
    with first_line(net, "b") as sock:
        net.restore("b")
        sock.settimeout(2)
        assert read_all(sock) == b""  # closed after its own 100 ms, not the 5 s set
    with pytest.raises(KeyError, match="no server 'zz'"):
        net.restore("zz")


STALLS = """\
netsim: 1
name: hangs
servers:
  - {name: a, poem: "1\\n2\\n3\\n", delay: 20ms}
  - {name: b, poem: "1\\n2\\n3\\n", delay: 20ms}
  - {name: p, upstream: b}
"""


@pytest.mark.parametrize("undo", ["restore", "fault null"])
def test_a_stall_taken_away_lets_a_poem_servers_connection_go_on(undo: str) -> None:
    """A poem server's connection silent under a stall gets the rest of its poem once the
    stall is taken away, as a hung server that comes back: its bytes are known, none lost."""
    with netsim.serving(STALLS) as net:
        net.set("a", fault={"kind": "stall", "after": 2})
        with socket.create_connection(net.address("a"), timeout=2) as sock:
            assert sock.recv(16) == b"1\n"
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(16)  # silent
            net.restore("a") if undo == "restore" else net.set("a", fault=None)
            sock.settimeout(2)
            assert read_all(sock) == b"2\n3\n"
        time.sleep(0.1)
        (conn,) = net.result().connections
    assert (conn.error, conn.intact) == (None, True)


@pytest.mark.parametrize(("fault", "ends"), [(None, "eof"), ({"kind": "reset"}, "reset")])
def test_a_stall_taken_away_ends_a_proxys_connection(fault: dict[str, str] | None, ends: str) -> None:
    """A proxy's connection silent under a stall ends when the stall is taken away (closed, or
    reset if a reset fault came in): what its upstream sent meanwhile was dropped, so it
    cannot go on whole, as toxiproxy's timeout toxic ends its connections when removed. Its
    account names the stall, and it is not intact."""
    with netsim.serving(STALLS) as net:
        net.set("p", fault={"kind": "stall", "after": 2})
        with socket.create_connection(net.address("p"), timeout=2) as sock:
            assert sock.recv(16) == b"1\n"
            time.sleep(0.1)  # the stall has struck
            net.set("p", fault=fault)
            if ends == "eof":
                assert sock.recv(16) == b""
            else:
                with pytest.raises(ConnectionResetError):
                    sock.recv(16)
        time.sleep(0.1)
        (conn,) = net.result(since=0).connections
    assert conn.served is not None and conn.served.fault == "stall" and conn.intact is False


def test_a_stall_taken_away_by_a_timed_close_ends_at_its_moment_whatever_comes_after() -> None:
    """A proxy's silence taken away by a close with a time limit ends the connection at that
    moment; a later change does not undo the cut decided (the ideal has it so)."""
    with netsim.serving(STALLS) as net:
        net.set("p", fault={"kind": "stall", "at": "10ms"})  # by the clock: no cut in its stream
        with socket.create_connection(net.address("p"), timeout=3) as sock:
            accepted = time.monotonic()
            assert sock.recv(16) == b"1\n"
            time.sleep(0.1)  # the stall has struck
            net.set("p", fault={"kind": "close", "at": "600ms"})
            net.set("p", fault=None)
            assert sock.recv(16) == b""
            assert 0.5 <= time.monotonic() - accepted < 2.5


def test_bytes_a_proxy_corrupted_stay_corrupted_when_the_fault_is_taken_away() -> None:
    """A proxy connection whose bytes were corrupted is not intact, though the corrupt fault
    was taken away before its end."""
    text = ("netsim: 1\nname: c\nservers:\n  - {name: up, poem: \"1111\\n2222\\n3333\\n\", delay: 100ms}\n"
            "  - {name: q, upstream: up, fault: {kind: corrupt, after: 2}}\n")
    with netsim.serving(text) as net:
        with socket.create_connection(net.address("q"), timeout=2) as sock:
            first = sock.recv(16)
            assert first[:2] == b"11" and first != b"1111\n"
            net.set("q", fault=None)
            assert read_all(sock) == b"2222\n3333\n"
        time.sleep(0.1)
        (conn,) = net.result().connections
    assert conn.intact is False
    assert conn.message == "its bytes came corrupted (a corrupt fault, the proxy's or one upstream of it)"


def test_a_timed_close_of_a_half_closed_clients_proxy_connection_sends_nothing_after_it(
        capfd: pytest.CaptureFixture[str]) -> None:
    """A close with a time limit that strikes while a latency holds bytes for a client that shut
    down its side sends none of them after the close: no write after the proxy's end of file
    (which raised in the server process), and the account counts what the client got."""
    text = ("netsim: 1\nname: h\nservers:\n  - {name: up, poem: \"1\\n2\\n3\\n4\\n5\\n6\\n\", delay: 100ms}\n"
            "  - {name: x, upstream: up, latency: 300ms, fault: {kind: close, at: 500ms}}\n")
    with netsim.serving(text) as net:
        with socket.create_connection(net.address("x"), timeout=3) as sock:
            sock.shutdown(socket.SHUT_WR)
            received = read_all(sock)
        time.sleep(0.2)
        (conn,) = net.result().connections
    assert received == b"1\n2\n3\n"[:len(received)] and conn.bytes == len(received)
    assert "Cannot call write() after write_eof()" not in capfd.readouterr().err


def test_restore_gives_back_a_faults_probability_exactly() -> None:
    """restore() sends the scenario's conditions as they are: a fault striking 12.5% of the
    connections comes back at 12.5%, not at the 12% its written form would round it to."""
    text = ("netsim: 1\nname: p\n"
            "servers: [{name: a, poem: \"12\\n\", fault: {kind: reset, probability: 12.5%}}]\n")
    with netsim.serving(text) as net:
        net.set("a", fault=None)
        assert net.states()[0]["conditions"]["fault"] is None
        net.restore("a")
        assert net.states()[0]["conditions"]["fault"] == {"kind": "reset", "probability": "12.5%"}


def test_restore_all_brings_every_server_back_up_as_its_scenario_has_it(net: Serving) -> None:
    """restore_all() undoes every server's changes and brings back those taken down, on their
    ports: what a test's setup calls, as a toxiproxy user calls reset."""
    net.set("a", delay="0")
    net.set("p", latency="1s")
    net.down("b")
    t = net.restore_all()
    a, b, p = net.states()
    assert t > 0 and b["up"] and a["up"] and p["up"]
    assert a["conditions"]["delay"] == "10s" and p["conditions"]["latency"] == "0s"
    assert "latency" not in a["conditions"]  # a proxy's condition; `a` is a poem server
    with socket.create_connection(net.address("b"), timeout=2) as sock:
        assert read_all(sock) == b"1\n"  # listening again on its port
    assert net.restore_all() >= t  # nothing left to undo: still answers


# The HTTP API.


def call(address: tuple[str, int], method: str, path: str, body: object = None,
         raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_every_time_the_api_gives_is_on_the_logs_clock() -> None:
    """At time scale 0.5, a change's `t`, a connection's `accepted` and the request log's
    stamp are scenario seconds (twice the wall seconds since the start); `wall` is wall."""
    lines: list[str] = []
    with netsim.serving(SLOW, time_scale=0.5) as net, \
            ControlServer(net, "127.0.0.1", 0, log=lines.append) as server, first_line(net):
        opened = (time.monotonic() - net.t0) / 0.5
        before = (time.monotonic() - net.t0) / 0.5
        status, answer = call(server.address, "PATCH", "/servers/a", {"delay": "1s"})
        after = (time.monotonic() - net.t0) / 0.5
        _, state = call(server.address, "GET", "/servers/a")
    assert status == 200 and before <= answer["t"] <= after
    assert answer["wall"] == pytest.approx(answer["t"] * 0.5)
    (conn,) = state["connections"]
    assert 0 < conn["accepted"] <= opened
    stamp = float(lines[0].split()[0])
    assert before <= stamp <= answer["t"]


@pytest.fixture
def api(net: Serving) -> Iterator[tuple[tuple[str, int], list[str]]]:
    lines: list[str] = []
    with ControlServer(net, "127.0.0.1", 0, log=lines.append) as server:
        yield server.address, lines


def test_post_restore_restores_every_server(net: Serving, api: tuple[tuple[str, int], list[str]]) -> None:
    """`POST /restore` brings every server back up with its scenario's conditions and answers
    when, with the servers it restored; it takes no body and no other method."""
    address, lines = api
    call(address, "PATCH", "/servers/a", {"delay": "0"})
    call(address, "POST", "/servers/b/down")
    status, answer = call(address, "POST", "/restore")
    assert status == 200 and answer["servers"] == ["a", "b", "p"]
    assert {"t", "wall", "applied_in"} <= set(answer)
    (_, servers) = call(address, "GET", "/servers")
    assert [server["up"] for server in servers["servers"]] == [True, True, True]
    assert servers["servers"][0]["conditions"]["delay"] == "10s"
    assert call(address, "POST", "/restore", {"x": 1}) == (400, {"error": "restore takes no body"})
    status, answer = call(address, "GET", "/restore")
    assert status == 405 and "POST" in answer["error"]
    assert lines[-1].split("  ", 1)[1].startswith("GET /restore -> 405")


def test_down_with_a_reset_answers_how_many_it_reset(net: Serving,
                                                     api: tuple[tuple[str, int], list[str]]) -> None:
    """`POST /down {"reset": true}` answers how many open connections it reset, as `/reset`
    does; `down` without a reset answers no count; `net.take_down` gives both."""
    address, _ = api
    with first_line(net):
        status, answer = call(address, "POST", "/servers/a/down", {"reset": True})
        assert status == 200 and answer["reset"] == 1 and answer["server"] == "a" and answer["t"] >= 0
    assert call(address, "POST", "/servers/a/up")[0] == 200
    status, answer = call(address, "POST", "/servers/a/down")
    assert status == 200 and "reset" not in answer
    net.up("a")
    with first_line(net):
        t, count = net.take_down("a", reset=True)
        assert count == 1 and t >= answer["t"]
    net.up("a")


def test_the_api_changes_servers_and_says_when(net: Serving, api: tuple[tuple[str, int], list[str]]) -> None:
    """PATCH, POST down/up/reset/restore and GET answer JSON; a change says when it took effect, and
    every request is logged with its time."""
    address, lines = api
    with first_line(net) as sock:
        status, answer = call(address, "PATCH", "/servers/a", {"delay": "0"})
        # (how soon: the median test below; one request can meet a loaded machine's stall)
        assert status == 200 and answer["server"] == "a" and answer["applied_in"] >= 0
        sock.settimeout(1)
        assert read_all(sock) == b"2\n3\n4\n"
    assert call(address, "POST", "/servers/a/down", {"reset": True})[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(net.address("a"), timeout=1)
    assert call(address, "POST", "/servers/a/up")[0] == 200
    status, answer = call(address, "POST", "/servers/a/reset")  # when, as every change says
    assert (status, answer["server"], answer["reset"]) == (200, "a", 0)
    assert {"t", "wall", "applied_in"} <= set(answer)
    assert call(address, "POST", "/servers/a/restore")[0] == 200
    assert call(address, "GET", "/servers/a")[1]["conditions"]["delay"] == "10s"
    status, servers = call(address, "GET", "/servers")
    assert status == 200 and [server["name"] for server in servers["servers"]] == ["a", "b", "p"]
    assert call(address, "GET", "/servers/b")[1]["conditions"]["delay"] == "100ms"
    assert [line.split("  ", 1)[1] for line in lines] == [
        'PATCH /servers/a {"delay": "0"} -> 200', 'POST /servers/a/down {"reset": true} -> 200',
        "POST /servers/a/up -> 200", "POST /servers/a/reset -> 200", "POST /servers/a/restore -> 200",
        "GET /servers/a -> 200", "GET /servers -> 200", "GET /servers/b -> 200"]
    assert all(float(line.split()[0]) > 0 for line in lines)


def test_a_change_over_http_answers_in_a_few_milliseconds(api: tuple[tuple[str, int], list[str]]) -> None:
    """On one kept-alive connection, a PATCH is answered well within the 40 ms that Nagle's
    algorithm and a delayed ACK would add to each answer, and takes effect within 5 ms of
    arriving (medians of ten)."""
    address, _ = api
    connection = http.client.HTTPConnection(*address, timeout=5)
    rounds, applied = [], []
    try:
        for _ in range(10):
            began = time.monotonic()
            connection.request("PATCH", "/servers/a", body=json.dumps({"delay": "1s"}))
            applied.append(json.loads(connection.getresponse().read())["applied_in"])
            rounds.append(time.monotonic() - began)
    finally:
        connection.close()
    assert statistics.median(rounds) < 0.02
    assert statistics.median(applied) <= 0.005


def test_a_chunked_body_or_a_head_request_gets_a_4xx(api: tuple[tuple[str, int], list[str]]) -> None:
    """A body sent in chunks is refused for want of a length (411), not read as a bad one; a
    HEAD request is a method the path does not take (405), answered without a body."""
    address, _ = api
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.request("PATCH", "/servers/a", body=iter([b'{"delay": "1s"}']),
                           headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())["error"]) == (
            411, "send the body with a Content-Length, not in chunks")
    finally:
        connection.close()
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.request("HEAD", "/servers/a")
        response = connection.getresponse()
        assert (response.status, response.getheader("Allow"), response.read()) == (405, "GET, PATCH", b"")
    finally:
        connection.close()


def test_a_body_too_big_to_read_is_answered_and_the_client_can_read_the_answer(
        api: tuple[tuple[str, int], list[str]]) -> None:
    """A 4 MB body, over the limit, is answered 413 at its headers without being read; the
    server lets the client send it all before it closes (where the close reset the
    connection under the client's send), and then ends the connection cleanly."""
    address, _ = api
    body = b"x" * 4_000_000
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"PATCH /servers/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        answer = b""
        while b"\r\n\r\n" not in answer:  # the answer comes before the body is sent
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 ")
        sock.sendall(body)  # raised BrokenPipeError or ConnectionResetError before
        sock.shutdown(socket.SHUT_WR)
        while data := sock.recv(65536):
            answer += data
    assert b"the body is over 65536 bytes" in answer


def _raw(address: tuple[str, int], request: bytes, *, hang_up: bool = False) -> bytes:
    """Send ``request`` as it is; all the server answers before it closes (or hang up at once)."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        if hang_up:
            return b""
        answer = b""
        while data := sock.recv(65536):
            answer += data
        return answer


@pytest.mark.parametrize(("request_bytes", "words"), [
    (b"PATCH /servers/a HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
     b'"Content-Length must be a whole number of bytes, not \'abc\'"'),
    (b"PATCH /servers/a HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
     b'"Content-Length must be a whole number of bytes, not \'-5\'"'),
    (b"GARBAGE\r\n\r\n", b'{"error": "Bad request syntax'),
])
def test_a_request_http_cannot_read_is_answered_in_json_and_its_connection_closed(
        api: tuple[tuple[str, int], list[str]], request_bytes: bytes, words: bytes) -> None:
    """A Content-Length that is no length, or a request line that is none, gets a 400 in
    JSON (not Python's words about int(), nor the standard library's HTML page), and the
    connection is closed: where such a request ends cannot be told."""
    address, _ = api
    answer = _raw(address, request_bytes)  # returns: the server closed the connection
    if request_bytes.startswith(b"PATCH"):
        assert answer.startswith(b"HTTP/1.1 400 ") and b"Content-Type: application/json" in answer
    # (A line that is no request is taken for HTTP/0.9, whose answer is the body alone.)
    assert words in answer and b"<html" not in answer.lower()


def test_a_client_that_hangs_up_before_its_answer_leaves_no_traceback(
        net: Serving, capfd: pytest.CaptureFixture[str]) -> None:
    """Clients that hang up mid-body or before their answer are answered to no one, in
    silence: standard error had a traceback for each. The API answers the next request."""
    lines: list[str] = []
    with ControlServer(net, "127.0.0.1", 0, log=lines.append) as server:
        for _ in range(5):
            _raw(server.address, b"PATCH /servers/a HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}", hang_up=True)
            _raw(server.address, b"GET /servers HTTP/1.1\r\n\r\n", hang_up=True)
        assert call(server.address, "GET", "/servers/a")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_the_api_listens_on_ipv6_loopback_and_keeps_a_backlog_for_parallel_clients(net: Serving) -> None:
    """--control [::1]:0 listens on IPv6's loopback; twenty clients at once are all answered
    promptly (a backlog of 5 left some waiting a second for a SYN retransmission)."""
    with ControlServer(net, "[::1]", 0) as server:
        assert server.address[0] == "::1"
        assert call(server.address, "GET", "/servers/a")[0] == 200
    with ControlServer(net, "127.0.0.1", 0) as server:
        results: list[float] = []

        def one() -> None:
            started = time.monotonic()
            call(server.address, "GET", "/servers")
            results.append(time.monotonic() - started)

        workers = [threading.Thread(target=one) for _ in range(20)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(results) == 20 and max(results) < 0.9  # a SYN retransmission takes 1 s


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), [
    ("PATCH", "/servers/a", {"dealy": "1s"}, 400, "unknown key 'dealy'"),
    ("PATCH", "/servers/a", ["delay"], 400, "PATCH takes a JSON object"),
    ("PATCH", "/servers/a", b"{delay", 400, "the body is not JSON"),
    ("PATCH", "/servers/zz", {"delay": "1s"}, 404, "no server 'zz'"),
    ("POST", "/servers/a/restart", None, 404, "no action 'restart': down, up, reset or restore"),
    ("GET", "/nothing", None, 404, "the API is under /servers"),
    ("DELETE", "/servers/a", None, 405, "DELETE is not allowed here: GET or PATCH"),
    ("POST", "/servers/a/down", {"reset": True, "now": True}, 400, 'down takes no body, or {"reset": true}'),
    ("PATCH", "/servers/a", b"{" + b" " * 70_000 + b"}", 413, "over 65536 bytes"),
    ("PATCH", "/servers/a", {"name": "x"}, 400, "unknown key 'name'"),
    ("PATCH", "/servers/a", {"self": 1}, 400, "unknown key 'self'"),
    ("POST", "/servers/a/down", {"reset": "yes"}, 400, 'down takes no body, or {"reset": true}'),
    ("POST", "/servers/a/up", {"x": 1}, 400, "up takes no body"),
    ("OPTIONS", "/servers/a", None, 405, "OPTIONS is not allowed here: GET or PATCH"),
    ("PATCH", "/servers/a", b'{"delay": "1s", "delay": "2s"}', 400, "the key 'delay' is given twice"),
    ("GET", "/servers/%7a%7a", None, 404, "no server 'zz'"),  # a path's escapes are read as the name
])
def test_a_bad_request_gets_a_4xx_with_a_message(api: tuple[tuple[str, int], list[str]], method: str,
                                                 path: str, body: object, status: int, words: str) -> None:
    """Each mistake has its status and a message that says what is wrong."""
    address, _ = api
    raw = body if isinstance(body, bytes) else None
    got, answer = call(address, method, path, None if raw is not None else body, raw)
    assert got == status
    assert words in answer["error"]


def test_serve_refuses_a_control_address_outside_loopback(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """`--control` on another address than loopback exits 2 before any server starts."""
    path = write_scenario(SLOW)
    assert run_cli("serve", path, "--control", "10.1.2.3:9000") == 2
    out, err = capsys.readouterr()
    assert "--control 10.1.2.3:9000 is outside loopback" in err and "--allow-external" in err
    assert "listening" not in out


def test_serve_refuses_a_control_host_name_it_cannot_tell_is_loopback(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """A host name that is not an address is not called "outside loopback" (netsim cannot
    tell): the message says to give a loopback address, exit 2."""
    path = write_scenario(SLOW)
    assert run_cli("serve", path, "--control", "controlhost:0") == 2
    err = capsys.readouterr().err
    assert "--control controlhost:0: 'controlhost' is not an address netsim can tell is this machine's " \
           "loopback; give 127.0.0.1" in err


def test_a_busy_control_port_exits_3_without_the_free_ports_hint(
        write_scenario: ScenarioWriter, capsys: pytest.CaptureFixture[str]) -> None:
    """A control port another program holds: exit 3, saying so, and not suggesting
    --free-ports, which moves the servers and not the control port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert run_cli("serve", write_scenario(SLOW), "--free-ports", "--control", f"127.0.0.1:{port}") == 3
    err = capsys.readouterr().err
    assert f"--control 127.0.0.1:{port}: cannot listen there" in err and "port 0 for any free one" in err
    assert "--free-ports" not in err


@pytest.mark.slow
def test_serve_answers_the_control_api_from_its_ready_line(write_scenario: ScenarioWriter) -> None:
    """`netsim serve --control 127.0.0.1:0` says where the API is before `ready`, on stdout
    (`control HOST:PORT`, the port it took) as on stderr, answers it, logs each request on
    stderr, and stops on Ctrl-C."""
    path = write_scenario(SLOW)
    with netsim_process("serve", path, "--control", "127.0.0.1:0") as process:
        assert process.stdout is not None and process.stderr is not None
        where = process.stderr.readline().strip()
        assert where.startswith("control: control API on http://127.0.0.1:")
        host, port = where.rsplit("/", 1)[1].rsplit(":", 1)
        lines = [process.stdout.readline().strip()]
        while lines[-1] != "ready":
            lines.append(process.stdout.readline().strip())
        assert lines[0] == f"control {host}:{port}"
        assert [line.split()[0] for line in lines[1:]] == ["listening"] * 3 + ["ready"]
        status, answer = call((host, int(port)), "PATCH", "/servers/a", {"delay": "1ms"})
        assert (status, answer["server"]) == (200, "a")
        assert process.stderr.readline().strip().endswith('PATCH /servers/a {"delay": "1ms"} -> 200')
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=10) == 130


MIDRUN = """\
netsim: 1
name: faults-mid-run
servers:
  - {name: a, poem: "1\\n2\\n3\\n4\\n", delay: 100ms}
  - {name: b, poem: "1\\n2\\n3\\n4\\n", delay: 100ms}
  - {name: p, upstream: b}
  - {name: q, upstream: b, fault: {kind: reset, after: 5}}
  # A proxy that holds what its upstream sent at once and paces it out itself.
  - {name: whole, poem: "1\\n2\\n3\\n4\\n", chunk: all}
  - {name: r, upstream: whole, chunk: line, delay: 100ms}
  - {name: s, upstream: whole, chunk: line, delay: 100ms, fault: {kind: reset, after: 5}}
  - {name: u, upstream: whole, chunk: all, rate: 4B/s}
  - {name: w, upstream: whole, accept_delay: 300ms}
  - {name: wa, poem: "1\\n2\\n3\\n4\\n", accept_delay: 300ms}
  - {name: h, upstream: b, fault: {kind: blackhole}}
"""


def _after_a_change(net: Serving, name: str, *, first: bool = True, **change: Any) -> tuple[bytes, str]:
    """Read the first line from ``name`` (or, not ``first``, wait 100 ms), make ``change``,
    read the rest: the bytes and the ending."""
    with socket.create_connection(net.address(name), timeout=1) as sock:
        data = sock.recv(16) if first else b""
        if not first:
            time.sleep(0.1)
        net.set(name, **change)
        try:
            while chunk := sock.recv(1024):
                data += chunk
        except ConnectionResetError:
            return data, "reset"
        except TimeoutError:
            return data, "silent"
        return data, "eof"


@pytest.mark.parametrize(("fault", "received", "ending"), [
    ({"kind": "reset", "after": 1}, b"1\n", "reset"),  # passed already: the next chunk is cut
    ({"kind": "reset", "after": 5}, b"1\n2\n3", "reset"),
    ({"kind": "close", "at": "250ms"}, b"1\n2\n3\n", "eof"),  # 250 ms after the accept
    ({"kind": "stall", "after": 4}, b"1\n2\n", "silent"),
    ({"kind": "blackhole"}, b"1\n", "silent"),
])
def test_a_fault_brought_in_mid_run_strikes_open_proxy_connections_as_poem_ones(
        fault: dict[str, Any], received: bytes, ending: str) -> None:
    """A proxy's open connection meets a fault set live where a poem server's does: after as
    many bytes, or as long after its accept."""
    with netsim.serving(MIDRUN) as net:
        assert _after_a_change(net, "a", fault=fault) == (received, ending)
        assert _after_a_change(net, "p", fault=fault) == (received, ending)


def test_corruption_brought_in_mid_run_spares_the_bytes_before_after() -> None:
    """`corrupt` set live on a proxy changes the open connection's bytes from `after` on, and only those."""
    with netsim.serving(MIDRUN) as net:
        data, ending = _after_a_change(net, "p", fault={"kind": "corrupt", "after": 3})
    assert ending == "eof" and len(data) == 8
    assert data[:3] == b"1\n2" and data[3:] != b"\n3\n4\n"


def test_a_fault_taken_away_mid_run_spares_open_proxy_connections() -> None:
    """`fault: null` set live lets a connection that was to be reset after 5 bytes read the whole poem."""
    with netsim.serving(MIDRUN) as net:
        assert _after_a_change(net, "q", fault=None) == (b"1\n2\n3\n4\n", "eof")


def test_a_limit_brought_in_cuts_what_a_proxy_holds_queued() -> None:
    """Bytes a proxy holds to pace them out are cut by a limit set live, as a poem server's are."""
    with netsim.serving(MIDRUN) as net:
        assert _after_a_change(net, "r", fault={"kind": "reset", "after": 5}) == (b"1\n2\n3", "reset")


def test_a_fault_taken_away_before_its_cut_spares_the_bytes_a_proxy_holds() -> None:
    """A proxy holds the whole poem its upstream sent at once, to pace it out; taking its
    fault away before the cut's turn spares them all, as a poem server's would be: what a
    proxy holds is scheduled only as its turn nears, so a change reaches it."""
    with netsim.serving(MIDRUN) as net:
        assert _after_a_change(net, "s", fault=None) == (b"1\n2\n3\n4\n", "eof")
        (account,) = [conn for conn in net.result().connections if conn.server == "s"]
    assert account.error is None and account.bytes == 8


def test_a_new_rate_reaches_a_chunk_a_proxy_holds() -> None:
    """A proxy pacing one 8-byte chunk at 4 B/s (2 s) is given 1000 B/s after its first
    byte: the rest of the chunk goes at the new rate, not the 2 s the old one planned."""
    with netsim.serving(MIDRUN) as net:
        started = time.monotonic()
        assert _after_a_change(net, "u", rate="1000B/s") == (b"1\n2\n3\n4\n", "eof")
        took = time.monotonic() - started
    assert took < 1.0  # 0.25 s for the byte under way, then 7 ms; 2 s at the old rate


def test_a_blackhole_brought_in_during_the_accept_delay_keeps_the_proxy_silent() -> None:
    """Set while a proxy holds a connection before connecting upstream, a blackhole silences it
    from then on, as it does a poem server's."""
    with netsim.serving(MIDRUN) as net:
        assert _after_a_change(net, "wa", first=False, fault={"kind": "blackhole"}) == (b"", "silent")
        assert _after_a_change(net, "w", first=False, fault={"kind": "blackhole"}) == (b"", "silent")


def test_a_blackholed_connection_ends_by_a_time_limit_set_later_at_its_moment() -> None:
    """A connection blackholed at its accept stays silent under another silence, and a reset
    with a time limit that replaces the blackhole ends it at that moment, not at once."""
    with netsim.serving(MIDRUN) as net:
        assert _after_a_change(net, "h", first=False, fault={"kind": "stall"}) == (b"", "silent")
        net.set("h", fault={"kind": "blackhole"})
        with socket.create_connection(net.address("h"), timeout=2) as sock:
            accepted = time.monotonic()
            # (the change must find it accepted, blackholed: the handshake comes before that)
            while not next(state for state in net.states() if state["name"] == "h")["connections"]:
                time.sleep(0.005)
            net.set("h", fault={"kind": "reset", "at": "300ms"})
            with pytest.raises(ConnectionResetError):
                sock.recv(16)
            assert time.monotonic() - accepted >= 0.25
