"""Fault: a TCP connection to a peer on every broadcast it sends."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402



class Node(correct.Node):
    def exchange_due(self, info, is_new):
        return True


if __name__ == "__main__":
    Node().run()
