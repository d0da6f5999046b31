"""The command client: the user's own program, run against the servers and judged like the
others.

netsim cannot see inside someone else's program, so this model reports nothing about
its connections: the servers' accounts of what they sent and what the program's
kernel acknowledged measure them (``instrumented=False``). What the model does is run
the program: with the servers' addresses filled into its arguments (``{ports}``,
``{addresses}``, ``{port:NAME}``, ``{host}``; ``NETSIM_ADDRESSES`` in its environment, and
``NETSIM_TIME_SCALE``, by which it may scale waits of its own), in the scenario file's
folder, in a process group of its own, so that at the client's ``timeout`` the whole
group (the program's own children too) is ended. What it leaves running when it exits
is ended then, even a process that left its group (``setsid``, a daemon's double fork):
this process adopts its orphans. Its output is logged line by line and kept, up to
``OUTPUT_LIMIT`` a stream, with its exit code; with ``output: poems``, the whole of its
standard output is searched for each poem as it streams by, in bounded memory.

``elapsed`` runs from its start to its exit. Whether its connections overlap is the
scenario's to say (``concurrent``, true by default): the ideal needs to know.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Literal

from netsim import _placeholders
from netsim._libc import adopt_orphans, children, die_with, on_parent_death
from netsim.clients._base import ClientModel, ClientOptions, Recorder, Target
from netsim.events import ProgramExited, ProgramOutput

# What is kept of each of the program's streams for the result: all of it up to this, else
# its first and its last half of this (where a crash's traceback stands), a note between.
OUTPUT_LIMIT = 64 * 1024  # 64 KiB
# What of each stream goes to the log, a line at a time, and the longest line it takes: a
# program that prints without end must not fill the runner's memory.
LOG_LIMIT = 1024 * 1024  # 1 MiB
# The kept end of a long stream starts at a line's start when one begins this near its
# own start: a long last line keeps its bytes rather than a tidy first line.
LINE_START_NEAR = 1024  # 1 KiB
LOG_LINES = 10_000  # and no more lines: an event each, however short
LINE_LIMIT = 4 * 1024  # 4 KiB
READ_SIZE = 64 * 1024  # 64 KiB
# How many ways of giving ``output: lines`` its poems' lines are followed at once, at
# most: only lines that several poems share make more than one, and this bounds a
# program that prints such lines without end.
MAX_WAYS = 256
# A terminal's escape sequences (a colour, a reset: CSI, and ESC with one byte), which a
# program may print around a poem's lines: ``output:`` reads its output without them.
_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
# One that the stream's next read may finish, and the longest held back for it.
_OPEN_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*)?\Z")
ESCAPE_LIMIT = 64  # bytes
# How long the end of a program's output may take after it exited and what it left
# running was ended (a process netsim could not end may hold it open for good).
OUTPUT_GRACE = 1.0  # seconds
# After the program is asked to stop (SIGTERM to its group), how long before SIGKILL.
KILL_GRACE = 1.0  # seconds
# The exit codes of a program that could not be started, as shells report them, and how
# the stderr netsim gives it begins.
NOT_STARTED = 127  # not found
NOT_RUNNABLE = 126  # found, but not to be run: no permission, not a program
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
            # when the runner dies (see below): the program's whole group goes with it, and
            # what of it had left the group, which this process adopts only once the program
            # has died: so until no child is left (_end_orphans reaps by pid, never through
            # Popen.wait, which this may have interrupted holding the lock a second would
            # block on).
            for program in started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(program.pid, signal.SIGKILL)
            _end_orphans()
            os._exit(128 + signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, stopped)
        # This process dies with its runner by SIGKILL, and the program with this process;
        # but what the program started (`sh -c 'a & b'`, make, npm) would be left behind.
        # While the program runs, the runner's death comes as SIGTERM instead, whose handler
        # ends the program's whole process group first.
        on_parent_death(signal.SIGTERM)
        adopt_orphans()
        try:
            # Held from the fork until the handler knows the program, which it must end.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                program = subprocess.Popen(
                    argv, cwd=self.options.folder, env=environment, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                    preexec_fn=functools.partial(_in_the_program, os.getpid()))
            except OSError as error:
                code = NOT_STARTED if isinstance(error, FileNotFoundError) else NOT_RUNNABLE
                recorder.record(ProgramExited(recorder.now(), recorder.client, argv, code, "",
                                              f"{CANNOT_RUN} {argv[0]!r}: {error.strerror or error}",
                                              started=False))
                return
            else:
                started.append(program)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            wanted = collections.Counter(target.server for target in own)
            search = (None if self.options.output is None else
                      _LineSearch(self.options.poems, wanted) if self.options.output == "lines" else
                      _PoemSearch(self.options.poems, wanted))
            readers = [_Reader(program.stdout, "stdout", recorder, search),
                       _Reader(program.stderr, "stderr", recorder)]
            timed_out, stopping = False, None
            try:
                program.wait(self.timeout)
            except subprocess.TimeoutExpired:
                timed_out, stopping = True, recorder.now()
                _end_group(program)
            finally:
                # What it left running is this process's now (adopt_orphans): count it before
                # its group goes, then end whatever of it left the group as well.
                left = {pid for pid in children() if not _dead(pid)}
                _end_group(program, at_once=True)
                started.clear()  # reaped: its pid may be another process's before long
            exited = recorder.now()
            left |= _end_orphans()
        finally:
            on_parent_death(signal.SIGKILL)
            signal.signal(signal.SIGTERM, previous)
        for reader in readers:
            reader.join(OUTPUT_GRACE)
        assert program.returncode is not None
        recorder.record(ProgramExited(exited, recorder.client, argv, program.returncode,
                                      readers[0].kept(), readers[1].kept(), timed_out, stopping, len(left),
                                      None if search is None else sorted(search.found)))


class _Reader(threading.Thread):
    """Passes one stream of the program on: to the log a line at a time (LOG_LIMIT and
    LOG_LINES of it), to the result (OUTPUT_LIMIT bytes of it), and to a ``search`` for
    the poems (``output:``), which sees the whole stream."""

    def __init__(self, stream: IO[bytes] | None, name: Literal["stdout", "stderr"],
                 recorder: Recorder, search: _PoemSearch | _LineSearch | None = None) -> None:
        super().__init__(name=f"netsim-{name}", daemon=True)
        assert stream is not None
        self._stream = stream
        self._name: Literal["stdout", "stderr"] = name
        self._recorder = recorder
        self.search = search
        self._kept = bytearray()  # its beginning, OUTPUT_LIMIT at most
        self._last = b""  # its last OUTPUT_LIMIT // 2 bytes
        self._length = 0
        self._lines = _Lines(LINE_LIMIT)
        self._logged = self._logged_lines = 0
        self.start()

    def run(self) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        with self._stream:
            while data := read(READ_SIZE):
                self._kept += data[:max(0, OUTPUT_LIMIT - len(self._kept))]
                self._last = (self._last + data)[-(OUTPUT_LIMIT // 2):]
                self._length += len(data)
                if self.search is not None:
                    self.search.feed(data)
                for line in self._lines.feed(data):
                    self._log(line)
        if (rest := self._lines.rest()) is not None:
            self._log(rest)
        if self.search is not None:
            self.search.end()

    def _log(self, raw: bytes) -> None:
        if self._logged < LOG_LIMIT and self._logged_lines < LOG_LINES:
            self._logged += len(raw) + 1
            self._logged_lines += 1
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if self._logged >= LOG_LIMIT or self._logged_lines == LOG_LINES:
                line += f" [netsim: the log takes no more of its {self._name}]"
            self._recorder.record(ProgramOutput(self._recorder.now(), self._recorder.client,
                                                self._name, line))

    def kept(self) -> str:
        """The stream, or, past OUTPUT_LIMIT, its first and its last OUTPUT_LIMIT // 2 bytes (the
        last from a line's start, where one begins within LINE_START_NEAR of theirs)."""
        if self._length <= OUTPUT_LIMIT:
            return self._kept.decode("utf-8", "replace")
        head = self._kept[:OUTPUT_LIMIT // 2]
        tail = self._last
        if (newline := tail.find(b"\n", 0, min(LINE_START_NEAR, len(tail) - 1))) != -1:
            tail = tail[newline + 1:]
        left_out = self._length - len(head) - len(tail)
        return (f"{head.decode('utf-8', 'replace')}\n[netsim: {left_out:,} bytes of its {self._name} "
                f"left out here]\n{tail.decode('utf-8', 'replace')}")


class _Lines:
    """A stream fed a read at a time, cut into its lines (without their newline), each kept to
    ``limit`` bytes: what follows the last newline waits for the next read, or ``rest``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._line = bytearray()  # the line being read

    def feed(self, data: bytes) -> list[bytes]:
        lines, start = [], 0
        while (end := data.find(b"\n", start)) != -1:
            self._take(data[start:end])
            lines.append(bytes(self._line))
            self._line.clear()
            start = end + 1
        self._take(data[start:])
        return lines

    def rest(self) -> bytes | None:
        """The last line, if the stream did not end with a newline."""
        return bytes(self._line) if self._line else None

    def _take(self, piece: bytes) -> None:
        self._line += piece[:max(0, self._limit - len(self._line))]


class _PoemSearch:
    """``output: poems``: each connection's poem in one piece, anywhere in a stream fed to it a
    read at a time, one occurrence a connection and no two overlapping: three servers that
    send one poem want it printed three times, and a poem found inside another's printing
    does not count for both. The stream is read as a scanner reads, from the left, taking
    at each place the longest poem still wanted; it holds no more of it than the longest
    poem. ``found``: a server's name for each poem found."""

    def __init__(self, poems: Mapping[str, tuple[str, ...]], wanted: Mapping[str, int]) -> None:
        self._wanted = {server: count for server, count in wanted.items() if server in poems}
        self._variants = {server: len(texts) for server, texts in poems.items()}
        self._servers_of: dict[bytes, list[str]] = {}  # a text: the servers it is a poem of
        for server, texts in poems.items():
            for text in texts:
                self._servers_of.setdefault(_plain(text.encode()), []).append(server)
        self.found: list[str] = []
        self._longest = max(map(len, self._servers_of), default=1)
        self._tail = b""  # the stream from the first place not yet read
        self._plain = _Plain()

    def feed(self, data: bytes) -> None:
        self._scan(self._tail + self._plain.feed(data), final=False)

    def end(self) -> None:
        self._scan(self._tail + self._plain.end(), final=True)

    def _scan(self, window: bytes, *, final: bool) -> None:
        # A poem may begin before `limit`: any that begins there is in the window whole.
        limit = len(window) if final else len(window) - self._longest + 1
        at = 0
        while texts := [text for text, servers in self._servers_of.items()
                        if any(self._wanted.get(server) for server in servers)]:
            best: tuple[int, bytes] | None = None
            for text in texts:
                place = window.find(text, at)
                if place != -1 and place < limit and (
                        best is None or place < best[0] or (place == best[0] and len(text) > len(best[1]))):
                    best = (place, text)
            if best is None:
                break
            place, text = best
            # Of the servers that send it, one that has no other way of being printed first.
            server = min((server for server in self._servers_of[text] if self._wanted.get(server)),
                         key=self._variants.__getitem__)
            self._wanted[server] -= 1
            self.found.append(server)
            at = place + len(text)
        else:
            self._tail = b""  # every poem found: the rest need not be read
            return
        self._tail = window[max(at, limit, 0):]


class _LineSearch:
    """``output: lines``: each connection's poem line by line, in order, each line on an
    output line of its own (at its end, after a label), other lines between them. Labels
    are not read, so a line that two poems share could be either's: every way of taking the
    lines is followed, as far as each goes (one that is at least as far along in every
    poem stands for another), and ``found`` names a server for each poem whole in the best.
    """

    def __init__(self, poems: Mapping[str, tuple[str, ...]], wanted: Mapping[str, int]) -> None:
        lines = {server: tuple(line.strip() for line in _plain(texts[0].encode()).splitlines()
                               if line.strip())
                 for server, texts in poems.items() if texts}
        # One sequence of lines a connection.
        self._servers = [server for server, count in wanted.items() if server in lines for _ in range(count)]
        self._poems = [lines[server] for server in self._servers]
        # How far along each poem the ways of reading it have come (none dominated by another).
        self._ways: set[tuple[int, ...]] = {tuple(0 for _ in self._poems)}
        self._complete = not self._poems  # a way has every poem whole: the rest need not be read
        self._lines = _Lines(READ_SIZE)

    @property
    def found(self) -> list[str]:
        best = max(self._ways, key=self._whole)
        return [server for server, done, poem in zip(self._servers, best, self._poems, strict=True)
                if done == len(poem)]

    def _whole(self, way: tuple[int, ...]) -> tuple[int, int]:
        return (sum(done == len(poem) for done, poem in zip(way, self._poems, strict=True)), sum(way))

    def feed(self, data: bytes) -> None:
        for line in self._lines.feed(data):
            self._match(line)

    def end(self) -> None:
        if (rest := self._lines.rest()) is not None:
            self._match(rest)

    def _match(self, raw: bytes) -> None:
        line = _plain(raw).strip()
        if not line or self._complete:
            return
        ways = set(self._ways)  # each way may also leave the line to no poem
        for way in self._ways:
            # Two connections with one poem, as far along in it, are one choice, not two.
            taken: set[tuple[tuple[bytes, ...], int]] = set()
            for index, (done, poem) in enumerate(zip(way, self._poems, strict=True)):
                if done < len(poem) and (poem, done) not in taken and _ends_with_line(line, poem[done]):
                    taken.add((poem, done))
                    ways.add((*way[:index], done + 1, *way[index + 1:]))
        if len(ways) > len(self._ways):
            self._ways = _farthest(ways)
            self._complete = any(self._whole(way)[0] == len(self._poems) for way in self._ways)


def holds_poem(text: str, server: str, poems: Mapping[str, tuple[str, ...]], output: str) -> bool:
    """Does ``text`` (a program's stream as the result keeps it) hold the poem of ``server``
    (its texts in ``poems``) as ``output: poems`` or ``output: lines`` reads one?"""
    search = (_LineSearch if output == "lines" else _PoemSearch)({server: poems[server]}, {server: 1})
    search.feed(text.encode())
    search.end()
    return bool(search.found)


class _Plain:
    """A stream fed a read at a time, without its escape sequences (``_ESCAPE``): one cut
    between two reads is held back for the next, ESCAPE_LIMIT bytes at most."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        data = _plain(self._held + data)
        started = _OPEN_ESCAPE.search(data, max(0, len(data) - ESCAPE_LIMIT))
        self._held = b"" if started is None else data[started.start():]
        return data if started is None else data[:started.start()]

    def end(self) -> bytes:
        held, self._held = self._held, b""
        return held


def _plain(text: bytes) -> bytes:
    """``text`` without its terminal escape sequences."""
    return _ESCAPE.sub(b"", text) if b"\x1b" in text else text


def _farthest(ways: set[tuple[int, ...]]) -> set[tuple[int, ...]]:
    """The ways no other is at least as far along in every poem as, MAX_WAYS at most."""
    ordered = sorted(ways, key=sum, reverse=True)
    kept: list[tuple[int, ...]] = []
    for way in ordered:
        if not any(all(mine >= theirs for mine, theirs in zip(other, way, strict=True)) for other in kept):
            kept.append(way)
            if len(kept) == MAX_WAYS:
                break
    return set(kept)


def _ends_with_line(line: bytes, expected: bytes) -> bool:
    """Is ``line`` the poem's line ``expected``, alone or after a label and a separator?"""
    if not line.endswith(expected):
        return False
    before = line[:len(line) - len(expected)]
    return not before or not before[-1:].isalnum()


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


def _end(pids: Sequence[int]) -> None:
    """SIGKILL each process and its process group (never this process's own group)."""
    own = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            if group != own:
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _end_orphans() -> set[int]:
    """End what the program left running outside its group, now this process's children
    (``adopt_orphans``), until none is left: each one ended may leave children of its own
    to adopt. Which there were."""
    ended: set[int] = set()
    deadline = time.monotonic() + KILL_GRACE
    while (found := children()) and time.monotonic() < deadline:
        running = [pid for pid in found if pid not in ended and not _dead(pid)]
        _end(running)
        ended.update(running)
        for pid in found:  # reap the dead; one that could not be ended is left to init
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.001)
    return ended


def _dead(pid: int) -> bool:
    """Has the process exited (a zombie, not yet reaped), or gone?"""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _in_the_program(client: int) -> None:
    """In the program, before it starts: let SIGTERM through again (held around its fork),
    let SIGHUP end it as it would (the client process ignores it: the runner handles it),
    and have the kernel kill it when the client process dies, or at once if it has."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    die_with(client)


def _not_configured(_targets: Sequence[Target], _recorder: Recorder) -> None:
    raise RuntimeError("the command model runs a program a scenario names: use it through a "
                       "scenario's `model: command` with `run:`")


MODEL = ClientModel(
    name="command",
    summary="your own program (run: [...]), measured from the servers' side; its concurrent: says which",
    concurrent=True,
    run=_not_configured,
    instrumented=False,
    configure=configure,
)
