"""The ``netsim`` command: parse the command line, call the library, map errors to exit codes.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 the scenario or the
command line is invalid (nothing was run); 3 the run could not be carried out;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from netsim._version import __version__

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_RUN_ERROR = 3
EXIT_INTERRUPTED = 130

EPILOG_RUN = """\
exit codes: 0 every expectation held, 1 an expectation failed, 2 the scenario or the
command line is invalid, 3 the run could not be carried out (busy port, timeout).

example:
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --json result.json
"""


def _time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (try 0.1)") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _wall_duration(text: str) -> float:
    from netsim._units import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsim",
        description="Slow and faulty TCP servers from a YAML scenario, client models run "
                    "against them, and a timing verdict fit for CI.",
        epilog="example:\n  netsim run scenarios/three_ports.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run a scenario's client models and check its expectations",
        description="Start fresh servers for each client model of the scenario, run it, "
                    "print what it measured against the ideal, and check the expectations.",
        epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", metavar="SCENARIO", help="the scenario file (YAML)")
    run.add_argument("--client", action="append", metavar="NAME", dest="clients",
                     help="run only this client (repeatable); clients its speedup() "
                          "expectations compare against run too")
    run.add_argument("--time-scale", type=_time_scale, default=1.0, metavar="F",
                     help="multiply every duration by F (0.01 runs the 12 s demo in 0.12 s); "
                          "results stay in scenario time")
    run.add_argument("--json", type=Path, metavar="PATH", help="write the whole result as JSON")
    run.add_argument("--log-json", type=Path, metavar="PATH",
                     help="write every event as a JSON line (structlog)")
    run.add_argument("--timeout", type=_wall_duration, metavar="DURATION",
                     help="stop a client model that runs longer than this wall time "
                          "(default: 3 × its ideal + 10s)")
    run.add_argument("--free-ports", action="store_true",
                     help="bind every server to any free port instead of its fixed one")
    run.add_argument("--allow-external", action="store_true",
                     help="allow servers to bind addresses outside loopback")
    verbosity = run.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print only the verdicts")
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="also print the live event log (on stderr)")
    run.set_defaults(handler=cmd_run)

    serve = commands.add_parser(
        "serve", help="start only the servers, until Ctrl-C",
        description="Start the scenario's servers and keep them up for clients that are not "
                    "part of netsim. Prints `listening NAME HOST:PORT` per server, then `ready`.",
        epilog="example:\n  netsim serve scenarios/three_ports.yaml --time-scale 0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("scenario", metavar="SCENARIO", help="the scenario file (YAML)")
    serve.add_argument("--time-scale", type=_time_scale, default=1.0, metavar="F",
                       help="multiply every duration by F")
    serve.add_argument("--free-ports", action="store_true",
                       help="bind every server to any free port instead of its fixed one")
    serve.add_argument("--allow-external", action="store_true",
                       help="allow servers to bind addresses outside loopback")
    serve.add_argument("-v", "--verbose", action="store_true",
                       help="print the live event log (on stderr)")
    serve.set_defaults(handler=cmd_serve)

    validate = commands.add_parser(
        "validate", help="check scenario files without running them",
        description="Check scenario files and report every problem as file:line:col.",
        epilog="example:\n  netsim validate scenarios/*.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    validate.set_defaults(handler=cmd_validate)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the scenario format",
        description="Print the JSON Schema of the scenario format, for editors.",
        epilog="example:\n  netsim schema > netsim.schema.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    schema.set_defaults(handler=cmd_schema)

    clients = commands.add_parser(
        "clients", help="list the client models",
        description="List the client models, one line each.",
        epilog="example:\n  netsim clients",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    clients.set_defaults(handler=cmd_clients)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    handler: Callable[[argparse.Namespace], int] = args.handler
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("netsim: interrupted; every server and client was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of the run.
        sys.stderr.close()
        return EXIT_PASSED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _fail(message: str, code: int) -> int:
    print(f"netsim: error: {message}", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from netsim import report
    from netsim._errors import ClientCrashError, RunError, ScenarioError, UsageError
    from netsim._loader import load_scenario
    from netsim.logs import make_observer
    from netsim.runner import run_scenario, select_clients

    try:
        scenario = load_scenario(args.scenario)
        _check_outputs(args.scenario, [args.json, args.log_json])
        selected = select_clients(scenario, args.clients)
    except ScenarioError as error:
        return _problems(error)
    except UsageError as error:
        return _fail(str(error), EXIT_INVALID)

    with ExitStack() as stack:
        log_file: TextIO | None = None
        if args.log_json is not None:
            try:
                log_file = stack.enter_context(open(args.log_json, "w", encoding="utf-8"))
            except OSError as error:
                return _fail(f"cannot write --log-json {args.log_json}: {error.strerror}", EXIT_INVALID)
        observer = make_observer(console=sys.stderr if args.verbose else None, json_file=log_file)
        if not args.quiet:
            print(report.header(scenario, len(selected), args.time_scale), flush=True)
        try:
            result = run_scenario(
                scenario, clients=args.clients, time_scale=args.time_scale, observer=observer,
                timeout=args.timeout, free_ports=args.free_ports,
                allow_external=args.allow_external,
                on_run=None if args.quiet else lambda run: print(report.run_row(run), flush=True))
        except UsageError as error:
            return _fail(str(error), EXIT_INVALID)
        except ClientCrashError as error:
            if args.verbose and error.detail:
                print(error.detail, file=sys.stderr)
            return _fail(f"{error} (this is a bug in the client model; -v shows where)",
                         EXIT_RUN_ERROR)
        except RunError as error:
            return _fail(str(error), EXIT_RUN_ERROR)

    if args.json is not None:
        try:
            _write_atomically(args.json, json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as error:
            return _fail(f"cannot write --json {args.json}: {error.strerror}", EXIT_RUN_ERROR)
    if not args.quiet:
        print()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(report.verdicts(result))
    print(report.summary(result))
    return EXIT_PASSED if result.passed else EXIT_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    from netsim._errors import RunError, ScenarioError, UsageError
    from netsim._loader import load_scenario
    from netsim.logs import make_observer
    from netsim.runner import serve_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        return _problems(error)

    def listening(addresses: list[tuple[str, str, int]]) -> None:
        for name, host, port in addresses:
            shown = f"[{host}]" if ":" in host else host
            print(f"listening {name} {shown}:{port}")
        print("ready", flush=True)

    observer = make_observer(console=sys.stderr if args.verbose else None)
    try:
        serve_scenario(scenario, time_scale=args.time_scale, observer=observer,
                       on_listening=listening,
                       free_ports=args.free_ports, allow_external=args.allow_external)
    except UsageError as error:
        return _fail(str(error), EXIT_INVALID)
    except RunError as error:
        return _fail(str(error), EXIT_RUN_ERROR)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return EXIT_PASSED
    return EXIT_PASSED


def cmd_validate(args: argparse.Namespace) -> int:
    from netsim._errors import ScenarioError
    from netsim._loader import load_scenario

    worst = EXIT_PASSED
    for path in args.scenarios:
        try:
            load_scenario(path)
        except ScenarioError as error:
            _problems(error)
            worst = EXIT_INVALID
        else:
            print(f"{path}: ok")
    return worst


def cmd_schema(args: argparse.Namespace) -> int:
    from netsim.scenario import Scenario

    print(json.dumps(Scenario.model_json_schema(), indent=2))
    return EXIT_PASSED


def cmd_clients(args: argparse.Namespace) -> int:
    from netsim.clients import MODELS

    width = max(len(name) for name in MODELS)
    for name, model in MODELS.items():
        shape = "concurrent" if model.concurrent else "sequential"
        print(f"{name:<{width}}  {shape:<10}  {model.summary}")
    return EXIT_PASSED


def _problems(error: Any) -> int:
    for problem in error.problems:
        print(problem, file=sys.stderr)
    count = len(error.problems)
    print(f"netsim: {count} problem{'s' * (count != 1)}; nothing was run", file=sys.stderr)
    return EXIT_INVALID


def _check_outputs(scenario: str, outputs: Sequence[Path | None]) -> None:
    """Refuse to write a result over the scenario file (or over another output)."""
    from netsim._errors import UsageError

    source = Path(scenario).resolve()
    seen: set[Path] = set()
    for output in outputs:
        if output is None:
            continue
        target = output.resolve()
        if target == source:
            raise UsageError(f"{output} is the scenario file itself: write results elsewhere")
        if target in seen:
            raise UsageError(f"--json and --log-json both name {output}: give each its own file")
        if target.is_dir():
            raise UsageError(f"{output} is a directory: give a file name")
        seen.add(target)


def _write_atomically(path: Path, text: str) -> None:
    # A reader (or a crash) never sees half a result file.
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
