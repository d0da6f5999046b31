"""The Twisted and trio models come with extras: without them a scenario naming one says
what to install; with them, the Twisted model keeps to a reactor of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netsim.clients import Recorder, Target, get_model
from netsim.events import ClientEvent, ConnFailed, EofReceived

# Runs the CLI in a process where the framework's package cannot be imported, as if its
# extra were not installed: a finder ahead of every other refuses it and its submodules.
WITHOUT = textwrap.dedent("""\
    import sys

    class Uninstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == {module!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Uninstalled())
    from netsim.cli import main
    sys.exit(main(sys.argv[1:]))
    """)

FRAMEWORKS = ["twisted", "trio"]  # each model is named after the package it needs


def netsim_without(module: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT.format(module=module), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def scenario_naming(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(f'netsim: 1\nname: s\nservers: [{{name: a, poem: "x\\n"}}]\n'
                    f"clients:\n  - asyncio\n  - {model}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("model", FRAMEWORKS)
def test_without_the_extra_a_scenario_naming_the_model_is_invalid(tmp_path: Path, model: str) -> None:
    """`netsim run` on a scenario naming the model exits 2, at the model's line, saying which
    module is missing and a pip command that brings it, without a traceback."""
    path = scenario_naming(tmp_path, model)
    done = netsim_without(model, "run", path)
    assert done.returncode == 2, done.stderr
    assert (f"{path}:6:5: clients[1].model: client model {model!r} needs the module {model!r}, "
            f"which is not installed; install it with: pip install 'netsim[") in done.stderr
    assert "nothing was run" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("model", FRAMEWORKS)
def test_without_the_extra_the_hint_names_the_models_own_extra(tmp_path: Path, model: str) -> None:
    """The install command a scenario naming the model suggests is the model's own extra."""
    done = netsim_without(model, "run", scenario_naming(tmp_path, model))
    assert f"pip install 'netsim[{model}]'" in done.stderr


@pytest.mark.parametrize("model", FRAMEWORKS)
def test_without_the_extra_netsim_clients_lists_the_model_as_unavailable(model: str) -> None:
    """`netsim clients` still exits 0, and the model's line says it is unavailable and what to install."""
    done = netsim_without(model, "clients")
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(f"{model} ")]
    assert "unavailable" in line and "pip install 'netsim[" in line
    assert any(line.startswith("asyncio ") and "concurrent" in line for line in done.stdout.splitlines())


def test_importing_the_twisted_model_installs_no_reactor() -> None:
    """Importing the Twisted model leaves Twisted's global reactor uninstalled in the importing process."""
    code = "import sys, netsim.clients.twisted; print('twisted.internet.reactor' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.fixture
def poem_server() -> Iterator[tuple[str, int]]:
    """A loopback server that sends b"x\\n" to each connection and closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"x\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_the_twisted_model_runs_again_in_the_same_process(poem_server: tuple[str, int]) -> None:
    """Two runs of the Twisted model in one process both read their poem: each has its own reactor."""
    model = get_model("twisted")
    host, port = poem_server
    for _ in range(2):
        events: list[ClientEvent] = []
        recorder = Recorder("twisted", time.monotonic(), events.extend)
        model.run([Target(conn=1, server="s", host=host, port=port, expected=b"x\n", timeout=5.0)],
                  recorder)
        recorder.flush()
        assert [type(event) for event in events if isinstance(event, EofReceived | ConnFailed)] == \
            [EofReceived]
        assert all(event.intact for event in events if isinstance(event, EofReceived))
