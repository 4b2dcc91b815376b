"""SDSS fixture, dialect "float32": 4-byte big-endian float, server speaks first.

Server: on accept, sends struct.pack("!f", time.time()) and closes. Client:
sends its own "!f" time, reads 4 bytes, unpacks "!f". At today's epoch a
float32 has a resolution of 128 s, so the "delays" it measures are off by up
to about a minute. Seen in ziadsherif3/Simple-Delay-Sync-Service and
MarkAMoussa/Simple-Delay-Sync-Service-P2P (server sends pack("!f", ...),
client unpacks "!f").
"""

import struct
import time

import seed_node


def serve(conn):
    conn.sendall(struct.pack("!f", time.time()))
    return True


def fetch(sock):
    sock.sendall(struct.pack("!f", time.time()))
    return struct.unpack("!f", seed_node.recv_exactly(sock, 4))[0]


if __name__ == "__main__":
    seed_node.main(seed_node.Dialect("float32", serve, fetch), __doc__.splitlines()[0])
