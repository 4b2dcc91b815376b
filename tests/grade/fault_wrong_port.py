"""Fault: it announces a port it does not listen on."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402



class Node(correct.Node):
    def announced_port(self):
        return self.server_port + 1


if __name__ == "__main__":
    Node().run()
