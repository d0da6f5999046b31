"""The two child processes of a run: one for all servers, one for the client model.

Servers live apart from the client so that a busy client cannot delay a server's
schedule; the client lives apart from the runner so that a hung client can be stopped
without leaving anything behind. Both are forked, which is quick and needs nothing
pickled but the messages, and both ignore SIGINT: Ctrl-C reaches the runner, which
stops them in order.

Messages from a child are tuples on a pipe:
``("listening", {name: (host, port)})``, ``("events", [event, ...])``,
``("error", kind, message)``, ``("finished",)``, ``("crashed", message, traceback)``,
``("limit", message)``, ``("lateness", array of doubles as bytes)``,
``("stopped", {"cpu_seconds": s, "max_rss_mb": m})``. The runner sends a server process
``"stop"``.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from netsim._errors import PortBusyError, ServerStartError
from netsim._precise import new_event_loop as precise_event_loop
from netsim.clients import ClientModel, Recorder, Target
from netsim.clients._base import ModelLimitError
from netsim.server import Event, ServerPlan, open_listeners, serve

_fork = multiprocessing.get_context("fork")
# A forked child shares the runner's pages, pydantic's among them, and counts them in
# its resident memory; at scale the servers start in a fresh interpreter that never
# imports them (about 100 ms more to start, 25 MB less to hold). It is started with
# subprocess, not multiprocessing's "spawn", which would import the caller's __main__
# again: a script without a main guard would run twice, and stdin cannot be imported.
FRESH_SERVERS_FROM = 1000  # connections in a run

# Server events travel to the runner in batches at most this far apart.
FLUSH_INTERVAL = 0.05  # seconds

# The niceness the server process asks for: ahead of the client, far from real time.
SERVER_NICENESS = -10

# How long a child may take to start, or to stop once asked, before it is killed.
START_TIMEOUT = 10.0  # seconds
STOP_TIMEOUT = 5.0  # seconds


class _Interpreter:
    """A fresh Python process, with the few methods of multiprocessing's Process we use."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()


class ChildProcess:
    """A child process and the runner's end of its pipe."""

    def __init__(self, process: multiprocessing.process.BaseProcess | _Interpreter,
                 conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.process.pid} alive={self.process.is_alive()}>"

    def receive(self) -> tuple[Any, ...] | None:
        """The next message, or None once the child has closed its end."""
        try:
            message: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError):
            return None
        return message

    def close(self, *, grace: float = 0.0) -> None:
        """Let the child exit within ``grace`` seconds, then stop it; safe to call twice."""
        self.process.join(grace)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_TIMEOUT)
            if self.process.is_alive():
                self.process.kill()
        self.process.join()
        self.conn.close()


class ServerProcess(ChildProcess):
    """Every server of one client model's run, on one event loop in one process."""

    addresses: dict[str, tuple[str, int]]

    @classmethod
    def start(cls, plans: Sequence[ServerPlan], t0: float, *, detail: bool = True,
              fresh: bool = False) -> ServerProcess:
        """Fork, bind every server and return once they all accept connections.

        With ``detail``, every event comes back; without, only chunk lateness and the
        servers' own events (the measurements need no more, and at ten thousand
        connections the difference is a core's worth of work). With ``fresh``, the process
        is a new interpreter rather than a fork of this one.

        Raises PortBusyError or ServerStartError when a server cannot listen.
        """
        process: multiprocessing.process.BaseProcess | _Interpreter
        if fresh:
            ours_sock, theirs_sock = socket.socketpair()
            popen = subprocess.Popen(
                [sys.executable, "-m", "netsim._processes", str(theirs_sock.fileno())],
                pass_fds=[theirs_sock.fileno()])
            theirs_sock.close()
            ours = Connection(ours_sock.detach())
            ours.send((list(plans), t0, detail))
            process = _Interpreter(popen)
        else:
            ours, theirs = _fork.Pipe(duplex=True)
            process = _fork.Process(target=_server_main, args=(list(plans), t0, theirs, detail),
                                    name="netsim-servers", daemon=True)
            process.start()
            theirs.close()
        child = cls(process, ours)
        try:
            if not ours.poll(START_TIMEOUT):
                raise ServerStartError(f"the servers did not start within {START_TIMEOUT:g}s")
            message = child.receive()
            if message is None:
                raise ServerStartError("the server process ended before it listened")
            if message[0] == "error":
                error_type = PortBusyError if message[1] == "port_busy" else ServerStartError
                raise error_type(message[2])
            child.addresses = message[1]
        except BaseException:
            child.close()
            raise
        return child

    def request_stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")


class ClientProcess(ChildProcess):
    """One run of a client model against its targets."""

    @classmethod
    def start(cls, model: ClientModel, label: str, targets: Sequence[Target], t0: float, *,
              detail: bool = True) -> ClientProcess:
        """Fork and run the model; with ``detail``, every receive is an event, else only the
        first of each connection (what ttfb needs)."""
        ours, theirs = _fork.Pipe(duplex=False)
        process = _fork.Process(target=_client_main,
                                args=(model, label, list(targets), t0, theirs, detail),
                                name=f"netsim-client-{label}", daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours)


def _settle_child() -> None:
    """What every child does first: leave Ctrl-C to the runner, and spare the collector.

    A forked child inherits every object of the runner (pydantic's among them, about a
    million). Python's cyclic collector would walk them all in each full collection,
    pausing the process for tens of milliseconds, in the middle of a schedule. Freezing
    them moves them out of its sight; what the child allocates is still collected.
    """
    _ignore_interrupts()
    gc.freeze()
    # asyncio warns on stderr about every write to a connection its client has just
    # dropped; the run reports those connections itself.
    logging.getLogger("asyncio").setLevel(logging.ERROR)


def _ask_for_priority() -> None:
    """Let the servers run before the client when both are ready, where that is allowed.

    On two cores shared with a client that reads as fast as it can, the scheduler
    otherwise makes a server wait its turn now and then, and a chunk goes out late.
    Raising priority needs privileges (root, or CAP_SYS_NICE); without them the servers
    keep the normal priority, and the run measures that.
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, SERVER_NICENESS)


def _ignore_interrupts() -> None:
    # Ctrl-C goes to the whole process group; the runner alone handles it, and stops
    # its children with SIGTERM, which must kill them rather than run its handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _server_main(plans: list[ServerPlan], t0: float, conn: Connection, detail: bool) -> None:
    _settle_child()
    _ask_for_priority()
    try:
        listeners = open_listeners(plans)
    except PortBusyError as error:
        conn.send(("error", "port_busy", str(error)))
        return
    except ServerStartError as error:
        conn.send(("error", "start", str(error)))
        return
    with asyncio.Runner(loop_factory=precise_event_loop) as runner:
        runner.run(_serve_until_stopped(listeners, t0, conn, detail))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(("stopped", {"cpu_seconds": usage.ru_utime + usage.ru_stime,
                           "max_rss_mb": _peak_rss_mb(usage)}))


def _peak_rss_mb(usage: resource.struct_rusage) -> float:
    """This process's peak resident memory, in MB.

    Linux keeps ru_maxrss across execve, so a fresh interpreter started from the runner
    would report the runner's peak; VmHWM is this process's own.
    """
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return usage.ru_maxrss / 1024  # KiB, elsewhere


async def _serve_until_stopped(listeners: Sequence[Any], t0: float, conn: Connection,
                               detail: bool) -> None:
    loop = asyncio.get_running_loop()
    pending: list[Event] = []
    lateness = array.array("d")

    def flush() -> None:
        if pending:
            conn.send(("events", pending.copy()))
            pending.clear()
        if lateness:
            conn.send(("lateness", lateness.tobytes()))
            del lateness[:]
        if not serving.done():
            loop.call_later(FLUSH_INTERVAL, flush)  # events and lateness travel on this beat

    def ready() -> None:
        # Only now: a client started before the loop serves would wait in the backlog,
        # and that wait (the loop's start, a first import) would count in its time.
        conn.send(("listening", {listener.plan.name: listener.address for listener in listeners}))

    serving = asyncio.create_task(serve(listeners, pending.append, t0, lateness=lateness,
                                        detail=detail, on_ready=ready))
    loop.call_later(FLUSH_INTERVAL, flush)

    def on_control() -> None:
        # "stop", or the runner is gone (EOF): either way, stop serving.
        try:
            conn.recv()
        except (EOFError, OSError):
            pass
        loop.remove_reader(conn.fileno())
        serving.cancel()

    loop.add_reader(conn.fileno(), on_control)
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    flush()


def _client_main(model: ClientModel, label: str, targets: list[Target], t0: float,
                 conn: Connection, detail: bool) -> None:
    _settle_child()
    # The first name lookup of a process loads the resolver's configuration and
    # libraries (about 5 ms); that cost belongs to no client model, so pay it here.
    for host in {target.host for target in targets}:
        with contextlib.suppress(OSError):
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    recorder = Recorder(label, t0, lambda batch: conn.send(("events", batch)), every_receive=detail)
    recorder.emit("client_started", model=model.name, connections=len(targets))
    try:
        model.run(targets, recorder)
    except ModelLimitError as error:
        recorder.flush()
        conn.send(("limit", str(error)))
        return
    except BaseException as error:  # a bug in a model must reach the user, not vanish
        recorder.flush()
        where = "".join(traceback.format_exception(error))
        conn.send(("crashed", f"{type(error).__name__}: {error}", where))
        return
    recorder.emit("client_finished")
    recorder.flush()
    conn.send(("finished",))


def wait_for(children: Sequence[ChildProcess], deadline: float) -> list[ChildProcess]:
    """The children with a message (or EOF) waiting, blocking until one has or the deadline."""
    remaining = max(0.0, deadline - time.monotonic())
    ready = multiprocessing.connection.wait([child.conn for child in children], remaining)
    return [child for child in children if child.conn in ready]


__all__ = ["ChildProcess", "ClientProcess", "ServerProcess", "wait_for"]


if __name__ == "__main__":  # a fresh server process: python -m netsim._processes FD
    _channel = Connection(int(sys.argv[1]))
    _plans, _t0, _detail = _channel.recv()
    _server_main(_plans, _t0, _channel, _detail)
