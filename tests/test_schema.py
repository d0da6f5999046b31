"""The JSON Schema for editors, the key reference in docs/scenarios.md, and their one source."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pydantic
import pytest
import yaml

from netsim import _plugins, _schema, scenario
from netsim._plugins import client_model_names
from netsim.expectations import METRICS

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / _schema.SCHEMA_FILE
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
REGENERATE = "run `python -m netsim._schema --write` and commit the result"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return _schema.scenario_schema()


def properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every key of every model in the schema, as ``Model.key`` and its subschema."""
    yield from (("Scenario." + key, prop) for key, prop in schema["properties"].items())
    for model, definition in schema.get("definitions", {}).items():
        yield from ((f"{model}.{key}", prop) for key, prop in definition.get("properties", {}).items())


FIELDS = [(name, field) for name, (model, _) in _schema.models().items() for field in model.model_fields]


def test_every_key_of_every_model_is_described() -> None:
    """Each field of each model has a description and an example beside it in netsim/scenario.py."""
    assert _schema.missing_docs() == [], "give them description= and examples= in their Field()"


def test_a_key_without_a_description_or_an_example_is_named() -> None:
    """missing_docs names a field that lacks its description, its example or both."""

    class Bare(pydantic.BaseModel):
        plain: int = 0
        described: int = pydantic.Field(0, description="A number.")

    models = {"Bare": (Bare, "bare")}
    with mock.patch.object(_schema, "models", return_value=models):
        assert _schema.missing_docs() == ["Bare.plain (no description and no example)",
                                          "Bare.described (no example)"]


def test_every_key_in_the_schema_has_a_description_and_an_example(schema: dict[str, Any]) -> None:
    """Editors show a description and an example for every key."""
    for name, prop in properties(schema):
        assert prop.get("description"), name
        assert prop.get("examples"), name


# A valid mapping of each model, for checking one key's example in it.
BASES: dict[str, dict[str, Any]] = {
    "Scenario": {"netsim": 1, "name": "s", "servers": [{"name": "a", "poem": "x\n"}],
                 "clients": ["blocking"]},
    "Server": {"name": "a", "poem": "x\n"},
    "ByteChunks": {"bytes": 1},
    "Fault": {"kind": "reset"},
    "Slice": {"bytes": "1..8"},
    "Phase": {"at": "1s"},
    "Down": {},
    "Client": {"model": "blocking"},
}
# The keys of one model only, checked in a mapping of that model.
COMMAND = {"model": "command", "run": ["python3", "client.py", "{ports}"]}
PROXY = {"name": "p", "upstream": "127.0.0.1:8080"}  # a server without a poem


@pytest.mark.parametrize(("model", "field"), FIELDS)
def test_every_example_is_a_valid_value_of_its_key(model: str, field: str) -> None:
    """The example of each key, put in a valid mapping of its model, passes the model's validation."""
    proxies_only = (("Server", "upstream"), ("Server", "direction"), ("Server", "latency"))
    base = PROXY if (model, field) in proxies_only else BASES[model]
    if (model, field) in (("Client", "run"), ("Client", "concurrent"), ("Client", "output"),
                          ("Client", "retry")):
        base = COMMAND
    info = _schema.field_info(model, field)
    assert info is not None
    data = {**base, field: _schema.example(info)}
    if (model, field) == ("Server", "poem_file"):
        del data["poem"]
    _schema.models()[model][0].model_validate(data, context={"client_models": client_model_names()})


def test_the_committed_schema_is_current() -> None:
    """netsim.schema.json at the repository root is what `netsim schema` prints."""
    assert COMMITTED.read_text(encoding="utf-8") == _schema.schema_text(), REGENERATE


def test_the_docs_reference_is_current() -> None:
    """The key tables of docs/scenarios.md are made from the models as they are."""
    docs = (ROOT / _schema.DOCS_FILE).read_text(encoding="utf-8")
    assert docs == _schema.render_docs(docs), REGENERATE


def test_the_check_command_reports_a_stale_file(tmp_path: Path) -> None:
    """`python -m netsim._schema` exits 1 while a file is stale, and --write renews it."""
    (tmp_path / "docs").mkdir()
    docs = (ROOT / _schema.DOCS_FILE).read_text(encoding="utf-8")
    (tmp_path / _schema.DOCS_FILE).write_text(docs, encoding="utf-8")
    (tmp_path / _schema.SCHEMA_FILE).write_text("{}\n", encoding="utf-8")
    assert _schema.main(["--root", str(tmp_path)]) == 1
    assert _schema.main(["--root", str(tmp_path), "--write"]) == 0
    assert _schema.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / _schema.SCHEMA_FILE).read_text(encoding="utf-8") == _schema.schema_text()


def test_the_schema_is_draft_7(schema: dict[str, Any]) -> None:
    """The schema declares Draft 7, passes its meta-schema and uses no newer keyword."""
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert not set(_schema._newer_keywords(schema))
    text = json.dumps(schema)
    assert "$defs" not in text
    for ref in re.findall(r'"\$ref": "([^"]+)"', text):
        name = ref.removeprefix("#/definitions/")
        assert ref.startswith("#/definitions/") and name in schema["definitions"], ref


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.name)
def test_every_shipped_scenario_passes_the_schema(path: Path, schema: dict[str, Any]) -> None:
    """What the loader accepts, the schema accepts too: editors never underline a valid file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, error.path))}: {error.message}"
              for error in jsonschema.Draft7Validator(schema).iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.name)
def test_every_shipped_scenario_names_the_schema_on_its_first_line(path: Path) -> None:
    """Each shipped scenario starts with the modeline that points editors at netsim.schema.json."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../netsim.schema.json"
    assert (path.parent / "../netsim.schema.json").resolve() == COMMITTED


@pytest.mark.parametrize(("change", "where"), [
    ({"servers": [{"name": "a", "poem": "x\n", "dealy": "1s"}]}, ["servers", 0]),
    ({"clients": ["two words"]}, ["clients", 0]),
    ({"clients": [{"model": "select", "timeout": "soon"}]}, ["clients", 0]),
    ({"servers": [{"name": "a", "poem": "x\n", "delay": "fast"}]}, ["servers", 0, "delay"]),
    ({"expect": {"blocking": ["elapsd <= 4s"]}}, ["expect", "blocking", 0]),
    ({"netsim": 2}, ["netsim"]),
])
def test_the_schema_catches_common_mistakes(change: dict[str, Any], where: list[Any],
                                           schema: dict[str, Any]) -> None:
    """A misspelt key, a model that is no name, a bad duration, a misspelt metric: editors underline each."""
    document = {"netsim": 1, "name": "s", "servers": [{"name": "a", "poem": "x\n"}],
                "clients": ["blocking"], **change}
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(document))
    assert [list(error.path) for error in errors] == [where]


def test_shorthands_that_validators_allow_are_in_the_schema(schema: dict[str, Any]) -> None:
    """`- blocking` for a client, `probability: 25%`, a pass rate and `run:` as one string all
    pass the schema."""
    document = {"netsim": 1, "name": "s",
                "clients": ["blocking", {"model": "select"},
                            {"model": "command", "run": "python3 client.py {ports}"}],
                "servers": [{"name": "a", "poem": "x\n", "fault": {"kind": "reset", "probability": "25%"}}],
                "expect": {"all": ["elapsed <= 4.2s in 90% of runs", "speedup(blocking) >= 2"]}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document)) == []


def test_the_installed_models_are_offered_and_other_names_taken(schema: dict[str, Any]) -> None:
    """The schema offers the installed models' names and does not underline a model installed later."""
    document = {"netsim": 1, "name": "s", "servers": [{"name": "a", "poem": "x\n"}],
                "clients": ["trio", {"model": "twisted"}]}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document)) == []
    offered = schema["definitions"]["Client"]["properties"]["model"]["anyOf"][0]
    assert offered == {"type": "string", "enum": list(client_model_names())}
    assert schema["properties"]["clients"]["items"]["anyOf"][0]["anyOf"][0] == offered


def test_the_offered_models_are_the_registered_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names the schema offers come from the entry-point registry, not from a list in the generator."""
    monkeypatch.setattr(_plugins, "client_model_names", lambda: ("blocking", "trio"))
    made = scenario.Scenario.model_json_schema()
    assert made["$defs"]["Client"]["properties"]["model"]["anyOf"][0]["enum"] == ["blocking", "trio"]


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_the_expectation_pattern_knows_every_metric(metric: str) -> None:
    """The schema's loose check of an expectation accepts each metric the grammar knows."""
    text = "speedup(blocking) >= 2" if metric == "speedup" else f"{metric} <= 4"
    assert re.search(scenario.EXPECTATION_PATTERN, text)


def test_the_expectation_pattern_refuses_a_misspelt_metric() -> None:
    """The loose check underlines an expectation that starts with no metric."""
    assert not re.search(scenario.EXPECTATION_PATTERN, "elapsd <= 4s")


def test_the_docs_cover_every_metric_and_the_pass_rate() -> None:
    """docs/scenarios.md names each metric, and explains the pass-rate suffix."""
    docs = (ROOT / _schema.DOCS_FILE).read_text(encoding="utf-8")
    for metric in METRICS:
        assert f"`{'speedup(OTHER)' if metric == 'speedup' else metric}`" in docs, metric
    assert "in N% of runs" in docs and "in 90% of runs" in docs


@pytest.mark.parametrize(("model", "field"), FIELDS)
def test_every_key_appears_in_the_docs_with_type_default_and_example(model: str, field: str) -> None:
    """The reference has a row per key: its name, type, default, an example in YAML and its meaning."""
    docs = (ROOT / _schema.DOCS_FILE).read_text(encoding="utf-8")
    info = _schema.field_info(model, field)
    assert info is not None and info.description
    row = next((line for line in docs.splitlines() if line.startswith(f"| `{field}` |")
                and f"`{_schema.example_yaml(field, _schema.example(info))}`" in line), None)
    assert row is not None, f"{model}.{field}"
    assert len(row.split(" | ")) == 5, row
    assert row.endswith(f" | {info.description.replace('|', chr(92) + '|')} |")


def test_how_a_default_reads_goes_to_the_docs_not_the_schema(schema: dict[str, Any]) -> None:
    """A default said in words shows in the reference, and the schema keeps only the default itself."""
    seed = schema["properties"]["seed"]
    assert seed["default"] is None and scenario.DEFAULT_TEXT not in json.dumps(schema)
    assert "| `seed` | integer | none: other choices in every run |" in _schema.reference_markdown()


def test_hints_come_from_the_models() -> None:
    """The hint for a key names its type and shows the example beside its field."""
    assert _schema.hint("Server", "delay") == "delay takes a duration, like `delay: 1s`"
    assert _schema.hint("Client", "targets") == "targets takes a list of strings, like `targets: [a, b]`"
    assert _schema.hint("Client", "model") == "model takes a model name, like `model: select`"
    assert _schema.hint("Fault", "probability") == (
        "probability takes a number from 0 to 1, or a percentage, like `probability: 33%`")
    assert _schema.hint("Server", "nothing") == ""


@pytest.mark.parametrize(("value", "text"), [
    ({"bytes": 64}, "{bytes: 64}"),
    (["a", "b"], "[a, b]"),
    ("1111\n2222\n", '"1111\\n2222\\n"'),
    ("note: this", '"note: this"'),
    ("elapsed == 12s ± 5%", "elapsed == 12s ± 5%"),
    (True, "true"),
])
def test_examples_read_as_one_line_of_yaml(value: Any, text: str) -> None:
    """Examples are written as YAML reads them back, quoted only where they must be."""
    assert _schema._inline_yaml(value) == text
    assert yaml.safe_load(f"key: {text}") == {"key": value}
