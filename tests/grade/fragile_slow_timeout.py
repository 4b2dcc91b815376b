"""Behind, with a timeout: fragile_late_stuck.py's inline exchange and slow receive loop, but its exchange gives up after 6 s and the loop goes on.

As tests/grade/fragile_late_stuck.py, each peer's announcement costs the
receive loop some work (0.27 s here), so it handles them ever later and
handles the silent peer's first announcement only late in the run (t=19.5 s
or so of 24). Its exchange has a 6 s timeout (`socket.create_connection(...,
timeout=6)`, as students often write `settimeout`): it gives up on the silent
peer after the run's 24 s, says so, and goes on with the next announcement.
It is not stuck: the lab must watch it past the end to tell.
"""
import os
import sys
import time

interop = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop")
sys.path.insert(0, interop)

import fragile  # noqa: E402
import fragile_inline  # noqa: E402

WORK_SECS = 0.27  # what one announcement costs it
REFRESH = 10  # the assignment's: a peer's broadcasts between two exchanges
TIMEOUT = "6"  # seconds an exchange may take before it gives up


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
        # Inline, but bounded: a peer that never answers costs it 6 s.
        try:
            fragile.measure(peer, ip, port, fetch)
        except OSError as e:
            fragile.emit("exchange_failed", peer=peer, error=repr(e))


if __name__ == "__main__":
    fragile.receive_loop = slow_receive_loop
    sys.argv = [sys.argv[0], "--destination", "255.255.255.255", "--duration", "86400",
                "--timeout", TIMEOUT]
    fragile.main(__doc__.splitlines()[0], fragile_inline.serve, fragile_inline.fetch, inline=True)
