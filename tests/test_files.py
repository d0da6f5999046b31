"""Output files: regular files replaced atomically, special files and symlinks written as they are."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from netsim._errors import OutputError
from netsim._files import check_writable, open_log, write_output


@contextlib.contextmanager
def reading_fifo(path: Path) -> Iterator[list[bytes]]:
    """A FIFO at ``path`` with a reader thread; what it read is in the yielded list once done."""
    os.mkfifo(path)
    received: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as fifo:
            received.append(fifo.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield received
    finally:
        reader.join(timeout=0.5)
        if reader.is_alive():  # nothing opened it for writing: let the reader go
            # Not blocking: should the reader finish meanwhile, a blocking open for writing
            # would wait for a reader for ever (a CI run once did, for 120 s).
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=5)


def test_a_regular_file_is_replaced_whole_and_keeps_its_permissions(tmp_path: Path) -> None:
    """write_output replaces an existing file, leaves no temporary file and keeps its mode."""
    path = tmp_path / "result.json"
    path.write_text("old\n")
    path.chmod(0o640)
    write_output(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["result.json"]


def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path) -> None:
    """A FIFO receives the text, and is still a FIFO afterwards (not a file renamed over it)."""
    path = tmp_path / "pipe"
    with reading_fifo(path) as received:
        write_output(path, "through the pipe\n")
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(path.stat().st_mode)


def test_a_symlink_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    """Writing through a symlink replaces the file it names and leaves the link in place."""
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_output(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"


def test_a_dangling_symlink_creates_the_file_it_names(tmp_path: Path) -> None:
    """A link to a file not yet there makes that file, and stays a link."""
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "later.json")
    write_output(link, "{}\n")
    assert link.is_symlink() and (tmp_path / "later.json").read_text() == "{}\n"


def test_dev_null_is_written_as_a_device(tmp_path: Path) -> None:
    """/dev/null takes the text and stays a character device."""
    # Guard first, on a FIFO of the test's own: the same in-place path must hold, so that a
    # regression fails here rather than by replacing the machine's /dev/null (as root).
    with reading_fifo(tmp_path / "guard"):
        write_output(tmp_path / "guard", "x")
    assert stat.S_ISFIFO((tmp_path / "guard").stat().st_mode)
    write_output("/dev/null", "discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize(("name", "error"), [("missing/result.json", FileNotFoundError),
                                             (".", IsADirectoryError)])
def test_check_writable_refuses_what_cannot_be_written(tmp_path: Path, name: str,
                                                       error: type[OSError]) -> None:
    """A path in a folder that does not exist, or a folder, raises the system's reason."""
    with pytest.raises(error):
        check_writable(tmp_path / name)


def test_a_file_whose_folder_takes_no_new_file_is_refused_saying_so() -> None:
    """A file that is there but cannot be replaced, as its folder takes no new file (/proc),
    is refused with that reason, not the bare "No such file or directory" of the attempt."""
    with pytest.raises(OSError, match=r"its folder /proc takes no new file \(No such file or directory\)"):
        check_writable("/proc/version")


def test_check_writable_writes_nothing(tmp_path: Path) -> None:
    """A new file's folder is checked without leaving a file; an existing one is left as it is."""
    existing = tmp_path / "kept.json"
    existing.write_text("mine\n")
    check_writable(tmp_path / "new.json")
    check_writable(existing)
    check_writable("/dev/null")
    assert sorted(os.listdir(tmp_path)) == ["kept.json"] and existing.read_text() == "mine\n"


def test_a_log_that_cannot_be_written_is_an_output_error() -> None:
    """On a full device the first write raises OutputError naming the flag and the reason."""
    log = open_log("/dev/full", label="--log-json /dev/full")
    log.write("{}\n")  # buffered: the device is reached on flush
    with pytest.raises(OutputError, match=r"cannot write --log-json /dev/full: No space left on device"):
        log.flush()
    log.close()  # what was left is dropped, not raised again


def test_a_log_cut_short_ends_on_its_last_whole_line(tmp_path: Path) -> None:
    """When a line fits only in part, the file is cut back to the line before it."""
    path = tmp_path / "events.jsonl"
    line = '{"event": "chunk_sent", "t": 0.25}\n'
    limit = 2 * len(line) + 10  # two whole lines, and ten bytes of the third
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    log = open_log(path, label="--log-json events.jsonl")
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        for _ in range(2):
            log.write(line)
            log.flush()
        log.write(line)
        with pytest.raises(OutputError, match="File too large"):
            log.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
        log.close()
    assert path.read_text() == 2 * line
