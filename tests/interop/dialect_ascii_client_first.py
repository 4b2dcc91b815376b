"""SDSS fixture, dialect "ascii_client_first": decimal text, client speaks first.

Server: on accept, blocks in conn.recv(1024) until the client has sent its
time, parses it strictly with float(data.decode()) and, if that fails
(UnicodeDecodeError/ValueError, e.g. binary data or EOF), closes without
answering; otherwise sends str(time.time()).encode() and closes. A client
that waits to be spoken to therefore hangs until its own timeout.
Client: connects, sends str(time.time()).encode(), reads until EOF, parses
ASCII. Students who read the seed's conversation (A sends its timestamp,
then B answers) literally wrote this: the server recv()s and decodes the
client's text before doing anything else.
"""

import time

import seed_node


def serve(conn):
    data = conn.recv(1024)
    try:
        client_time = float(data.decode())
    except ValueError as e:  # includes UnicodeDecodeError
        seed_node.log(f"client did not send an ASCII time first ({data!r}): {e}")
        return False
    seed_node.log(f"client sent {client_time}")
    conn.sendall(str(time.time()).encode())
    return True


def fetch(sock):
    sock.sendall(str(time.time()).encode())
    return float(seed_node.recv_until_eof(sock).decode())


if __name__ == "__main__":
    seed_node.main(seed_node.Dialect("ascii_client_first", serve, fetch),
                   __doc__.splitlines()[0])
