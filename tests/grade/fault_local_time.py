"""Fault: local time instead of UTC (the wall clock of a machine at UTC+3
labelled as UTC, the classic datetime.now().replace(tzinfo=utc) mistake)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import correct  # noqa: E402

import datetime  # noqa: E402
import time  # noqa: E402

os.environ["TZ"] = "EAT-3"
time.tzset()


class Node(correct.Node):
    def now(self):
        return datetime.datetime.now().replace(tzinfo=datetime.timezone.utc).timestamp()


if __name__ == "__main__":
    Node().run()
