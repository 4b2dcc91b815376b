"""Fragile fixture (c): text, server first. Its server writes
str(time.time()).encode() on accept; its client sends nothing and does
float(sock.recv(1024).decode()) with no error handling: a binary answer
raises (UnicodeDecodeError or ValueError) in that exchange's thread.
"""

import time

import fragile


def serve(conn):
    conn.sendall(str(time.time()).encode())


def fetch(sock):
    return float(sock.recv(1024).decode())


if __name__ == "__main__":
    fragile.main(__doc__.splitlines()[0], serve, fetch)
