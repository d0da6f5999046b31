"""The command client: the user's own program, run against the servers and judged like the
others.

netsim cannot see inside someone else's program, so this model reports nothing about
its connections: the servers' accounts of what they sent and what the program's
kernel acknowledged measure them (``instrumented=False``). What the model does is run
the program: with the servers' addresses filled into its arguments (``{ports}``,
``{addresses}``, ``{port:NAME}``, ``{host}``; ``NETSIM_ADDRESSES`` in its environment, and
``NETSIM_TIME_SCALE``, by which it may scale waits of its own), in the scenario file's
folder, in a process group of its own, so that at the client's ``timeout`` the whole
group (the program's own children too) is ended. Its output is logged line by line and
kept, up to ``OUTPUT_LIMIT`` a stream, with its exit code.

``elapsed`` runs from its start to its exit. Whether its connections overlap is the
scenario's to say (``concurrent``, true by default): the ideal needs to know.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, Literal

from netsim import _placeholders
from netsim._libc import die_with, on_parent_death
from netsim.clients._base import ClientModel, ClientOptions, Recorder, Target
from netsim.events import ProgramExited, ProgramOutput

# What is kept of each of the program's streams for the result; the log has every line.
OUTPUT_LIMIT = 64 * 1024  # 64 KiB
# After the program is asked to stop (SIGTERM to its group), how long before SIGKILL.
KILL_GRACE = 1.0  # seconds
# The exit code of a program that could not be started, as shells report it, and how
# the stderr netsim gives it begins.
NOT_STARTED = 127
CANNOT_RUN = "netsim: cannot run"


def configure(options: ClientOptions) -> ClientModel:
    """The command model for one client entry: its program, how it overlaps, its timeout."""
    assert options.run is not None, "the scenario requires `run` with `model: command`"
    run = _Program(tuple(options.run), options, options.timeout)
    return dataclasses.replace(MODEL, concurrent=True if options.concurrent is None else options.concurrent,
                               run=run, configure=None)


@dataclasses.dataclass(frozen=True)
class _Program:
    """A client model's ``run``: start the program, pass its output on, wait for its exit."""

    argv: tuple[str, ...]
    options: ClientOptions
    timeout: float | None

    def __call__(self, targets: Sequence[Target], recorder: Recorder) -> None:
        own = targets[:self.options.cycle or len(targets)]
        addresses = [(target.server, target.host, target.port) for target in own]
        argv = _placeholders.expand(self.argv, addresses)
        environment = {**os.environ, "NETSIM_ADDRESSES": " ".join(
            _placeholders.expand(["{addresses}"], addresses)),
            "NETSIM_TIME_SCALE": f"{self.options.time_scale:g}"}
        started: list[subprocess.Popen[bytes]] = []

        def stopped(_signal: int, _frame: object) -> None:
            # The runner stops a client process with SIGTERM, and the kernel sends it one
            # when the runner dies (see below): the program's whole group goes with it.
            # No wait for the program here: this may have interrupted one, which holds the
            # lock a second wait would block on. Once this process is gone, init reaps them.
            for program in started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(program.pid, signal.SIGKILL)
            os._exit(128 + signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, stopped)
        # This process dies with its runner by SIGKILL, and the program with this process;
        # but what the program started (`sh -c 'a & b'`, make, npm) would be left behind.
        # While the program runs, the runner's death comes as SIGTERM instead, whose handler
        # ends the program's whole process group first.
        on_parent_death(signal.SIGTERM)
        try:
            # Held from the fork until the handler knows the program, which it must end.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                program = subprocess.Popen(
                    argv, cwd=self.options.folder, env=environment, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                    preexec_fn=functools.partial(_in_the_program, os.getpid()))
            except OSError as error:
                recorder.record(ProgramExited(recorder.now(), recorder.client, argv, NOT_STARTED, "",
                                              f"{CANNOT_RUN} {argv[0]!r}: {error.strerror or error}"))
                return
            else:
                started.append(program)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            readers = [_Reader(program.stdout, "stdout", recorder),
                       _Reader(program.stderr, "stderr", recorder)]
            timed_out, stopping = False, None
            try:
                program.wait(self.timeout)
            except subprocess.TimeoutExpired:
                timed_out, stopping = True, recorder.now()
                _end_group(program)
            finally:
                _end_group(program, at_once=True)  # whatever it left running in its group
                started.clear()  # reaped: its pid may be another process's before long
        finally:
            on_parent_death(signal.SIGKILL)
            signal.signal(signal.SIGTERM, previous)
        for reader in readers:
            reader.join()
        assert program.returncode is not None
        recorder.record(ProgramExited(recorder.now(), recorder.client, argv, program.returncode,
                                      readers[0].kept(), readers[1].kept(), timed_out, stopping))


class _Reader(threading.Thread):
    """Passes one stream of the program on to the log, a line at a time, and keeps its start."""

    def __init__(self, stream: IO[bytes] | None, name: Literal["stdout", "stderr"],
                 recorder: Recorder) -> None:
        super().__init__(name=f"netsim-{name}", daemon=True)
        assert stream is not None
        self._stream = stream
        self._name: Literal["stdout", "stderr"] = name
        self._recorder = recorder
        self._kept = bytearray()
        self._cut = False
        self.start()

    def run(self) -> None:
        with self._stream:
            for raw in self._stream:
                if len(self._kept) < OUTPUT_LIMIT:
                    self._kept += raw[:OUTPUT_LIMIT - len(self._kept)]
                    self._cut = self._cut or len(self._kept) == OUTPUT_LIMIT
                else:
                    self._cut = True
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._recorder.record(ProgramOutput(self._recorder.now(), self._recorder.client,
                                                    self._name, line))

    def kept(self) -> str:
        text = self._kept.decode("utf-8", "replace")
        return text + f"\n[netsim: cut at {OUTPUT_LIMIT // 1024} KiB]" if self._cut else text


def _end_group(program: subprocess.Popen[bytes], *, at_once: bool = False) -> None:
    """Stop the program's process group: SIGTERM, then SIGKILL after KILL_GRACE."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(program.pid, signal.SIGKILL if at_once else signal.SIGTERM)
    if not at_once:
        try:
            program.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(program.pid, signal.SIGKILL)
    program.wait()


def _in_the_program(client: int) -> None:
    """In the program, before it starts: let SIGTERM through again (held around its fork),
    and have the kernel kill it when the client process dies, or at once if it has."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    die_with(client)


def _not_configured(_targets: Sequence[Target], _recorder: Recorder) -> None:
    raise RuntimeError("the command model runs a program a scenario names: use it through a "
                       "scenario's `model: command` with `run:`")


MODEL = ClientModel(
    name="command",
    summary="your own program (run: [...]), measured from the servers' side",
    concurrent=True,
    run=_not_configured,
    instrumented=False,
    configure=configure,
)
