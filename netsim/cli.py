"""The ``netsim`` command: parse the command line, call the library, map errors to exit codes.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 the scenario or the
command line is invalid (nothing was run); 3 the run could not be carried out;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import array
import json
import signal
import sys
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
exit codes: 0 every expectation held; 1 an expectation failed, or an overhead regressed
past --max-regression; 2 the scenario or the command line is invalid (nothing was run);
3 the run could not be carried out (busy port, timeout).

--repeat N runs every client model N times: an expectation must then hold in every run,
or in the share it names (`elapsed <= 4.2s in 90% of runs`). A baseline stores each
client's overhead relative to its ideal, (elapsed - ideal) / ideal; --max-regression
fails a client whose ratio grew by more than that many percentage points of the ideal.

example:
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --json result.json
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --repeat 5 --junit report.xml
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --save-baseline base.json
  netsim run scenarios/three_ports.yaml --time-scale 0.1 --baseline base.json --max-regression 10%
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


def _time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (try 0.1)") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (try 5)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _percentage(text: str) -> float:
    from netsim.baseline import parse_regression

    try:
        return parse_regression(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    run.add_argument("--seed", type=int, metavar="N",
                     help="fix jitter and faults with this seed (default: the scenario's, or a "
                          "fresh one, shown in the JSON result)")
    run.add_argument("--free-ports", action="store_true",
                     help="bind every server to any free port instead of its fixed one")
    run.add_argument("--allow-external", action="store_true",
                     help="allow servers to bind addresses outside loopback")
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
    serve.add_argument("--seed", type=int, metavar="N",
                       help="fix jitter and faults with this seed (default: the scenario's)")
    serve.add_argument("--free-ports", action="store_true",
                       help="bind every server to any free port instead of its fixed one")
    serve.add_argument("--allow-external", action="store_true",
                       help="allow servers to bind addresses outside loopback")
    serve.add_argument("-v", "--verbose", action="store_true",
                       help="print the live event log (on stderr)")
    serve.set_defaults(handler=cmd_serve)

    validate = commands.add_parser(
        "validate", help="check scenario files without running them",
        description="Check scenario files with the loader `netsim run` uses, and report every "
                    "problem of every file as file:line:col.",
        epilog=EPILOG_VALIDATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    validate.set_defaults(handler=cmd_validate)

    new = commands.add_parser(
        "new", help="write a commented starter scenario",
        description="Write a starter scenario to PATH, with a comment on every key, ready to "
                    "edit, validate and run. An existing file is never overwritten.",
        epilog=EPILOG_NEW, formatter_class=argparse.RawDescriptionHelpFormatter)
    new.add_argument("path", type=Path, metavar="PATH", help="the new scenario file (.yaml)")
    new.add_argument("--schema", metavar="REF",
                     help="what the modeline names: a URL or a path relative to the new file "
                          "(default: the nearest netsim.schema.json)")
    new.set_defaults(handler=cmd_new)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the scenario format",
        description="Print the JSON Schema (Draft 7) of the scenario format, with a description "
                    "and an example on every key. Editors with the YAML language server read it "
                    "from a scenario's first line: "
                    "`# yaml-language-server: $schema=netsim.schema.json`.",
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
    from netsim.baseline import DEFAULT_MAX_REGRESSION, baseline_of, check_fits, compare, load_baseline
    from netsim.logs import make_observer
    from netsim.repeat import repeat_scenario
    from netsim.runner import select_clients

    try:
        scenario = load_scenario(args.scenario)
        _check_outputs(args.scenario, {"--json": args.json, "--log-json": args.log_json,
                                       "--junit": args.junit, "--save-baseline": args.save_baseline})
        selected = select_clients(scenario, args.clients)
        baseline = None
        if args.max_regression is not None and args.baseline is None:
            raise UsageError("--max-regression needs --baseline PATH to compare with")
        if args.baseline is not None:
            baseline = load_baseline(args.baseline)
            check_fits(baseline, scenario=scenario.name, time_scale=args.time_scale, path=args.baseline)
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
        current = [1]  # the repeat under way, for the event log
        if observer is not None and args.repeat > 1:
            observer = _tag_repeats(observer, current)
        if not args.quiet:
            print(report.header(scenario, len(selected), args.time_scale, args.repeat), flush=True)
            if args.repeat > 1:
                print(f"run 1 of {args.repeat}", flush=True)

        def next_run(number: int, _result: object) -> None:
            current[0] = number + 1
            if not args.quiet and number < args.repeat:
                print(f"run {number + 1} of {args.repeat}", flush=True)

        try:
            outcome = repeat_scenario(
                scenario, args.repeat, on_result=next_run,
                clients=args.clients, time_scale=args.time_scale, observer=observer,
                timeout=args.timeout, free_ports=args.free_ports, seed=args.seed,
                allow_external=args.allow_external,
                on_run=None if args.quiet else lambda run: print(report.run_row(run), flush=True))
        except UsageError as error:
            return _fail(str(error), EXIT_INVALID)
        except ClientCrashError as error:
            if args.verbose and error.detail:
                print(error.detail, file=sys.stderr)
            message = f"{error} (this is a bug in the client model; -v shows where)"
            _write_junit_error(args, scenario.name, message)
            return _fail(message, EXIT_RUN_ERROR)
        except RunError as error:
            _write_junit_error(args, scenario.name, str(error))
            return _fail(str(error), EXIT_RUN_ERROR)

    result = outcome if args.repeat > 1 else outcome.first
    comparison = None
    if baseline is not None:
        comparison = compare(baseline, baseline_of(result), path=args.baseline,
                             max_regression=(DEFAULT_MAX_REGRESSION if args.max_regression is None
                                             else args.max_regression))
    passed = result.passed and (comparison is None or comparison.passed)

    code = _write_outputs(args, scenario, result, comparison, passed)
    if code != EXIT_PASSED:
        return code
    if not args.quiet:
        print()
        if args.repeat > 1:
            print(report.repeat_table(outcome))
            print()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.repeat > 1:
        print(report.repeat_verdicts(outcome))
    else:
        print(report.verdicts(outcome.first))
    if comparison is not None:
        print(report.baseline_lines(comparison))
    print(report.repeat_summary(outcome) if args.repeat > 1 else report.summary(outcome.first))
    if comparison is not None:
        print(report.baseline_summary(comparison))
    return EXIT_PASSED if passed else EXIT_FAILED


def _tag_repeats(observer: Callable[[Any], None], current: list[int]) -> Callable[[Any], None]:
    """Events of repeated runs carry ``repeat``: the number of their run."""

    def observe(event: Any) -> None:
        observer({**event, "repeat": current[0]})

    return observe


def _write_outputs(args: argparse.Namespace, scenario: Any, result: Any, comparison: Any,
                   passed: bool) -> int:
    """Write --json, --junit and --save-baseline; exit 3 when one cannot be written."""
    from netsim._files import write_atomically
    from netsim.baseline import baseline_of, save_baseline
    from netsim.junit import junit_xml

    if args.json is not None:
        data = result.to_dict()
        data["passed"] = passed
        if comparison is not None:
            data["baseline"] = comparison.to_dict()
        try:
            write_atomically(args.json, json.dumps(data, indent=2) + "\n")
        except OSError as error:
            return _fail(f"cannot write --json {args.json}: {error.strerror}", EXIT_RUN_ERROR)
    if args.junit is not None:
        text = junit_xml(result, file=args.scenario, baseline=comparison)
        try:
            write_atomically(args.junit, text)
        except OSError as error:
            return _fail(f"cannot write --junit {args.junit}: {error.strerror}", EXIT_RUN_ERROR)
    if args.save_baseline is not None:
        try:
            save_baseline(baseline_of(result), args.save_baseline)
        except OSError as error:
            return _fail(f"cannot write --save-baseline {args.save_baseline}: {error.strerror}",
                         EXIT_RUN_ERROR)
        if not args.quiet:
            print(f"saved baseline {args.save_baseline}", file=sys.stderr)
    return EXIT_PASSED


def _write_junit_error(args: argparse.Namespace, scenario: str, message: str) -> None:
    """A run that could not be carried out still leaves a JUnit report for CI to show."""
    from netsim._files import write_atomically
    from netsim.junit import junit_error_xml

    if args.junit is None:
        return
    try:
        write_atomically(args.junit, junit_error_xml(scenario, message, file=args.scenario))
    except OSError as error:
        print(f"netsim: error: cannot write --junit {args.junit}: {error.strerror}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    from netsim._errors import RunError, ScenarioError, UsageError
    from netsim._loader import load_scenario
    from netsim.logs import make_observer
    from netsim.runner import fidelity, serve_scenario

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
    lateness: array.array[float] = array.array("d")
    try:
        serve_scenario(scenario, time_scale=args.time_scale, observer=observer,
                       on_listening=listening, seed=args.seed, lateness=lateness,
                       free_ports=args.free_ports, allow_external=args.allow_external)
    except UsageError as error:
        return _fail(str(error), EXIT_INVALID)
    except RunError as error:
        return _fail(str(error), EXIT_RUN_ERROR)
    except KeyboardInterrupt:
        print(f"fidelity: {fidelity(lateness)}")
        print("stopped", flush=True)
        return EXIT_PASSED
    return EXIT_PASSED


def cmd_validate(args: argparse.Namespace) -> int:
    from netsim._errors import ScenarioError
    from netsim._loader import format_problem, load_scenario

    invalid, problems = 0, 0
    for path in args.scenarios:
        try:
            load_scenario(path)
        except ScenarioError as error:
            for problem in error.problems:
                print(format_problem(problem), file=sys.stderr)
            invalid += 1
            problems += len(error.problems)
        else:
            print(f"{path}: ok")
    files = len(args.scenarios)
    checked = f"{files} file{'s' * (files != 1)} checked"
    if not invalid:
        print(f"netsim: {checked}, all valid")
        return EXIT_PASSED
    print(f"netsim: {checked}: {files - invalid} valid, {invalid} invalid with {problems} "
          f"problem{'s' * (problems != 1)}", file=sys.stderr)
    return EXIT_INVALID


def cmd_new(args: argparse.Namespace) -> int:
    from netsim._errors import UsageError
    from netsim._starter import write_starter

    try:
        starter = write_starter(args.path, schema=args.schema)
    except UsageError as error:
        return _fail(str(error), EXIT_INVALID)
    except OSError as error:
        return _fail(f"cannot write {args.path}: {error.strerror}", EXIT_INVALID)
    print(f"wrote {starter.path}")
    if starter.schema_written is not None:
        print(f"wrote {starter.schema_written}: the schema your editor completes from "
              f"(`netsim schema > {starter.schema_written}` renews it)")
    print(f"next: netsim validate {starter.path} && netsim run {starter.path}")
    return EXIT_PASSED


def cmd_schema(args: argparse.Namespace) -> int:
    from netsim._schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_PASSED


def cmd_clients(args: argparse.Namespace) -> int:
    from netsim.clients import models

    found = models()
    width = max(len(name) for name in found)
    for name, model in found.items():
        if isinstance(model, Exception):
            print(f"{name:<{width}}  {'unavailable':<10}  {model}")
        else:
            shape = "concurrent" if model.concurrent else "sequential"
            print(f"{name:<{width}}  {shape:<10}  {model.summary}")
    return EXIT_PASSED


def _problems(error: Any) -> int:
    from netsim._loader import format_problem

    for problem in error.problems:
        print(format_problem(problem), file=sys.stderr)
    count = len(error.problems)
    print(f"netsim: {count} problem{'s' * (count != 1)}; nothing was run", file=sys.stderr)
    return EXIT_INVALID


def _check_outputs(scenario: str, outputs: dict[str, Path | None]) -> None:
    """Refuse to write a result over the scenario file, or two results into one file."""
    from netsim._errors import UsageError

    source = Path(scenario).resolve()
    seen: dict[Path, str] = {}
    for flag, output in outputs.items():
        if output is None:
            continue
        target = output.resolve()
        if target == source:
            raise UsageError(f"{flag} {output} is the scenario file itself: write results elsewhere")
        if target in seen:
            raise UsageError(f"{seen[target]} and {flag} both name {output}: give each its own file")
        if target.is_dir():
            raise UsageError(f"{flag} {output} is a directory: give a file name")
        seen[target] = flag
