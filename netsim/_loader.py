"""Load scenario files with yaml.safe_load semantics and line numbers in every error.

YAML is composed into nodes (which carry their positions), turned into plain Python
values by PyYAML's safe constructor, and the position of every value and key is kept
by its path. Pydantic then validates the values; each of its errors has a path, which
finds the line. All problems of a file are reported at once.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from netsim._errors import Problem, ScenarioError
from netsim.scenario import Location, Scenario, check_references

Position = tuple[int, int]  # 1-based line and column


class _Document:
    """Plain values of a YAML document, and where each value and key stands."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.values: dict[Location, Position] = {}
        self.keys: dict[Location, Position] = {}
        self.duplicates: list[tuple[Location, str]] = []
        self._loader = loader

    def build(self, node: yaml.Node, path: Location) -> Any:
        self.values[path] = _position(node)
        if isinstance(node, yaml.MappingNode):
            self._loader.flatten_mapping(node)  # resolve `<<` merge keys as safe_load does
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._loader.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    key = str(key)
                child = (*path, key)
                if key in result:
                    self.duplicates.append((child, f"duplicate key {key!r}: it is already given above"))
                self.keys[child] = _position(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._loader.construct_object(node, deep=True)

    def locate(self, loc: Location, *, key: bool = False) -> Position:
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return (1, 1)


def _position(node: yaml.Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def format_path(loc: Iterable[str | int]) -> str:
    """``('servers', 1, 'delay')`` -> ``servers[1].delay``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_scenario(path: str | Path, *, client_models: Iterable[str] | None = None) -> Scenario:
    """Read, parse and check the scenario file at ``path``.

    Raises ScenarioError listing every problem, each with file:line:col.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except IsADirectoryError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "is a directory, not a scenario file")]) \
            from None
    except UnicodeDecodeError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "is not UTF-8 text")]) from None
    except OSError as error:
        raise ScenarioError([Problem(str(path), 1, 1, "", error.strerror or str(error))]) from None
    return load_scenario_text(text, filename=str(path), base_dir=path.parent,
                              client_models=client_models)


def load_scenario_text(
    text: str,
    *,
    filename: str = "<scenario>",
    base_dir: str | Path = ".",
    client_models: Iterable[str] | None = None,
) -> Scenario:
    """Parse and check a scenario given as text; ``poem_file`` is relative to ``base_dir``.

    Raises ScenarioError listing every problem, each with file:line:col.
    """
    if client_models is None:
        from netsim.clients import MODELS

        client_models = MODELS
    document, data = _compose(text, filename)
    problems = [Problem(filename, *document.locate(loc, key=True), format_path(loc), message)
                for loc, message in document.duplicates]
    if not isinstance(data, dict):
        problems.append(Problem(filename, 1, 1, "", "a scenario is a mapping that starts with `netsim: 1`"))
        raise ScenarioError(problems)
    if "netsim" in data and data["netsim"] != 1:
        line, column = document.locate(("netsim",))
        problems.append(Problem(filename, line, column, "netsim",
                                f"format version {data['netsim']!r} is not supported: "
                                f"this netsim reads `netsim: 1`"))
        raise ScenarioError(problems)
    context = {"client_models": list(client_models)}
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as error:
        problems += _problems(filename, document, error.errors())
        raise ScenarioError(_in_order(problems)) from None
    scenario, unread = _read_poem_files(scenario, Path(base_dir))
    for loc, message in [*unread, *check_references(scenario)]:
        problems.append(Problem(filename, *document.locate(loc), format_path(loc), message))
    if problems:
        raise ScenarioError(_in_order(problems))
    return scenario


def _read_poem_files(scenario: Scenario, base_dir: Path) -> tuple[Scenario, list[tuple[Location, str]]]:
    """The scenario with every ``poem_file`` read into ``poem``, and the files that failed."""
    problems: list[tuple[Location, str]] = []
    servers = []
    for index, server in enumerate(scenario.servers):
        if server.poem_file is None:
            servers.append(server)
            continue
        path = base_dir / server.poem_file
        shown = str(server.poem_file)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(((("servers", index, "poem_file")),
                             f"poem_file {shown!r} does not exist (looked for {path})"))
            continue
        except UnicodeDecodeError:
            problems.append(((("servers", index, "poem_file")), f"poem_file {shown!r} is not UTF-8 text"))
            continue
        except OSError as error:
            problems.append(((("servers", index, "poem_file")),
                             f"poem_file {shown!r} cannot be read: {error.strerror}"))
            continue
        if text == "":
            problems.append(((("servers", index, "poem_file")), f"poem_file {shown!r} is empty"))
            continue
        servers.append(server.model_copy(update={"poem": text}))
    return scenario.model_copy(update={"servers": servers}), problems


def _compose(text: str, filename: str) -> tuple[_Document, Any]:
    loader = yaml.SafeLoader(text)
    document = _Document(loader)
    try:
        node = loader.get_single_node()
        data = document.build(node, ()) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(filter(None, [error.context, error.problem])) or "not valid YAML"
        raise ScenarioError([Problem(filename, line, column, "", f"YAML syntax: {message}")]) from None
    except yaml.YAMLError as error:
        raise ScenarioError([Problem(filename, 1, 1, "", f"YAML: {error}")]) from None
    finally:
        loader.dispose()
    if data is None:
        raise ScenarioError([Problem(filename, 1, 1, "", "the file is empty: a scenario starts with "
                                     "`netsim: 1`")])
    return document, data


def _problems(filename: str, document: _Document, details: list[ErrorDetails]) -> list[Problem]:
    return [_problem(filename, document, detail) for detail in details
            if not _wrong_union_branch(detail, details)]


def _wrong_union_branch(detail: ErrorDetails, details: list[ErrorDetails]) -> bool:
    """Is this the complaint of a union member the input was plainly not meant for?

    ``chunk: {bytes: 0}`` fails both ``Literal['line', 'all']`` and ``ByteChunks``; only
    the second says something useful.
    """
    loc = detail["loc"]
    if not any(_is_union_tag(part) for part in loc):
        return False
    where = _clean_loc(loc)
    siblings = [other for other in details
                if other is not detail and _clean_loc(other["loc"])[:len(where)] == where]
    if not siblings:
        return False
    if detail["type"] == "literal_error":
        return not isinstance(detail["input"], str)
    if detail["type"] in ("model_type", "dict_type"):
        return not isinstance(detail["input"], dict)
    return False


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part.startswith("function-"))


def _in_order(problems: list[Problem]) -> list[Problem]:
    # A union can report one mistake twice; a reader wants them top to bottom.
    return sorted(dict.fromkeys(problems), key=lambda problem: (problem.line, problem.column))


def _problem(filename: str, document: _Document, detail: ErrorDetails) -> Problem:
    loc = _clean_loc(detail["loc"])
    kind = detail["type"]
    if kind == "extra_forbidden":
        line, column = document.locate(loc, key=True)
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed here: {', '.join(allowed)}"
        return Problem(filename, line, column, format_path(loc[:-1]), f"unknown key {loc[-1]!r}{hint}")
    if kind == "missing":
        line, column = document.locate(loc[:-1])
        return Problem(filename, line, column, format_path(loc[:-1]),
                       f"missing required key {loc[-1]!r}")
    line, column = document.locate(loc)
    message = detail["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "string_pattern_mismatch":
        message = (f"{detail['input']!r} is not a valid name: use letters, digits, '_', '-' "
                   f"and '.', starting with a letter or '_'")
    elif kind == "literal_error":
        message = f"{detail['input']!r} is not allowed: {message[0].lower()}{message[1:]}"
    elif kind in ("dict_type", "model_type", "list_type", "string_type", "int_type", "int_parsing",
                  "too_short", "greater_than_equal", "less_than_equal",
                  "greater_than", "bool_type"):
        message = f"{message} (got {detail['input']!r})"
    return Problem(filename, line, column, format_path(loc), message)


def _clean_loc(loc: tuple[str | int, ...]) -> Location:
    # Unions add the member's name to the path (`chunk.literal['line','all']`,
    # `chunk.ByteChunks.bytes`); it says nothing about where the error stands.
    return tuple(part for part in loc if not _is_union_tag(part))


def _allowed_keys(loc: Location) -> list[str]:
    """The keys a mapping at ``loc`` may hold, found by walking the models' fields."""
    model: Any = Scenario
    for part in loc:
        model = _inner(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and isinstance(part, int):
        return _unwrap(args[0])
    if origin is dict:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    """The model inside Annotated[...] and Optional/unions, if there is one."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    for arg in typing.get_args(annotation):
        inner = arg
        while typing.get_origin(inner) is typing.Annotated:
            inner = typing.get_args(inner)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


