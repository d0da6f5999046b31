"""Writing the files netsim produces: results, baselines, reports and the event log.

A regular file is replaced atomically, through a temporary file and a rename, so that
a reader (or a crash) never sees half of one. Anything else a path can name is written
as it is: ``/dev/null``, a FIFO, a terminal, ``/proc/self/fd/1``. Renaming over one of
those destroys it (run as root, ``--json /dev/null`` once turned /dev/null into a JSON
file). A symlink is followed, so that the file it names is replaced and the link stays.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from netsim._errors import OutputError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def check_writable(path: str | Path) -> None:
    """Raise OSError, with the system's reason, unless ``path`` can be written.

    Nothing is written: a regular file (or a new one) needs a folder that takes the
    temporary file its replacement goes through; a special file needs write permission.
    """
    path = Path(path)
    info = _stat(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory: give a file name", str(path))
    if info is not None and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    if info is not None and not stat.S_ISREG(info.st_mode):
        return
    folder = _folder(_resolved(path))
    if info is None and not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"its folder {folder} does not exist", str(path))
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".netsim-check.", suffix=".tmp")
    except OSError as error:
        if info is None:
            raise
        # The file is there, but its folder takes no new file (the temporary file a replacement
        # goes through): say so, where the bare reason ("No such file or directory") denies it.
        raise OSError(error.errno, f"its folder {folder} takes no new file ({error.strerror})",
                      str(path)) from None
    os.close(fd)
    os.unlink(temporary)


def is_special(path: str | Path) -> bool:
    """Does ``path`` name something other than a regular file (following symlinks)?"""
    info = _stat(Path(path))
    return info is not None and not stat.S_ISREG(info.st_mode)


def write_output(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path``: a regular file atomically, anything else in place.

    A file that was there stays whole until the new one replaces it, and keeps its
    permissions. Raises OSError.
    """
    path = Path(path)
    if is_special(path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    target = _resolved(path)
    previous = _stat(target)
    fd, temporary = tempfile.mkstemp(dir=_folder(target), prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if previous is not None:
            mode = stat.S_IMODE(previous.st_mode)
        else:
            # mkstemp makes the file private (0600); a new result is as readable as any new file.
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def open_log(path: str | Path, *, label: str) -> TextIO:
    """Open ``path`` for an event log written one line at a time (and flushed after each).

    When a write fails (a full disk), the file is cut back to its last whole line, the
    rest of the log is dropped, and the write raises OutputError naming ``label`` (the
    flag and path, as the user gave them). Raises OSError when the file cannot be opened.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    raw = _WholeLines(fd, label)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8")


class _WholeLines(io.RawIOBase):
    """A file descriptor that, should a write fail, keeps only the whole lines before it."""

    def __init__(self, fd: int, label: str) -> None:
        super().__init__()
        self._fd = fd
        self._label = label
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        self._written = 0  # bytes written so far
        self._whole = 0  # bytes up to the end of the last whole line
        self._failed = False

    def __repr__(self) -> str:
        return f"<_WholeLines {self._label} written={self._written} failed={self._failed}>"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data).cast("B")
        if self._failed:
            return len(view)  # the failure was reported once; the rest of the log is dropped
        try:
            count = os.write(self._fd, view)
        except OSError as error:
            self._fail(error)
        end = bytes(view[:count]).rfind(b"\n")
        if end >= 0:
            self._whole = self._written + end + 1
        self._written += count
        return count

    def _fail(self, error: OSError) -> NoReturn:
        self._failed = True
        if self._regular and self._written > self._whole:
            try:
                os.ftruncate(self._fd, self._whole)
            except OSError:
                pass  # the write's own error is the one to report
        raise OutputError(f"cannot write {self._label}: {error.strerror or error}") from None

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _stat(path: Path) -> os.stat_result | None:
    """What ``path`` names, following symlinks; None when nothing is there yet."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _resolved(path: Path) -> Path:
    """The file a regular path stands for: a symlink's target, so that the link survives."""
    return Path(os.path.realpath(path))


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")
