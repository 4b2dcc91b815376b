"""No solution: a submission that misbehaves every way a class run must
survive. It floods its stdout with megabytes, forks a child that lingers, and
crashes three seconds in, never announcing anything. Graded in a class by
tests/lab_class.rs beside a correct one, which must not notice."""

import os
import sys
import time

line = b"x" * 1023 + b"\n"
for _ in range(20 * 1024):
    try:
        sys.stdout.buffer.write(line)
    except OSError:
        break
sys.stdout.flush()
if os.fork() == 0:
    time.sleep(1000)
    os._exit(0)
time.sleep(3)
raise RuntimeError("unruly crashes, as submissions do")
