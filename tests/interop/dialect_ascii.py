"""SDSS fixture, dialect "ascii": decimal text, server speaks first.

Server: on accept, sends str(time.time()).encode() and closes without
reading. Client: connects, sends nothing, reads until EOF and parses
float(data.decode()). Seen in Abdalla7798/Simple-Delay-Sync-Service,
amrgaber249/Simple-Delay-Sync-Service and hisham-maged10/Simple-Delay-Sync-
Service (str(datetime.utcnow().timestamp()) sent, float(recv().decode())).
"""

import time

import seed_node


def serve(conn):
    conn.sendall(str(time.time()).encode())
    return True


def fetch(sock):
    return float(seed_node.recv_until_eof(sock).decode())


if __name__ == "__main__":
    seed_node.main(seed_node.Dialect("ascii", serve, fetch), __doc__.splitlines()[0])
