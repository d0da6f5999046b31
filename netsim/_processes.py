"""The two child processes of a run: one for all servers, one for the client model.

Servers live apart from the client so that a busy client cannot delay a server's
schedule; the client lives apart from the runner so that a hung client can be stopped
without leaving anything behind. Both are forked, which is quick and needs nothing
pickled but the messages, and both ignore SIGINT: Ctrl-C reaches the runner, which
stops them in order. The messages on their pipes are the classes of ``netsim.events``.

A child never outlives its runner, whatever ends the runner (SIGKILL included): the
kernel sends it SIGKILL when the runner dies (``PR_SET_PDEATHSIG``, on Linux), and the
servers also stop when their pipe reaches EOF, which it does because the child closes
the runner's end that a fork hands it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import math
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection

from netsim._errors import PortBusyError, ServerStartError
from netsim._libc import die_with, take_name
from netsim._sender import LoopSender
from netsim.clients import ClientModel, ModelLimitError, Recorder, Target
from netsim.engine import (
    Controls,
    Listener,
    ServerPlan,
    ask_for_priority,
    left_realtime,
    new_event_loop,
    open_listeners,
    serve,
)
from netsim.events import (
    BringUp,
    BytesReceived,
    ChangeConditions,
    ChunkSent,
    ClientEvent,
    ClientFinished,
    ClientMessage,
    ClientStarted,
    ConnEnded,
    ControlDone,
    ControlMessage,
    Crashed,
    EventBatch,
    Finished,
    Flush,
    Flushed,
    LatenessBatch,
    LimitReached,
    Listening,
    Outbox,
    ReportStates,
    ResetConnections,
    ServerMessage,
    StartFailed,
    Stop,
    Stopped,
    TakeDown,
)

_CONTROL = (ChangeConditions, TakeDown, BringUp, ResetConnections, ReportStates)

_fork = multiprocessing.get_context("fork")
# A forked child shares the runner's pages, pydantic's among them, and counts them in
# its resident memory; at scale the servers start in a fresh interpreter
# (``netsim._fresh_server``) that never imports them, nor ssl (about 100 ms more to
# start, 30 MB less to hold). It is started with
# subprocess, not multiprocessing's "spawn", which would import the caller's __main__
# again: a script without a main guard would run twice, and stdin cannot be imported.
FRESH_SERVERS_FROM = 1000  # connections in a run

# Server events travel to the runner in batches at most this far apart.
FLUSH_INTERVAL = 0.05  # seconds
# Asked to stop, the servers first let a proxy connection whose client has left finish
# passing the end on (its upstream's answer, the close), for this long at most: a client
# that closed just before the stop did not leave a connection open.
WIND_DOWN = 0.5  # seconds

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

    def receive(self) -> ServerMessage | ClientMessage | None:
        """The next message, or None once the child has closed its end."""
        try:
            message: ServerMessage | ClientMessage = self.conn.recv()
        except (EOFError, OSError):
            return None
        return message

    def ending(self, wait: float) -> tuple[int | None, str | None]:
        """How a child that closed its pipe ended, once reaped (within ``wait`` seconds: its
        pipe closes a moment before it can be): its exit code (None if not reaped yet), and
        the name of the signal that killed it (``SIGKILL``; None if it exited)."""
        self.process.join(wait)
        code = self.process.exitcode
        if code is None or code >= 0:
            return code, None
        try:
            return code, signal.Signals(-code).name
        except ValueError:
            return code, f"signal {-code}"

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
    ready: float  # when the servers were ready, in seconds since the run began
    _sending: threading.Lock

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
        child = cls.spawn(plans, t0, detail=detail, fresh=fresh)
        child.listening(START_TIMEOUT)
        return child

    @classmethod
    def spawn(cls, plans: Sequence[ServerPlan], t0: float, *, detail: bool = True,
              fresh: bool = False) -> ServerProcess:
        """Start the process, as ``start`` does, without waiting for its servers to listen:
        ``listening()`` does, once its pipe is readable (an event loop can wait for that)."""
        process: multiprocessing.process.BaseProcess | _Interpreter
        if fresh:
            ours_sock, theirs_sock = socket.socketpair()
            # Started with Ctrl-C held (a child inherits the mask), so that it does not land
            # in the new interpreter's imports as a traceback: it ignores it, then lets go.
            with _signals_held():
                popen = subprocess.Popen(
                    [sys.executable, "-m", "netsim._fresh_server", str(theirs_sock.fileno()),
                     str(os.getpid())],
                    pass_fds=[theirs_sock.fileno()])
            theirs_sock.close()
            ours = Connection(ours_sock.detach())
            ours.send((list(plans), t0, detail))
            process = _Interpreter(popen)
        else:
            ours, theirs = _fork.Pipe(duplex=True)
            process = _fork.Process(target=_server_main,
                                    args=(list(plans), t0, theirs, detail, ours.fileno(), os.getpid()),
                                    name="netsim-servers", daemon=True)
            with _signals_held():
                process.start()
            theirs.close()
        child = cls(process, ours)
        child._sending = threading.Lock()
        return child

    def listening(self, timeout: float) -> None:
        """Wait ``timeout`` seconds at most for the servers to listen; then the addresses are
        known. Raises PortBusyError or ServerStartError (the process is closed then)."""
        try:
            if not self.conn.poll(timeout):
                raise ServerStartError(f"the servers did not start within {START_TIMEOUT:g}s")
            message = self.receive()
            if message is None:
                raise ServerStartError("the server process ended before it listened")
            if isinstance(message, StartFailed):
                raise (PortBusyError if message.port_busy else ServerStartError)(message.message)
            assert isinstance(message, Listening), message
            self.addresses = message.addresses
            self.ready = message.ready
        except BaseException:
            self.close()
            raise

    def request_stop(self) -> None:
        self.send(Stop())

    def request_flush(self) -> None:
        """Ask for what the servers hold; ``Flushed`` comes after it."""
        self.send(Flush())

    def send(self, message: Stop | Flush | ControlMessage) -> None:
        """Send a message to the servers, from any thread (live control sends from several);
        a process that has gone is not an error here: its end is noticed where it is read."""
        with self._sending, contextlib.suppress(OSError):
            self.conn.send(message)


class ClientProcess(ChildProcess):
    """One run of a client model against its targets."""

    @classmethod
    def start(cls, model: ClientModel, label: str, targets: Sequence[Target], t0: float, *,
              detail: bool = True) -> ClientProcess:
        """Fork and run the model; with ``detail``, every receive is an event, else only the
        first of each connection (what ttfb needs)."""
        ours, theirs = _fork.Pipe(duplex=False)
        process = _fork.Process(target=_client_main,
                                args=(model, label, list(targets), t0, theirs, detail, ours.fileno(),
                                      os.getpid()),
                                name=f"netsim-client-{label}", daemon=True)
        with _signals_held():
            process.start()
        theirs.close()
        return cls(process, ours)


_STOPPING = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while a child is forked; they arrive once it is done.

    Landing in the handlers that run around a fork (logging's, for one), a
    KeyboardInterrupt is printed as "Exception ignored" and lost: the runner would go
    on as if nothing happened, or a half-made child would die with a traceback. The
    child starts with them held too, and lets them through once it ignores Ctrl-C.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _settle_child(runners_end: int | None, runner: int, name: str) -> None:
    """What every child does first: take its name, die with the runner, leave Ctrl-C to it,
    spare the collector.

    The name (at most 15 bytes, Linux) is what top, ps and the kernel's traces show for the
    process, where every process of a run would otherwise be "python".

    A forked child holds a copy of the runner's end of their pipe; closed here, the pipe
    reaches EOF when the runner goes, however it goes. And the kernel is asked to kill the
    child when the runner dies (Linux), in case the child is busy or not reading its pipe.

    A forked child inherits every object of the runner (pydantic's among them, about a
    million). Python's cyclic collector would walk them all in each full collection,
    pausing the process for tens of milliseconds, in the middle of a schedule. Freezing
    them moves them out of its sight; what the child allocates is still collected.
    """
    if runners_end is not None:
        os.close(runners_end)
    take_name(name)
    die_with(runner)
    _ignore_interrupts()
    gc.freeze()
    # asyncio warns on stderr about every write to a connection its client has just
    # dropped; the run reports those connections itself.
    logging.getLogger("asyncio").setLevel(logging.ERROR)


def _ignore_interrupts() -> None:
    # Ctrl-C, and SIGHUP when the terminal closes, go to the whole process group; the runner
    # alone handles them, and stops its children with SIGTERM, which must kill them rather
    # than run its handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)  # held while we were forked


def _server_main(plans: list[ServerPlan], t0: float, conn: Connection, detail: bool,
                 runners_end: int | None, runner: int) -> None:
    _settle_child(runners_end, runner, "netsim-server")
    ask_for_priority()
    try:
        listeners = open_listeners(plans)
    except (PortBusyError, ServerStartError) as error:
        _send(conn, StartFailed(isinstance(error, PortBusyError), str(error)))
        return
    with asyncio.Runner(loop_factory=functools.partial(new_event_loop, collect_in_gaps=True)) as runner_:
        runner_.run(_serve_until_stopped(listeners, t0, conn, detail))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _send(conn, Stopped(usage.ru_utime + usage.ru_stime, _peak_rss_mb(usage), left_realtime()))


def serve_fresh(channel_fd: int, runner: int) -> int:
    """The servers of a fresh interpreter (``netsim._fresh_server``): their plans come over
    the socket ``channel_fd`` from the runner ``runner``; the exit status."""
    channel = Connection(channel_fd)
    try:
        plans, t0, detail = channel.recv()
    except (EOFError, OSError):  # the runner died before it sent the plans
        return 1
    _server_main(plans, t0, channel, detail, None, runner)
    return 0


def _send(conn: Connection, message: ServerMessage | ClientMessage) -> None:
    """Send to the runner; if it has gone, there is no one to tell, and nothing to print."""
    try:
        conn.send(message)
    except OSError:  # BrokenPipeError, ConnectionResetError: the runner died
        os._exit(1)


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


async def _serve_until_stopped(listeners: Sequence[Listener], t0: float, conn: Connection,
                               detail: bool) -> None:
    loop = asyncio.get_running_loop()
    sender = LoopSender(conn, loop)  # the loop never waits for the runner to read
    # Chunks are most of the events with detail; accounts are most of them without.
    pending = Outbox(ChunkSent)
    lateness = array.array("d")
    accounts = Outbox(ConnEnded)

    def send_held() -> None:
        for outbox in (pending, accounts):
            batch = outbox.take()
            if batch is not None:
                sender.send(batch)
        if lateness:
            sender.send(LatenessBatch(lateness.tobytes()))
            del lateness[:]

    beat: list[asyncio.TimerHandle] = []

    def flush() -> None:
        send_held()
        if not serving.done():
            beat[:] = [loop.call_later(FLUSH_INTERVAL, flush)]  # events and lateness travel on this beat

    controls: list[Controls] = []

    def ready(servers: Controls) -> None:
        # Only now: a client started before the loop serves would wait in the backlog,
        # and that wait (the loop's start, a first import) would count in its time.
        controls.append(servers)
        sender.send(Listening({listener.plan.name: listener.address for listener in listeners},
                              loop.time() - t0))

    serving = asyncio.create_task(serve(listeners, pending.add, t0, lateness=lateness,
                                        detail=detail, accounts=accounts, on_ready=ready))
    beat.append(loop.call_later(FLUSH_INTERVAL, flush))

    winding: list[asyncio.Task[None]] = []  # the stop under way (a task must be held)

    def on_control() -> None:
        # Flush: send what is held. A control request: carry it out, then send the events
        # it made before its answer, so that the change is logged before it is reported
        # done. Stop, or the runner is gone (EOF): stop serving.
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        if isinstance(message, Flush):
            send_held()
            sender.send(Flushed())
            return
        if isinstance(message, _CONTROL):
            answer = _carry_out(message, controls, t0)
            send_held()
            sender.send(answer)
            return
        loop.remove_reader(conn.fileno())
        if message is None:  # the runner is gone: nobody waits for an account
            serving.cancel()
        else:
            winding.append(loop.create_task(wind_down()))

    async def wind_down() -> None:
        deadline = loop.time() + WIND_DOWN
        await asyncio.sleep(0)  # what came with the stop request is read first
        while controls and controls[0].ending() and loop.time() < deadline:
            await asyncio.sleep(0.002)
        serving.cancel()

    loop.add_reader(conn.fileno(), on_control)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        flush()
    finally:
        for handle in beat:
            handle.cancel()  # nothing may be sent once the sender is closed
        sender.close()


def _carry_out(request: ControlMessage, controls: list[Controls], t0: float) -> ServerMessage:
    if not controls:  # the runner waits for Listening before it asks anything
        return ControlDone(request.request, math.nan, "the servers are not ready yet")
    return controls[0].handle(request, t0)


def _client_main(model: ClientModel, label: str, targets: list[Target], t0: float,
                 conn: Connection, detail: bool, runners_end: int, runner: int) -> None:
    _settle_child(runners_end, runner, "netsim-client")
    # The first name lookup of a process loads the resolver's configuration and
    # libraries (about 5 ms); that cost belongs to no client model, so pay it here.
    for host in {target.host for target in targets}:
        with contextlib.suppress(OSError):
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    recorder = Recorder(label, t0, lambda batch: _send(conn, _packed(batch)), every_receive=detail,
                        quiet_flush=True)
    recorder.record(ClientStarted(recorder.now(), label, model.name, len(targets)))
    # A model's own threads: one that dies of an exception is as much a crash as run()
    # raising, though run() returns as if nothing happened (Python only prints it).
    escaped: list[BaseException] = []

    def thread_died(died: threading.ExceptHookArgs) -> None:
        if died.exc_value is not None and not isinstance(died.exc_value, SystemExit):
            escaped.append(died.exc_value)

    threading.excepthook = thread_died
    try:
        returned = model.run(targets, recorder)  # type: ignore[func-returns-value]
        if inspect.isawaitable(returned):  # an async __call__, which the model's check missed
            if inspect.iscoroutine(returned):
                returned.close()  # never awaited: said here, not in a RuntimeWarning
            raise TypeError("run returned an awaitable, which netsim cannot await: make run a plain "
                            "function that runs the event loop itself, as asyncio.run(...) does")
        if escaped:
            raise escaped[0]
    except ModelLimitError as error:
        recorder.close()
        _send(conn, LimitReached(str(error)))
        return
    except BaseException as error:  # a bug in a model must reach the user, not vanish
        recorder.close()
        where = "".join(traceback.format_exception(error))
        in_thread = " (in a thread of the model)" if escaped and error is escaped[0] else ""
        _send(conn, Crashed(f"{type(error).__name__}: {error}{in_thread}", where))
        return
    recorder.record(ClientFinished(recorder.now(), label))
    recorder.close()
    left = [thread for thread in threading.enumerate()
            if thread is not threading.current_thread() and not thread.daemon and thread.is_alive()]
    _send(conn, Finished(len(left)))
    if left:
        # Python would wait for them before the process could exit, and the runner for the
        # process STOP_TIMEOUT: the model has said it is done by returning.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)


def _packed(events: list[ClientEvent]) -> EventBatch:
    """A client's batch to send, its arrivals packed (with detail, there is one a read)."""
    outbox = Outbox(BytesReceived)
    for event in events:
        outbox.add(event)
    return outbox.take() or EventBatch([])


def wait_for(children: Sequence[ChildProcess], deadline: float) -> list[ChildProcess]:
    """The children with a message (or EOF) waiting, blocking until one has or the deadline."""
    remaining = max(0.0, deadline - time.monotonic())
    ready = multiprocessing.connection.wait([child.conn for child in children], remaining)
    return [child for child in children if child.conn in ready]


__all__ = ["ChildProcess", "ClientProcess", "ServerProcess", "wait_for"]
