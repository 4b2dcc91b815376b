"""Fragile fixture (b): a 4-byte float, server first. Its server writes
struct.pack("!f", time.time()) on accept; its client sends nothing and does
struct.unpack("!f", sock.recv(1024)) with no error handling: an 8-byte answer
raises struct.error in that exchange's thread.
"""

import struct
import time

import fragile


def serve(conn):
    conn.sendall(struct.pack("!f", time.time()))


def fetch(sock):
    return struct.unpack("!f", sock.recv(1024))[0]


if __name__ == "__main__":
    fragile.main(__doc__.splitlines()[0], serve, fetch)
