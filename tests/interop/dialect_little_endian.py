"""SDSS fixture, dialect "little_endian": 8-byte little-endian double, server first.

Like dialect_binary.py, but the student wrote struct.pack("d", t) without the
"!" byte-order prefix, so on x86 and ARM the bytes go out little-endian. The
"<d" used here is the same bytes, fixed regardless of the host.
Server: on accept, sends pack("<d", time.time()) and closes. Client: sends
its own "<d" time, reads 8 bytes, unpacks "<d".
"""

import struct
import time

import seed_node


def serve(conn):
    conn.sendall(struct.pack("<d", time.time()))
    return True


def fetch(sock):
    sock.sendall(struct.pack("<d", time.time()))
    return struct.unpack("<d", seed_node.recv_exactly(sock, 8))[0]


if __name__ == "__main__":
    seed_node.main(seed_node.Dialect("little_endian", serve, fetch),
                   __doc__.splitlines()[0])
