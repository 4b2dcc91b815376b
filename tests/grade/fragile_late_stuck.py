"""Fault: (d) inline and behind: the exchange runs in the receive loop with a blocking recv and no timeout, and the loop falls behind.

The node is tests/interop/fragile_inline.py's (its exchange, announcements and
server) with a receive loop of its own: each peer's announcement costs it
0.23 s of work, while the default lab's three sdss nodes announce twelve a
second, so it handles them ever later, in the order they came, and measures a
peer when it first handles one of its announcements and every 10 after, as
the assignment asks. So it goes on measuring the sdss nodes, from
announcements seconds old, after the silent peer appeared (t=6 s), and
handles the silent peer's first announcement only late in the run (t=17 s or
so of 24): there it waits for good, connected to nobody since.
"""
import os
import sys
import time

interop = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop")
sys.path.insert(0, interop)

import fragile  # noqa: E402
import fragile_inline  # noqa: E402

WORK_SECS = 0.23  # what one announcement costs it
REFRESH = 10  # the assignment's: a peer's broadcasts between two exchanges


def slow_receive_loop(sock, fetch, inline):
    heard = {}  # peer -> its announcements handled since the last exchange
    while True:
        data, (ip, _) = sock.recvfrom(4096)
        try:
            peer, on, port = data.decode().split(" ")
            port = int(port)
        except ValueError:
            continue
        if on != "ON" or peer == fragile.node_uuid:
            continue
        time.sleep(WORK_SECS)
        if peer not in heard:
            fragile.emit("discovered", peer=peer, ip=ip, port=port)
        elif heard[peer] + 1 < REFRESH:
            heard[peer] += 1
            continue
        heard[peer] = 0
        # Inline: a peer that never answers stops this loop for good.
        fragile.measure(peer, ip, port, fetch)


if __name__ == "__main__":
    fragile.receive_loop = slow_receive_loop
    sys.argv = [sys.argv[0], "--destination", "255.255.255.255", "--duration", "86400"]
    fragile.main(__doc__.splitlines()[0], fragile_inline.serve, fragile_inline.fetch, inline=True)
