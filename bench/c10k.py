"""How many concurrent slow connections netsim paces accurately, against three baselines.

Run:  python bench/c10k.py [--sizes 100,1000,10000] [--workloads plain,jitter]
                           [--designs netsim,call_at,coroutine,threads]
                           [--netsim-tree NAME=DIR]... [--repeat 1] [--seed 1]
                           [--json PATH] [--client-tick 0.001]

Before and after a change to netsim, in one run, one after the other on the same machine:

      python bench/c10k.py --netsim-tree before=/work/before --repeat 3

``netsim`` is the tree this file belongs to; each ``--netsim-tree NAME=DIR`` adds a
design ``netsim@NAME``: ``python -m netsim serve`` run with DIR as its working directory
and first on PYTHONPATH (so its fresh server interpreter imports DIR's netsim too). The
start-up line says which netsim each design imports.

The workloads (issue 5, and the engine issue "One engine, one vocabulary", item 9): N
connections, opened evenly over 1 s, each receiving 10 lines (``line 00\\n`` ...) with a
pause after each line; the server closes one pause after the last.

* ``plain``: every pause is 250 ms;
* ``jitter``: each pause is drawn uniformly from 250 ms ± 100 ms, seeded (``--seed``):
  netsim's scenario says ``jitter: 100ms`` and ``seed: N``; the baselines draw the same
  distribution, from a stream of their own per connection (``_workload.py``).

For each N, each workload, each repeat and each design, in this order (so that with
``--repeat`` the designs alternate), one run:

1. the server starts in its own process (and process group): ``netsim serve`` on a
   scenario written to a temporary directory (one concurrent server, port 0, the same
   poem and pauses), or ``bench/baseline_servers.py DESIGN`` (coroutine, threads,
   call_at: see that file);
2. ``bench/load_client.py`` runs as another process against it: an independent
   client, which reports the time from its connect to the first byte (ttfb: where a
   server slow to accept shows, which its own lateness, counted from its accept, cannot
   see), whether every poem came intact, its elapsed time and, for the plain workload,
   the client error (line i's arrival - (connect + i * 250 ms)). With jitter it cannot
   know the server's draws, so the client error is n/a there, and ttfb (line 0's error)
   is what is left of it. It looks at its sockets once a millisecond and times arrivals
   by the kernel's receive stamps (see that file), so that it takes less of the machine
   from the server than a client woken by every line would; ``--client-tick 0`` makes it
   such a client, for comparison;
3. the server process measured is the one that holds the listening socket, found through
   /proc (for netsim, the child interpreter that ``netsim serve`` runs its servers in):
   its CPU time (utime + stime) from its ``ready`` to the client's end, which the table
   also gives per 1,000 chunks the server sent, and its peak RSS (VmHWM) just before the
   server is stopped with SIGINT;
4. the server's own emission lateness (actual send - schedule, p50 / p99 / max over
   every chunk): the baselines print it as JSON on SIGINT; netsim prints a line
   ``fidelity: N chunks, lateness p50 X ms, p99 Y ms, max Z ms`` when it has one, and
   the table shows n/a when it has not.

A design is marked ``collapsed`` when its client timed out or a p99 (server lateness,
client error or ttfb) exceeded 1 s; the run goes on. Every run has a wall-clock cap,
and every process it starts is killed (by process group) before the next run starts.
After each table come the goals for every netsim design (the worst over its runs), and
``netsim`` against each ``netsim@NAME``.

The client shares the machine (2 cores here) with the server, and is itself a Python
selector loop: its error includes its own delay in reading, so it bounds from below
the error it can see, and the server's own lateness is the finer measure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _proc import STOP_CAP, Server, command_line, cpu_seconds, kill_group, listener_holder, peak_rss
from _report import Run, goals, ms, table

from netsim._machine import steal_seconds

BENCH = Path(__file__).resolve().parent
TREE = BENCH.parent  # the source tree this benchmark belongs to: the design "netsim"
BASELINES = ["call_at", "coroutine", "threads"]
DESIGNS = ["netsim", *BASELINES]
HOST = "127.0.0.1"

# The workload of issue 5.
LINES = 10
DELAY = 0.25  # seconds after each line
RAMP = 1.0  # seconds over which the connections are opened
POEM_BYTES = LINES * len("line 00\n")
SEED = 1  # of the jittered workload's draws, unless --seed says otherwise


@dataclass(frozen=True)
class Workload:
    """What the servers send: the poem with pauses of DELAY ± ``jitter``."""

    name: str
    jitter: float  # seconds; 0 is the plain workload

    @property
    def client_timeout(self) -> float:
        # The client gives up (and reports) after ramp + lines * longest pause * 4 + 30 s
        # (41 s plain, 45 s jittered); the harness kills it 20 s after that.
        return RAMP + LINES * (DELAY + self.jitter) * 4 + 30


# The engine issue's item 9: "250 ms ± 100 ms, seeded".
WORKLOADS = {"plain": Workload("plain", 0.0), "jitter": Workload("jitter", 0.1)}

CLIENT_SPARE = 20.0  # seconds the harness waits beyond the client's own timeout
START_CAP = 20.0  # seconds for a server to print that it is listening

# A client whose connects run this late (p99) against its ramp is itself too busy to
# time arrivals well: the table says so beside the run. Below it is routine: the
# selector's timeouts are whole milliseconds (epoll), rounded up, so an idle client
# opens its connections 1-2 ms late. Readiness is not rounded: arrivals are timed finer.
CLIENT_LAG = 5e-3  # seconds

COLLAPSE = 1.0  # seconds: a p99 beyond this is a collapse, not a measurement

FIDELITY = re.compile(r"fidelity:(.*)$")
FIDELITY_CHUNKS = re.compile(r"([\d,]+)\s*chunks?")
FIDELITY_VALUE = re.compile(r"\b(p50|p99|max)\b\D*?(-?[\d.]+)\s*(ns|us|µs|ms|s)\b")
UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
NETSIM_LISTENING = re.compile(r"^listening\s+\S+\s+\[?([^\]\s]+?)\]?:(\d+)\s*$")
BASELINE_LISTENING = re.compile(r"^listening\s+(\d+)\s*$")
TREE_NAME = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True)
class Design:
    """A server design; a netsim one is ``python -m netsim serve`` from a source tree."""

    name: str  # netsim, netsim@NAME, or a baseline
    tree: Path | None = None  # netsim designs: the tree, their cwd and first on PYTHONPATH

    def command(self, workload: Workload, scenario: Path, seed: int) -> list[str]:
        if self.tree is not None:
            return [sys.executable, "-m", "netsim", "serve", str(scenario)]
        return [sys.executable, str(BENCH / "baseline_servers.py"), self.name, "--lines", str(LINES),
                "--delay", str(DELAY), "--jitter", str(workload.jitter), "--seed", str(seed)]

    def environment(self) -> dict[str, str] | None:
        if self.tree is None:
            return None
        # `netsim serve` starts its servers as `python -m netsim._fresh_server FD`, which
        # inherits the cwd and this environment, so it imports the same tree.
        path = [str(self.tree), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


# -- one run -----------------------------------------------------------------------------


def write_scenario(directory: Path, workload: Workload, seed: int) -> Path:
    poem = "".join(f"line {i:02d}\\n" for i in range(LINES))
    jitter = f", jitter: {workload.jitter * 1000:g}ms" if workload.jitter else ""
    path = directory / f"c10k-{workload.name}.yaml"
    path.write_text(
        "netsim: 1\n"
        f"name: c10k-{workload.name}\n"
        f"seed: {seed}\n"
        "servers:\n"
        f'  - {{name: poem, port: 0, poem: "{poem}", delay: {DELAY * 1000:g}ms{jitter}, '
        "mode: concurrent}\n"
        "clients: [selectors]  # unused by `netsim serve`; a scenario needs one\n"
    )
    return path


def client_command(port: int, n: int, workload: Workload, tick: float) -> list[str]:
    return [sys.executable, str(BENCH / "load_client.py"), HOST, str(port), "--connections", str(n),
            "--ramp", str(RAMP), "--lines", str(LINES), "--delay", str(DELAY),
            "--jitter", str(workload.jitter), "--expect-bytes", str(POEM_BYTES), "--tick", str(tick)]


def run_one(design: Design, workload: Workload, n: int, repeat: int, scenario: Path, workdir: Path,
            seed: int, tick: float) -> Run:
    run = Run(design.name, workload.name, n, repeat, source=str(design.tree) if design.tree else None)
    server_log = workdir / f"{design.name}-{workload.name}-{n}-{repeat}.stderr"
    server: Server | None = None
    client: subprocess.Popen[str] | None = None
    client_cap = workload.client_timeout + CLIENT_SPARE
    try:
        with server_log.open("wb") as stderr:
            server = Server(design.command(workload, scenario, seed), stderr, cwd=design.tree,
                            env=design.environment())
            start_deadline = time.monotonic() + START_CAP
            if design.tree is not None:
                port = int(server.wait_for(NETSIM_LISTENING, start_deadline).group(2))
                server.wait_for(re.compile(r"^ready\s*$"), start_deadline)
            else:
                port = int(server.wait_for(BASELINE_LISTENING, start_deadline).group(1))
            # The process that accepts the connections is the server to measure: for
            # netsim, the child interpreter that `netsim serve` starts.
            pid = listener_holder(server.process.pid, port)
            if pid is None:
                pid = server.process.pid
                run.notes.append("no single process holds the listener: measured the one started")
            run.measured = command_line(pid)
            cpu_before = cpu_seconds(pid)
            steal_before = steal_seconds()

            client = subprocess.Popen(client_command(port, n, workload, tick), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True)
            try:
                out, err = client.communicate(timeout=client_cap)
            except subprocess.TimeoutExpired:
                kill_group(client)
                out, err = "", "killed by the harness's cap"
                run.timed_out = True
                run.notes.append(f"client killed after {client_cap:.0f} s")

            steal = steal_seconds() - steal_before
            run.steal = None if math.isnan(steal) else steal
            if server.process.poll() is None:
                run.cpu = cpu_seconds(pid) - cpu_before
                run.peak_rss = peak_rss(pid)
            else:
                run.notes.append(f"server exited early ({server.process.returncode})")
            if not server.stop():
                run.notes.append(f"server killed: no report {STOP_CAP:.0f} s after SIGINT")
    except (RuntimeError, OSError) as error:
        run.status = f"failed: {error}"
        tail = server_log.read_text(errors="replace").strip().splitlines() if server_log.exists() else []
        if tail:
            run.notes.append(tail[-1])
        return run
    finally:
        for process in (client, server.process if server else None):
            if process is not None:
                kill_group(process)

    read_client(run, out, err, workload)
    read_server(run, server.output, netsim=design.tree is not None)
    if run.cpu is not None and run.chunks:
        run.cpu_per_1k_chunks = run.cpu / (run.chunks / 1000)
    p99s = (run.lateness.get("p99"), run.client_error.get("p99"), run.first_byte.get("p99"))
    if run.timed_out or any(p is not None and p > COLLAPSE for p in p99s):
        run.status = "collapsed"
    return run


def read_client(run: Run, out: str, err: str, workload: Workload) -> None:
    lines = out.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        if not run.timed_out:
            run.notes.append(f"client: {(err.strip().splitlines() or ['no report'])[-1]}")
        return
    run.intact, run.errors = report["intact"], report["errors"]
    run.unfinished, run.elapsed = report["unfinished"], report["elapsed"]
    run.client_error, run.first_byte = report["client_error"], report["first_byte"]
    run.gaps = report["gaps"]
    run.client_cpu, run.connect_lag = report["cpu"], report["connect_lag"]
    lag = run.connect_lag["p99"]
    if lag is not None and lag > CLIENT_LAG:
        run.notes.append(f"the client fell behind its own ramp: connect lag p99 {ms(lag)} ms, "
                         f"max {ms(run.connect_lag['max'])} ms")
    shortest, longest = run.gaps["min"], run.gaps["max"]
    if workload.jitter and shortest is not None and longest is not None \
            and longest - shortest < workload.jitter:
        # Uniform draws over ± jitter span nearly 2 * jitter; far less means the server
        # did not jitter, and its figures are not the jittered workload's.
        run.notes.append(f"the pauses were not jittered: gaps between lines {ms(shortest)} to "
                         f"{ms(longest)} ms")
    run.timed_out = run.timed_out or report["timed_out"]
    if report["error_kinds"]:
        run.notes.append("client errors: " + ", ".join(report["error_kinds"]))


def read_server(run: Run, output: list[str], *, netsim: bool) -> None:
    if not netsim:
        for line in reversed(output):
            if line.startswith("{"):
                report = json.loads(line)
                run.chunks = report["chunks"]
                run.lateness = {key: report[key] for key in ("p50", "p99", "max")}
                return
        run.notes.append("server: no lateness report")
        return
    for line in reversed(output):
        if match := FIDELITY.search(line):
            run.lateness = {key: float(value) * UNIT[unit]
                            for key, value, unit in FIDELITY_VALUE.findall(match.group(1))}
            if chunks := FIDELITY_CHUNKS.search(match.group(1)):
                run.chunks = int(chunks.group(1).replace(",", ""))
            return


# -- the netsim trees --------------------------------------------------------------------


def netsim_designs(trees: list[str], parser: argparse.ArgumentParser) -> dict[str, Design]:
    """``netsim`` (this tree) and one ``netsim@NAME`` per ``--netsim-tree NAME=DIR``."""
    designs = {"netsim": Design("netsim", TREE)}
    for spec in trees:
        name, sep, directory = spec.partition("=")
        tree = Path(directory).expanduser().resolve()
        if not sep or not TREE_NAME.match(name):
            parser.error(f"--netsim-tree {spec}: expected NAME=DIR, NAME of letters, digits, . _ -")
        if not (tree / "netsim" / "__init__.py").is_file():
            parser.error(f"--netsim-tree {spec}: {tree} has no netsim/__init__.py")
        if f"netsim@{name}" in designs:
            parser.error(f"--netsim-tree {spec}: {name} is given twice")
        designs[f"netsim@{name}"] = Design(f"netsim@{name}", tree)
    return designs


def describe(design: Design) -> str:
    """Which netsim ``design`` imports, and the tree's commit; exits when not its tree's.

    A tree whose netsim did not come first would silently measure another one (the
    installed package): better to stop before the first run.
    """
    assert design.tree is not None
    found = subprocess.run([sys.executable, "-c", "import netsim; print(netsim.__file__)"],
                           cwd=design.tree, env=design.environment(), capture_output=True, text=True)
    imported = Path(found.stdout.strip() or "nothing").resolve()
    if found.returncode != 0 or not imported.is_relative_to(design.tree):
        sys.exit(f"c10k: {design.name} imports {imported}, not {design.tree}/netsim: "
                 f"{found.stderr.strip()[-200:]}")
    commit = git(design.tree, "rev-parse", "--short", "HEAD")
    changed = git(design.tree, "status", "--porcelain", "--untracked-files=no", "netsim")
    state = "" if not commit else f" at {commit}" + (" + uncommitted changes" if changed else "")
    return f"{design.name}: {imported.parent}{state}"


def git(tree: Path, *args: str) -> str:
    """git's output in ``tree``; empty when it has none (no git, not a repository)."""
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


# -- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="connection counts, comma-separated (default 100,1000,10000)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"workloads, comma-separated (default {','.join(WORKLOADS)}): "
                             f"pauses of 250 ms, or 250 ms ± 100 ms seeded")
    parser.add_argument("--designs", default=",".join(DESIGNS),
                        help=f"server designs, comma-separated (default {','.join(DESIGNS)}); "
                             f"each --netsim-tree adds its own")
    parser.add_argument("--netsim-tree", action="append", default=[], metavar="NAME=DIR",
                        help="also run design netsim@NAME: `netsim serve` from the source tree DIR "
                             "(e.g. before=/work/before); repeatable")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each design at each size and workload, the designs in turn")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"seed of the jittered workload's pauses (default {SEED})")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every run to PATH")
    parser.add_argument("--client-tick", type=float, default=1e-3, metavar="SECONDS",
                        help="how often the load client looks at its sockets (default 0.001); "
                             "0 makes it wait in epoll and wake for every arrival")
    args = parser.parse_args()
    if args.client_tick < 0:
        parser.error("--client-tick must not be negative")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        sizes = [int(size.replace("_", "")) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes {args.sizes}: expected numbers such as 100,1000")
    workloads = [WORKLOADS[name] for name in args.workloads.split(",") if name in WORKLOADS]
    if unknown := [w for w in args.workloads.split(",") if w not in WORKLOADS]:
        parser.error(f"--workloads: unknown {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    netsims = netsim_designs(args.netsim_tree, parser)
    known = {**netsims, **{name: Design(name) for name in BASELINES}}
    names = args.designs.split(",")
    if unknown := [d for d in names if d not in known]:
        parser.error(f"--designs: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    # Each tree's design runs beside netsim (or first), so that old and new alternate.
    extra = [name for name in netsims if name != "netsim" and name not in names]
    at = names.index("netsim") + 1 if "netsim" in names else 0
    designs = [known[name] for name in names[:at] + extra + names[at:]]

    raise_fd_limit()
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background (nohup, `&` in a script): the servers would inherit
        # the ignored SIGINT and never stop to report; exec resets a handled one.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"c10k: {LINES} lines, {DELAY * 1000:g} ms after each (jitter: ± "
          f"{WORKLOADS['jitter'].jitter * 1000:g} ms, seed {args.seed}), connections opened over "
          f"{RAMP:g} s; server and client in separate processes; {os.cpu_count()} CPUs; "
          f"load average {load()}; client tick {args.client_tick * 1000:g} ms; times in ms")
    for design in designs:
        if design.tree is not None:
            print(f"  {describe(design)}")
    sys.stdout.flush()
    every_run: list[Run] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="netsim-c10k-") as tmp:
        workdir = Path(tmp)
        scenarios = {w.name: write_scenario(workdir, w, args.seed) for w in workloads}
        for n in sizes:
            for workload in workloads:
                runs = []
                for repeat in range(1, args.repeat + 1):
                    for design in designs:
                        shown = design.name if args.repeat == 1 else f"{design.name} ({repeat}/{args.repeat})"
                        print(f"  running {shown}, {workload.name}, at N = {n:,} ...", file=sys.stderr,
                              flush=True)
                        run = run_one(design, workload, n, repeat, scenarios[workload.name], workdir,
                                      args.seed, args.client_tick)
                        runs.append(run)
                about = f"{DELAY * 1000:g} ms"
                if workload.jitter:
                    about += (f" ± {workload.jitter * 1000:g} ms, seed {args.seed}: no client error, "
                              f"the client judges ttfb")
                print(f"\nN = {n:,}, {workload.name} ({about})\n{table(runs, args.repeat)}")
                print(*goals(runs, workload.name, n, jittered=bool(workload.jitter)), sep="\n", flush=True)
                every_run.extend(runs)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(run) for run in every_run], indent=2) + "\n")
    print(f"\n{len(every_run)} runs in {time.monotonic() - began:.0f} s; load average {load()}")
    return 0


def load() -> str:
    # Shared machines: a busy neighbour shows here before it shows in the figures.
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def raise_fd_limit() -> None:
    # Children inherit it: the servers and the client each hold N sockets or more.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    sys.exit(main())
