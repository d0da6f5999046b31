"""Load scenario files with yaml.safe_load semantics and line numbers in every error.

YAML is composed into nodes (which carry their positions), turned into plain Python
values by PyYAML's safe constructor, and the position of every value and key is kept
by its path. Pydantic then validates the values; each of its errors has a path, which
finds the line. All problems of a file are reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from netsim._errors import Problem, ScenarioError
from netsim.expectations import Expectation
from netsim.scenario import (
    Client,
    ClientEntry,
    ExpectationText,
    Location,
    Scenario,
    Server,
    check_parts,
    check_references,
)

Position = tuple[int, int]  # 1-based line and column
_MERGE = "tag:yaml.org,2002:merge"  # the tag of a `<<` key
_STARTER_HINT = "`netsim new FILE` writes a starter scenario, with a comment on every key"
# Problems whose message already says what the key takes: a hint would repeat it.
_SELF_EXPLAINED = frozenset({"literal_error", "string_pattern_mismatch", "too_short", "greater_than",
                             "greater_than_equal", "less_than", "less_than_equal"})
# PyYAML's words for the slips people make most, and what to do about each.
_SYNTAX_HINTS = (
    ("mapping values are not allowed", "a value that holds ': ' needs quotes, "
                                       "like `description: \"note: this\"`"),
    ("could not find expected ':'", "a key needs ': ' after it; check this line and the one above"),
    ("expected <block end>", "entries of one list or mapping start in the same column: "
                             "check the indentation"),
    ("found undefined alias", "an `*alias` needs an `&anchor` of that name above it"),
)
T = TypeVar("T")

_SERVER: TypeAdapter[Server] = TypeAdapter(Server)
_CLIENT: TypeAdapter[Client] = TypeAdapter(ClientEntry)
_EXPECTATION: TypeAdapter[Expectation] = TypeAdapter(ExpectationText)


class _Document:
    """Plain values of a YAML document, and where each value and key stands."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.values: dict[Location, Position] = {}
        self.keys: dict[Location, Position] = {}
        self.duplicates: list[tuple[Location, str]] = []
        self.containers: set[Location] = set()  # the paths of mappings and lists
        self._loader = loader
        self._merged: dict[int, int] = {}  # id of a mapping node: how many pairs it merged in

    def build(self, node: yaml.Node, path: Location) -> Any:
        self.values[path] = _position(node)
        if isinstance(node, yaml.CollectionNode):
            self.containers.add(path)
        if isinstance(node, yaml.MappingNode):
            if id(node) not in self._merged:  # an aliased node comes here again, flattened
                own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
                self._loader.flatten_mapping(node)  # resolve `<<` merge keys as safe_load does
                self._merged[id(node)] = len(node.value) - own
            # flatten_mapping puts the merged pairs first; the mapping's own keys override
            # them, as in safe_load, and only a key given twice among its own is a mistake.
            merged = self._merged[id(node)]
            result: dict[Any, Any] = {}
            own_keys: set[Any] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                key = self._loader.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    key = str(key)
                child = (*path, key)
                if index >= merged:
                    if key in own_keys:
                        self.duplicates.append((child, f"duplicate key {key!r}: it is already given above"))
                    own_keys.add(key)
                self.keys[child] = _position(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._loader.construct_object(node, deep=True)

    def locate_entry(self, loc: Location) -> Position:
        """Where a problem with the entry at ``loc`` stands: a scalar's value, else its key."""
        # `expect: {blockng: [...]}` is wrong in its key, not in the list under it.
        return self.locate(loc, key=loc in self.containers)

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
        from netsim._plugins import client_model_names

        client_models = client_model_names()
    document, data = _compose(text, filename)
    problems = [Problem(filename, *document.locate(loc, key=True), format_path(loc), message)
                for loc, message in document.duplicates]
    if not isinstance(data, dict):
        problems.append(Problem(filename, 1, 1, "", "a scenario is a mapping that starts with `netsim: 1`",
                                _STARTER_HINT))
        raise ScenarioError(problems)
    # `type() is not int`: pydantic would take `netsim: true` and `netsim: 1.0` for 1.
    if "netsim" in data and (type(data["netsim"]) is not int or data["netsim"] != 1):
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
        # The parts that are valid on their own can still clash with each other (a name
        # used twice, a poem_file missing): report those now too, not after a fix.
        for loc, message in _check_valid_parts(data, context, Path(base_dir)):
            problems.append(Problem(filename, *document.locate_entry(loc), format_path(loc), message))
        raise ScenarioError(_in_order(problems)) from None
    servers, unread = _read_poem_files(dict(enumerate(scenario.servers)), Path(base_dir))
    # Each expectation knows its line, for reports that point at it (JUnit, pytest).
    expect = {key: [dataclasses.replace(expectation, line=document.values[("expect", key, index)][0])
                    for index, expectation in enumerate(expectations)]
              for key, expectations in scenario.expect.items()}
    scenario = scenario.model_copy(update={"servers": list(servers.values()), "expect": expect})
    for loc, message in [*unread, *check_references(scenario)]:
        problems.append(Problem(filename, *document.locate_entry(loc), format_path(loc), message))
    if problems:
        raise ScenarioError(_in_order(problems))
    return scenario


def _check_valid_parts(data: dict[Any, Any], context: dict[str, Any],
                       base_dir: Path) -> list[tuple[Location, str]]:
    """The cross-part problems of a document that failed validation, among its valid parts."""
    raw_servers, raw_clients, raw_expect = data.get("servers"), data.get("clients"), data.get("expect")
    servers = _valid_items(raw_servers, _SERVER, context)
    clients = _valid_items(raw_clients, _CLIENT, context)
    expect = ({key: _valid_items(items, _EXPECTATION, context)
               for key, items in raw_expect.items() if isinstance(key, str)}
              if isinstance(raw_expect, dict) else {})
    _, unread = _read_poem_files(servers, base_dir)
    return [*unread, *check_parts(
        servers, clients, expect,
        every_server=isinstance(raw_servers, list) and len(servers) == len(raw_servers),
        every_client=isinstance(raw_clients, list) and len(clients) == len(raw_clients),
    )]


def _valid_items(items: object, adapter: TypeAdapter[T], context: dict[str, Any]) -> dict[int, T]:
    """The items of a YAML list that are valid on their own, by their index."""
    valid: dict[int, T] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        try:
            valid[index] = adapter.validate_python(item, context=context)
        except ValidationError:
            continue
    return valid


def _read_poem_files(servers: Mapping[int, Server],
                     base_dir: Path) -> tuple[dict[int, Server], list[tuple[Location, str]]]:
    """The servers with every ``poem_file`` read into ``poem``, and the files that failed.

    A server whose file failed stays in, unread, so that the checks across the
    document still see its name and port.
    """
    problems: list[tuple[Location, str]] = []
    read: dict[int, Server] = {}
    for index, server in servers.items():
        read[index] = server
        if server.poem_file is None:
            continue
        path = base_dir / server.poem_file
        shown = str(server.poem_file)
        try:
            # Bytes, then decode: read_text() would turn the file's \r\n into \n,
            # and the server must send the file as it is.
            text = path.read_bytes().decode("utf-8")
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
        read[index] = server.model_copy(update={"poem": text})
    return read, problems


def _compose(text: str, filename: str) -> tuple[_Document, Any]:
    loader = yaml.SafeLoader(text)
    document = _Document(loader)
    try:
        node = loader.get_single_node()
        data = document.build(node, ()) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioError([Problem(filename, line, column, "", f"YAML syntax: {_syntax(error)}",
                                     _syntax_hint(error))]) from None
    except yaml.YAMLError as error:
        raise ScenarioError([Problem(filename, 1, 1, "", f"YAML: {error}")]) from None
    finally:
        loader.dispose()
    if data is None:
        raise ScenarioError([Problem(filename, 1, 1, "", "the file is empty: a scenario starts with "
                                     "`netsim: 1`", _STARTER_HINT)])
    return document, data


def _syntax(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem first, then its context (where the construct began)."""
    message = error.problem or error.context or "not valid YAML"
    context, start, mark = error.context, error.context_mark, error.problem_mark
    if error.problem and context:
        if start and mark and (start.line, start.column) != (mark.line, mark.column):
            context += f" that starts at line {start.line + 1}, column {start.column + 1}"
        message += f" ({context})"
    if "'\\t'" in (error.problem or ""):
        message += ": indent with spaces, not tabs"
    return message


def _syntax_hint(error: yaml.MarkedYAMLError) -> str:
    problem = error.problem or ""
    for words, hint in _SYNTAX_HINTS:
        if words in problem:
            return hint
    return ""


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
                       f"missing required key {loc[-1]!r}", _field_hint(loc, "add it: "))
    line, column = document.locate(loc)
    message = detail["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "string_pattern_mismatch":
        message = (f"{detail['input']!r} is not a valid name: use letters, digits, '_', '-' "
                   f"and '.', starting with a letter or '_'")
    elif kind == "literal_error":
        message = f"{detail['input']!r} is not allowed: {message[0].lower()}{message[1:]}"
    elif kind in ("dict_type", "model_type"):
        # pydantic says "a valid dictionary or instance of Server": YAML users write mappings.
        message = f"expected a mapping of keys to values (got {detail['input']!r})"
    elif kind == "too_short" and detail.get("ctx", {}).get("min_length") == 1:
        message = f"must not be empty: give at least one entry (got {detail['input']!r})"
    elif kind in ("list_type", "string_type", "int_type", "int_parsing",
                  "too_short", "greater_than_equal", "less_than_equal",
                  "greater_than", "bool_type"):
        message = f"{message} (got {detail['input']!r})"
    explained = kind in _SELF_EXPLAINED or " like " in message or "did you mean" in message
    hint = "" if explained else _field_hint(loc)
    return Problem(filename, line, column, format_path(loc), message, hint)


def _field_hint(loc: Location, prefix: str = "") -> str:
    """What the key at ``loc`` (or the list entry of one) takes, with an example."""
    from netsim import _schema

    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    if not loc:
        return ""
    model: Any = Scenario
    for part in loc[:-1]:
        model = _inner(model, part)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    hint = _schema.hint(model.__name__, str(loc[-1]))
    return prefix + hint if hint else ""


def format_problem(problem: Problem) -> str:
    """A problem as `netsim validate` prints it: ``file:line:col: message``, then its hint."""
    return f"{problem}\n    hint: {problem.hint}" if problem.hint else str(problem)


def value_positions(path: str | Path) -> dict[Location, Position]:
    """Where every value of the YAML file at ``path`` starts (1-based line and column), by its
    path in the document: ``("expect", "select", 0)`` is the first expectation of ``select``.

    For tools that point at a part of a scenario, as the pytest plugin points at a failed
    expectation. Raises ScenarioError when the file cannot be read or is not YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError([Problem(str(path), 1, 1, "", f"cannot be read: {error}")]) from None
    document, _ = _compose(text, str(path))
    return dict(document.values)


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


