"""A student's first try: fetch the poems one after another, with blocking sockets.

It works, but it waits for each server in turn; netsim's verdict shows how long that is
against a client that overlaps the waits (see scenarios/grade_a_client.yaml).
"""

import socket
import sys


def get_poem(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        poem = b""
        while True:
            data = sock.recv(1024)
            if not data:
                break
            poem += data
    return poem.decode()


if __name__ == "__main__":
    for port in sys.argv[1:]:
        print(f"poem from port {port}:")
        print(get_poem(int(port)))
