"""Poem files: read only inside the scenario's folder, only regular files, only up to a limit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import netsim
from netsim._poem_files import DEFAULT_MAX_POEM_BYTES, DEFAULT_MAX_POEM_TEXT, PoemFileError, read_poem_file
from netsim._units import parse_size
from netsim.scenario import Server


def scenario_reading(poem_file: str) -> str:
    """A scenario whose one server serves ``poem_file``: the value stands on line 4, column 26."""
    return f"netsim: 1\nname: reader\nservers:\n  - {{name: a, poem_file: {poem_file!r}}}\n"


def only_problem(folder: Path, poem_file: str, **options: Any) -> netsim.Problem:
    """The one problem of a scenario in ``folder`` that serves ``poem_file``."""
    path = folder / "reader.yaml"
    path.write_text(scenario_reading(poem_file))
    with pytest.raises(netsim.ScenarioError) as caught:
        netsim.load_scenario(path, **options)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.column, problem.path) == (
        str(path), 4, 26, "servers[0].poem_file")
    return problem


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A scenario folder with a poem in it and below it, and a secret beside it; returns the folder."""
    folder = tmp_path / "scenarios"
    (folder / "poems").mkdir(parents=True)
    (folder / "poems" / "ode.txt").write_text("first\nsecond\n")
    (tmp_path / "secret.txt").write_text("the secret\n")
    return folder


@pytest.mark.parametrize("poem_file", ["../secret.txt", "poems/../../secret.txt", "ABSOLUTE"])
def test_a_poem_file_outside_the_folder_is_refused_with_the_flag_that_allows_it(
    layout: Path, poem_file: str
) -> None:
    """A path that climbs out, or an absolute one elsewhere, is a problem that names --allow-paths."""
    poem_file = poem_file.replace("ABSOLUTE", str(layout.parent / "secret.txt"))
    problem = only_problem(layout, poem_file)
    assert problem.message.startswith(f"poem_file {poem_file!r} is outside the scenario's folder {layout}")
    assert "--allow-paths" in problem.message and "allow_paths=True" in problem.hint
    assert "the secret" not in str(problem)


def test_allow_paths_reads_a_file_outside_the_folder(layout: Path) -> None:
    """With allow_paths=True the file beside the folder is read and served."""
    path = layout / "reader.yaml"
    path.write_text(scenario_reading("../secret.txt"))
    assert netsim.load_scenario(path, allow_paths=True).servers[0].text == "the secret\n"


def test_files_in_the_folder_and_below_it_are_read(layout: Path) -> None:
    """A poem in a subfolder, named relatively or absolutely, is inside and is read."""
    for poem_file in ("poems/ode.txt", str(layout / "poems" / "ode.txt")):
        path = layout / "reader.yaml"
        path.write_text(scenario_reading(poem_file))
        assert netsim.load_scenario(path).servers[0].text == "first\nsecond\n"


def test_a_symlink_that_leads_outside_counts_as_outside(layout: Path) -> None:
    """A link in the folder to a file beside it is refused, and says where it leads; one within is read."""
    (layout / "innocent.txt").symlink_to(layout.parent / "secret.txt")
    (layout / "alias.txt").symlink_to(layout / "poems" / "ode.txt")
    problem = only_problem(layout, "innocent.txt")
    assert f"where it leads (to {layout.parent / 'secret.txt'})" in problem.message
    path = layout / "reader.yaml"
    path.write_text(scenario_reading("alias.txt"))
    assert netsim.load_scenario(path).servers[0].text == "first\nsecond\n"


def test_a_folder_that_is_a_symlink_still_holds_its_own_files(tmp_path: Path, layout: Path) -> None:
    """A scenario reached through a linked folder reads the files in the folder the link names."""
    linked = tmp_path / "linked"
    linked.symlink_to(layout)
    (layout / "reader.yaml").write_text(scenario_reading("poems/ode.txt"))
    assert netsim.load_scenario(linked / "reader.yaml").servers[0].text == "first\nsecond\n"


def test_a_fifo_is_refused_without_being_opened(layout: Path) -> None:
    """A FIFO is not a regular file: refused at once, even with allow_paths, where opening it would hang."""
    os.mkfifo(layout / "pipe.txt")
    problem = only_problem(layout, "pipe.txt", allow_paths=True)
    assert problem.message == ("poem_file 'pipe.txt' cannot be read: it is a FIFO (named pipe), "
                               "not a regular file")


def test_a_device_is_refused_without_being_read(layout: Path) -> None:
    """/dev/zero, allowed as a path, is refused as a device instead of read until memory runs out."""
    problem = only_problem(layout, "/dev/zero", allow_paths=True)
    assert problem.message == ("poem_file '/dev/zero' cannot be read: it is a character device, "
                               "not a regular file")


def test_a_poem_file_past_the_size_limit_is_refused_with_the_flag_that_raises_it(layout: Path) -> None:
    """A file past max_poem_bytes is a problem naming its size and --max-poem-size; more allows it."""
    (layout / "long.txt").write_text("x" * 2_500_000 + "\n")
    problem = only_problem(layout, "long.txt", max_poem_bytes=1_000_000)
    assert problem.message == ("poem_file 'long.txt' is 2.5MB, more than the 1.0MB a poem may have: "
                               "pass --max-poem-size 3MB or more to allow it")
    path = layout / "reader.yaml"
    assert len(netsim.load_scenario(path, max_poem_bytes=3_000_000).servers[0].text) == 2_500_001


def test_a_file_that_gives_no_size_is_read_only_up_to_the_limit() -> None:
    """A /proc file says it is empty, and holds more: reading stops one byte past the limit."""
    with pytest.raises(PoemFileError) as caught:
        read_poem_file(Path("/proc/self"), Path("maps"), allow_paths=True, max_bytes=10)
    assert caught.value.message.startswith("poem_file 'maps' holds more than the 10B a poem may have")


def test_the_default_limit_reads_as_it_is_documented() -> None:
    """The default limit is the 10MB that the schema and the flags' help state."""
    assert parse_size(DEFAULT_MAX_POEM_TEXT) == DEFAULT_MAX_POEM_BYTES
    assert f"at most {DEFAULT_MAX_POEM_TEXT}" in str(Server.model_fields["poem_file"].description)


def test_a_scenario_given_as_text_is_confined_to_its_base_folder(layout: Path) -> None:
    """load_scenario_text's base_dir is the folder a poem file must lie in."""
    with pytest.raises(netsim.ScenarioError, match="is outside the scenario's folder"):
        netsim.load_scenario_text(scenario_reading("../secret.txt"), base_dir=layout)
    loaded = netsim.load_scenario_text(scenario_reading("../secret.txt"), base_dir=layout, allow_paths=True)
    assert loaded.servers[0].text == "the secret\n"
