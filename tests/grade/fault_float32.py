"""Fault: the timestamp is a 4-byte float (struct.pack("!f", t))."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402

import struct  # noqa: E402


class Node(correct.Node):
    def encode_time(self, t):
        return struct.pack("!f", t)


if __name__ == "__main__":
    Node().run()
