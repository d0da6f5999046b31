"""A student's answer to "fetch every poem at once": one asyncio task per server.

Run it against netsim's servers with `netsim run scenarios/grade_a_client.yaml`, or by
hand: start `netsim serve scenarios/three_ports.yaml`, then
`python3 examples/async_poetry_client.py 10000 10001 10002`.
"""

import asyncio
import sys


async def get_poem(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    poem = b""
    while True:
        data = await reader.read(1024)
        if not data:
            break
        poem += data
    writer.close()
    await writer.wait_closed()
    return poem.decode()


async def main(ports: list[int]) -> None:
    poems = await asyncio.gather(*(get_poem(port) for port in ports))
    for port, poem in zip(ports, poems, strict=True):
        print(f"poem from port {port}:")
        print(poem)


if __name__ == "__main__":
    asyncio.run(main([int(port) for port in sys.argv[1:]]))
