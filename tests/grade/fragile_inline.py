"""Fault: (d) a receive loop that runs each exchange inline with a blocking recv and no timeout.

The node itself is tests/interop/fragile_inline.py; here it runs as a graded
submission does: it broadcasts to 255.255.255.255 on the assignment's port and
runs until the lab stops it.
"""
import os
import runpy
import sys

interop = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop")
sys.path.insert(0, interop)
sys.argv = [sys.argv[0], "--destination", "255.255.255.255", "--duration", "86400"]
runpy.run_path(os.path.join(interop, "fragile_inline.py"), run_name="__main__")
