"""The JSON Schema of the scenario format, and the key reference of docs/scenarios.md.

The models in ``scenario.py`` say what is valid and, beside each field, what the key
means (``description``), a value it could take (``examples``) and, where words say it
better than a value, how its default reads (``json_schema_extra``). Everything a user
reads about the format is made from them here: the schema that ``netsim schema`` prints
(committed as ``netsim.schema.json`` for editors), the reference tables of
``docs/scenarios.md`` and of ``netsim schema --markdown`` (which a pip install ships,
where the docs folder is not), and the hints beside validation problems.

The schema is JSON Schema Draft 7, the newest that the YAML language server reads:
``definitions`` rather than ``$defs``, and none of the 2019-09/2020-12 keywords.

After a change of the format, regenerate the committed files::

    python -m netsim._schema --write

A test fails while they are stale, or while a key has no description or no example.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from netsim.scenario import (
    DEFAULT_TEXT,
    Command,
    Duration,
    ExpectationText,
    ModelName,
    Rate,
    Scenario,
    Share,
    Size,
    SizeSpan,
)

DRAFT_7 = "http://json-schema.org/draft-07/schema#"
SCHEMA_FILE = "netsim.schema.json"  # at the repository root
DOCS_FILE = Path("docs") / "scenarios.md"
DOCS_BEGIN = ("<!-- begin reference: made by `python -m netsim._schema --write` "
              "from the models of netsim/scenario.py -->")
DOCS_END = "<!-- end reference -->"

# Keywords of JSON Schema 2019-09 and 2020-12 that Draft 7 readers do not know; a schema
# that used them would be checked differently (or not at all) in editors.
NEWER_KEYWORDS = frozenset({
    "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
    "$vocabulary", "prefixItems", "unevaluatedProperties", "unevaluatedItems",
    "dependentRequired", "dependentSchemas", "minContains", "maxContains",
})
# Keywords that describe a value rather than constrain it.
ANNOTATIONS = frozenset({"description", "examples", "default", "title", DEFAULT_TEXT})
# How the types that are more than their JSON type read in the reference and the hints.
NAMED_TYPES: tuple[tuple[Any, str], ...] = (
    (Duration, "duration"),
    (Size, "size"),
    (Rate, "rate"),
    (Share, "number from 0 to 1, or a percentage"),
    (SizeSpan, "sizes A..B"),
    (ExpectationText, "expectation"),
    (ModelName, "model name"),
    (Command, "list of strings, or one string"),
)


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
    """The keys of the models without a description or an example beside their field,
    as ``Server.jitter (no example)``."""
    missing = []
    for name, (model, _) in models().items():
        for field, info in model.model_fields.items():
            lacks = [what for what, given in (("description", info.description),
                                              ("example", info.examples)) if not given]
            if lacks:
                missing.append(f"{name}.{field} (no {' and no '.join(lacks)})")
    return missing


def field_info(model: str, field: str) -> FieldInfo | None:
    """The pydantic field of ``field`` in the model called ``model``, if there is one."""
    found = models().get(model)
    return found[0].model_fields.get(field) if found else None


def example(info: FieldInfo) -> Any:
    """The first example of a key, as it would be written in YAML."""
    return info.examples[0] if info.examples else None


def default_text(info: FieldInfo) -> str | None:
    """How the default of a key reads, where the field says it in words."""
    extra = info.json_schema_extra
    text = extra.get(DEFAULT_TEXT) if isinstance(extra, dict) else None
    return text if isinstance(text, str) else None


# --- the schema ------------------------------------------------------------------------


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 7) of the scenario format, with a description and an example
    on every key."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    raw = Scenario.model_json_schema(ref_template="#/definitions/{model}")
    definitions = raw.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DRAFT_7,
        "title": "netsim scenario",
        "description": "A netsim scenario (format version 1): slow TCP servers, the client models "
                       "to run against them, and timing expectations. `netsim schema --markdown` "
                       "prints the reference of every key; check a file with `netsim validate FILE`. Editors "
                       "that use the YAML language server complete and check a scenario whose first "
                       "line is `# yaml-language-server: $schema=PATH-TO-THIS-FILE`.",
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
        for prop in target.get("properties", {}).values():
            # pydantic's titles are the keys' names again; the default's words go to the docs.
            prop.pop("title", None)
            prop.pop(DEFAULT_TEXT, None)
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
            if field in required:
                default = "required"
            else:
                default = default_text(info) or _default_text(info.default, info.default_factory)
            cells = [f"`{field}`", type_text(prop, definitions), default,
                     f"`{example_yaml(field, example(info))}`", info.description or ""]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


REFERENCE_INTRO = """\
# The netsim scenario format, version 1: every key

A scenario is a YAML file: `netsim new FILE.yaml` writes one with a comment on every key,
`netsim validate FILE` checks it and `netsim run FILE` runs it. A duration is a number
with a unit (`250ms`, `1.5s`; a bare number is seconds); a size is bytes, or a number with
`B`, `KB`, `MB`, `GB` (1000-based) or `KiB`, `MiB`, `GiB` (1024-based). An expectation
reads `METRIC OP VALUE [± TOLERANCE] [in N% of runs]`, like `elapsed <= ideal + 250ms`.
`netsim clients` lists the client models.

"""


def reference_text() -> str:
    """The reference as ``netsim schema --markdown`` prints it: a title, a word on units,
    and the tables of every key (those of docs/scenarios.md)."""
    return REFERENCE_INTRO + reference_markdown()


def type_text(prop: dict[str, Any], definitions: dict[str, Any]) -> str:
    """How a key's type reads: ``duration``, ``list of string``, ``line | all | mapping``."""
    core = _core(prop)
    named = _named_types().get(json.dumps(core, sort_keys=True))
    if named is not None:
        return named
    if "$ref" in core:
        return f"mapping (`{models_by_ref(core['$ref'])}`)"
    if "anyOf" in core:
        parts = [part for part in core["anyOf"] if part != {"type": "null"}]
        # A named type that is itself a choice, made optional (pydantic flattens the two).
        named = _named_types().get(json.dumps({"anyOf": parts}, sort_keys=True))
        if named is not None:
            return named
        return " or ".join(dict.fromkeys(type_text(part, definitions) for part in parts))
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


def _core(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without its annotations: what a value must be, not what it means."""
    return {key: value for key, value in schema.items() if key not in ANNOTATIONS}


@functools.cache
def _named_types() -> dict[str, str]:
    """The names of NAMED_TYPES by their schema's core, as sorted JSON."""
    return {json.dumps(_core(TypeAdapter(annotation).json_schema()), sort_keys=True): text
            for annotation, text in NAMED_TYPES}


def models_by_ref(ref: str) -> str:
    name = ref.rsplit("/", 1)[-1]
    return models().get(name, (None, name))[1]


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
    info = field_info(model, field)
    if info is None:
        return ""
    return f"{field} takes {_hint_type(model, field)}, like `{example_yaml(field, example(info))}`"


def _hint_type(model: str, field: str) -> str:
    schema = _schema()
    target = schema if model == "Scenario" else schema.get("definitions", {}).get(model, {})
    prop = target.get("properties", {}).get(field, {})
    text = type_text(prop, schema.get("definitions", {}))
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
        print("netsim/scenario.py: give these keys a description and an example in their "
              "Field(): " + ", ".join(missing), file=sys.stderr)
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


__all__ = ["hint", "missing_docs", "models", "reference_markdown", "reference_text", "scenario_schema",
           "schema_text"]
