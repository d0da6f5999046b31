"""The live control API of ``netsim serve --control HOST:PORT``: JSON over HTTP.

::

    GET   /servers              every server: up or down, handshakes, conditions, open connections
    GET   /servers/NAME         one of them
    PATCH /servers/NAME         {"delay": "500ms", "fault": {"kind": "reset", "after": 10}}
    POST  /servers/NAME/down    optional body {"reset": true}: reset the open connections too
    POST  /servers/NAME/up
    POST  /servers/NAME/reset   reset its open connections
    POST  /servers/NAME/restore the conditions its scenario gives it, every change undone
    POST  /restore              every server up, with its scenario's conditions (toxiproxy's reset)

A change answers ``200`` once it has taken effect in the server process, with ``t``, when
it did (seconds since the servers started: the ``t`` of the event log) and
``applied_in``, how long after the request arrived. A bad request answers ``400`` (a key
or value a scenario would refuse, named), ``404`` (no such server or path), ``405`` (a
method the path does not take), ``409`` (the port was taken while the server was down),
``413`` (a body over 64 KiB); ``503`` once the servers have stopped. Every request is
logged with its time.

HTTP is parsed by the standard library's ``http.server`` (a ThreadingHTTPServer: one
thread per request, so a slow client of the API holds up no other): well kept, and no
dependency. The API acts on anything with the methods of ``Serving`` below (``Servers``),
so that this module sits below it.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from netsim._errors import PortBusyError, RunError

MAX_BODY = 64 * 1024  # 64 KiB: a change is a few keys
# Answered without reading its body (chunked, or too big), a request's connection is
# closed only once the client has sent the rest, or after this long: a close with bytes
# unread resets the connection, and the client's send of them fails before it can read
# the answer ("lingering close", as web servers do it).
LINGER = 1.0  # seconds
# How often the serving thread looks for shutdown(): stopping waits no longer than this.
SHUTDOWN_POLL = 0.05  # seconds
# Connections waiting to be accepted: parallel test workers drive the API at once, and
# the standard library's 5 had a few of twenty waiting out a SYN retransmission (1 s).
BACKLOG = 128
# How long a request may take to arrive whole: a client that stops halfway through its
# headers or body holds a thread no longer than this.
REQUEST_TIMEOUT = 10.0  # seconds

Log = Callable[[str], None]


class Servers(Protocol):
    """What the API drives: ``netsim._serving.Serving``."""

    t0: float  # when the servers started, on time.monotonic()'s clock
    time_scale: float  # the changes answer in scenario seconds: wall seconds / time_scale

    def set(self, name: str, /, **conditions: Any) -> float: ...

    def take_down(self, name: str, *, reset: bool = False) -> tuple[float, int]: ...

    def up(self, name: str) -> float: ...

    def take_reset(self, name: str) -> tuple[float, int]: ...

    def restore(self, name: str) -> float: ...

    def restore_all(self) -> float: ...

    def states(self) -> list[dict[str, Any]]: ...


class ControlServer:
    """The API, served from a thread of its own on ``host:port`` (0: any free port)."""

    def __init__(self, servers: Servers, host: str, port: int, *, log: Log | None = None) -> None:
        handler = type("Handler", (_Handler,), {"servers": servers, "log": staticmethod(log or _quiet)})
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._http = _HTTPServer((host.strip("[]"), port), handler, family)
        except OSError as error:
            # A RunError, not a PortBusyError: --free-ports, which that error suggests, does
            # not move the control port.
            fix = ("; give another port, or port 0 for any free one"
                   if error.errno == errno.EADDRINUSE else "")
            raise RunError(f"--control {host}:{port}: cannot listen there: "
                           f"{error.strerror or error}{fix}") from None
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        host, port = self.address
        return f"<ControlServer http://{host}:{port}>"

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._http.server_address[:2]
        return (str(host), int(port))

    def start(self) -> ControlServer:
        self._thread = threading.Thread(target=self._http.serve_forever, args=(SHUTDOWN_POLL,),
                                        name="netsim-control", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering; safe to call twice."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


def _quiet(_line: str) -> None:
    pass


class _HTTPServer(ThreadingHTTPServer):
    """The standard library's threading HTTP server, on IPv6 too, with a longer backlog,
    and quiet about a client that left before its answer (it printed a traceback)."""

    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 family: socket.AddressFamily) -> None:
        self.address_family = family
        super().__init__(address, handler)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client hung up, or its connection failed
            return
        super().handle_error(request, client_address)  # a bug of ours: its traceback


class _BadRequest(Exception):
    """A request the API refuses: its status and why (and, for 405, the methods allowed)."""

    def __init__(self, status: HTTPStatus, message: str, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


class _Handler(BaseHTTPRequestHandler):
    """One request: routed, carried out through ``servers``, answered in JSON."""

    servers: Servers
    log: Log
    server_version = "netsim-control"
    protocol_version = "HTTP/1.1"  # keep-alive: a test driving the API pays one connect
    timeout = REQUEST_TIMEOUT
    # The headers and the body go in two writes: with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the headers, 40 ms a request.
    disable_nagle_algorithm = True
    _unread = False  # a body left unread: the close lingers for it (LINGER)

    def do_GET(self) -> None:  # http.server finds a method by its name: do_ and the verb
        self._answer("GET")

    def do_PATCH(self) -> None:
        self._answer("PATCH")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def do_OPTIONS(self) -> None:
        self._answer("OPTIONS")

    def do_HEAD(self) -> None:  # answered as any method the path does not take (405)
        self._answer("HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request is logged once answered, with its body and time (_answer)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request http.server could not parse (no request line, a bad header), answered
        in JSON as every other error is, not in the standard library's HTML."""
        status = HTTPStatus(code)
        text = message or status.phrase
        self.log(f"{self.requestline or '(no request line)'} -> {status.value} {text}")
        self.close_connection = True
        self._send(status, {"error": text})

    def finish(self) -> None:
        if self._unread:
            self._linger()
        super().finish()

    def _linger(self) -> None:
        """Let the client finish sending the body left unread before the close (LINGER)."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)  # the answer is whole: the client reads it
            deadline = time.monotonic() + LINGER
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(64 * 1024):
                    return  # the client has sent all and closed
        except OSError:  # gone already, or the time is up: close as it is
            return

    def _answer(self, method: str) -> None:
        arrived = time.monotonic()
        body: object = None
        allow: tuple[str, ...] = ()
        try:
            body = self._body()
            status, payload = HTTPStatus.OK, self._route(method, body, arrived)
        except _BadRequest as error:
            status, payload, allow = error.status, {"error": str(error)}, error.allow
        except KeyError as error:
            status, payload = HTTPStatus.NOT_FOUND, {"error": str(error.args[0])}
        except ValueError as error:
            status, payload = HTTPStatus.BAD_REQUEST, {"error": str(error)}
        except PortBusyError as error:
            status, payload = HTTPStatus.CONFLICT, {"error": str(error)}
        except RunError as error:
            status, payload = HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(error)}
        # Logged before it is answered: whoever has the answer finds the request logged.
        shown = "" if body is None else " " + json.dumps(body)
        t = (arrived - self.servers.t0) / self.servers.time_scale  # the log's clock
        self.log(f"{t:.6f}  {method} {self.path}{shown} -> {status.value}"
                 + (f" {payload['error']}" if "error" in payload else ""))
        self._send(status, payload, allow, head=method == "HEAD")

    def _send(self, status: HTTPStatus, payload: dict[str, Any], allow: tuple[str, ...] = (), *,
              head: bool = False) -> None:
        data = (json.dumps(payload) + "\n").encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if allow:
                self.send_header("Allow", ", ".join(allow))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:  # a HEAD answer has the headers alone
                self.wfile.write(data)
        except OSError:  # the client left before its answer: nothing to tell it
            self.close_connection = True

    def _body(self) -> object:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = self._unread = True  # its chunks are not read
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, "
                                                          "not in chunks")
        given = (self.headers.get("Content-Length") or "0").strip()
        if not given.isdigit():
            # Where its body ends cannot be told, so neither can where the next request starts.
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"Content-Length must be a whole number of bytes, "
                                                      f"not {given!r}")
        length = int(given)
        if length > MAX_BODY:
            self.close_connection = self._unread = True  # what is left of the body is not read
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
        if not length:
            return None
        raw = self.rfile.read(length)
        if len(raw) < length:  # the client stopped sending (or hung up) before its whole body
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"the body ended after {len(raw)} of the "
                                                      f"{length} bytes its Content-Length gives")
        try:
            return json.loads(raw, object_pairs_hook=_once_each)
        except _DuplicateKey as error:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, str(error)) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}") from None

    def _route(self, method: str, body: object, arrived: float) -> dict[str, Any]:
        parts = [urllib.parse.unquote(part) for part in self.path.split("?", 1)[0].split("/") if part]
        if parts == ["restore"]:
            _allow(method, "POST")
            if body is not None and body != {}:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "restore takes no body")
            t = self.servers.restore_all()
            names = [state["name"] for state in self.servers.states()]
            return {**self._done(None, t, arrived), "servers": names}
        if not parts or parts[0] != "servers" or len(parts) > 3:
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"no such path {self.path!r}: the API is under /servers "
                                                      f"(and POST /restore)")
        servers = self.servers
        if len(parts) == 1:
            _allow(method, "GET")
            return {"servers": servers.states()}
        name = parts[1]
        if len(parts) == 2:
            _allow(method, "GET", "PATCH")
            if method == "GET":
                return _one(servers.states(), name)
            if not isinstance(body, dict):
                raise _BadRequest(HTTPStatus.BAD_REQUEST, 'PATCH takes a JSON object of condition keys, '
                                                          'like {"delay": "500ms"}')
            return self._done(name, servers.set(name, **body), arrived)
        action = parts[2]
        if action not in ("down", "up", "reset", "restore"):
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"no action {action!r}: down, up, reset or restore")
        _allow(method, "POST")
        if action == "down":
            if body is not None and not (isinstance(body, dict) and set(body) <= {"reset"}
                                         and isinstance(body.get("reset", False), bool)):
                raise _BadRequest(HTTPStatus.BAD_REQUEST, 'down takes no body, or {"reset": true}')
            reset = isinstance(body, dict) and body.get("reset") is True
            t, count = servers.take_down(name, reset=reset)
            return {**self._done(name, t, arrived), **({"reset": count} if reset else {})}
        if body is not None and body != {}:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"{action} takes no body")
        if action == "up":
            return self._done(name, servers.up(name), arrived)
        if action == "restore":
            return self._done(name, servers.restore(name), arrived)
        t, count = servers.take_reset(name)
        return {**self._done(name, t, arrived), "reset": count}

    def _done(self, name: str | None, t: float, arrived: float) -> dict[str, Any]:
        """The answer to a change that took effect at ``t`` (scenario seconds, as the log has
        it): also in wall seconds, and how long after the request arrived (wall)."""
        wall = t * self.servers.time_scale
        who = {} if name is None else {"server": name}
        return {**who, "t": t, "wall": wall, "applied_in": self.servers.t0 + wall - arrived}


class _DuplicateKey(Exception):
    """A JSON object gives a key twice: which value was meant cannot be told."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's keys, each given once (json.loads would keep the last silently)."""
    taken: dict[str, Any] = {}
    for key, value in pairs:
        if key in taken:
            raise _DuplicateKey(f"the key {key!r} is given twice: give each key once")
        taken[key] = value
    return taken


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here: "
                                                         f"{' or '.join(allowed)}", allowed)


def _one(states: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for state in states:
        if state["name"] == name:
            return state
    raise KeyError(f"no server {name!r}; the servers are: {', '.join(state['name'] for state in states)}")


__all__ = ["ControlServer", "Servers"]
