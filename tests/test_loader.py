"""Tests of loading scenario files: every kind of problem, located, and the good path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import netsim
from netsim import _plugins
from netsim.clients import model_names

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

# A valid scenario; the cases below change one line of it, so line numbers stay readable.
GOOD = """\
netsim: 1
name: demo
servers:
  - {name: a, poem: "1111\\n2222\\n", delay: 1s}
clients:
  - blocking
"""


def scenario(server: str = '{name: a, poem: "1111\\n2222\\n", delay: 1s}', *,
             clients: str = "  - blocking\n", head: str = "", tail: str = "") -> str:
    """GOOD with the server on line 4 replaced, or lines added before and after."""
    return (f"netsim: 1\nname: demo\n{head}servers:\n  - {server}\nclients:\n{clients}{tail}")


def problems_of(text: str, base_dir: Path, filename: str = "s.yaml") -> list[netsim.Problem]:
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario_text(text, filename=filename, base_dir=base_dir)
    problems = caught.value.problems
    assert all(isinstance(problem, netsim.Problem) for problem in problems)
    return problems


def assert_problem(problem: netsim.Problem, file: str, line: int, column: int, path: str,
                   *words: str) -> None:
    assert (problem.file, problem.line, problem.column, problem.path) == (file, line, column, path), problem
    for word in words:
        assert word in problem.message, (word, problem.message)


def test_good_template_loads(tmp_path: Path) -> None:
    """The template the problem cases start from is itself a valid scenario."""
    assert scenario() == GOOD
    loaded = netsim.load_scenario_text(GOOD, filename="s.yaml", base_dir=tmp_path)
    assert loaded.servers[0].chunks() == [b"1111\n", b"2222\n"]


# (text, line, column, path, words the message must hold)
ONE_PROBLEM = {
    "yaml-syntax": (
        "netsim: 1\nname: [demo\nservers: []\n",
        3, 8, "", ("YAML syntax", "expected ',' or ']'", "line 2, column 7"),
    ),
    "yaml-tab-indent": (
        "netsim: 1\n\tname: demo\n", 2, 1, "", ("YAML syntax", "spaces, not tabs"),
    ),
    "yaml-unclosed-quote": (
        'netsim: 1\nname: "demo\n', 3, 1, "", ("YAML syntax", "quoted scalar", "line 2, column 7"),
    ),
    "yaml-two-documents": (
        GOOD + "---\n" + GOOD, 7, 1, "", ("YAML syntax", "single document"),
    ),
    "unknown-top-level-key": (
        scenario(tail="colour: red\n"), 7, 1, "", ("unknown key 'colour'", "allowed here", "servers"),
    ),
    "unknown-top-level-key-close": (
        scenario(tail="descripton: x\n"), 7, 1, "",
        ("unknown key 'descripton'", "did you mean 'description'"),
    ),
    "unknown-server-key": (
        scenario('{name: a, poem: "x\\n", dealy: 1s}'), 4, 28, "servers[0]",
        ("unknown key 'dealy'", "did you mean 'delay'"),
    ),
    "unknown-client-key": (
        scenario(clients="  - {model: select, tragets: [a]}\n"), 6, 21, "clients[0]",
        ("unknown key 'tragets'", "did you mean 'targets'"),
    ),
    "unknown-chunk-key": (
        scenario('{name: a, poem: "x\\n", chunk: {bytes: 4, dealy: 1s}}'), 4, 46, "servers[0].chunk",
        ("unknown key 'dealy'", "allowed here: bytes"),
    ),
    "unknown-chunk-key-block-style": (
        "netsim: 1\nname: demo\nservers:\n  - name: a\n    poem: x\n    chunk:\n      bytes: 4\n"
        "      dealy: 1s\nclients: [blocking]\n",
        8, 7, "servers[0].chunk", ("unknown key 'dealy'", "allowed here: bytes"),
    ),
    "port-as-string": (
        scenario('{name: a, poem: "x\\n", port: "10000"}'), 4, 34, "servers[0].port",
        ("valid integer", "'10000'"),
    ),
    "port-as-yes": (
        scenario('{name: a, poem: "x\\n", port: yes}'), 4, 34, "servers[0].port", ("valid integer", "True"),
    ),
    "seed-as-text": (
        scenario(head="seed: seven\n"), 3, 7, "seed", ("valid integer", "'seven'"),
    ),
    "servers-not-a-list": (
        "netsim: 1\nname: demo\nservers: {name: a, poem: x}\nclients: [blocking]\n",
        3, 10, "servers", ("valid list", "{'name': 'a', 'poem': 'x'}"),
    ),
    "server-not-a-mapping": (
        scenario("a"), 4, 5, "servers[0]", ("expected a mapping", "'a'"),
    ),
    "client-not-a-name-or-mapping": (
        scenario(clients="  - 5\n"), 6, 5, "clients[0]", ("expected a mapping", "5"),
    ),
    "duration-without-a-known-unit": (
        scenario('{name: a, poem: "x\\n", delay: 1 sec}'), 4, 35, "servers[0].delay",
        ("'1 sec' is not a duration", "250ms"),
    ),
    "duration-as-a-word": (
        scenario('{name: a, poem: "x\\n", delay: soon}'), 4, 35, "servers[0].delay",
        ("'soon' is not a duration",),
    ),
    "duration-negative-number": (
        scenario('{name: a, poem: "x\\n", delay: -1}'), 4, 35, "servers[0].delay", ("zero or more", "-1"),
    ),
    "duration-negative-with-unit": (
        scenario('{name: a, poem: "x\\n", delay: -1s}'), 4, 35, "servers[0].delay", ("zero or more", "-1s"),
    ),
    "duration-infinite": (
        scenario('{name: a, poem: "x\\n", delay: .inf}'), 4, 35, "servers[0].delay", ("at most 168h",),
    ),
    "port-too-high": (
        scenario('{name: a, poem: "x\\n", port: 70000}'), 4, 34, "servers[0].port", ("65535", "70000"),
    ),
    "port-negative": (
        scenario('{name: a, poem: "x\\n", port: -1}'), 4, 34, "servers[0].port",
        ("greater than or equal to 0",),
    ),
    "host-not-an-address": (
        scenario('{name: a, poem: "x\\n", host: example.com}'), 4, 34, "servers[0].host",
        ("'example.com' is not an IP address", "localhost"),
    ),
    "chunk-not-line-or-all": (
        scenario('{name: a, poem: "x\\n", chunk: lines}'), 4, 35, "servers[0].chunk",
        ("'lines' is not allowed", "'line' or 'all' (did you mean 'line'?)"),
    ),
    "output-misspelt": (
        scenario(clients="  - {model: command, run: [x], output: poem}\n"), 6, 40, "clients[0].output",
        ("'poem' is not allowed: input should be 'poems' or 'lines' (did you mean 'poems'?)",),
    ),
    "chunk-of-zero-bytes": (
        scenario('{name: a, poem: "x\\n", chunk: {bytes: 0}}'), 4, 43, "servers[0].chunk.bytes",
        ("greater than 0",),
    ),
    "name-with-a-space": (
        scenario(head="").replace("name: demo", "name: two words"), 2, 7, "name",
        ("'two words' is not a valid name",),
    ),
    "duplicate-server-name": (
        scenario(tail="").replace("servers:\n", 'servers:\n  - {name: a, poem: "x\\n"}\n'), 5, 12,
        "servers[1].name", ("server name 'a' is already used by servers[0]",),
    ),
    "two-servers-on-one-port": (
        scenario('{name: a, poem: "x\\n", port: 9000}').replace(
            "clients:", '  - {name: b, poem: "x\\n", port: 9000}\nclients:'),
        5, 34, "servers[1].port", ("port 9000", "already used by servers[0]", "0 for any free one"),
    ),
    "one-port-on-localhost-and-127.0.0.1": (
        scenario('{name: a, poem: "x\\n", port: 9000}').replace(
            "clients:", '  - {name: b, poem: "x\\n", port: 9000, host: localhost}\nclients:'),
        5, 34, "servers[1].port", ("port 9000 on localhost", "already used by servers[0]"),
    ),
    "one-port-on-any-address-and-127.0.0.1": (
        scenario('{name: a, poem: "x\\n", port: 9000}').replace(
            "clients:", '  - {name: b, poem: "x\\n", port: 9000, host: 0.0.0.0}\nclients:'),
        5, 34, "servers[1].port", ("port 9000 on 0.0.0.0", "already used by servers[0]"),
    ),
    "poem-file-missing": (
        scenario("{name: a, poem_file: missing.txt}"), 4, 26, "servers[0].poem_file",
        ("poem_file 'missing.txt' does not exist",),
    ),
    "poem-file-empty": (
        scenario("{name: a, poem_file: empty.txt}"), 4, 26, "servers[0].poem_file",
        ("poem_file 'empty.txt' is empty",),
    ),
    "poem-file-a-directory": (
        scenario("{name: a, poem_file: folder}"), 4, 26, "servers[0].poem_file",
        ("poem_file 'folder' cannot be read",),
    ),
    "poem-file-not-utf8": (
        scenario("{name: a, poem_file: latin1.txt}"), 4, 26, "servers[0].poem_file", ("not UTF-8",),
    ),
    "poem-empty": (
        scenario('{name: a, poem: ""}'), 4, 5, "servers[0]", ("the poem is empty",),
    ),
    "poem-and-poem-file": (
        scenario('{name: a, poem: "x\\n", poem_file: poem.txt}'), 4, 5, "servers[0]",
        ("either `poem:` or `poem_file:`, not both",),
    ),
    "neither-poem-nor-poem-file": (
        scenario("{name: a}"), 4, 5, "servers[0]", ("give the text to serve as `poem:` or `poem_file:`",),
    ),
    "unknown-client-model": (
        scenario(clients="  - blockin\n"), 6, 5, "clients[0].model",
        ("unknown client model 'blockin'", "did you mean 'blocking'", "known models: blocking"),
    ),
    "unknown-client-model-in-mapping": (
        scenario(clients="  - {model: selectt, name: s}\n"), 6, 13, "clients[0].model",
        ("unknown client model 'selectt'", "did you mean 'select'"),
    ),
    "no-targets": (
        scenario(clients="  - {model: select, targets: []}\n"), 6, 30, "clients[0].targets",
        ("must not be empty", "[]"),
    ),
    "unknown-target": (
        scenario(clients="  - {model: select, targets: [a, aa]}\n"), 6, 34, "clients[0].targets[1]",
        ("unknown server 'aa'", "did you mean 'a'"),
    ),
    "client-named-all": (
        scenario(clients="  - {model: select, name: all}\n"), 6, 27, "clients[0].name",
        ("'all' is reserved",),
    ),
    "client-listed-twice": (
        scenario(clients="  - blocking\n  - blocking\n"), 7, 5, "clients[1]",
        ("client 'blocking' is already listed as clients[0]", "`name:`"),
    ),
    "expectation-does-not-parse": (
        scenario(tail="expect:\n  blocking:\n    - elapsed <=\n"), 9, 7, "expect.blocking[0]",
        ("expected a value after 'elapsed <='",),
    ),
    "expectation-written-twice": (
        scenario(tail="expect:\n  blocking: [elapsed < 1s, elapsed  <  1s]\n"), 8, 28, "expect.blocking[1]",
        ("'elapsed < 1s' is already expect.blocking[0]: the same check twice", "remove one"),
    ),
    "expectation-written-twice-otherwise": (
        scenario(tail="expect:\n  blocking: [intact == 100%, intact == 1]\n"), 8, 30, "expect.blocking[1]",
        ("'intact == 1' is already expect.blocking[0] ('intact == 100%'): the same check twice",),
    ),
    "expectation-not-a-string": (
        scenario(tail="expect:\n  blocking:\n    - 5\n"), 9, 7, "expect.blocking[0]",
        ("an expectation is a string",),
    ),
    "expectation-unknown-metric": (
        scenario(tail="expect:\n  all:\n    - elapsd <= 4s\n"), 9, 7, "expect.all[0]",
        ("unknown metric 'elapsd'", "did you mean 'elapsed'"),
    ),
    "expect-unknown-client": (
        scenario(tail="expect:\n  blockng:\n    - elapsed <= 4s\n"), 8, 3, "expect.blockng",
        ("no client named 'blockng'", "did you mean 'blocking'", "'all'"),
    ),
    "expect-speedup-unknown-client": (
        scenario(clients="  - blocking\n  - select\n",
                 tail="expect:\n  select:\n    - speedup(blockng) >= 2\n"), 10, 7, "expect.select[0]",
        ("speedup(blockng) names no client", "did you mean 'blocking'"),
    ),
    "expect-not-a-mapping": (
        scenario(tail="expect: [elapsed <= 4s]\n"), 7, 9, "expect", ("expected a mapping",),
    ),
    "run-with-a-nul": (
        scenario(clients='  - {model: command, run: [echo, "a\\0b"]}\n'), 6, 34, "clients[0].run[1]",
        ("holds a NUL character",),
    ),
    "phases-out-of-order": (
        scenario('{name: a, poem: "x\\n", phases: [{at: 2s}, {at: 3s}, {at: 1s}]}'), 4, 62,
        "servers[0].phases[2].at", ("phases[2] begins at 1s, not after phases[1] (3s)", "in the order"),
    ),
    "duplicate-yaml-key": (
        scenario('{name: a, poem: "x\\n", port: 1, port: 2}'), 4, 37, "servers[0].port",
        ("duplicate key 'port'", "already given above"),
    ),
    "duplicate-top-level-key": (
        scenario(tail="name: other\n"), 7, 1, "name", ("duplicate key 'name'",),
    ),
    "empty-file": ("", 1, 1, "", ("the file is empty", "netsim: 1")),
    "only-a-comment": ("# nothing yet\n", 1, 1, "", ("the file is empty",)),
    "a-list-not-a-mapping": ("- a\n- b\n", 1, 1, "", ("a scenario is a mapping", "netsim: 1")),
    "a-word-not-a-mapping": ("hello\n", 1, 1, "", ("a scenario is a mapping",)),
    "version-2": (GOOD.replace("netsim: 1", "netsim: 2"), 1, 9, "netsim",
                  ("format version 2 is not one this netsim reads", "`netsim: 1`")),
    "version-as-text": (GOOD.replace("netsim: 1", 'netsim: "1"'), 1, 9, "netsim",
                        ("write the format version as the whole number 1 (`netsim: 1`), not '1'",)),
    "version-as-true": (GOOD.replace("netsim: 1", "netsim: true"), 1, 9, "netsim",
                        ("format version True is not one this netsim reads",)),
    "version-missing": (GOOD.replace("netsim: 1\n", ""), 1, 1, "", ("missing required key 'netsim'",)),
}


def test_version_1_as_text_is_reported_beside_the_documents_other_problems(tmp_path: Path) -> None:
    """`netsim: "1"` is version 1 misspelt: the rest is checked as version 1 in the same round."""
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("netsim: 1", 'netsim: "1"').replace("delay:", "dealy:", 1))
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario(path)
    assert [problem.path for problem in caught.value.problems][:1] == ["netsim"]
    assert any("unknown key 'dealy'" in problem.message for problem in caught.value.problems)


@pytest.mark.parametrize(("text", "line", "column", "path", "words"),
                         list(ONE_PROBLEM.values()), ids=list(ONE_PROBLEM))
def test_each_kind_of_problem_is_located(tmp_path: Path, text: str, line: int, column: int, path: str,
                                         words: tuple[str, ...]) -> None:
    """A scenario with one mistake yields one problem at the mistake's file, line and column."""
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "poem.txt").write_text("1111\n")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (tmp_path / "folder").mkdir()
    problems = problems_of(text, tmp_path, filename="dir/s.yaml")
    assert len(problems) == 1, problems
    assert_problem(problems[0], "dir/s.yaml", line, column, path, *words)


def test_unknown_chunk_key_close_to_bytes_is_suggested(tmp_path: Path) -> None:
    """`chunk: {byte: 4}` says that `bytes` is missing and that `byte` probably meant it."""
    problems = problems_of(scenario('{name: a, poem: "x\\n", chunk: {byte: 4}}'), tmp_path)
    assert [(p.line, p.column, p.path) for p in problems] == [
        (4, 35, "servers[0].chunk"), (4, 36, "servers[0].chunk")]
    assert "missing required key 'bytes'" in problems[0].message
    assert "unknown key 'byte' (did you mean 'bytes'?)" in problems[1].message


def test_missing_required_keys_are_each_reported(tmp_path: Path) -> None:
    """A scenario without servers names the missing key; clients may be left out (serve only)."""
    problems = problems_of("netsim: 1\nname: demo\n", tmp_path)
    assert [p.message for p in problems] == ["missing required key 'servers'"]


def test_every_problem_of_a_file_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    """Independent mistakes, in fields and across parts, all come in one error, top to bottom."""
    text = textwrap.dedent("""\
        netsim: 1
        name: demo
        seed: seven
        servers:
          - {name: a, poem: "x\\n", port: 9000, dealy: 1s}
          - {name: b, poem: "x\\n", port: 70000}
          - {name: c, poem_file: missing.txt}
          - {name: c, poem: "x\\n"}
        clients:
          - blockin
          - {model: select, targets: [a, zz]}
        expect:
          all:
            - elapsd < 4s
        """)
    problems = problems_of(text, tmp_path)
    located = [(p.line, p.column, p.path) for p in problems]
    assert located == sorted(located)
    assert located == [
        (3, 7, "seed"),
        (5, 40, "servers[0]"),
        (6, 34, "servers[1].port"),
        (7, 26, "servers[2].poem_file"),
        (8, 12, "servers[3].name"),
        (10, 5, "clients[0].model"),
        (11, 34, "clients[1].targets[1]"),
        (14, 7, "expect.all[0]"),
    ]
    assert "server name 'c' is already used by servers[2]" in problems[4].message
    # servers[1] failed, but its name is b: `zz` can be called unknown in the same round.
    assert "unknown server 'zz'" in problems[6].message


def test_names_that_invalid_entries_give_count_for_the_rules_across_parts(tmp_path: Path) -> None:
    """A failed server's name still clashes with another's, and a failed client's label still
    answers to its `expect` key, while a key naming no entry at all is reported, all at once."""
    text = scenario('{name: a, poem: "x\\n", port: 70000}\n  - {name: a, poem: "y\\n"}',
                    clients="  - blockin\n",
                    tail="expect:\n  blockin: [errors == 0]\n  nobody: [errors == 0]\n")
    problems = problems_of(text, tmp_path)
    assert [p.path for p in problems] == ["servers[0].port", "servers[1].name", "clients[0].model",
                                          "expect.nobody"]


def test_names_of_invalid_parts_are_not_reported_unknown(tmp_path: Path) -> None:
    """A target naming a server that failed validation is not also called unknown."""
    text = scenario('{name: a, poem: "x\\n", port: 70000}', clients="  - {model: select, targets: [a]}\n",
                    tail="expect:\n  select:\n    - elapsed < 1s\n")
    problems = problems_of(text, tmp_path)
    assert [p.path for p in problems] == ["servers[0].port"]


def test_server_with_missing_poem_file_keeps_its_name_and_place(tmp_path: Path) -> None:
    """A missing poem_file neither hides its server's name nor shifts the others' indices."""
    text = textwrap.dedent("""\
        netsim: 1
        name: demo
        servers:
          - {name: a, poem_file: missing.txt}
          - {name: b, poem: "x\\n"}
          - {name: b, poem: "x\\n"}
        clients:
          - {model: blocking, targets: [a]}
        """)
    problems = problems_of(text, tmp_path)
    assert [(p.line, p.path) for p in problems] == [(4, "servers[0].poem_file"), (6, "servers[2].name")]
    assert "already used by servers[1]" in problems[1].message


def test_problem_reads_as_file_line_column(tmp_path: Path) -> None:
    """A problem prints as `file:line:col: path: message`, the form editors jump to."""
    problem = problems_of(scenario(clients="  - blockin\n"), tmp_path, filename="x.yaml")[0]
    assert str(problem).startswith("x.yaml:6:5: clients[0].model: unknown client model 'blockin'")


def test_the_error_message_lists_every_problem(tmp_path: Path) -> None:
    """ScenarioError's text holds one line per problem."""
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario_text("netsim: 1\nname: demo\n", filename="s.yaml", base_dir=tmp_path)
    assert str(caught.value).splitlines() == [str(problem) for problem in caught.value.problems]


def test_missing_file(tmp_path: Path) -> None:
    """A scenario path that does not exist is one problem at line 1 of that path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario(path)
    [problem] = caught.value.problems
    assert_problem(problem, str(path), 1, 1, "", "no such file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A folder given as the scenario is reported as such, not as a crash."""
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario(tmp_path)
    [problem] = caught.value.problems
    assert_problem(problem, str(tmp_path), 1, 1, "", "is a directory")


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    """load_scenario reports problems under the path it was given."""
    path = tmp_path / "bad.yaml"
    path.write_text(scenario(clients="  - blockin\n"))
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario(path)
    [problem] = caught.value.problems
    assert_problem(problem, str(path), 6, 5, "clients[0].model", "did you mean 'blocking'")


# The good path.


def test_three_ports_demo_loads_as_designed() -> None:
    """The shipped demo has three serial servers on 10000-10002, four 1-second lines each."""
    demo = netsim.load_scenario(SCENARIOS / "three_ports.yaml")
    assert demo.netsim == 1
    assert demo.name == "three-ports"
    assert "classic demo" in demo.description
    assert demo.seed is None
    assert [(s.name, s.host, s.port) for s in demo.servers] == [
        ("a", "127.0.0.1", 10000), ("b", "127.0.0.1", 10001), ("c", "127.0.0.1", 10002)]
    for server in demo.servers:
        assert (server.chunk, server.newline, server.delay, server.mode) == ("line", "strip", 1.0, "serial")
        assert server.text == "1111\n2222\n3333\n4444\n"
        assert server.chunks() == [b"1111", b"2222", b"3333", b"4444"]
    assert [client.label for client in demo.clients] == model_names()[:5]
    assert all(demo.targets_of(client) == list(demo.servers) for client in demo.clients)
    assert [e.text for e in demo.expectations_for("blocking")] == [
        "elapsed == 12s ± 5%", "elapsed <= ideal + 250ms", "intact == 100%", "errors == 0"]
    assert [e.text for e in demo.expectations_for("select")][:2] == [
        "elapsed == 4s ± 5%", "speedup(blocking) >= 2.5"]


def test_design_example_loads(tmp_path: Path) -> None:
    """The scenario example of DESIGN.md, comments and all, is valid."""
    text = textwrap.dedent("""\
        netsim: 1                       # format version, required
        name: three-ports
        description: The classic demo.
        seed: 7
        servers:
          - name: a
            host: 127.0.0.1
            port: 10000
            poem: |
              1111
              2222
              3333
              4444
            chunk: line
            newline: strip
            delay: 1s
            mode: serial
          - {name: b, port: 10001, poem: "1111\\n2222\\n3333\\n4444\\n", chunk: line, newline: strip, delay: 1s, mode: serial}
          - {name: c, port: 10002, poem: "1111\\n2222\\n3333\\n4444\\n", chunk: line, newline: strip, delay: 1s, mode: serial}
        clients:
          - blocking
          - select
          - model: asyncio
            targets: [a, b, c]
        expect:
          blocking:
            - elapsed == 12s ± 5%
          select:
            - elapsed <= ideal + 250ms
            - speedup(blocking) >= 2.5
          all:
            - intact == 100%
            - errors == 0
        """)  # noqa: E501 (the example's long lines are DESIGN.md's)
    loaded = netsim.load_scenario_text(text, filename="design.yaml", base_dir=tmp_path)
    assert loaded.seed == 7
    assert [server.payload() for server in loaded.servers] == [b"1111222233334444"] * 3
    assert loaded.client("asyncio").targets == ["a", "b", "c"]


def test_client_shorthand_and_mapping_forms(tmp_path: Path) -> None:
    """`- blocking` is the model with default targets; a mapping sets a name and targets, repeats allowed."""
    text = scenario(clients="  - blocking\n  - {model: select, name: triple, targets: [a, a, a]}\n")
    loaded = netsim.load_scenario_text(text, filename="s.yaml", base_dir=tmp_path)
    shorthand, mapping = loaded.clients
    assert (shorthand.model, shorthand.name, shorthand.targets, shorthand.label) == (
        "blocking", None, None, "blocking")
    assert (mapping.model, mapping.label, mapping.targets) == ("select", "triple", ["a", "a", "a"])
    assert [server.name for server in loaded.targets_of(mapping)] == ["a", "a", "a"]


def test_one_model_twice_under_two_names(tmp_path: Path) -> None:
    """A model may run twice when each entry has its own label, and expect can name either."""
    text = scenario(clients="  - select\n  - {model: select, name: select-a, targets: [a]}\n",
                    tail="expect:\n  select-a:\n    - errors == 0\n")
    loaded = netsim.load_scenario_text(text, filename="s.yaml", base_dir=tmp_path)
    assert [client.label for client in loaded.clients] == ["select", "select-a"]
    assert [e.text for e in loaded.expectations_for("select-a")] == ["errors == 0"]


@pytest.mark.parametrize(("first", "second"), [
    ("port: 0", "port: 0"),
    ("port: 9000", "port: 9001"),
    ("port: 9000", "port: 9000, host: 127.0.0.2"),
    ("port: 9000, host: 0.0.0.0", "port: 9000, host: '::1'"),
], ids=["both-port-0", "two-ports", "two-loopback-addresses", "two-address-families"])
def test_servers_that_can_listen_side_by_side(tmp_path: Path, first: str, second: str) -> None:
    """Servers on port 0, on different ports or on different addresses do not clash."""
    text = scenario(f'{{name: a, poem: "x\\n", {first}}}').replace(
        "clients:", f'  - {{name: b, poem: "x\\n", {second}}}\nclients:')
    loaded = netsim.load_scenario_text(text, filename="s.yaml", base_dir=tmp_path)
    assert [server.name for server in loaded.servers] == ["a", "b"]


def test_poem_file_is_read_relative_to_the_scenario(tmp_path: Path) -> None:
    """poem_file is found beside the scenario file, not in the working folder, and its text is served."""
    folder = tmp_path / "scenarios"
    (folder / "poems").mkdir(parents=True)
    (folder / "poems" / "ode.txt").write_text("first\nsecond\n")
    (folder / "ode.yaml").write_text(scenario("{name: a, poem_file: poems/ode.txt}"))
    loaded = netsim.load_scenario(folder / "ode.yaml")
    server = loaded.servers[0]
    assert server.poem_file == Path("poems/ode.txt")
    assert server.text == "first\nsecond\n"
    assert server.chunks() == [b"first\n", b"second\n"]


def test_poem_file_is_served_byte_for_byte(tmp_path: Path) -> None:
    """A poem file's CRLF line ends and non-ASCII text reach the payload unchanged."""
    content = "caf\u00e9\r\nline two\r\n".encode()
    (tmp_path / "crlf.txt").write_bytes(content)
    loaded = netsim.load_scenario_text(scenario("{name: a, poem_file: crlf.txt}"), base_dir=tmp_path)
    assert loaded.servers[0].payload() == content
    assert len(loaded.servers[0].chunks()) == 2


def test_merge_keys_and_anchors_work_as_in_safe_load(tmp_path: Path) -> None:
    """YAML anchors and `<<` merge keys share settings between servers."""
    text = textwrap.dedent("""\
        netsim: 1
        name: demo
        servers:
          - &slow {name: a, poem: "x\\n", delay: 250ms, mode: serial}
          - {<<: *slow, name: b}
        clients: [blocking]
        """)
    loaded = netsim.load_scenario_text(text, base_dir=tmp_path)
    assert [(s.name, s.delay, s.mode) for s in loaded.servers] == [
        ("a", 0.25, "serial"), ("b", 0.25, "serial")]


def test_client_models_can_be_restricted(tmp_path: Path) -> None:
    """load_scenario_text checks model names against the models it is given."""
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario_text(GOOD, filename="s.yaml", base_dir=tmp_path, client_models=["select"])
    [problem] = caught.value.problems
    assert_problem(problem, "s.yaml", 6, 5, "clients[0].model", "unknown client model 'blocking'",
                   "known models: select")


def test_the_known_models_are_those_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without client_models, a model is known when an entry point of netsim.clients names it."""
    monkeypatch.setattr(_plugins, "client_model_names", lambda: ("blocking", "trio"))
    loaded = netsim.load_scenario_text(scenario(clients="  - trio\n"), base_dir=tmp_path)
    assert loaded.clients[0].model == "trio"
    [problem] = problems_of(scenario(clients="  - select\n"), tmp_path)
    assert "unknown client model 'select'" in problem.message
    assert "known models: blocking, trio" in problem.message


# --- hints and positions for tools ------------------------------------------------------


def test_a_missing_key_comes_with_a_hint_and_an_example(tmp_path: Path) -> None:
    """A missing required key is reported with what it takes and an example of it."""
    [problem] = problems_of(scenario('{poem: "x\\n"}'), tmp_path)
    assert problem.message == "missing required key 'name'"
    assert problem.hint == "add it: name takes a string, like `name: a`"


def test_a_file_that_is_no_yaml_is_told_so_not_given_a_yaml_hint(tmp_path: Path) -> None:
    """`netsim run README.md`: a file not named .yaml that YAML cannot read is called no
    YAML file, where the hint spoke of quoting a value; a .yaml file keeps YAML's hint."""
    text = "# netsim\n\nA tool: it runs scenarios: many.\n"
    for name, hint in (("README.md", "README.md is no YAML file: a scenario is a YAML file (.yaml) that "
                                     "starts with `netsim: 1`"),
                       ("notes.yaml", "a value that holds ': ' needs quotes")):
        (tmp_path / name).write_text(text)
        with pytest.raises(netsim.ScenarioError) as failure:
            netsim.load_scenario(tmp_path / name)
        (problem,) = failure.value.problems
        assert problem.message.startswith("YAML syntax: mapping values are not allowed here")
        assert hint in problem.hint


def test_a_bad_value_comes_with_a_hint_unless_the_message_says_it(tmp_path: Path) -> None:
    """A wrong type gets a hint; a message that already shows the way gets none."""
    typed, explained = problems_of(scenario('{name: a, poem: "x\\n", port: [1], mode: parallel}'), tmp_path)
    assert typed.path == "servers[0].port" and typed.hint == "port takes an integer, like `port: 10000`"
    assert explained.path == "servers[0].mode" and explained.hint == ""


def test_a_rule_of_a_whole_entry_needs_no_hint_and_a_number_for_a_string_says_to_quote_it(
        tmp_path: Path) -> None:
    """A rule broken by a client entry as a whole is its own explanation (the hint of what
    `clients` takes would not help); a number where text belongs says to quote it."""
    entry, number = problems_of(scenario('{name: a, poem: "x\\n"}', clients=(
        "  - {model: select, run: [x]}\n  - {model: command, run: [python3, 5]}\n")), tmp_path)
    assert (entry.path, entry.message, entry.hint) == (
        "clients[0]", "`run` applies to `model: command` only", "")
    assert (number.path, number.message) == (
        "clients[1].run[1]", 'expected a string, got the number 5: write it in quotes, like "5"')
    [boolean] = problems_of(scenario('{name: a, poem: "x\n"}', clients="  - {model: command, run: [true]}\n"),
                            tmp_path)
    assert boolean.message == 'expected a string, got the boolean true: write it in quotes, like "true"'


def test_extra_connections_is_judged_for_a_program_alone(tmp_path: Path) -> None:
    """`extra_connections`, as `exit_code`, is of a `command` client's program: under a model
    that runs none it is a load error saying so."""
    [problem] = problems_of(scenario('{name: a, poem: "x\n"}', clients="  - select\n",
                                     tail="expect:\n  select: [extra_connections == 0]\n"), tmp_path)
    assert problem.message.startswith("extra_connections is the count of the connections beyond its "
                                      "targets made by a `command` client's program, and client 'select' "
                                      "runs no program")


def test_proxies_that_forward_in_a_circle_are_refused(tmp_path: Path) -> None:
    """A proxy may forward another proxy, but proxies that forward one another in a circle
    would never reach a service: refused, naming the circle."""
    text = ("netsim: 1\nname: c\nservers:\n  - {name: a, upstream: b}\n  - {name: b, upstream: c}\n"
            "  - {name: c, upstream: a}\n")
    problems = problems_of(text, tmp_path)
    assert problems[0].message == (
        "these proxies forward in a circle: a -> b -> c -> a; one of them must forward a poem server "
        "or HOST:PORT")


def test_connections_and_ramp_are_refused_for_a_program(tmp_path: Path) -> None:
    """A `command` client's program makes its own connections, told only the targets: a
    `connections` or `ramp` that it cannot follow is refused, naming how to ask for more."""
    [problem] = problems_of(scenario('{name: a, poem: "x\n"}', clients=(
        "  - {model: command, run: [x, '{ports}'], connections: 2, ramp: 1s}\n")), tmp_path)
    assert problem.path == "clients[0]"
    assert problem.message.startswith("`connections` and `ramp` shape the connections of netsim's own "
                                      "models; a `command` client's program makes its own: list a server "
                                      "in `targets` once for each connection")


def test_a_document_that_is_not_a_scenario_points_at_netsim_new(tmp_path: Path) -> None:
    """An empty file, or one that is not a mapping, suggests `netsim new`."""
    for text in ("", "- a list\n"):
        [problem] = problems_of(text, tmp_path)
        assert "netsim new" in problem.hint


def test_common_yaml_slips_get_a_hint(tmp_path: Path) -> None:
    """An unquoted ': ' in a value is a syntax error whose hint says to quote it."""
    [problem] = problems_of("netsim: 1\nname: x\ndescription: note: this\n", tmp_path)
    assert (problem.line, problem.column) == (3, 18)
    assert "needs quotes" in problem.hint


def test_format_problem_puts_the_hint_below_the_problem() -> None:
    """A problem prints as file:line:col with its hint indented on the next line."""
    from netsim._loader import format_problem

    with_hint = netsim.Problem("s.yaml", 4, 5, "servers[0]", "missing required key 'name'", "add it")
    expected = "s.yaml:4:5: servers[0]: missing required key 'name'\n    hint: add it"
    assert format_problem(with_hint) == expected
    without = netsim.Problem("s.yaml", 1, 1, "", "no such file")
    assert format_problem(without) == "s.yaml:1:1: no such file"


def test_value_positions_locate_every_expectation(tmp_path: Path) -> None:
    """value_positions gives the line and column of each value by its path in the document."""
    from netsim._loader import value_positions

    path = tmp_path / "s.yaml"
    path.write_text(GOOD + "expect:\n  blocking:\n    - elapsed <= 3s\n"
                           "  all: [errors == 0, intact == 100%]\n")
    positions = value_positions(path)
    assert positions[("expect", "blocking", 0)] == (9, 7)
    assert positions[("expect", "all", 1)] == (10, 22)
    assert positions[("clients", 0)] == (6, 5)


# --- documents that would exhaust the loader ---------------------------------------------
# Each of these crashed or hung the loader before it bounded the document. The limits,
# not the machine, must end them: each test has a watchdog well below the old cost.

HEAD = 'netsim: 1\nname: demo\nservers: [{name: a, poem: "x\\n"}]\nclients: [blocking]\n'


def laughs(levels: int) -> str:
    """Nine lines of aliases, each ten of the one above: 10**levels strings once expanded."""
    lines = ["description:", "  l0: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha]"]
    lines += [f"  l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]" for level in range(1, levels)]
    return HEAD + "\n".join(lines) + "\n"


@pytest.mark.timeout(10)
def test_a_billion_laughs_is_refused_at_the_alias_that_goes_too_far(tmp_path: Path) -> None:
    """Aliases that would make 10**9 values are refused before any is built, at the alias past the limit."""
    text = laughs(9)
    assert len(text) < 1000
    [problem] = problems_of(text, tmp_path)
    # l5 is ten copies of l4 (111,111 values each): its tenth alias goes past 1,000,000.
    line = text.splitlines().index(next(row for row in text.splitlines() if row.startswith("  l5:"))) + 1
    column = text.splitlines()[line - 1].rindex("*l4") + 1
    assert_problem(problem, "s.yaml", line, column, "", "the alias *l4", "1,000,000 values")


@pytest.mark.timeout(10)
def test_merge_keys_that_double_at_each_level_are_refused(tmp_path: Path) -> None:
    """`<<: [*m, *m]` forty levels deep is refused as the aliases it expands, not built."""
    lines = ["description:", "  m0: &m0 {x: 1, y: 2}"]
    lines += [f"  m{n}: &m{n} {{<<: [*m{n - 1}, *m{n - 1}], z{n}: 0}}" for n in range(1, 40)]
    [problem] = problems_of(HEAD + "\n".join(lines) + "\n", tmp_path)
    assert 6 <= problem.line <= 5 + 40 and "past 1,000,000 values" in problem.message


@pytest.mark.timeout(10)
def test_a_document_without_aliases_is_bounded_in_size(tmp_path: Path) -> None:
    """A document longer than MAX_TEXT is refused at 1:1 before it is parsed, from text or from a file."""
    from netsim._loader import MAX_TEXT

    text = GOOD + "#" * MAX_TEXT + "\n"
    [problem] = problems_of(text, tmp_path)
    assert_problem(problem, "s.yaml", 1, 1, "", "longer than 4,194,304 characters")
    assert "poem_file" in problem.hint
    path = tmp_path / "long.yaml"
    path.write_text(text)
    with pytest.raises(netsim.ScenarioError, match="longer than"):
        netsim.load_scenario(path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", [
    HEAD + "description: &s [a, *s]\n",
    'netsim: 1\nname: demo\nservers: &s [{name: a, poem: "x\\n", fault: *s}]\nclients: [blocking]\n',
    HEAD + "description: &m {<<: *m, a: 1}\n",
], ids=["list", "mapping", "merge"])
def test_a_recursive_alias_is_refused_where_it_stands(tmp_path: Path, text: str) -> None:
    """An alias inside the node it names is refused at the alias, not followed without end."""
    [problem] = problems_of(text, tmp_path)
    line = next(number for number, row in enumerate(text.splitlines(), 1) if "*" in row)
    column = text.splitlines()[line - 1].index("*") + 1
    assert_problem(problem, "s.yaml", line, column, "", "stands inside the node it names", "contain itself")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_deep_nesting_is_refused_at_the_level_past_the_limit(tmp_path: Path, opening: str) -> None:
    """5,000 nested lists or mappings are refused at the 65th level, not by a RecursionError."""
    closing = "]" if opening == "[" else "}"
    text = HEAD + f"description: {opening * 5000}x{closing * 5000}\n"
    [problem] = problems_of(text, tmp_path)
    # The document's own mapping is the first level, the 64th bracket the 65th.
    assert_problem(problem, "s.yaml", 5, 14 + 63 * len(opening), "", "nest more than 64 deep")


@pytest.mark.timeout(10)
def test_aliases_cannot_nest_past_the_limit_either(tmp_path: Path) -> None:
    """A chain of aliases, each a few levels deeper than the last, is refused at the alias past 64 levels."""
    lines = ["description:", "  d0: &d0 [[[x]]]"]
    lines += [f"  d{level}: &d{level} [[[*d{level - 1}]]]" for level in range(1, 400)]
    [problem] = problems_of(HEAD + "\n".join(lines) + "\n", tmp_path)
    # *d19 in d20 stands in 5 lists and mappings (the document, description, d20's
    # three lists) and holds 60 (three for each of d0 to d19): 65.
    assert_problem(problem, "s.yaml", 6 + 20, 16, "", "the alias *d19", "more than 64 deep")


@pytest.mark.parametrize(("key", "column"), [("? !!set {a}\n: 1\n", 3), ("? [a, b]\n: 1\n", 3),
                                             ("{a: 1}: 2\n", 1)], ids=["set", "list", "mapping"])
def test_a_list_or_mapping_as_a_key_is_refused(tmp_path: Path, key: str, column: int) -> None:
    """A set, list or mapping as a key is a problem at the key, not a TypeError or a key made of its text."""
    [problem] = problems_of(HEAD + key, tmp_path)
    assert_problem(problem, "s.yaml", 5, column, "", "a key is a word or a number")


@pytest.mark.parametrize(("value", "words"), [
    ("9" * 400, "a number of 400 characters"),
    ("9" * 5000, "a number of 5000 characters"),
    ("1." + "5" * 200, "a number of 202 characters"),
    ("1.0e+308", "at most 168h"),
    ("2e400s", "is not a duration"),
    ('"' + "9" * 400 + 's"', "at most 168h"),
], ids=["400-digits", "5000-digits", "long-float", "1e308-seconds", "exponent", "400-digits-quoted"])
def test_numbers_too_long_or_too_large_are_problems(tmp_path: Path, value: str, words: str) -> None:
    """A number past 100 characters, or a duration past a week, is a located problem, not an overflow."""
    [problem] = problems_of(scenario(f'{{name: a, poem: "x\\n", delay: {value}}}'), tmp_path)
    assert_problem(problem, "s.yaml", 4, 35, "servers[0].delay", words)


@pytest.mark.parametrize(("chunk", "words"), [
    ('{bytes: "' + "9" * 400 + 'B"}', "at most 1000GB"),
    ("{bytes: " + "9" * 99 + "}", "at most 1000GB"),
])
def test_sizes_too_large_are_problems(tmp_path: Path, chunk: str, words: str) -> None:
    """A size of 400 digits, or one past 1000GB, is a located problem, not an OverflowError."""
    [problem] = problems_of(scenario(f'{{name: a, poem: "x\\n", chunk: {chunk}}}'), tmp_path)
    assert_problem(problem, "s.yaml", 4, 43, "servers[0].chunk.bytes", words)


@pytest.mark.parametrize(("text", "line", "column", "path", "words"), [
    ("netsim: 1\nname: demo\nservers: !!python/object/apply:os.system [{name: a, poem: x}]\n"
     "clients: [blocking]\n", 3, 10, "servers", "the tag !!python/object/apply:os.system is not allowed"),
    (HEAD + "expect: !!python/object:builtins.dict {}\n", 5, 9, "expect",
     "the tag !!python/object:builtins.dict is not allowed"),
    (HEAD + "description: !!python/name:os.system\n", 5, 14, "description",
     "the tag !!python/name:os.system is not allowed"),
    (HEAD + "description: !local {a: 1}\n", 5, 14, "description", "the tag !local is not allowed"),
    (HEAD + "description: !!set {a}\n", 5, 14, "description", "!!set is not taken here"),
    (HEAD + "description: !!omap [{a: 1}]\n", 5, 14, "description", "!!omap is not taken here"),
    (HEAD + "description: =\n", 5, 14, "description", 'quote it, like "="'),
], ids=["python-on-a-list", "python-on-a-mapping", "python-on-a-scalar", "local-tag", "set", "omap",
        "lone-="])
def test_tags_that_safe_load_refuses_are_refused(tmp_path: Path, text: str, line: int, column: int,
                                                 path: str, words: str) -> None:
    """A tag safe_load refuses (or a tagged set or ordered map) is a problem where it stands, not ignored."""
    [problem] = problems_of(text, tmp_path)
    assert_problem(problem, "s.yaml", line, column, path, words)


@pytest.mark.parametrize(("value", "tag"), [("!!int abc", "!!int"), ("!!bool maybe", "!!bool"),
                                            ("!!timestamp soon", "!!timestamp"), ("!!float x", "!!float")])
def test_a_value_its_explicit_tag_cannot_read_is_a_problem(tmp_path: Path, value: str, tag: str) -> None:
    """A scalar its own tag cannot read is a located problem, not the constructor's ValueError or KeyError."""
    [problem] = problems_of(scenario(head=f"seed: {value}\n"), tmp_path)
    assert_problem(problem, "s.yaml", 3, 7, "seed", f"cannot be read as {tag}")


def test_every_refused_value_is_reported_at_once(tmp_path: Path) -> None:
    """Several tags and numbers a scenario cannot hold come in one error, top to bottom."""
    text = (HEAD + "seed: " + "1" * 200 + "\ndescription: !!python/name:os.system\n"
            + "expect: !!python/object:x {}\n")
    problems = problems_of(text, tmp_path)
    assert [(p.line, p.path) for p in problems] == [(5, "seed"), (6, "description"), (7, "expect")]


def test_merge_keys_resolve_as_the_yaml_spec_says(tmp_path: Path) -> None:
    """In `<<: [*a, *c]` the first mapping wins, merges within merges count, and own keys win over all."""
    # PyYAML 6.0.4's safe_load lets the last mapping win, unless the key is one character
    # long (it compares keys by the identity of their strings); up to 6.0.1 it followed
    # the merge-key spec, and so does netsim, whatever PyYAML is installed.
    text = textwrap.dedent("""\
        netsim: 1
        name: demo
        servers:
          - &a {name: a, poem: "x\\n", delay: 1s, mode: serial}
          - &b {name: b, poem: "y\\n", delay: 2s, jitter: 100ms}
          - &c {<<: *b, name: c, newline: strip, delay: 3s}
          - {<<: [*a, *c], name: d}
        clients: [blocking]
        """)
    merged = netsim.load_scenario_text(text, base_dir=tmp_path).servers
    assert [(s.name, s.poem, s.delay, s.mode, s.jitter, s.newline) for s in merged[2:]] == [
        ("c", "y\n", 3.0, "concurrent", 0.1, "strip"),
        ("d", "x\n", 1.0, "serial", 0.1, "strip"),
    ]


@pytest.mark.parametrize(("value", "words"), [
    ("5", "`<<` merges a mapping"),
    ("[5]", "`<<` merges a mapping"),
    ("[*s, 5]", "`<<` merges a mapping"),
    ("!!python/object:x {model: select}", "the tag !!python/object:x is not allowed"),
    ("[!!set {select}]", "!!set is not taken here"),
])
def test_a_merge_of_no_plain_mapping_is_a_problem(tmp_path: Path, value: str, words: str) -> None:
    """`<<:` with a value that is not a plain mapping (or a list of them) is a located problem."""
    text = scenario('&s {name: a, poem: "x\\n"}', clients=f"  - {{<<: {value}, model: select}}\n")
    [problem] = problems_of(text, tmp_path)
    assert problem.line == 6 and words in problem.message


def test_value_positions_share_the_limits(tmp_path: Path) -> None:
    """value_positions, which the pytest plugin uses, refuses a billion laughs as the loader does."""
    from netsim._loader import value_positions

    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(9))
    with pytest.raises(netsim.ScenarioError, match="1,000,000 values"):
        value_positions(path)


@pytest.mark.timeout(20)
def test_validate_goes_on_after_a_file_the_loader_refuses(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`netsim validate` reports a billion laughs and a recursive alias at file:line:col, then goes on."""
    from netsim.cli import main

    laughing, recursive, good = tmp_path / "laughs.yaml", tmp_path / "recursive.yaml", tmp_path / "good.yaml"
    laughing.write_text(laughs(9))
    recursive.write_text(HEAD + "description: &s [a, *s]\n")
    good.write_text(GOOD)
    assert main(["validate", str(laughing), str(recursive), str(good)]) == 2
    out, err = capsys.readouterr()
    assert f"{good}: ok" in out
    assert f"{laughing}:11:" in err and f"{recursive}:5:21:" in err
    assert "3 files checked: 1 valid, 2 invalid with 2 problems" in err


def test_a_refused_value_is_reported_once_however_often_it_is_aliased(tmp_path: Path) -> None:
    """A tagged mapping that ten aliases repeat is one problem, at the mapping."""
    again = ", ".join(["*bad"] * 10)
    text = HEAD + f"description:\n  bad: &bad !!python/object:x {{a: 1}}\n  again: [{again}]\n"
    [problem] = problems_of(text, tmp_path)
    assert_problem(problem, "s.yaml", 6, 8, "description.bad", "the tag !!python/object:x is not allowed")


def test_a_mistake_in_a_phases_down_is_reported_once(tmp_path: Path) -> None:
    """`down: {reset: yes, now: true}` is one problem, the unknown key, not also "not a boolean"."""
    path = tmp_path / "down.yaml"
    path.write_text('netsim: 1\nname: d\nservers:\n  - name: a\n    poem: "1\\n"\n'
                    "    phases: [{at: 1s, down: {reset: true, now: true}}]\n", encoding="utf-8")
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario(path)
    messages = [problem.message for problem in caught.value.problems]
    assert messages == ["unknown key 'now'; allowed here: reset"]


def test_a_server_outside_loopback_is_a_problem_only_where_external_is_not_allowed() -> None:
    """allow_external=False (validate, the pytest plugin) locates a host or an upstream outside
    loopback, which a run refuses without --allow-external; by default it loads, for the run
    to judge with its own allow_external."""
    text = textwrap.dedent("""\
        netsim: 1
        name: outside
        servers:
          - {name: a, poem: "1\\n", host: 0.0.0.0}
          - {name: p, upstream: "10.1.2.3:80"}
    """)
    assert len(netsim.load_scenario_text(text).servers) == 2
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario_text(text, filename="s.yaml", allow_external=False)
    assert [str(problem).split(", outside")[0] for problem in caught.value.problems] == [
        "s.yaml:4:34: servers[0].host: server 'a' binds 0.0.0.0",
        "s.yaml:5:25: servers[1].upstream: server 'p' forwards to 10.1.2.3:80"]
    assert {problem.hint for problem in caught.value.problems} == {
        "pass --allow-external (to `netsim validate` too) if that is intended"}
