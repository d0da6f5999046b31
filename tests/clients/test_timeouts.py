"""A connection that times out says what ran out, whichever model made it."""

from __future__ import annotations

import pytest

import netsim
from netsim.clients import get_model, model_names

# Every installed model that runs as it is; `command` runs a scenario's program instead.
MODELS = [name for name in model_names() if get_model(name).configure is None]

TEXT = """\
netsim: 1
name: silent
servers:
  - {{name: mute, poem: "x\\n", fault: {{kind: syn_drop}}}}
  - {{name: still, poem: "1\\n2\\n", delay: 50ms, fault: {{kind: stall, after: 2}}}}
clients: [{{model: {model}, timeout: 200ms}}]
"""


@pytest.mark.parametrize("model", MODELS)
def test_a_timeout_says_what_ran_out(model: str) -> None:
    """An unanswered handshake and a silent connection both end as timeouts whose message
    says more than the exception's name."""
    result = netsim.run_scenario(netsim.load_scenario_text(TEXT.format(model=model)), free_ports=True)
    mute, still = result.runs[0].connections
    assert (mute.error, mute.phase, still.error, still.phase) == ("timeout", "connect", "timeout", "read")
    for conn in (mute, still):
        assert conn.message is not None and conn.message.split(":", 1)[1].strip(), conn.message
