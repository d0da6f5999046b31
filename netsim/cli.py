"""The ``netsim`` command: parse the command line, make one library call, render its result.

Every exception ends in :func:`_exit_code`, the one place that turns it into a message
and an exit code: 0 every expectation held; 1 an expectation failed (a result, never an
exception); 2 the scenario or the command line is invalid, nothing was run; 3 the run
could not be carried out, or netsim hit a bug (a crash never exits 1); 130 interrupted
(Ctrl-C); 143 stopped by SIGTERM; 129 stopped by SIGHUP (its terminal closed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

# Kept to these few imports: Ctrl-C can only be turned into exit 130 once main() runs,
# so everything else is imported inside it.
if TYPE_CHECKING:
    import argparse

    from netsim._errors import ScenarioError

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_RUN_ERROR = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM's number, as a shell reports a process it ended
EXIT_HUNG_UP = 129  # 128 + SIGHUP's

EPILOG_RUN = """\
exit codes: 0 every expectation held; 1 an expectation failed, or an overhead regressed
past --max-regression; 2 the scenario or the command line is invalid (nothing was run);
3 the run could not be carried out (busy port, timeout, an output that cannot be written,
a crash); 130 interrupted (Ctrl-C); 143 stopped by SIGTERM; 129 stopped by SIGHUP (the
terminal closed). A run stopped by a signal still writes its reports, saying so.

--repeat N runs every client model N times: an expectation must then hold in every run,
or in the share it names (`elapsed <= 4.2s in 90% of runs`). A baseline stores each
client's overhead relative to its ideal, (elapsed - ideal) / ideal; --max-regression
fails a client whose ratio grew by more than that many percentage points of the ideal.

On a terminal, a run of up to 50 connections ends with its timeline (--timeline draws it
anywhere, --no-timeline never); a client model under way shows its progress.

example:
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --json result.json
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --html report.html --trace trace.json
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --repeat 5 --junit report.xml
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --save-baseline base.json
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --baseline base.json --max-regression 10%
"""

EPILOG_REPORT = """\
The result file is what `netsim run SCENARIO --json result.json` wrote; the report is
drawn from it alone, as `run --html` draws it. Without --html, the timeline is printed.
Exit 0 when the report was drawn; 2 when the result cannot be read or the output path
cannot be written; 3 when writing it fails midway (a full disk).

example:
  netsim report result.json --html report.html
  netsim report result.json
"""

EPILOG_SERVE = """\
exit codes: 2 the scenario or the command line is invalid; 3 a server could not start
(a busy port); 130 stopped by Ctrl-C; 143 stopped by SIGTERM; 129 stopped by SIGHUP.

example:
  netsim serve scenarios/three_ports.yaml --time-scale 0.5
  netsim serve scenarios/three_ports.yaml --free-ports --log-json events.jsonl
  netsim serve scenarios/three_ports.yaml --control 127.0.0.1:9000
"""

EPILOG_VALIDATE = """\
Each problem is printed as FILE:LINE:COL: PATH: MESSAGE, with a hint below it where one
helps; editors and CI problem matchers read that form. Exit 0 when every file is valid,
2 otherwise.

example:
  netsim validate scenarios/*.yaml
"""

EPILOG_NEW = """\
The first line of the new file tells editors with the YAML language server (VS Code's YAML
extension and others) where the schema is, so that they complete and check every key. It
names the nearest netsim.schema.json in the file's folder or above; when there is none,
netsim new writes one beside the file (`netsim schema > netsim.schema.json` renews it).

example:
  netsim new scenarios/my_first.yaml && netsim validate scenarios/my_first.yaml
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: netsim stops as on Ctrl-C (every process it started with it, its
    reports written), and exits 128 + the signal's number; its text is the signal's name."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# `--json` writes what each command has to write.
JSON_HELP = {
    "run": "write the whole result as JSON",
    "serve": "write what the servers saw of every connection as JSON, once they stop",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``netsim`` command with ``argv`` (default: the process's) and return its exit code."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    # A terminal that closes sends SIGHUP, whose default would end netsim at once: no
    # reports written, and children left to die by the kernel's hand.
    previous_hangup = signal.signal(signal.SIGHUP, _terminate)
    previous_interrupt = signal.getsignal(signal.SIGINT)
    _STDOUT.gone = False
    _stand_in_for_closed_streams()
    _write_what_streams_cannot_encode_as_ascii()
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (_Terminal(stream) if _is_terminal(stream) else stream for stream in streams)
    verbose: bool | None = None
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # the command's own usage says what it takes, not the top level's
            (args.parser if getattr(args, "parser", None) else parser).error(
                f"unrecognized arguments: {' '.join(unknown)}")
        verbose = getattr(args, "verbose", None)
        if args.command is None:
            _STDOUT.write(parser.format_help())
            return EXIT_INVALID
        handler: Callable[[argparse.Namespace], int] = args.handler
        code = handler(args)
        _STDOUT.flush()  # here, where a failure to write still becomes an exit code
        return code
    except (Exception, KeyboardInterrupt) as error:
        return _exit_code(error, verbose=verbose)
    finally:
        _STDOUT.flush()
        sys.stdout, sys.stderr = streams
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, previous_hangup)
        signal.signal(signal.SIGINT, previous_interrupt)


def _terminate(signum: int, _frame: FrameType | None) -> NoReturn:
    raise Terminated(signum)


def _exit_code(error: BaseException, *, verbose: bool | None) -> int:
    """The one place where what stopped a command becomes a message and an exit code.

    ``verbose`` is the command's -v, or None for a command without one.
    """
    if isinstance(error, KeyboardInterrupt):
        # Every process of the run has stopped by now; a second Ctrl-C while this is
        # printed must not end in a traceback.
        for stopping in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(stopping, signal.SIG_IGN)
        _forget_interrupt()
        how = f"stopped by {error}" if isinstance(error, Terminated) else "interrupted"
        try:
            print(f"netsim: {how}; every server and client netsim started has stopped", file=sys.stderr)
        except OSError:  # a terminal that hung up takes no more: the exit code says it
            pass
        if isinstance(error, Terminated):
            return EXIT_HUNG_UP if error.signum == signal.SIGHUP else EXIT_TERMINATED
        return EXIT_INTERRUPTED

    from netsim._errors import ClientCrashError, PortBusyError, RunError, ScenarioError, UsageError

    if isinstance(error, ScenarioError):
        _problems(error)
        return EXIT_INVALID
    if isinstance(error, UsageError):
        _error(str(error))
        return EXIT_INVALID
    if isinstance(error, RunError):
        message = str(error)
        if isinstance(error, ClientCrashError):
            if verbose and error.detail:
                print(error.detail, file=sys.stderr, end="")
            message += " (this is a bug in the client model" + ("" if verbose else "; -v shows where") + ")"
        _error(message)
        if isinstance(error, PortBusyError):
            print("    hint: or pass --free-ports to bind every server to any free port", file=sys.stderr)
        for note in getattr(error, "__notes__", []):
            _error(note)
        return EXIT_RUN_ERROR

    if verbose:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    where = "; -v shows the traceback" if verbose is False else ""
    _error(f"unexpected {type(error).__name__}: {error} (a bug in netsim, not a failed expectation: "
           f"please report it with the command you ran{where})")
    return EXIT_RUN_ERROR


def _forget_interrupt() -> None:
    # CPython remembers a KeyboardInterrupt that passed through exec() of a string
    # (dataclasses and pydantic build their methods that way, so Ctrl-C while netsim
    # starts often lands there) and, under `python -m`, ends the process with SIGINT
    # instead of the exit code main() returned. An exec() of its own clears that memory.
    exec("None")


def _error(message: str) -> None:
    with contextlib.suppress(OSError):  # a terminal that hung up takes no more: the exit code says it
        print(f"netsim: error: {message}", file=sys.stderr)


def _problems(error: ScenarioError) -> None:
    from netsim._loader import format_problem

    with contextlib.suppress(OSError):  # (as in _error)
        for problem in error.problems:
            print(format_problem(problem), file=sys.stderr)
        count = len(error.problems)
        print(f"netsim: {count} problem{'s' * (count != 1)}; nothing was run", file=sys.stderr)


def _stdout_failed(error: OSError) -> Exception:
    """Standard output could not be written (its reader gone is not this: see _Stdout): the
    run could not be carried out (a RunError, exit 3), wherever it was raised."""
    from netsim._errors import RunError

    return RunError(f"cannot write to standard output: {error.strerror or error}")


def _stand_in_for_closed_streams() -> None:
    """Give a standard stream closed before netsim started (`>&-`, `2>&-`, `<&-`) /dev/null in
    its place (a closed standard input reads as empty: `-` then reads no scenario).

    Its output is dropped, as once a pipe's reader has gone (see _Stdout), and the exit code
    still says how the run went: whoever closed it asked for no output there, and the run's
    files and exit code are what they read instead. Python leaves such a stream None; its
    descriptor, left free, would go to the next file or socket netsim opens, which every
    child and program would then write to as their own stdout or stderr.
    """
    for number, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(number)
        except OSError:  # free: hold it
            devnull = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            if devnull != number:
                os.dup2(devnull, number)
                os.close(devnull)
        setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115 (for the process's life)


# What netsim prints beyond ASCII, as ASCII, where a stream cannot encode it (the timeline's
# marks come from netsim.views.timeline); anything else is "?".
ASCII_TWINS = {"±": "+/-", "µ": "u", "×": "x", "→": "->", "←": "<-", "·": "-", "—": "-", "–": "-"}


def _write_what_streams_cannot_encode_as_ascii() -> None:
    """Standard output and error in an encoding without netsim's symbols (``±``, the timeline's
    box drawing), such as ASCII under LANG=C or PYTHONIOENCODING=latin-1, get ASCII in their
    place, where Python would raise UnicodeEncodeError in the middle of a report and turn a
    verdict into exit 3."""
    import codecs

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            "±├─●".encode(stream.encoding)
        except UnicodeEncodeError:
            codecs.register_error("netsim-ascii", _as_ascii)
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors="netsim-ascii")
        except (AttributeError, LookupError, TypeError):  # not a text stream of a codec we know
            pass


def _as_ascii(error: UnicodeError) -> tuple[str, int]:
    """The codec error handler of a stream that cannot encode what is written to it."""
    from netsim.views.timeline import ASCII_MARKS

    if not isinstance(error, UnicodeEncodeError):
        raise error
    unencodable = error.object[error.start:error.end]
    return "".join(ASCII_TWINS.get(char) or ASCII_MARKS.get(char, "?") for char in unencodable), error.end


class _Terminal:
    """A standard stream on a terminal, which may close while netsim runs (the window of
    an ssh session or of a terminal emulator): a write then fails with EIO, and the kernel
    sends SIGHUP, which netsim answers with its reports and exit 129. Until the signal
    comes, or where none does, what is written is dropped, as for a reader gone (see
    _Stdout): a progress bar must not turn a run into a crash (exit 3)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.hung_up = False

    def __repr__(self) -> str:
        return f"<_Terminal {self._stream!r} hung_up={self.hung_up}>"

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the stream's own
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        if not self.hung_up:
            try:
                self._stream.write(text)
            except OSError as error:
                self._hang_up(error)
        return len(text)

    def flush(self) -> None:
        if not self.hung_up:
            try:
                self._stream.flush()
            except OSError as error:
                self._hang_up(error)

    def _hang_up(self, error: OSError) -> None:
        import errno

        if error.errno != errno.EIO:
            raise error
        self.hung_up = True
        _to_devnull(self._stream)  # what is still buffered, and Python's flush at exit


class _Stdout:
    """sys.stdout until its reader goes away (``netsim run ... | head``).

    From then on output is dropped and the command goes on, so that its exit code and
    its result files still say how the run went.
    """

    def __init__(self) -> None:
        self.gone = False

    def __repr__(self) -> str:
        return f"<_Stdout gone={self.gone}>"

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                sys.stdout.write(text)
            except BrokenPipeError:
                self._drop()
            except OSError as error:  # a full disk, /dev/full: say so, as exit 3
                self._drop()
                raise _stdout_failed(error) from None
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self._drop()
            except OSError as error:
                self._drop()
                raise _stdout_failed(error) from None

    def _drop(self) -> None:
        self.gone = True
        _to_devnull(sys.stdout)  # Python flushes sys.stdout once more on exit


def _to_devnull(stream: Any) -> None:
    """Point ``stream``'s descriptor at /dev/null, where writing cannot fail; a stream
    without a descriptor of its own (tests) is left as it is."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


_STDOUT = _Stdout()


# --- the command line ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import textwrap

    class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
        """Descriptions and epilogs filled to the terminal's width, as argparse fills the help
        of each option: a paragraph (lines that start at the margin, up to a blank line) is
        filled anew; an indented line (an example command) stays as it is."""

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            lines: list[str] = []
            paragraph: list[str] = []

            def flush() -> None:
                if paragraph:
                    lines.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent,
                                               subsequent_indent=indent, break_on_hyphens=False,
                                               break_long_words=False))
                    paragraph.clear()

            for line in text.splitlines():
                if line and not line[0].isspace() and not line.endswith(":"):
                    paragraph.append(line.strip())
                    continue
                flush()
                lines.append(indent + line if line else "")
            flush()
            return "\n".join(lines)

    from pathlib import Path

    from netsim._version import __version__

    parser = argparse.ArgumentParser(
        prog="netsim",
        description="Slow and faulty TCP servers from a YAML scenario, client models run "
                    "against them, and a timing verdict fit for CI.",
        epilog="example:\n  netsim run scenarios/three_ports.yaml",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netsim {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                     help="what to do; `netsim COMMAND --help` says more")

    run = commands.add_parser(
        "run", parents=[_scenario_options("run")],
        help="run a scenario's client models and check its expectations",
        description="Start fresh servers for each client model of the scenario, run it, "
                    "print what it measured against the ideal, and check the expectations.",
        epilog=EPILOG_RUN, formatter_class=_HelpFormatter)
    run.add_argument("--client", action="append", metavar="NAME", dest="clients",
                     help="run only this client (repeatable; a pattern such as 'student-*' "
                          "takes every client it matches); clients its speedup() "
                          "expectations compare against run too, without their own verdicts")
    run.add_argument("--timeout", type=_wall_duration, metavar="DURATION",
                     help="stop a client model that runs longer than this wall time, and "
                          "the run with it (exit 3); a command client's program is ended at it "
                          "and judged instead, and the run goes on (default: 3 × its ideal + "
                          "10s)")
    run.add_argument("--repeat", type=_count, default=1, metavar="N",
                     help="run every client model N times; report min, median and max, and how "
                          "many runs passed")
    run.add_argument("--junit", type=Path, metavar="PATH",
                     help="write JUnit XML: each expectation a test case")
    run.add_argument("--save-baseline", type=Path, metavar="PATH",
                     help="write each client's overhead ratio to PATH, for --baseline later")
    run.add_argument("--baseline", type=Path, metavar="PATH",
                     help="compare each client's overhead ratio with this baseline")
    run.add_argument("--max-regression", type=_percentage, metavar="PCT",
                     help="with --baseline: fail a client whose overhead grew by more than PCT "
                          "of its ideal (default 10%%)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only the verdicts (the table of runs is left out)")
    run.add_argument("--html", type=Path, metavar="PATH",
                     help="write the HTML report: one self-contained file (no network needed to open "
                          "it) with the table, a timeline per client model and every verdict")
    run.add_argument("--trace", type=Path, metavar="PATH",
                     help="write the run in the Chrome Trace Event format, for ui.perfetto.dev "
                          "(also a run stopped by a timeout or a crash, up to where it stopped)")
    run.add_argument("--timeline", action=argparse.BooleanOptionalAction, default=None,
                     help="draw each client model's connections on a time axis after the table "
                          "(default: on a terminal, for runs of up to 50 connections; never with -q)")
    run.set_defaults(handler=cmd_run, parser=run)

    report = commands.add_parser(
        "report", help="draw the report of a saved result (run --json)",
        description="Draw the HTML report of a result that `netsim run --json` wrote, or print "
                    "its timeline.",
        epilog=EPILOG_REPORT, formatter_class=_HelpFormatter)
    report.add_argument("result", type=Path, metavar="RESULT.json", help="a result `run --json` wrote")
    report.add_argument("--html", type=Path, metavar="PATH",
                        help="write the HTML report here (without it, the timeline is printed)")
    report.set_defaults(handler=cmd_report, parser=report)

    serve = commands.add_parser(
        "serve", parents=[_scenario_options("serve")], help="start only the servers, until Ctrl-C",
        description="Start the scenario's servers and keep them up for clients that are not "
                    "part of netsim. Prints `listening NAME HOST:PORT` per server, then `ready`.",
        epilog=EPILOG_SERVE, formatter_class=_HelpFormatter)
    serve.add_argument("--control", type=_control_address, metavar="HOST:PORT",
                       help="answer the live control API (JSON over HTTP) there: GET /servers, "
                            "PATCH /servers/NAME with condition keys ({\"delay\": \"500ms\"}), "
                            "POST /servers/NAME/down|up|reset|restore; loopback only, unless "
                            "--allow-external")
    serve.set_defaults(handler=cmd_serve, parser=serve)

    validate = commands.add_parser(
        "validate", help="check scenario files without running them",
        description="Check scenario files with the loader `netsim run` uses, and report every "
                    "problem of every file as file:line:col: all that `netsim run` would refuse "
                    "(exit 2) before it runs anything.",
        epilog=EPILOG_VALIDATE, formatter_class=_HelpFormatter)
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                          help="the scenario files (YAML); - reads one from standard input")
    validate.add_argument("--allow-external", action="store_true",
                          help="accept servers that bind addresses outside loopback, and proxies "
                               "that forward to them, as `run --allow-external` does (without it "
                               "they are problems: `netsim run` would refuse them)")
    _add_file_options(validate)
    validate.set_defaults(handler=cmd_validate, parser=validate)

    new = commands.add_parser(
        "new", help="write a commented starter scenario",
        description="Write a starter scenario to PATH, with a comment on every key, ready to "
                    "edit, validate and run. An existing file is never overwritten.",
        epilog=EPILOG_NEW, formatter_class=_HelpFormatter)
    new.add_argument("path", type=Path, metavar="PATH", help="the new scenario file (.yaml)")
    new.add_argument("--schema", metavar="REF",
                     help="what the modeline names: a URL or a path relative to the new file "
                          "(default: the nearest netsim.schema.json)")
    new.set_defaults(handler=cmd_new, parser=new)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the scenario format",
        description="Print the JSON Schema (Draft 7) of the scenario format, with a description "
                    "and an example on every key. Editors with the YAML language server read it "
                    "from a scenario's first line: "
                    "`# yaml-language-server: $schema=netsim.schema.json`.",
        epilog="example:\n  netsim schema > netsim.schema.json\n  netsim schema --markdown | less",
        formatter_class=_HelpFormatter)
    schema.add_argument("--markdown", action="store_true",
                        help="print the reference of every key (type, default, example, meaning) "
                             "as Markdown instead")
    schema.set_defaults(handler=cmd_schema, parser=schema)

    clients = commands.add_parser(
        "clients", help="list the client models",
        description="List the client models, one line each.",
        epilog="example:\n  netsim clients",
        formatter_class=_HelpFormatter)
    clients.set_defaults(handler=cmd_clients, parser=clients)
    return parser


def _scenario_options(command: str) -> argparse.ArgumentParser:
    """What `run` and `serve` share: the scenario, how it is scaled, seeded and bound, and
    its outputs; one definition, with ``command``'s own words where they differ."""
    import argparse
    from pathlib import Path

    scenario = argparse.ArgumentParser(add_help=False)
    scenario.add_argument("scenario", metavar="SCENARIO",
                          help="the scenario file (YAML), or - to read it from standard input")
    scenario.add_argument("--time-scale", type=_time_scale, default=1.0, metavar="F",
                          help="multiply every duration by F (0.1 runs the 12 s demo in 1.2 s; a "
                               "run's fixed costs grow as F shrinks, so tight timings need a larger F); "
                               "results stay in scenario time")
    scenario.add_argument("--seed", type=int, metavar="N",
                          help="fix jitter and faults with this seed (default: the scenario's, or a "
                               "fresh one, which --json reports)")
    scenario.add_argument("--free-ports", action="store_true",
                          help="bind every server to any free port instead of its fixed one")
    scenario.add_argument("--allow-external", action="store_true",
                          help="allow servers to bind addresses outside loopback, and proxies to "
                               "forward to them")
    _add_file_options(scenario)
    scenario.add_argument("--json", type=Path, metavar="PATH",
                          help=JSON_HELP[command])
    scenario.add_argument("--log-json", type=Path, metavar="PATH",
                          help="write every event as a JSON line (structlog)")
    scenario.add_argument("-v", "--verbose", action="store_true",
                          help="print the live event log on stderr (and a traceback for a bug)")
    return scenario


def _add_file_options(parser: argparse.ArgumentParser) -> None:
    """What a scenario may read: run, serve and validate load it alike."""
    parser.add_argument("--allow-paths", action="store_true",
                        help="let poem_file name files outside the scenario's folder (only for "
                             "scenarios you trust: their servers send the file to any client)")
    parser.add_argument("--max-poem-size", type=_poem_size, metavar="SIZE", dest="max_poem_bytes",
                        help="the largest poem_file to read, like 50MB or 64MiB (default 10MB)")


def _time_scale(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (try 0.1)") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
    return value


def _count(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (try 5)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _percentage(text: str) -> float:
    import argparse

    from netsim.baseline import parse_regression

    try:
        return parse_regression(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _control_address(text: str) -> tuple[str, int]:
    """HOST:PORT ([::1]:PORT for IPv6), or PORT alone on 127.0.0.1; port 0 takes a free one."""
    import argparse

    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give HOST:PORT, like 127.0.0.1:9000")
    return (host, int(port))


def _poem_size(text: str) -> int:
    import argparse

    from netsim._units import parse_size

    try:
        value = parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0, like 50MB")
    return value


def _wall_duration(text: str) -> float:
    import argparse

    from netsim._units import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


# --- the commands: each parses, makes one library call, renders ----------------------------


def _file_options(args: argparse.Namespace) -> dict[str, Any]:
    """--allow-paths and --max-poem-size, as the loader's keywords (its default where not given)."""
    options: dict[str, Any] = {"allow_paths": args.allow_paths}
    if args.max_poem_bytes is not None:
        options["max_poem_bytes"] = args.max_poem_bytes
    return options


def cmd_run(args: argparse.Namespace) -> int:
    from netsim import report
    from netsim.session import Outputs, Progress, UnwrittenOutputs, run_session

    # The timeline: as asked, else on a terminal (for a small run); never with -q.
    timeline: bool | None = False if args.quiet else args.timeline
    if timeline is None and not _is_terminal(sys.stdout):
        timeline = False
    progress: Progress = report.LiveTable(_STDOUT, sys.stderr, quiet=args.quiet, width=_table_width())
    live = None
    if not (args.quiet or args.verbose) and _is_terminal(sys.stderr):
        from netsim.views.progress import LiveProgress

        progress = live = LiveProgress(progress, sys.stderr)
    from netsim.views.timeline import wanted

    stopped: list[dict[str, Any]] = []  # the JSON result of a run that did not finish
    try:
        outcome = run_session(
            args.scenario, repeat=args.repeat, clients=args.clients, time_scale=args.time_scale,
            **_file_options(args),
            seed=args.seed, timeout=args.timeout, free_ports=args.free_ports,
            allow_external=args.allow_external, baseline=args.baseline, max_regression=args.max_regression,
            outputs=Outputs(json=args.json, junit=args.junit, save_baseline=args.save_baseline,
                            log_json=args.log_json, html=args.html, trace=args.trace),
            console=sys.stderr if args.verbose else None, progress=progress,
            observer=None if live is None else live.observe, timeline=timeline,
            on_unfinished=stopped.append)
        unwritten = None
    except UnwrittenOutputs as error:
        outcome, unwritten = error.outcome, error  # the run finished: its verdicts, then the error
    except (Exception, KeyboardInterrupt):
        # What finished before the run stopped is drawn as a finished run's timeline would be;
        # a terminal that hung up (SIGHUP) takes none of it, and what stopped the run goes on.
        with contextlib.suppress(Exception):
            if live is not None:  # its line off the terminal before the timeline comes
                live.close()
            connections = sum(len(run.get("connections") or ()) for data in stopped for run in data["runs"])
            if stopped and stopped[0]["runs"] and timeline is not False and wanted(timeline, connections):
                _STDOUT.write("\n" + _timeline(stopped[0]))
        raise
    finally:
        if live is not None:
            live.close()
    drawn = ""
    if timeline is not False and wanted(timeline, outcome.plan.connections):
        drawn = _timeline(outcome.to_dict())
    report.conclude(outcome, _STDOUT, sys.stderr, quiet=args.quiet, timeline=drawn)
    if unwritten is not None:
        raise unwritten
    # A program netsim could not start is the run's failure, not the client's (exit 3), said
    # once every other client's verdicts are out: one student's missing file hides no grade.
    for line in outcome.not_carried_out:
        _error(line)
    if outcome.not_carried_out:
        return EXIT_RUN_ERROR
    return EXIT_PASSED if outcome.passed else EXIT_FAILED


def cmd_report(args: argparse.Namespace) -> int:
    from netsim.session import report_session

    data = report_session(args.result, html=args.html)
    if args.html is None and data.get("error"):  # said first: a timeline below is not the whole run
        finished = "; what finished before is drawn below" if data["runs"] else ""
        print(f"{data.get('scenario')}: the run did not finish: {data['error']}{finished}", file=_STDOUT)
    if args.html is None and (data["runs"] or not data.get("error")):
        _STDOUT.write(_timeline(data))
    else:
        print(f"wrote {args.html}", file=_STDOUT)
    return EXIT_PASSED


def _table_width() -> int | None:
    """The terminal's width for the table of runs: where standard output is one, or COLUMNS
    says (rich reads both); None where neither does, for a log keeps its lines whole."""
    if not (_is_terminal(sys.stdout) or os.environ.get("COLUMNS")):
        return None
    from rich.console import Console

    return Console(file=sys.stdout).width


def _timeline(data: object) -> str:
    """The timeline of a JSON result, fitted to standard output (in colour on a terminal)."""
    from rich.console import Console

    from netsim.views._picture import picture_of
    from netsim.views.timeline import render

    console = Console(file=sys.stdout)
    color = console.is_terminal and not console.no_color and console.color_system is not None
    return render(picture_of(data), width=console.width, color=color)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    from netsim import report
    from netsim.session import serve_session

    serve_session(args.scenario, time_scale=args.time_scale, seed=args.seed,
                  **_file_options(args),
                  free_ports=args.free_ports, allow_external=args.allow_external,
                  log_json=args.log_json, json=args.json, console=sys.stderr if args.verbose else None,
                  progress=report.ServeLines(_STDOUT, sys.stderr),
                  control=args.control, control_log=sys.stderr)
    return EXIT_PASSED  # not reached: serving ends with Ctrl-C, SIGTERM or an error


def cmd_validate(args: argparse.Namespace) -> int:
    from netsim._errors import ScenarioError
    from netsim._loader import format_problem, text_positions
    from netsim.runner import unread_findings
    from netsim.session import load_scenario_argument_and_text

    invalid, problems = 0, 0
    for path in args.scenarios:
        try:
            # `-`: standard input. What a run would refuse of the file is a problem here too.
            scenario, text = load_scenario_argument_and_text(path, **_file_options(args),
                                                             allow_external=args.allow_external)
        except ScenarioError as error:  # a finding to report, not a failure of the command
            for problem in error.problems:
                print(format_problem(problem), file=sys.stderr)
            invalid += 1
            problems += len(error.problems)
        else:
            name = "<stdin>" if path == "-" else path  # as its problems name it
            print(f"{name}: ok", file=_STDOUT)
            findings = unread_findings(scenario)  # valid, but a run would judge less than it seems
            positions = text_positions(text, name) if findings else {}
            for place, warning in findings:  # at its client's entry, as a problem would be
                line, column = positions.get(("clients", place), (1, 1))
                print(f"{name}:{line}:{column}: warning: {warning}", file=sys.stderr)
    files = len(args.scenarios)
    checked = f"{files} file{'s' * (files != 1)} checked"
    if not invalid:
        print(f"netsim: {checked}, all valid", file=_STDOUT)
        return EXIT_PASSED
    print(f"netsim: {checked}: {files - invalid} valid, {invalid} invalid with {problems} "
          f"problem{'s' * (problems != 1)}", file=sys.stderr)
    return EXIT_INVALID


def cmd_new(args: argparse.Namespace) -> int:
    from netsim._errors import UsageError
    from netsim._starter import write_starter

    try:
        starter = write_starter(args.path, schema=args.schema)
    except OSError as error:  # say it in netsim's words: a path the user gave cannot be written
        raise UsageError(f"cannot write {args.path}: {error.strerror or error}") from None
    print(f"wrote {starter.path}", file=_STDOUT)
    if starter.schema_written is not None:
        print(f"wrote {starter.schema_written}: the schema your editor completes from "
              f"(`netsim schema > {starter.schema_written}` renews it)", file=_STDOUT)
    print(f"next: netsim validate {starter.path} && netsim run {starter.path}", file=_STDOUT)
    return EXIT_PASSED


def cmd_schema(args: argparse.Namespace) -> int:
    from netsim._schema import reference_text, schema_text

    _STDOUT.write(reference_text() if args.markdown else schema_text())
    return EXIT_PASSED


def cmd_clients(args: argparse.Namespace) -> int:
    from netsim._plugins import origin
    from netsim.clients import models

    found = models()
    width = max(len(name) for name in found)
    for name, model in found.items():
        if isinstance(model, Exception):
            print(f"{name:<{width}}  {'unavailable':<11}  {model}", file=_STDOUT)
        else:
            # A model a scenario's entry configures (command) is as its `concurrent:` says.
            shape = "either" if model.configure is not None else (
                "concurrent" if model.concurrent else "sequential")
            print(f"{name:<{width}}  {shape:<11}  {model.summary}{origin(name)}", file=_STDOUT)
    from netsim._plugins import shadowed

    for point in shadowed():
        print(f"netsim: the client model {point} is not used: another model has its name", file=sys.stderr)
    return EXIT_PASSED
