"""``netsim new``: a commented starter scenario, ready to edit, validate and run.

The first line is a modeline for the YAML language server (VS Code's YAML extension,
and editors built on it), which then completes and checks every key against the
scenario schema. It names a local schema file so that completion works offline: the
nearest ``netsim.schema.json`` in the new file's folder or above it (the one a
repository commits), or one written beside the new file when there is none.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from netsim._errors import UsageError
from netsim._schema import SCHEMA_FILE, schema_text

MODELINE = "# yaml-language-server: $schema={ref}\n"

# Two servers, two client models: at time scale 1 it runs in about a second and a
# half, and every expectation holds on an ordinary machine.
TEMPLATE = """\
# A netsim scenario: slow TCP servers, the client models to run against them, and the
# timing you expect. Check it with `netsim validate {path}`, run it with
# `netsim run {path}`. `netsim schema --markdown` describes every key; an editor
# with the YAML language server completes them from the schema on the first line.
netsim: 1                     # the format version: always 1
name: {name}
description: Two slow servers; a blocking client reads one after the other, a select() client both at once.

servers:
  - name: a                   # unique: `targets` and the reports use it
    port: 0                   # 0: any free port; a fixed one for clients outside netsim
    poem: |                   # the text to send; or poem_file: PATH (relative to this file)
      first line
      second line
    chunk: line               # line | all | {{bytes: N}}
    delay: 200ms              # the pause after every chunk: 2 lines x 200ms = 400ms
    mode: concurrent          # concurrent | serial (one connection at a time)
  - name: b
    poem: "one\\ntwo\\n"
    delay: 200ms

clients:                      # `netsim clients` lists the models
  - blocking                  # a, then b: about 800ms
  - select                    # a and b at once: about 400ms
  # - model: asyncio          # a mapping gives options:
  #   name: asyncio-b         #   a label of its own (default: the model's name)
  #   targets: [b]            #   the servers to connect to (default: all of them)
  # - model: command          # your own program, judged from the servers' side:
  #   name: mine
  #   run: [python3, my_client.py, "{{ports}}"]   # the servers' ports as arguments
  #   output: poems           #   its output must hold every poem it read

expect:                       # per client, by name; `all` applies to every client
  blocking:
    - elapsed == 800ms ± 25%        # == on a duration needs a tolerance
  select:
    - elapsed <= ideal + 200ms      # ideal: the time with zero overhead, from the scenario
    - speedup(blocking) >= 1.5      # blocking's elapsed / select's elapsed
  all:
    - errors == 0
    - intact == 100%                # every byte arrived as it was sent
"""


@dataclass(frozen=True)
class Starter:
    """What ``write_starter`` wrote: the scenario, and the schema file if it made one."""

    path: Path
    schema_ref: str
    schema_written: Path | None


def write_starter(path: str | Path, *, schema: str | None = None) -> Starter:
    """Write a starter scenario to ``path``, which must not exist.

    ``schema`` is what the modeline names (a URL or a path relative to the new file);
    by default the nearest ``netsim.schema.json`` at or above the new file's folder,
    else a ``netsim.schema.json`` written beside it. Raises UsageError when ``path``
    exists or its folder does not, OSError when it cannot be written.
    """
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise UsageError(f"{path}: a scenario file ends in .yaml (or .yml)")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} is not a folder: create it first")
    written: Path | None = None
    if schema is None:
        found = _nearest_schema(path.parent)
        if found is None:
            found = path.parent / SCHEMA_FILE
            written = found
        schema = Path(os.path.relpath(found, path.parent)).as_posix()
        if "/" not in schema:
            schema = f"./{schema}"
    text = MODELINE.format(ref=schema) + TEMPLATE.format(path=path.as_posix(), name=_name(path))
    try:
        # "x": an existing file (even one created a moment ago by someone else) is never replaced.
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise UsageError(f"{path} already exists: netsim new never overwrites a file; "
                         f"give another name") from None
    if written is not None:
        try:
            with open(written, "x", encoding="utf-8") as handle:
                handle.write(schema_text())
        except FileExistsError:
            written = None
    return Starter(path, schema, written)


def _nearest_schema(folder: Path) -> Path | None:
    for candidate in (folder.resolve(), *folder.resolve().parents):
        if (candidate / SCHEMA_FILE).is_file():
            return candidate / SCHEMA_FILE
    return None


def _name(path: Path) -> str:
    """A scenario name from a file name: ``my first.yaml`` -> ``my-first``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "scenario"
    if not re.match(r"[A-Za-z_]", name):
        name = f"s-{name}"
    return name[:64]
