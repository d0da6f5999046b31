"""Fetch the poems one after another, and ride out an outage: a refused connect is tried
again 300 ms later, for up to 30 s, before the client gives up.

Run it against netsim's servers with `netsim run scenarios/outage.yaml`, or by hand: start
`netsim serve scenarios/outage.yaml`, then, within two seconds of its `ready` line,
`python3 examples/retrying_poetry_client.py 10100 10100 10100`.
"""

import os
import socket
import sys
import time

# netsim runs the program at the scenario's time scale: its own waits follow it.
SCALE = float(os.environ.get("NETSIM_TIME_SCALE", "1"))
RETRY = 0.3 * SCALE  # seconds
GIVE_UP = 30.0 * SCALE  # seconds


def connect(port: int) -> socket.socket:
    deadline = time.monotonic() + GIVE_UP
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP)
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(RETRY)  # the server is down: it may come back


def get_poem(port: int) -> str:
    with connect(port) as sock:
        poem = b""
        while data := sock.recv(1024):
            poem += data
    return poem.decode()


if __name__ == "__main__":
    for port in sys.argv[1:]:
        print(f"poem from port {port}:")
        print(get_poem(int(port)))
