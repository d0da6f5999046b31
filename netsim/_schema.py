"""The JSON Schema of the scenario format, and the key reference of docs/scenarios.md.

The models in ``scenario.py`` say what is valid; this module says what each key means.
``FIELDS`` holds the description and an example of every key of every model, in one
place, and everything a user reads about the format is made from it: the schema that
``netsim schema`` prints (committed as ``netsim.schema.json`` for editors), the
reference tables of ``docs/scenarios.md``, and the hints beside validation problems.

The schema is JSON Schema Draft 7, the newest that the YAML language server reads:
``definitions`` rather than ``$defs``, and none of the 2019-09/2020-12 keywords.

After a change of the format (or of ``FIELDS``), regenerate the committed files::

    python -m netsim._schema --write

A test fails while they are stale, or while a key of a model has no entry here.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticUndefined

from netsim.expectations import METRICS, OPERATORS
from netsim.scenario import Duration, Rate, Scenario, Size

DRAFT_7 = "http://json-schema.org/draft-07/schema#"
SCHEMA_FILE = "netsim.schema.json"  # at the repository root
DOCS_FILE = Path("docs") / "scenarios.md"
DOCS_BEGIN = "<!-- begin reference: made by `python -m netsim._schema --write` from netsim/_schema.py -->"
DOCS_END = "<!-- end reference -->"

# Keywords of JSON Schema 2019-09 and 2020-12 that Draft 7 readers do not know; a schema
# that used them would be checked differently (or not at all) in editors.
NEWER_KEYWORDS = frozenset({
    "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
    "$vocabulary", "prefixItems", "unevaluatedProperties", "unevaluatedItems",
    "dependentRequired", "dependentSchemas", "minContains", "maxContains",
})


@dataclass(frozen=True)
class Doc:
    """What one key of the format means, with a value it could take."""

    description: str
    example: Any  # a valid value of the key, as it would be written in YAML
    default: str | None = None  # how the default reads, where the model's own value says little
    type: str | None = None  # how the type reads, where the schema's says little
    # Another form the key takes that the model's schema cannot show, because a validator
    # turns it into the model's type before validation (`probability: 25%`).
    also: dict[str, Any] | None = None


FIELDS: dict[str, dict[str, Doc]] = {
    "Scenario": {
        "netsim": Doc("The version of the format: always 1, the first key of every scenario. "
                      "It also marks a YAML file as a scenario for the pytest plugin.", 1),
        "name": Doc("The scenario's name, shown in reports, results and baselines: letters, "
                    "digits, `_`, `-` and `.`, starting with a letter or `_`.", "three-ports"),
        "description": Doc("What the scenario shows, in a sentence or two; printed above the "
                           "results.", "Three slow servers, a blocking and a select() client."),
        "seed": Doc("Makes jitter and random faults reproducible: the same seed gives the same "
                    "choices in every run.", 7, default="none: other choices in every run"),
        "servers": Doc("The slow TCP servers, at least one; each is a mapping with the keys of "
                       "`servers[]` below.",
                       [{"name": "a", "port": 10000, "poem": "1111\n2222\n", "delay": "1s"}]),
        "clients": Doc("The client models to run, at least one: a model's name, or a mapping with "
                       "the keys of `clients[]` below. Each runs alone, against fresh servers.",
                       ["blocking", "select", {"model": "asyncio", "targets": ["a"]}]),
        "expect": Doc("Timing expectations per client (by its name); those under `all` apply to "
                      "every client. Each reads `METRIC OP VALUE [± TOLERANCE] [in N% of runs]`.",
                      {"blocking": ["elapsed == 12s ± 5%"], "all": ["errors == 0"]},
                      default="none: the run is measured, nothing is checked"),
    },
    "Server": {
        "name": Doc("The server's name, unique among the servers; `targets`, logs, reports and "
                    "results use it.", "a"),
        "host": Doc("The address to listen on. An address outside loopback needs "
                    "`--allow-external`.", "127.0.0.1"),
        "port": Doc("The TCP port; 0 takes any free one. `--free-ports` and the pytest plugin "
                    "replace fixed ports with free ones.", 10000, default="0: any free port"),
        "poem": Doc("The text to serve. Give either `poem` or `poem_file`.", "1111\n2222\n3333\n",
                    default="none: give `poem` or `poem_file`"),
        "poem_file": Doc("A file whose text to serve, relative to the scenario file's folder; it "
                         "is sent byte for byte.", "poems/harbour.txt",
                         default="none: give `poem` or `poem_file`"),
        "chunk": Doc("How the text is cut into the pieces that are sent one at a time: `line` "
                     "(a line each), `all` (the whole text at once) or `{bytes: N}` (N bytes "
                     "each).", {"bytes": 64}),
        "newline": Doc("`keep` sends every line with its newline; `strip` sends the lines "
                       "without it.", "strip"),
        "delay": Doc("The pause after every chunk, the last one included: chunk i of a "
                     "connection is due i × delay after it was accepted.", "1s"),
        "mode": Doc("`concurrent` serves every connection at once; `serial` serves one at a "
                    "time while the others wait in the listen backlog, like a single-threaded "
                    "accept loop.", "serial"),
        "jitter": Doc("Makes each pause vary: it is drawn uniformly from delay ± jitter (never "
                      "below zero); `seed` makes the draws repeatable.", "100ms"),
        "initial_delay": Doc("A wait before the first chunk of every connection, as on a link "
                             "with a long round trip.", "2s"),
        "rate": Doc("A bandwidth cap in bytes per second, within chunks and across them: a "
                    "size, optionally with /s.", "28B/s", default="none: no cap"),
        "accept_delay": Doc("How long a new connection waits before it is served, as behind a "
                            "slow accept loop.", "500ms"),
        "close_delay": Doc("How long the server keeps a connection open after the pause that "
                           "follows its last chunk, before it closes it.", "1s"),
        "fault": Doc("What goes wrong on this server's connections: a mapping with the keys of "
                     "`servers[].fault` below.", {"kind": "reset", "after": 10},
                     default="none: every connection is served whole"),
        "upstream": Doc("Makes the server a proxy: it forwards what a real service sends "
                        "(HOST:PORT, or the name of another server of the scenario) under its own "
                        "conditions, instead of serving a poem.", "127.0.0.1:8080",
                        default="none: serve the poem"),
        "direction": Doc("For a proxy: which way its conditions apply: `downstream` (the "
                         "service's bytes to the client), `upstream` (the client's bytes to the "
                         "service) or `both`.", "both", default="`downstream` (proxies only)"),
    },
    "Fault": {
        "kind": Doc("`refuse`: no connection is accepted; `reset`: the connection is reset; "
                    "`close`: it is closed cleanly, cut short; `stall`: it stays open and sends "
                    "nothing more; `blackhole`: it is accepted, then nothing is ever read, sent "
                    "or closed.", "reset"),
        "after": Doc("The bytes sent before the fault strikes (not for `refuse` or `blackhole`).",
                     "10B"),
        "probability": Doc("The share of connections the fault strikes, chosen by the scenario's "
                           "`seed`: a fraction, or a percentage (`refuse` takes only 1).", "33%",
                           also={"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"},
                           type="number from 0 to 1, or a percentage"),
    },
    "ByteChunks": {
        "bytes": Doc("The size of each piece (the last may be shorter): a number of bytes, or "
                     "a number with a unit (4KB = 4000, 4KiB = 4096).", 64),
    },
    "Client": {
        "model": Doc("The client model: one of those `netsim clients` lists.", "select"),
        "name": Doc("A label of its own, unique in the scenario, for `expect` and reports; "
                    "needed when a model is listed twice.", "asyncio-ab",
                    default="the model's name"),
        "targets": Doc("The servers to connect to, in order, one connection per entry: a server "
                       "listed twice gets two connections.", ["a", "b"],
                       default="every server, one connection each"),
        "timeout": Doc("The longest a connection waits for its next byte (connecting included) "
                       "before it ends as a timeout, counted by `errors.timeout`.", "2s",
                       default="twice the longest silence the scenario expects, plus 1s"),
        "connections": Doc("How many connections to make to each target, interleaved (a, b, a, "
                           "b...): `targets: [a, b]` with `connections: 3` makes six.", 100),
        "ramp": Doc("Spreads the starts of the connections evenly over this long, instead of "
                    "opening them all at once.", "1s"),
    },
}


# --- the models and where they stand -------------------------------------------------


def models() -> dict[str, tuple[type[BaseModel], str]]:
    """Every model of the format by class name, with the YAML path where it first stands,
    in the order a reader meets them (depth first: a server's `chunk` before `clients`)."""
    found: dict[str, tuple[type[BaseModel], str]] = {}

    def visit(model: type[BaseModel], path: str) -> None:
        found[model.__name__] = (model, path)
        for name, field in model.model_fields.items():
            for inner, suffix in _models_in(field.annotation):
                if inner.__name__ not in found:
                    visit(inner, f"{path}.{name}{suffix}" if path else f"{name}{suffix}")

    visit(Scenario, "")
    return found


def _models_in(annotation: Any, suffix: str = "") -> Iterator[tuple[type[BaseModel], str]]:
    """The models inside an annotation, each with the path suffix that reaches it (``[]``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, suffix
    elif origin is typing.Annotated:
        yield from _models_in(args[0], suffix)
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg, suffix)
    elif origin is list:
        yield from _models_in(args[0], suffix + "[]")
    elif origin is dict:
        yield from _models_in(args[1], suffix + ".NAME")


def missing_docs() -> list[str]:
    """The keys of the models that FIELDS does not describe (``Server.jitter``), and stale entries."""
    missing = []
    known = models()
    for name, (model, _) in known.items():
        docs = FIELDS.get(name, {})
        missing += [f"{name}.{field}" for field in model.model_fields if field not in docs]
        missing += [f"{name}.{field} (no such key any more)" for field in docs
                    if field not in model.model_fields]
    missing += [f"{name} (no such model any more)" for name in FIELDS if name not in known]
    return missing


def field_doc(model: str, field: str) -> Doc | None:
    return FIELDS.get(model, {}).get(field)


# --- the schema ------------------------------------------------------------------------


def _expectation_pattern() -> str:
    """A loose check that an expectation starts with a metric and an operator.

    The loader checks the rest; an editor underlines a misspelt metric at once.
    """
    names = sorted((re.escape(name) for name in METRICS if name != "speedup"), key=len, reverse=True)
    ops = "|".join(re.escape(op) for op in sorted(OPERATORS, key=len, reverse=True))
    return rf"^\s*(speedup\s*\([^()]*\)|(?:{'|'.join(names)}))\s*({ops})"


def _expectation_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": _expectation_pattern(),
        "description": "METRIC OP VALUE [± TOLERANCE] [in N% of runs], like "
                       "`elapsed <= ideal + 250ms` or `speedup(blocking) >= 2.5`.",
        "examples": ["elapsed == 12s ± 5%", "elapsed <= ideal + 250ms", "speedup(blocking) >= 2.5",
                     "intact == 100%", "elapsed <= 4.2s in 90% of runs"],
    }


def _client_shorthand() -> dict[str, Any]:
    from netsim._plugins import client_model_names

    return {"type": "string", "enum": client_model_names(),
            "description": "A client model's name: `netsim clients` lists them."}


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 7) of the scenario format, with a description and an example
    on every key."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    from netsim._plugins import client_model_names

    raw = Scenario.model_json_schema(ref_template="#/definitions/{model}")
    definitions = raw.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DRAFT_7,
        "title": "netsim scenario",
        "description": "A netsim scenario (format version 1): slow TCP servers, the client models "
                       "to run against them, and timing expectations. Reference: docs/scenarios.md "
                       "in the netsim repository; check a file with `netsim validate FILE`.",
        **{key: value for key, value in raw.items() if key not in ("title", "description")},
    }
    if definitions:
        schema["definitions"] = definitions
    for name, (model, _) in models().items():
        target = schema if name == "Scenario" else definitions.get(name)
        if target is None:
            continue
        if name != "Scenario":
            target["description"] = _docstring(model)
        for field, prop in target.get("properties", {}).items():
            _document(name, field, prop)
    # What the models accept before validation, which pydantic cannot see: the shorthand
    # `- blocking` for `- {model: blocking}`, the names of the models, the expectation grammar.
    clients = schema["properties"]["clients"]
    clients["items"] = {"anyOf": [_client_shorthand(), clients["items"]]}
    if "Client" in definitions:
        definitions["Client"]["properties"]["model"]["enum"] = client_model_names()
    expect = schema["properties"]["expect"]
    expect["additionalProperties"]["items"] = _expectation_schema()
    expect["additionalProperties"]["minItems"] = 1
    _clean(schema)
    newer = sorted(_newer_keywords(schema))
    if newer:
        raise AssertionError(f"the schema uses keywords Draft 7 readers do not know: {newer}")
    return schema


def schema_text() -> str:
    """The schema as it is printed and committed: indented JSON, one trailing newline."""
    return json.dumps(scenario_schema(), indent=2, ensure_ascii=False) + "\n"


def _docstring(model: type[BaseModel]) -> str:
    # Docstrings quote names as reStructuredText does (``x``); the docs are Markdown.
    return " ".join((model.__doc__ or model.__name__).split()).replace("``", "`")


def _document(model: str, field: str, prop: dict[str, Any]) -> None:
    doc = field_doc(model, field)
    prop.pop("title", None)
    if doc is None:
        return  # missing_docs() names it, and a test fails
    if doc.also is not None:
        alternatives = prop.pop("anyOf", None) or [
            {key: prop.pop(key) for key in list(prop) if key not in ("default", "title")}]
        prop["anyOf"] = [*alternatives, doc.also]
    prop["description"] = doc.description
    prop["examples"] = [doc.example]


def _clean(node: Any) -> None:
    """Drop what Draft 7 readers would misread: OpenAPI's ``discriminator``, ``format: path``."""
    if isinstance(node, dict):
        node.pop("discriminator", None)
        if node.get("format") == "path":
            del node["format"]
        for value in node.values():
            _clean(value)
    elif isinstance(node, list):
        for value in node:
            _clean(value)


def _newer_keywords(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in NEWER_KEYWORDS:
                yield key
            # The names under properties/definitions are keys of the format, not keywords.
            if key in ("properties", "definitions") and isinstance(value, dict):
                for child in value.values():
                    yield from _newer_keywords(child)
            else:
                yield from _newer_keywords(value)
    elif isinstance(node, list):
        for value in node:
            yield from _newer_keywords(value)


# --- the reference in docs/scenarios.md -----------------------------------------------


def reference_markdown() -> str:
    """The tables of every key of the format, by where it stands, for docs/scenarios.md."""
    schema = scenario_schema()
    definitions = schema.get("definitions", {})
    lines: list[str] = []
    for name, (model, path) in models().items():
        target = schema if name == "Scenario" else definitions.get(name, {})
        lines += [f"### {'The top level' if not path else f'`{path}`'}", ""]
        if name != "Scenario":
            lines += [_docstring(model), ""]
        required = set(target.get("required", []))
        lines += ["| key | type | default | example | meaning |", "| --- | --- | --- | --- | --- |"]
        for field, info in model.model_fields.items():
            prop = target.get("properties", {}).get(field, {})
            doc = field_doc(name, field)
            if field in required:
                default = "required"
            elif doc is not None and doc.default is not None:
                default = doc.default
            else:
                default = _default_text(info.default, info.default_factory)
            shown_type = doc.type if doc and doc.type else type_text(prop, definitions)
            cells = [f"`{field}`", shown_type, default,
                     f"`{example_yaml(field, doc.example)}`" if doc else "",
                     doc.description if doc else ""]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    from netsim.clients import models as client_models

    lines += ["### Client models", "", "| model | how it reads |", "| --- | --- |"]
    lines += [f"| `{name}` | {model.summary} |" for name, model in client_models().items()
              if not isinstance(model, Exception)]
    return "\n".join(lines) + "\n"


def type_text(prop: dict[str, Any], definitions: dict[str, Any]) -> str:
    """How a key's type reads: ``duration``, ``list of string``, ``line | all | mapping``."""
    core = {key: value for key, value in prop.items()
            if key not in ("description", "examples", "default", "title")}
    if _is_like(core, Duration):
        return "duration"
    if _is_like(core, Size):
        return "size"
    if _is_like(core, Rate):
        return "rate"
    if core.get("pattern") == _expectation_pattern():
        return "expectation"
    if "$ref" in core:
        return f"mapping (`{models_by_ref(core['$ref'])}`)"
    if "anyOf" in core:
        parts = [type_text(part, definitions) for part in core["anyOf"] if part != {"type": "null"}]
        return " or ".join(dict.fromkeys(parts))
    if "const" in core:
        return f"`{core['const']}`"
    if "enum" in core:
        return " | ".join(f"`{value}`" for value in core["enum"])
    kind = core.get("type")
    if kind == "array":
        items = type_text(core.get("items", {}), definitions)
        plural = items in ("string", "integer", "number", "duration", "size", "expectation")
        return f"list of {items}{'s' * plural}"
    if kind == "object" and isinstance(core.get("additionalProperties"), dict):
        return f"mapping of name to {type_text(core['additionalProperties'], definitions)}"
    return str(kind or "any")


def models_by_ref(ref: str) -> str:
    name = ref.rsplit("/", 1)[-1]
    return models().get(name, (None, name))[1]


def _is_like(core: dict[str, Any], annotation: Any) -> bool:
    own = TypeAdapter(annotation).json_schema()
    return bool(own.get("anyOf")) and core.get("anyOf") == own["anyOf"]


def _default_text(default: Any, factory: Any) -> str:
    if factory is not None:
        default = factory()
    if default is PydanticUndefined or default is None:
        return "none"
    if isinstance(default, float) and math.isfinite(default):
        return f"`{default:g}`"
    if isinstance(default, BaseModel):
        default = default.model_dump()
    if default in ({}, []):
        return "none"
    if default == "":
        return "empty"
    return f"`{_inline_yaml(default)}`"


def _inline_yaml(value: Any) -> str:
    """A value as it is written on one line of YAML: ``{bytes: 64}``, ``[a, b]``, ``"x\\n"``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_inline_yaml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline_yaml(item) for item in value) + "]"
    if isinstance(value, str):
        # Plain where YAML reads it back as the same string inside a flow list, quoted else.
        plain = "\n" not in value and value.strip() == value and value != ""
        if plain:
            try:
                plain = yaml.safe_load(f"[{value}]") == [value]
            except yaml.YAMLError:
                plain = False
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def example_yaml(field: str, example: Any) -> str:
    """``delay: 1s``: a key with its example, as one line of YAML."""
    return f"{field}: {_inline_yaml(example)}"


def hint(model: str, field: str) -> str:
    """What a key takes, with an example, for a problem with its value."""
    doc = field_doc(model, field)
    if doc is None:
        return ""
    return f"{field} takes {_hint_type(model, field)}, like `{example_yaml(field, doc.example)}`"


def _hint_type(model: str, field: str) -> str:
    schema = _schema()
    target = schema if model == "Scenario" else schema.get("definitions", {}).get(model, {})
    prop = target.get("properties", {}).get(field, {})
    doc = field_doc(model, field)
    text = doc.type if doc and doc.type else type_text(prop, schema.get("definitions", {}))
    if text.startswith("`"):
        return f"one of {text.replace(' | ', ', ')}"
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


# --- regenerating the committed files --------------------------------------------------


def render_docs(current: str) -> str:
    """``current`` (docs/scenarios.md) with its reference section made anew."""
    start, end = current.find(DOCS_BEGIN), current.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"{DOCS_FILE} has lost its markers {DOCS_BEGIN!r} .. {DOCS_END!r}")
    return current[: start + len(DOCS_BEGIN)] + "\n\n" + reference_markdown() + "\n" + current[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m netsim._schema",
        description=f"Regenerate (or check) {SCHEMA_FILE} and the reference in {DOCS_FILE}.")
    parser.add_argument("--write", action="store_true", help="write the files")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository root (default: this checkout)")
    args = parser.parse_args(argv)
    missing = missing_docs()
    if missing:
        print("netsim/_schema.py: FIELDS lacks a description and an example of: "
              + ", ".join(missing), file=sys.stderr)
        return 1
    outputs = {args.root / SCHEMA_FILE: schema_text()}
    docs = args.root / DOCS_FILE
    outputs[docs] = render_docs(docs.read_text(encoding="utf-8"))
    stale = [path for path, text in outputs.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.write:
            path.write_text(outputs[path], encoding="utf-8")
            print(f"wrote {path}")
        else:
            print(f"{path} is stale: run python -m netsim._schema --write", file=sys.stderr)
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FIELDS", "Doc", "hint", "missing_docs", "models", "reference_markdown",
           "scenario_schema", "schema_text"]
