"""The README's authoring and CI sections: their commands exist, their CI job is valid YAML."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from netsim.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.DOTALL)
COMMAND = re.compile(r"(?:^|\s|/)netsim ((?:run|serve|validate|new|schema|clients)\b[^#|&>;]*)")


def netsim_commands() -> list[str]:
    """Every `netsim ...` command written in a code block of the README, as its arguments."""
    commands = []
    for _, body in BLOCKS:
        for line in body.splitlines():
            match = COMMAND.search(line)
            if match and not line.lstrip().startswith(("$", "#")):
                commands.append(match.group(1).strip())
    return commands


def test_the_readme_has_the_authoring_and_ci_sections() -> None:
    """"Writing scenarios" and "In CI" are sections of the README, after its first screen."""
    assert "\n## Writing scenarios\n" in README and "\n## In CI\n" in README
    assert README.index("## Writing scenarios") > README.index("```sh")


@pytest.mark.parametrize("command", netsim_commands())
def test_every_netsim_command_in_the_readme_parses(command: str) -> None:
    """Each netsim command the README shows is accepted by the command line as written."""
    build_parser().parse_args(shlex.split(command))


def test_the_readme_shows_the_commands_of_the_ten_minute_path() -> None:
    """new, validate, run, the pytest plugin, --junit, --repeat and baselines all appear."""
    commands = " ".join(netsim_commands())
    for words in ("new ", "validate ", "run ", "--junit", "--repeat", "--save-baseline", "--baseline",
                  "--max-regression"):
        assert words in commands, words
    assert "pytest scenarios/ --netsim-time-scale" in README


def test_the_github_actions_job_is_a_valid_workflow() -> None:
    """The GitHub Actions example parses as YAML and runs netsim through pytest and `netsim run`."""
    [workflow] = [yaml.safe_load(body) for kind, body in BLOCKS if kind == "yaml" and "runs-on:" in body]
    steps = workflow["jobs"]["netsim"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    assert any(run.startswith("pytest scenarios/") for run in runs)
    assert any(run.startswith("netsim run") and "--junit" in run for run in runs)


def shell_step() -> str:
    """The README's plain shell step: the sh block that tells netsim's exit codes apart."""
    return next(body for kind, body in BLOCKS if kind == "sh" and "case $" in body)


def test_every_exit_code_is_documented() -> None:
    """The README's exit-code table has 0, 1, 2, 3, 130 and 143, and the shell step tells them apart."""
    for code in ("0", "1", "2", "3", "130", "143"):
        assert f"\n| {code} | " in README, code
    assert all(f"{code}) " in shell_step() for code in ("0", "1", "2"))


@pytest.mark.parametrize("command", ["run", "serve"])
def test_every_option_of_run_and_serve_is_in_the_readme(command: str) -> None:
    """Each option of `netsim run` and `netsim serve` is named in the README (by one of its names)."""
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    options = [action.option_strings for action in commands.choices[command]._actions
               if action.option_strings and action.dest != "help"]
    assert ["--seed"] in options
    missing = [names for names in options if not any(f"`{name}" in README for name in names)]
    assert not missing


# The scenario the shell step runs, in small: two 20 ms servers, one client, one expectation.
STEP_SCENARIO = """\
netsim: 1
name: step
servers: [{{name: a, poem: "1\\n2\\n", delay: 20ms}}]
clients: [blocking]
expect: {{blocking: [{expectation}]}}
"""


@pytest.mark.parametrize(("expectation", "code", "says"), [
    ("errors == 0", 0, "every expectation held"),
    ("errors == 1", 1, "an expectation failed, or the overhead regressed"),
    ("errorz == 0", 2, "the scenario or the command line is invalid"),
])
def test_the_shell_step_tells_the_exit_codes_apart_under_bash_e(tmp_path: Path, expectation: str,
                                                                code: int, says: str) -> None:
    """Run as GitHub Actions runs it (`bash -e`), the shell step says what netsim's exit code meant."""
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "three_ports.yaml").write_text(STEP_SCENARIO.format(expectation=expectation))
    # `netsim` on the PATH is this checkout's, whichever way it was installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "netsim").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        exec {shlex.quote(sys.executable)} -m netsim "$@"
    """))
    (bin_dir / "netsim").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-e", "-c", shell_step()], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.splitlines()[-1:]) == (code, [says]), done.stderr
