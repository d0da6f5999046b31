"""The exceptions netsim raises, and what the command line makes of them.

::

    NetsimError
    ├── ScenarioError        the scenario is invalid; nothing was run (exit 2)
    ├── UsageError           the command asks for what the scenario does not allow (exit 2)
    └── RunError             the run could not be carried out (exit 3)
        ├── PortBusyError    a fixed port is taken by another program
        ├── ServerStartError a server could not start for another reason
        ├── RunTimeoutError  a client model ran past its timeout and was stopped
        ├── ClientCrashError a client model raised instead of finishing
        ├── LimitReachedError a client model met a limit of its own design mid-run
        └── OutputError      a result or the event log could not be written (a full disk)

A failed *expectation* is not an exception: it is a result (exit 1). Any other
exception is a bug in netsim: the command line says so and exits 3, never 1.
"""

from __future__ import annotations

from dataclasses import dataclass


class NetsimError(Exception):
    """Base of every error netsim raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, located as editors expect it."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # where in the document, like servers[1].delay
    message: str
    hint: str = ""  # how to fix it, where the message does not say: `netsim validate` prints it

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ScenarioError(NetsimError):
    """The scenario cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class RunError(NetsimError):
    """The run could not be carried out (a port busy, a server down, a timeout)."""


class PortBusyError(RunError):
    """A server's fixed port is already in use."""


class ServerStartError(RunError):
    """A server could not be started."""


class RunTimeoutError(RunError):
    """A client model did not finish within its timeout and was stopped; ``held_open``:
    the connections its servers still held open then, as (server, how many)."""

    def __init__(self, message: str, held_open: tuple[tuple[str, int], ...] = ()) -> None:
        super().__init__(message)
        self.held_open = held_open


class ClientCrashError(RunError):
    """A client model raised an exception instead of finishing its run.

    ``detail`` holds the traceback from the client's process, for ``-v``.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class LimitReachedError(RunError):
    """A client model met a limit of its own design mid-run (it raised
    ``netsim.clients.ModelLimitError``): not a bug, but the run cannot go on."""


class UsageError(NetsimError):
    """The command asks for something the scenario or the machine does not allow (exit 2)."""


class OutputError(RunError):
    """A result file or the event log could not be written once the run was under way.

    An output that cannot be written at all is found before anything runs, and is a
    UsageError instead. (``netsim.session.UnwrittenOutputs`` is one that comes after a run
    that finished and was judged, with its outcome, so that its verdicts can still be told.)
    """
