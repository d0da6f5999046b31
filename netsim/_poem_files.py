"""Reading a server's ``poem_file``: inside the scenario's folder, a regular file, bounded.

netsim sends a poem file to whoever connects to its server, so the file a scenario
names is as good as published: ``poem_file: /etc/shadow`` under ``netsim serve`` would
hand the file to any client, and the pytest plugin loads every scenario a repository
holds. So, unless the caller allows any path (``--allow-paths``, ``allow_paths=True``):

- the file, its symlinks resolved, lies in the scenario's folder or below it; a symlink
  that leads out counts as out.

And always:

- it is a regular file, which is checked before it is opened: opening a FIFO waits for a
  writer that may never come, and a device such as ``/dev/zero`` never ends;
- it is at most ``max_bytes`` long (``--max-poem-size``): the server holds the poem in
  memory, and so does every client model that checks the bytes it received. It is read
  with that bound too, since some regular files (those of ``/proc``) give no size.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from netsim._units import format_size

DEFAULT_MAX_POEM_BYTES = 10 * 1000**2  # 10MB: ten long novels, or ten seconds at 1MB/s
DEFAULT_MAX_POEM_TEXT = "10MB"

ALLOW_PATHS_HINT = ("move the file into the scenario's folder; or, if you trust this scenario, "
                    "pass --allow-paths (in Python allow_paths=True, in pytest's configuration "
                    "netsim_allow_paths = true)")
MAX_SIZE_HINT = ("in Python max_poem_bytes=N, in pytest's configuration "
                 "netsim_max_poem_size = SIZE")

# What a path names when it is not a regular file, for the message.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class PoemFileError(Exception):
    """A poem file that cannot be served: ``message`` says why, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def read_poem_file(folder: Path, name: Path, *, allow_paths: bool = False,
                   max_bytes: int = DEFAULT_MAX_POEM_BYTES) -> str:
    """The text of the poem file ``name``, relative to the scenario's ``folder``.

    Raises PoemFileError when it is outside ``folder`` (unless ``allow_paths``), missing,
    not a regular file, longer than ``max_bytes``, unreadable, not UTF-8 or empty.
    """
    shown = str(name)
    path = folder / name
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(folder))
    if not allow_paths and not real.is_relative_to(root):
        # Said before whether it exists: a scenario must not learn what lies outside.
        leads = "" if real == Path(os.path.abspath(path)) else f", where it leads (to {real})"
        raise PoemFileError(f"poem_file {shown!r} is outside the scenario's folder {root}{leads}: "
                            f"a scenario reads files only in its own folder unless --allow-paths "
                            f"is given", ALLOW_PATHS_HINT)
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise PoemFileError(f"poem_file {shown!r} does not exist (looked for {path})") from None
    except OSError as error:
        raise PoemFileError(f"poem_file {shown!r} cannot be read: {error.strerror}") from None
    _check_regular(shown, info)
    _check_size(shown, info.st_size, max_bytes)
    try:
        # O_NONBLOCK: should a FIFO take the file's place after the check, the open returns
        # at once (and fstat refuses it) instead of waiting for a writer. O_NOFOLLOW: nor
        # may a symlink take its place.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            _check_regular(shown, info)
            _check_size(shown, info.st_size, max_bytes)
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise PoemFileError(f"poem_file {shown!r} cannot be read: {error.strerror or error}") from None
    _check_size(shown, len(data), max_bytes, read=True)
    try:
        # Bytes, then decode: reading text would turn the file's \r\n into \n, and the
        # server must send the file as it is.
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PoemFileError(f"poem_file {shown!r} is not UTF-8 text") from None
    if text == "":
        raise PoemFileError(f"poem_file {shown!r} is empty")
    return text


def _check_regular(shown: str, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    kind = next((kind for test, kind in _KINDS if test(info.st_mode)), "not a regular file")
    raise PoemFileError(f"poem_file {shown!r} cannot be read: it is {kind}, not a regular file",
                        "give a regular file of UTF-8 text")


def _check_size(shown: str, size: int, max_bytes: int, *, read: bool = False) -> None:
    """Refuse a file of ``size`` bytes past ``max_bytes``; ``read``: it held at least that many."""
    if size <= max_bytes:
        return
    # The limit a user could pass to allow this file: its size, rounded up to whole MB.
    enough = f"{max(1, math.ceil(size / 1000**2))}MB"
    how_long = "holds more than" if read else f"is {format_size(size)}, more than"
    raise PoemFileError(f"poem_file {shown!r} {how_long} the {format_size(max_bytes)} a poem may "
                        f"have: pass --max-poem-size {enough} or more to allow it", MAX_SIZE_HINT)
