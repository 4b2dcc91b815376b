"""Fault: a hard-coded broadcast destination (a home network's) instead of
the limited broadcast: nobody on the lab link hears it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402



class Node(correct.Node):
    broadcast_destination = "192.168.1.255"


if __name__ == "__main__":
    Node().run()
