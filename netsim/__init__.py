"""netsim: slow and faulty TCP servers from a YAML scenario, client models to run
against them, and timing expectations with a verdict fit for CI.

The public API::

    scenario = netsim.load_scenario("scenarios/three_ports.yaml")
    result = netsim.run_scenario(scenario, time_scale=0.1)
    result.passed, result.run("select").elapsed

Everything not listed in ``__all__`` may change without notice.
"""

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
from netsim._version import __version__
from netsim.expectations import Expectation, Verdict
from netsim.results import ConnectionResult, Lateness, RunResult, ScenarioResult
from netsim.runner import run_scenario, serve_scenario
from netsim.scenario import Scenario

__all__ = [
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
    "ServerStartError",
    "UsageError",
    "Verdict",
    "__version__",
    "load_scenario",
    "load_scenario_text",
    "run_scenario",
    "serve_scenario",
]
