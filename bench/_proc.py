"""The benchmark's view of the processes it starts: a server read line by line, killing a
process group, and what /proc says about a process (CPU time, peak memory, the process
that holds a listening socket).

Linux only, as the benchmark is: everything is read from /proc, so that measuring a
server costs it nothing and needs nothing inside it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

STOP_CAP = 15.0  # seconds for a server to report and exit after SIGINT

LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


class Server:
    """A server subprocess in its own process group, its stdout read line by line."""

    def __init__(self, command: list[str], stderr: IO[bytes], *, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                        start_new_session=True, cwd=cwd, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], deadline: float) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("server did not start in time") from None
            if line is None:
                raise RuntimeError(f"server exited ({self.process.wait()}) before listening")
            if match := pattern.match(line):
                return match

    def stop(self) -> bool:
        """SIGINT, then wait for its report; False when it had to be killed."""
        try:
            os.kill(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=STOP_CAP)
        except subprocess.TimeoutExpired:
            kill_group(self.process)
            return False
        finally:
            self._reader.join(timeout=5)
        return True


def kill_group(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _stat_fields(pid: int) -> list[str]:
    # The fields after the command name, which may itself hold spaces and parentheses:
    # [0] is the state (field 3 of proc(5)), [1] the parent, [2] the process group.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def living_parents() -> dict[int, int]:
    """The parent of every process alive now (zombies left out)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat_fields(int(entry.name))
            except OSError:
                continue  # gone meanwhile
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    parents = living_parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Is ``pid`` a process that has not exited (a zombie has)?"""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (fields 14 and 15 of its stat line, in clock ticks)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    """The peak resident memory of ``pid`` in bytes (VmHWM: its own, even after an exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            fields = row.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[2]) == group:
                    members.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return members


def listener_holder(group: int, port: int) -> int | None:
    """The process of process group ``group`` that holds the socket listening on ``port``:
    the one that accepts the connections, and so the one whose CPU and memory are the
    server's. None when no process, or more than one, holds it.

    Found by the socket, not by the shape of the process tree: ``netsim serve`` serves
    from a child interpreter (``python -m netsim._fresh_server FD``) today, and an engine
    that serves otherwise is still measured where its connections are. A parent that
    shares the listener with its child (a fork) gives way to the child.
    """
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    holders = []
    for pid in _group_members(group):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    holders.append(pid)
                    break
            except OSError:
                continue
    if len(holders) > 1 and group in holders:
        holders.remove(group)
    return holders[0] if len(holders) == 1 else None
