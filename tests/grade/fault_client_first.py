"""Fault: the server waits for the client's time before sending its own."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402



class Node(correct.Node):
    server_waits_for_client = True


if __name__ == "__main__":
    Node().run()
