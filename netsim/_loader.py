"""Load scenario files with yaml.safe_load semantics and line numbers in every error.

YAML is composed into nodes (which carry their positions), turned into plain Python
values here, scalar by scalar with PyYAML's safe constructor, and the position of every
value and key is kept by its path. Pydantic then validates the values; each of its
errors has a path, which finds the line. All problems of a file are reported at once.

Building the values ourselves means doing what ``yaml.safe_load`` would otherwise do
for us, and bounding it: a document of a few hundred bytes can name itself or nest
its aliases ("billion laughs") until building it takes gigabytes. So a document is
refused, with the line of the culprit, when it is longer, deeper or larger than any
scenario needs:

- ``MAX_TEXT``: 4 MiB of YAML. A scenario of 10,000 servers, one mapping each, is
  about 1 MB; long poems belong in ``poem_file``, which is not YAML.
- ``MAX_DEPTH``: 64 levels of lists and mappings, aliases expanded. A scenario nests
  about 6 deep (servers, a server, its fault...); Python's recursion limit would end
  the composer near 300.
- ``MAX_VALUES``: 1,000,000 values once aliases and merge keys are expanded, counted
  before any is built. The 10,000-server scenario above holds about 130,000.
- ``MAX_NUMBER``: 100 characters for a number. Python refuses to read an int of more
  than 4,300 digits, and a value of a hundred digits is too large for every key anyway.

A tag that ``yaml.safe_load`` does not know (``!!python/object/apply:...``, ``!foo``)
is refused wherever it stands, as are a recursive alias and a list or mapping used as
a key. So are ``!!set``, ``!!omap`` and ``!!pairs``, which safe_load reads: a scenario
holds plain lists and mappings, and a set where a list is meant would only mislead.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from netsim import _plugins
from netsim._errors import Problem, ScenarioError
from netsim._names import NAME_RULE
from netsim._poem_files import DEFAULT_MAX_POEM_BYTES, PoemFileError, read_poem_file
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

MAX_TEXT = 4 * 1024 * 1024  # characters; 4 MiB of ASCII
MAX_DEPTH = 64  # lists and mappings, one inside the other
MAX_VALUES = 1_000_000  # scalars, lists, mappings and keys, with aliases expanded
MAX_NUMBER = 100  # characters of one number

Position = tuple[int, int]  # 1-based line and column
_Pair = tuple[yaml.Node, yaml.Node]  # a key of a mapping and its value
_YAML = "tag:yaml.org,2002:"
_MERGE = _YAML + "merge"  # the tag of a `<<` key
_VALUE = _YAML + "value"  # the tag of a lone `=`, which safe_load reads as a string key only
_PLAIN = {yaml.MappingNode: _YAML + "map", yaml.SequenceNode: _YAML + "seq"}
_NUMBERS = frozenset({_YAML + "int", _YAML + "float"})
_STARTER_HINT = "`netsim new FILE` writes a starter scenario, with a comment on every key"
# Problems whose message already says what the key takes: a hint would repeat it.
_SELF_EXPLAINED = frozenset({"literal_error", "string_pattern_mismatch", "too_short", "greater_than",
                             "greater_than_equal", "less_than", "less_than_equal", "out_of_order"})
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


class _Mark(Protocol):
    """A place in the YAML text, as PyYAML's two kinds of marks (Python and C) give it."""

    line: int  # 0-based
    column: int


class _Refused(Exception):
    """A document netsim will not build, and where the reason stands."""

    def __init__(self, mark: _Mark | None, message: str, path: Location = ()) -> None:
        super().__init__(message)
        self.position = (1, 1) if mark is None else (mark.line + 1, mark.column + 1)
        self.message = message
        self.path = path


class _Alias(yaml.Node):
    """An ``*alias`` where it stands, in place of the node it names.

    PyYAML's composer puts the named node itself there, and the alias's own line is
    lost; the limits below need it, to say which alias went too far.
    """

    id = "alias"

    def __init__(self, target: yaml.Node, event: yaml.NodeEvent) -> None:
        super().__init__(target.tag, target.value, None, None)
        self.start_mark, self.end_mark = event.start_mark, event.end_mark
        self.target = target
        self.anchor = str(event.anchor)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, composing nodes within MAX_DEPTH and refusing recursive aliases."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0  # the lists and mappings being composed, one inside the other
        self._open: set[str] = set()  # their anchors

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self._peek()
            anchor = str(event.anchor)
            if anchor in self._open:
                raise _Refused(event.start_mark, f"the alias *{anchor} stands inside the node it "
                                                 f"names (&{anchor}), which would then contain "
                                                 f"itself without end")
            target = super().compose_node(parent, index)
            assert target is not None  # an alias always names a node, or PyYAML raises
            return _Alias(target, event)
        event = self._peek()
        if isinstance(event, yaml.ScalarEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, _too_deep(None))
        if event.anchor is not None:
            self._open.add(event.anchor)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(event.anchor or "")

    def _peek(self) -> yaml.NodeEvent:
        # A node starts here: an alias, a scalar or the start of a list or mapping.
        event: yaml.NodeEvent = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        return event


class _Document:
    """Plain values of a YAML document, and where each value and key stands."""

    def __init__(self, loader: _Loader) -> None:
        self.values: dict[Location, Position] = {}
        self.keys: dict[Location, Position] = {}
        self.duplicates: list[tuple[Location, str]] = []
        self.refused: list[_Refused] = []  # tags, keys and numbers a scenario cannot hold
        self.containers: set[Location] = set()  # the paths of mappings and lists
        self._loader = loader
        self._measured: dict[int, tuple[int, int]] = {}  # id of a node: its values and its height
        self._pairs: dict[int, tuple[list[_Pair], int]] = {}  # id of a mapping: _resolve()

    def measure(self, node: yaml.Node, level: int = 0) -> tuple[int, int]:
        """How many values ``node`` holds with its aliases expanded, and how many lists and
        mappings nest in it, itself included; ``level`` lists and mappings enclose it.

        Raises _Refused past MAX_VALUES or MAX_DEPTH, at the alias (or the value) that
        goes past, before a single value is built. Each node is counted once, however
        many aliases name it, so this is quick even for a document that would expand
        to billions of values.
        """
        target = node.target if isinstance(node, _Alias) else node
        measured = self._measured.get(id(target))
        if measured is None:
            if level >= MAX_DEPTH:  # only through aliases: the loader bounds the rest
                raise _Refused(node.start_mark, _too_deep(node))
            size, height = 1, 0
            for child in _children(target):
                child_size, child_height = self.measure(child, level + 1)
                size, height = size + child_size, max(height, child_height)
                if size > MAX_VALUES:
                    raise _Refused(child.start_mark, _too_large(child))
            if isinstance(target, yaml.CollectionNode):
                height += 1
            measured = self._measured[id(target)] = (size, height)
        if level + measured[1] > MAX_DEPTH:
            raise _Refused(node.start_mark, _too_deep(node))
        return measured

    def build(self, node: yaml.Node, path: Location) -> Any:
        if isinstance(node, _Alias):
            node = node.target
        self.values[path] = _position(node)
        if isinstance(node, yaml.CollectionNode) and node.tag != _PLAIN[type(node)]:
            self.refused.append(_Refused(node.start_mark, _bad_tag(node.tag, collection=True), path))
            return None
        if isinstance(node, yaml.MappingNode):
            self.containers.add(path)
            pairs, merged = self._resolve(node, path)
            # The merged pairs come first; the mapping's own keys override them, as in
            # safe_load, and only a key given twice among its own is a mistake.
            result: dict[Any, Any] = {}
            own_keys: set[Any] = set()
            for index, (key_node, value_node) in enumerate(pairs):
                key = self._key(key_node, path)
                if key is _NO_KEY:
                    continue
                child = (*path, key)
                if index >= merged:
                    if key in own_keys:
                        self.duplicates.append((child, f"duplicate key {key!r}: it is already given above"))
                    own_keys.add(key)
                self.keys[child] = _position(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            self.containers.add(path)
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _key(self, node: yaml.Node, path: Location) -> Any:
        if isinstance(node, _Alias):
            node = node.target
        if not isinstance(node, yaml.ScalarNode):
            # safe_load refuses a list or mapping as a key (it cannot be hashed); a !!set
            # can, and would only be a riddle in a scenario.
            self.refused.append(_Refused(node.start_mark, "a key is a word or a number, not a list "
                                                          "or mapping", path))
            return _NO_KEY
        if node.tag == _VALUE:
            return node.value  # a lone `=` as a key is the string "=" for safe_load too
        return self._scalar(node, path, key=True)

    def _scalar(self, node: yaml.Node, path: Location, *, key: bool = False) -> Any:
        if node.tag is None or node.tag not in self._loader.yaml_constructors:
            self.refused.append(_Refused(node.start_mark, _bad_tag(node.tag, collection=False), path))
            return _NO_KEY if key else None
        if node.tag in _NUMBERS and len(node.value) > MAX_NUMBER:
            self.refused.append(_Refused(node.start_mark, f"a number of {len(node.value)} characters "
                                                          f"is beyond any value of a scenario "
                                                          f"(at most {MAX_NUMBER})", path))
            return _NO_KEY if key else None
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except Exception:  # PyYAML's constructors raise anything for a bad explicit tag
            self.refused.append(_Refused(node.start_mark, f"{node.value!r} cannot be read as "
                                                          f"{_short_tag(node.tag)}", path))
            return _NO_KEY if key else None

    def _resolve(self, node: yaml.MappingNode, path: Location) -> tuple[list[_Pair], int]:
        """The pairs of a mapping with its ``<<`` merge keys resolved, and how many of them,
        at the start, were merged in; where a key comes twice, the later pair wins.

        As the merge-key spec says (and PyYAML up to 6.0.1 did), a mapping's own keys win
        over merged ones, and in ``<<: [*a, *b]`` the keys of ``a`` over those of ``b``.
        """
        resolved = self._pairs.get(id(node))
        if resolved is not None:
            return resolved
        merged: list[_Pair] = []
        own: list[_Pair] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node))
                continue
            source = value_node.target if isinstance(value_node, _Alias) else value_node
            sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
            parts = []
            for item in sources:
                item = item.target if isinstance(item, _Alias) else item
                if not isinstance(item, yaml.MappingNode):
                    raise _Refused(item.start_mark, "`<<` merges a mapping or a list of mappings, "
                                                    "like `<<: *base`", path)
                if item.tag != _PLAIN[yaml.MappingNode]:
                    raise _Refused(item.start_mark, _bad_tag(item.tag, collection=True), path)
                parts.append(self._resolve(item, path)[0])
            for part in reversed(parts):  # the first mapping last, so that its keys win
                merged += part
        resolved = self._pairs[id(node)] = (merged + own, len(merged))
        return resolved

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


_NO_KEY = object()  # a key that was refused: its pair is left out


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield key_node
            yield value_node
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _too_deep(node: yaml.Node | None) -> str:
    if isinstance(node, _Alias):
        return (f"the alias *{node.anchor} nests lists and mappings more than {MAX_DEPTH} deep; "
                f"a scenario needs far fewer")
    return f"lists and mappings nest more than {MAX_DEPTH} deep here; a scenario needs far fewer"


def _too_large(node: yaml.Node) -> str:
    if isinstance(node, _Alias):
        return (f"the alias *{node.anchor} repeats so much that the document would hold more than "
                f"{MAX_VALUES:,} values; a scenario needs far fewer")
    return (f"here the document grows past {MAX_VALUES:,} values, its aliases expanded; a scenario "
            f"needs far fewer")


def _short_tag(tag: str | None) -> str:
    """``tag:yaml.org,2002:python/name:os.system`` as it was written: ``!!python/name:os.system``."""
    if tag is None:
        return "no tag"
    return "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag


def _bad_tag(tag: str | None, *, collection: bool) -> str:
    if tag in (_VALUE, _MERGE):
        sign = "=" if tag == _VALUE else "<<"
        return f"a lone `{sign}` means something else to YAML: quote it, like \"{sign}\""
    if collection and tag in yaml.SafeLoader.yaml_constructors:
        return (f"{_short_tag(tag)} is not taken here: a scenario holds plain lists and mappings; "
                f"leave out the tag")
    return (f"the tag {_short_tag(tag)} is not allowed: netsim reads YAML as yaml.safe_load does, "
            f"which makes no Python objects and knows no custom tags")


def _position(node: yaml.Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def format_path(loc: Iterable[str | int]) -> str:
    """``('servers', 1, 'delay')`` -> ``servers[1].delay``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_scenario(path: str | Path, *, client_models: Iterable[str] | None = None,
                  allow_paths: bool = False, max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES) -> Scenario:
    """Read, parse and check the scenario file at ``path``.

    A ``poem_file`` must be a regular file in the scenario's folder (or below it) unless
    ``allow_paths``, and at most ``max_poem_bytes`` long. Raises ScenarioError listing
    every problem, each with file:line:col.
    """
    return load_scenario_and_text(path, client_models=client_models, allow_paths=allow_paths,
                                  max_poem_bytes=max_poem_bytes)[0]


def load_scenario_and_text(path: str | Path, *, client_models: Iterable[str] | None = None,
                           allow_paths: bool = False, max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES,
                           allow_external: bool = True) -> tuple[Scenario, str]:
    """``load_scenario``, with the text it loaded: read once, so that a result that quotes
    its scenario quotes the one that ran, even if the file changes meanwhile.
    ``allow_external`` as for :func:`load_scenario_text`."""
    path = Path(path)
    text = _read(path)
    return load_scenario_text(text, filename=str(path), base_dir=path.parent, client_models=client_models,
                              allow_paths=allow_paths, max_poem_bytes=max_poem_bytes,
                              allow_external=allow_external), text


def _read(path: Path) -> str:
    """The text of a scenario file, or no more than one character past MAX_TEXT of it."""
    try:
        # Not read_text(): a file of gigabytes (or /dev/zero) would be read whole first.
        with path.open(encoding="utf-8") as handle:
            return handle.read(MAX_TEXT + 1)
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except IsADirectoryError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "is a directory, not a scenario file")]) \
            from None
    except UnicodeDecodeError:
        raise ScenarioError([Problem(str(path), 1, 1, "", "is not UTF-8 text")]) from None
    except OSError as error:
        raise ScenarioError([Problem(str(path), 1, 1, "", error.strerror or str(error))]) from None


def load_scenario_text(
    text: str,
    *,
    filename: str = "<scenario>",
    base_dir: str | Path = ".",
    client_models: Iterable[str] | None = None,
    allow_paths: bool = False,
    max_poem_bytes: int = DEFAULT_MAX_POEM_BYTES,
    allow_external: bool = True,
) -> Scenario:
    """Parse and check a scenario given as text; ``poem_file`` is relative to ``base_dir``.

    ``client_models`` are the names a client's ``model`` may take; by default, those of
    the client models installed. A ``poem_file`` must be a regular file in ``base_dir``
    (or below it) unless ``allow_paths``, and at most ``max_poem_bytes`` long. With
    ``allow_external=False`` a server that binds or forwards outside loopback is a
    problem too, as a run refuses it without ``--allow-external``; by default that is
    left to the run, which is told whether it is allowed. Raises ScenarioError listing
    every problem, each with file:line:col; ValueError for a ``max_poem_bytes`` below 1.
    """
    if max_poem_bytes < 1:
        raise ValueError(f"max_poem_bytes must be 1 or more, got {max_poem_bytes}")
    files = _PoemFiles(Path(base_dir), allow_paths, max_poem_bytes)
    if client_models is None:
        client_models = _plugins.client_model_names()
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
        version = data["netsim"]
        if version in ("1", 1.0) and type(version) is not bool:
            # Version 1 written as a string or a float: say how to write it, and check the
            # rest as version 1, so that its other problems are not left for a second round.
            problems.append(Problem(filename, line, column, "netsim",
                                    f"write the format version as the whole number 1 "
                                    f"(`netsim: 1`), not {version!r}"))
            data = {**data, "netsim": 1}
        else:
            problems.append(Problem(filename, line, column, "netsim",
                                    f"format version {version!r} is not one this netsim reads: "
                                    f"it reads version 1 (`netsim: 1`)"))
            raise ScenarioError(problems)
    context = {"client_models": list(client_models)}
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as error:
        problems += _problems(filename, document, error.errors())
        # The parts that are valid on their own can still clash with each other (a name
        # used twice, a poem_file missing): report those now too, not after a fix.
        for loc, message, hint in _check_valid_parts(data, context, files):
            problems.append(Problem(filename, *document.locate_entry(loc), format_path(loc), message, hint))
        raise ScenarioError(_in_order(problems)) from None
    servers, unread = files.read(dict(enumerate(scenario.servers)))
    # Each expectation knows its line, for reports that point at it (JUnit, pytest).
    expect = {key: [dataclasses.replace(expectation, line=document.values[("expect", key, index)][0])
                    for index, expectation in enumerate(expectations)]
              for key, expectations in scenario.expect.items()}
    scenario = scenario.model_copy(update={"servers": list(servers.values()), "expect": expect})
    scenario._folder = Path(base_dir).resolve()  # a command client runs there
    external = [] if allow_external else _reaching_outside(scenario)
    for loc, message, hint in [*unread, *_unhinted([*check_references(scenario),
                                                     *_unusable_models(scenario)]), *external]:
        problems.append(Problem(filename, *document.locate_entry(loc), format_path(loc), message, hint))
    if problems:
        raise ScenarioError(_in_order(problems))
    return scenario


def _reaching_outside(scenario: Scenario) -> list[_Finding]:
    """The servers that bind or forward outside loopback, which a run refuses unless it is
    given ``--allow-external``."""
    findings: list[_Finding] = []
    for index, server in enumerate(scenario.servers):
        outside = server.reaches_outside()
        if outside is not None:
            key, what = outside
            findings.append((("servers", index, key), f"server {server.name!r} {what}; `netsim run` and "
                             f"`netsim serve` refuse it without --allow-external",
                             "pass --allow-external (to `netsim validate` too) if that is intended"))
    return findings


def _unusable_models(scenario: Scenario) -> list[tuple[Location, str]]:
    """Installed models the scenario names that cannot be used: one that cannot be imported
    (an extra not installed), one whose entry point names something else, a name that two
    packages give; and one asked for more connections than it can hold (its limit), which
    a run refuses before it starts, as `netsim validate` should."""
    from netsim.clients import ModelUnavailableError, get_model  # a model's import brings it anyway

    problems: list[tuple[Location, str]] = []
    for index, client in enumerate(scenario.clients):
        if client.model not in _plugins.entry_points():
            continue  # a model the caller supplies itself (netsim.testing), not an installed one
        try:
            model = get_model(client.model)
        except ModelUnavailableError as error:
            problems.append((("clients", index, "model"), str(error)))
            continue
        count = scenario.connection_count(client)
        beyond = model.beyond_limit(count)
        if beyond is not None:
            problems.append((("clients", index, "connections"),
                             f"client {client.label!r} opens {count} connections, {beyond}"))
    return problems


def _check_valid_parts(data: dict[Any, Any], context: dict[str, Any],
                       files: _PoemFiles) -> list[_Finding]:
    """The cross-part problems of a document that failed validation, among its valid parts."""
    raw_servers, raw_clients, raw_expect = data.get("servers"), data.get("clients"), data.get("expect")
    servers = _valid_items(raw_servers, _SERVER, context)
    clients = _valid_items(raw_clients, _CLIENT, context)
    expect = ({key: _valid_items(items, _EXPECTATION, context)
               for key, items in raw_expect.items() if isinstance(key, str)}
              if isinstance(raw_expect, dict) else {})
    _, unread = files.read(servers)
    # An entry that failed validation may still say its name: with every one known, a
    # name elsewhere can be called unknown (or a duplicate) in this same round.
    names = _entry_names(raw_servers, lambda item: item.get("name") if isinstance(item, dict) else None)
    labels = _entry_names(raw_clients, lambda item: item if isinstance(item, str) else (
        item.get("name") or item.get("model") if isinstance(item, dict) else None))
    return [*unread, *_unhinted(check_parts(
        servers, clients, expect,
        every_server=isinstance(raw_servers, list) and len(names) == len(raw_servers),
        every_client=isinstance(raw_clients, list) and len(labels) == len(raw_clients),
        names=names, labels=labels,
    ))]


def _entry_names(items: object, name_of: Callable[[Any], object]) -> dict[int, str]:
    """The name each entry of a YAML list gives itself, by index, where it gives one."""
    found = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        name = name_of(item)
        if isinstance(name, str):
            found[index] = name
    return found


_Finding = tuple[Location, str, str]  # where a problem stands, what it is, and how to fix it


def _unhinted(findings: Iterable[tuple[Location, str]]) -> list[_Finding]:
    return [(loc, message, "") for loc, message in findings]


def _valid_items(items: object, adapter: TypeAdapter[T], context: dict[str, Any]) -> dict[int, T]:
    """The items of a YAML list that are valid on their own, by their index."""
    valid: dict[int, T] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        try:
            valid[index] = adapter.validate_python(item, context=context)
        except ValidationError:
            continue
    return valid


@dataclasses.dataclass(frozen=True)
class _PoemFiles:
    """Where a scenario's poem files are, and which of them it may read (netsim._poem_files)."""

    folder: Path
    allow_paths: bool
    max_bytes: int

    def read(self, servers: Mapping[int, Server]) -> tuple[dict[int, Server], list[_Finding]]:
        """The servers with every ``poem_file`` read into ``poem``, and the files that failed.

        A server whose file failed stays in, unread, so that the checks across the
        document still see its name and port.
        """
        problems: list[_Finding] = []
        read: dict[int, Server] = {}
        for index, server in servers.items():
            read[index] = server
            if server.poem_file is None:
                continue
            try:
                text = read_poem_file(self.folder, server.poem_file, allow_paths=self.allow_paths,
                                      max_bytes=self.max_bytes)
            except PoemFileError as error:
                problems.append((("servers", index, "poem_file"), error.message, error.hint))
                continue
            read[index] = server.model_copy(update={"poem": text})
        return read, problems


def _compose(text: str, filename: str) -> tuple[_Document, Any]:
    if len(text) > MAX_TEXT:
        raise ScenarioError([Problem(filename, 1, 1, "", f"the file is longer than {MAX_TEXT:,} "
                                     f"characters, far more than a scenario needs",
                                     "give long poems as `poem_file:`, which is not YAML and "
                                     "may be longer (--max-poem-size)")])
    loader = _Loader(text)
    document = _Document(loader)
    try:
        node = loader.get_single_node()
        data = None
        if node is not None:
            document.measure(node)
            data = document.build(node, ())
    except _Refused as refused:
        raise ScenarioError([Problem(filename, *refused.position, format_path(refused.path),
                                     refused.message)]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        kind = "YAML" if isinstance(error, yaml.constructor.ConstructorError) else "YAML syntax"
        hint = _syntax_hint(error)
        if Path(filename).suffix.lower() not in _YAML_SUFFIXES and not filename.startswith("<"):
            # `netsim run README.md`: the file is not YAML at all, whatever its first slip.
            hint = (f"{Path(filename).name} is no YAML file: a scenario is a YAML file (.yaml) that starts "
                    f"with `netsim: 1`")
        raise ScenarioError([Problem(filename, line, column, "", f"{kind}: {_syntax(error)}",
                                     hint)]) from None
    except yaml.YAMLError as error:
        raise ScenarioError([Problem(filename, 1, 1, "", f"YAML: {error}")]) from None
    finally:
        loader.dispose()
    if document.refused:
        # A refused value that aliases repeat is reported once, where it stands.
        first = {(refused.position, refused.message): refused for refused in reversed(document.refused)}
        raise ScenarioError(_in_order([Problem(filename, *refused.position, format_path(refused.path),
                                               refused.message) for refused in first.values()]))
    if data is None:
        raise ScenarioError([Problem(filename, 1, 1, "", "the file is empty: a scenario starts with "
                                     "`netsim: 1`", _STARTER_HINT)])
    return document, data


# What a scenario file is called; `-` (standard input) is shown as <stdin>.
_YAML_SUFFIXES = (".yaml", ".yml")


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
    # A rule over a list that finds one entry at fault says which (scenario.Server's phases).
    loc += tuple(detail.get("ctx", {}).get("within", ()))
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
    message = explain(detail)
    # A rule of a whole entry (its loc ends at the entry) says all there is to say itself.
    whole_entry = kind == "value_error" and bool(loc) and isinstance(loc[-1], int)
    explained = whole_entry or kind in _SELF_EXPLAINED or " like " in message or "did you mean" in message
    hint = "" if explained else _field_hint(loc)
    return Problem(filename, line, column, format_path(loc), message, hint)


def explain(detail: ErrorDetails) -> str:
    """A pydantic error in a scenario writer's words: what was wrong with the value given
    (its place aside), where pydantic speaks of Python types."""
    kind = detail["type"]
    message = detail["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "string_pattern_mismatch":
        message = f"{detail['input']!r} is not a valid name: use {NAME_RULE}"
    elif kind == "literal_error":
        message = f"{detail['input']!r} is not allowed: {message[0].lower()}{message[1:]}"
        allowed = re.findall(r"'([^']*)'", str(detail.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(detail["input"]), allowed, n=1)
        if isinstance(detail["input"], str) and close:
            message += f" (did you mean {close[0]!r}?)"
    elif kind in ("dict_type", "model_type"):
        # pydantic says "a valid dictionary or instance of Server": YAML users write mappings.
        message = f"expected a mapping of keys to values (got {detail['input']!r})"
    elif kind == "too_short" and detail.get("ctx", {}).get("min_length") == 1:
        message = f"must not be empty: give at least one entry (got {detail['input']!r})"
    elif kind == "string_type" and isinstance(detail["input"], bool):  # YAML's true, yes, on...
        message = (f"expected a string, got the boolean {str(detail['input']).lower()}: write it in "
                   f"quotes, like \"{str(detail['input']).lower()}\"")
    elif kind == "string_type" and isinstance(detail["input"], int | float):
        number = detail["input"]
        message = f"expected a string, got the number {number!r}: write it in quotes, like \"{number!r}\""
    elif kind in ("list_type", "string_type", "int_type", "int_parsing",
                  "too_short", "greater_than_equal", "less_than_equal",
                  "greater_than", "bool_type"):
        message = f"{message} (got {detail['input']!r})"
    return message


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
    return text_positions(_read(path), str(path))


def text_positions(text: str, filename: str) -> dict[Location, Position]:
    """``value_positions`` of YAML ``text`` read from ``filename`` (named in its errors)."""
    document, _ = _compose(text, filename)
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


