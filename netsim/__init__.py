"""netsim: slow and faulty TCP servers from a YAML scenario, client models to run
against them, and timing expectations with a verdict fit for CI.

The public API::

    scenario = netsim.load_scenario("scenarios/three_ports.yaml")
    result = netsim.run_scenario(scenario, time_scale=0.1)
    result.passed, result.run("select").elapsed

Everything not listed in ``__all__`` may change without notice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from netsim._version import __version__

# Names are imported on first use: `netsim --version` and `netsim --help` should not pay
# for pydantic and asyncio (about 300 ms) when they need neither.
_EXPORTS = {
    "ClientCrashError": "netsim._errors",
    "NetsimError": "netsim._errors",
    "PortBusyError": "netsim._errors",
    "Problem": "netsim._errors",
    "RunError": "netsim._errors",
    "RunTimeoutError": "netsim._errors",
    "ScenarioError": "netsim._errors",
    "ServerStartError": "netsim._errors",
    "UsageError": "netsim._errors",
    "load_scenario": "netsim._loader",
    "load_scenario_text": "netsim._loader",
    "Expectation": "netsim.expectations",
    "Verdict": "netsim.expectations",
    "ConnectionResult": "netsim.results",
    "Lateness": "netsim.results",
    "RunResult": "netsim.results",
    "ScenarioResult": "netsim.results",
    "run_scenario": "netsim.runner",
    "serve_scenario": "netsim._serving",
    "serving": "netsim._serving",
    "Checked": "netsim._serving",
    "Serving": "netsim._serving",
    "ServedResult": "netsim._serving",
    "Scenario": "netsim.scenario",
}

if TYPE_CHECKING:
    from netsim._errors import (
        ClientCrashError,
        NetsimError,
        PortBusyError,
        Problem,
        RunError,
        RunTimeoutError,
        ScenarioError,
        ServerStartError,
        UsageError,
    )
    from netsim._loader import load_scenario, load_scenario_text
    from netsim._serving import Checked, ServedResult, Serving, serve_scenario, serving
    from netsim.expectations import Expectation, Verdict
    from netsim.results import ConnectionResult, Lateness, RunResult, ScenarioResult
    from netsim.runner import run_scenario
    from netsim.scenario import Scenario


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Checked",
    "ClientCrashError",
    "ConnectionResult",
    "Expectation",
    "Lateness",
    "NetsimError",
    "PortBusyError",
    "Problem",
    "RunError",
    "RunResult",
    "RunTimeoutError",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "ServedResult",
    "ServerStartError",
    "Serving",
    "UsageError",
    "Verdict",
    "__version__",
    "load_scenario",
    "load_scenario_text",
    "run_scenario",
    "serve_scenario",
    "serving",
]
