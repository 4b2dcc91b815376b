"""Fault: it spins between broadcasts instead of sleeping."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402



class Node(correct.Node):
    busy_wait = True


if __name__ == "__main__":
    Node().run()
