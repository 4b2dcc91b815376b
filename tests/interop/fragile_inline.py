"""Fragile fixture (d): the assignment's encoding (struct.pack("!d", t)),
server first, but its receive loop runs every exchange inline, with a
blocking recv and no timeout: one peer that accepts and never answers stops
the loop for good (no more broadcasts are read, no peer measured again),
while its server and announcements go on.
"""

import struct
import time

import fragile


def serve(conn):
    conn.sendall(struct.pack("!d", time.time()))


def fetch(sock):
    data = b""
    while len(data) < 8:
        chunk = sock.recv(8 - len(data))
        if not chunk:
            break
        data += chunk
    return struct.unpack("!d", data)[0]


if __name__ == "__main__":
    fragile.main(__doc__.splitlines()[0], serve, fetch, inline=True)
