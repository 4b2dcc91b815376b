"""Fault: the TCP server binds a hard-coded port instead of port 0."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402



class Node(correct.Node):
    tcp_port = 5000


if __name__ == "__main__":
    Node().run()
