"""The servers of a big run, in a new interpreter: ``python -m netsim._fresh_server FD RUNNER_PID``.

``ServerProcess.start(..., fresh=True)`` starts this module rather than forking the
runner, so that the servers hold only what serving needs: a fork would share, and count
in its resident memory, every page of the runner's (pydantic's among them). FD is the
socket the runner sends the plans over and reads the servers' events from.
"""

import sys

# The servers never speak TLS, but asyncio imports ssl to offer it, which maps OpenSSL's
# libraries and builds the module's tables: about 4.2 MB of the server process's resident
# memory, an eighth of its peak at ten thousand connections. None in sys.modules makes that
# import fail as it does where Python was built without ssl, and asyncio then goes
# without. Nothing the servers run imports ssl otherwise.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

from netsim._processes import serve_fresh  # noqa: E402 (after the line above, by design)

if __name__ == "__main__":
    sys.exit(serve_fresh(int(sys.argv[1]), int(sys.argv[2])))
