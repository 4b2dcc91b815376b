"""SDSS fixture, dialect "binary": 8-byte big-endian double, server speaks first.

Server: on accept, sends struct.pack("!d", time.time()) and closes without
reading. Client: connects, sends its own "!d" time, reads 8 bytes and unpacks
"!d". This is what the assignment asks for ("send the number as is") and
what sdss itself sends; e.g. Mike-Joe/delay-sync-service ("Delay Sync
Service.py") serves "!d" this way.
"""

import struct
import time

import seed_node


def serve(conn):
    conn.sendall(struct.pack("!d", time.time()))
    return True


def fetch(sock):
    sock.sendall(struct.pack("!d", time.time()))
    return struct.unpack("!d", seed_node.recv_exactly(sock, 8))[0]


if __name__ == "__main__":
    seed_node.main(seed_node.Dialect("binary", serve, fetch), __doc__.splitlines()[0])
