"""Fragile fixture (a): text, client first. Its only server thread does
float(conn.recv(4096).decode()) before answering, with no error handling: a
binary greeting (UnicodeDecodeError) or a client that closes without a word
(float("") raises ValueError) kills it, and nobody can measure the node again.
Its client writes str(time.time()) first, then float()s the answer's text.
"""

import time

import fragile


def serve(conn):
    client_time = float(conn.recv(4096).decode())
    conn.sendall(str(time.time()).encode())
    return client_time


def fetch(sock):
    sock.sendall(str(time.time()).encode())
    data = b""
    while chunk := sock.recv(1024):
        data += chunk
    return float(data.decode())


if __name__ == "__main__":
    fragile.main(__doc__.splitlines()[0], serve, fetch)
