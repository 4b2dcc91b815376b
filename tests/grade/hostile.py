#!/usr/bin/env python3
"""A hostile submission: tries to reach past its box, then waits for SIGTERM.

    python3 hostile.py LAB OTHER_FILE PID

LAB is the lab's name, OTHER_FILE a file of another submission it must not
read, PID a process outside the box it must not signal. Each attempt prints
one line on stderr, `hostile: <attempt>: refused (<error>)` or
`hostile: <attempt>: SUCCEEDED`, then `hostile: done`. Run it only boxed
(`sdss lab-box`): unconfined, as root, some attempts would succeed.
"""

import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys

MIB = 1 << 20


def say(attempt, error=None):
    verdict = "SUCCEEDED" if error is None else f"refused ({error})"
    print(f"hostile: {attempt}: {verdict}", file=sys.stderr, flush=True)


def attempt(name, action):
    try:
        action()
    except Exception as error:  # noqa: BLE001 - every refusal is the point
        say(name, error)
    else:
        say(name)


def write(path):
    with open(path, "w") as f:
        f.write("owned\n")


def read(path):
    with open(path) as f:
        f.read()


def join_host_network():
    fd = os.open("/proc/1/ns/net", os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)


def unshare_user_namespace():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: allowed to anyone, unless filtered
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def add_link():
    done = subprocess.run(
        ["ip", "link", "add", "sdsshostile0", "type", "dummy"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode)
    subprocess.run(["ip", "link", "del", "sdsshostile0"], check=False)


def send_out():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"hostile", ("192.0.2.1", 9))


def fork_many(count=10_000):
    gc.freeze()  # so the children's pages stay shared: the task limit, not memory, should stop them
    children = []
    try:
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                signal.pause()
                os._exit(0)
            children.append(pid)
    except OSError as error:
        raise OSError(f"after {len(children)} forks: {error}") from None
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)


def allocate(size=4 << 30):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(size)
            for i in range(0, size, 4096):
                block[i] = 1
        except MemoryError:
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise OSError(f"the child was killed by {signal.Signals(os.WTERMSIG(status)).name}")
    if os.WEXITSTATUS(status) != 0:
        raise OSError("the child got a MemoryError")


def write_big(path, size=2 << 30):
    written = 0
    chunk = b"\0" * MIB
    try:
        with open(path, "wb") as f:
            while written < size:
                written += f.write(chunk)
                f.flush()
    except OSError as error:
        raise OSError(f"{error} after {written // MIB} MiB") from None


def main():
    lab, other_file, outside_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    folder = os.path.dirname(os.path.abspath(__file__))
    attempt("write /etc/owned", lambda: write("/etc/owned"))
    attempt("write /root/owned", lambda: write("/root/owned"))
    attempt(f"read {other_file}", lambda: read(other_file))
    attempt(f"list /run/sdss (lab {lab})", lambda: os.listdir("/run/sdss"))
    attempt("setns into /proc/1/ns/net", join_host_network)
    attempt("unshare a user namespace", unshare_user_namespace)
    attempt("create a network interface", add_link)
    attempt("send UDP to 192.0.2.1:9", send_out)
    attempt(f"kill {outside_pid}", lambda: os.kill(outside_pid, signal.SIGKILL))
    attempt("fork 10000 processes", fork_many)
    attempt("allocate 4 GiB", allocate)
    attempt("write a 2 GiB file", lambda: write_big(os.path.join(folder, "big")))
    print("hostile: done", file=sys.stderr, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
