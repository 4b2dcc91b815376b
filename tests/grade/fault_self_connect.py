"""Fault: it does not skip its own announcements, so it connects to its own
timestamp server. Its server lets the client close first, so no socket of the
server's side lingers in TIME_WAIT: each such connection is gone from
/proc/net/tcp within a millisecond, well between two readings of /proc."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402


class Node(correct.Node):
    def is_own(self, peer):
        return False

    def serve_client(self, conn, ip):
        with conn:
            try:
                conn.settimeout(5)
                conn.sendall(self.encode_time(self.now()))
                while conn.recv(64):  # the client closes first
                    pass
            except (socket.timeout, OSError) as e:
                correct.log(f"serving {ip} failed: {e!r}")


if __name__ == "__main__":
    Node().run()
