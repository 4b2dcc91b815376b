"""N simulated SDSS peers in one process, for scripts/bench-node-memory.sh.

Each peer is what the assignment's node is on the wire, with an address of its
own in 127.0.1.0/24 (so no per-address limit of the node under test applies):
it announces "<id> ON <port>" from that address to 127.255.255.255 every
interval, its timestamp server answers struct.pack("!d", time.time()) at once
and closes, and as a client it measures every node it hears, at once and then
every --refresh of that node's broadcasts (reading 8 bytes, as the seed does).
One thread, one selector: the peers cost the machine little and never stall.

Loopback only: every address is checked to be in 127.0.0.0/8 before any socket
is opened. Prints one line "served N" each time the number of peers whose
server answered the node under test grows, so the bench can tell the node's
table is full without trusting the node.
"""

import argparse
import ipaddress
import selectors
import socket
import struct
import sys
import time
import uuid

BROADCAST = "127.255.255.255"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class Peer:
    def __init__(self, index, port):
        self.id = uuid.uuid4().hex[:8]
        self.ip = f"127.0.1.{index + 1}"
        assert ipaddress.ip_address(self.ip) in LOOPBACK
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sender.bind((self.ip, 0))
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind((self.ip, 0))
        self.server.listen(64)
        self.server.setblocking(False)
        self.message = f"{self.id} ON {self.server.getsockname()[1]}".encode()
        self.port = port
        self.heard = {}  # node id -> broadcasts since the last exchange
        self.served = False

    def announce(self):
        self.sender.sendto(self.message, (BROADCAST, self.port))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--port", type=int, required=True, help="UDP broadcast port")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--refresh", type=int, default=10)
    a = parser.parse_args()
    if not 0 < a.count <= 250:
        parser.error("--count is 1..250 (one address each in 127.0.1.0/24)")

    peers = [Peer(i, a.port) for i in range(a.count)]
    ours = {p.id for p in peers}
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    receiver.bind(("", a.port))
    receiver.setblocking(False)

    sel = selectors.DefaultSelector()
    sel.register(receiver, selectors.EVENT_READ, ("udp", None))
    for p in peers:
        sel.register(p.server, selectors.EVENT_READ, ("accept", p))
    clients = {}  # socket -> deadline
    served = 0
    # Peers announce spread over the interval, as independent nodes would.
    step = a.interval / len(peers)
    next_send = time.monotonic()
    turn = 0

    def exchange(peer, ip, port):
        # As the seed's client: connect, read the 8-byte time, close (non-blocking here).
        if ipaddress.ip_address(ip) not in LOOPBACK:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((peer.ip, 0))
        s.setblocking(False)
        s.connect_ex((ip, port))
        sel.register(s, selectors.EVENT_READ, ("client", None))
        clients[s] = time.monotonic() + 2.0

    def close(s):
        sel.unregister(s)
        clients.pop(s, None)
        s.close()

    while True:
        now = time.monotonic()
        while now >= next_send:
            peers[turn].announce()
            turn = (turn + 1) % len(peers)
            next_send += step
        for s in [s for s, deadline in clients.items() if deadline < now]:
            close(s)
        for key, _ in sel.select(max(0.0, next_send - time.monotonic())):
            kind, peer = key.data
            if kind == "udp":
                try:
                    data, (ip, _) = receiver.recvfrom(512)
                    node, on, port = data.decode().strip().split(" ")
                    port = int(port)
                except (OSError, ValueError):
                    continue
                if node in ours or on != "ON":
                    continue
                for p in peers:
                    count = p.heard.get(node)
                    if count is None or count + 1 >= a.refresh:
                        p.heard[node] = 0
                        exchange(p, ip, port)
                    else:
                        p.heard[node] = count + 1
            elif kind == "accept":
                try:
                    conn, _ = peer.server.accept()
                except OSError:
                    continue
                try:
                    conn.sendall(struct.pack("!d", time.time()))
                except OSError:
                    pass
                conn.close()
                if not peer.served:
                    peer.served = True
                    served += 1
                    print(f"served {served}", flush=True)
            else:
                s = key.fileobj
                try:
                    data = s.recv(64)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data or len(data) >= 8:
                    close(s)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
