"""A Simple Delay Sync Service node, written the way students wrote it from
the course skeleton (get_broadcast_port, get_node_uuid, NeighborInfo,
daemon_thread_builder and the four *_thread functions).

Everything but the TCP timestamp exchange is common to all implementations
seen in the wild, so it lives here; the exchange itself (byte encoding and
which side speaks first) is a small `Dialect` supplied by each dialect_*.py
program. Those programs are interop fixtures for the sdss test suite: they
print one JSON object per line on stdout (see README.md) and diagnostics on
stderr, and exit by themselves after --duration seconds.

Run them only inside a private network namespace (unshare --net), never on
the host's network.
"""

import argparse
import json
import math
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass
class Dialect:
    """How one implementation exchanges timestamps over TCP."""

    name: str
    serve: Callable[[socket.socket], bool]  # server side; True if it answered
    fetch: Callable[[socket.socket], float]  # client side; returns peer's time


@dataclass
class NeighborInfo:
    delay: Optional[float]  # seconds, None until the first exchange succeeds
    broadcast_count: int  # broadcasts received since the last exchange
    ip: str
    tcp_port: int


neighbor_information: dict[str, NeighborInfo] = {}
exchanges_in_flight: set[str] = set()
table_lock = threading.Lock()
output_lock = threading.Lock()

options: argparse.Namespace
dialect: Dialect
node_uuid: str
server_port: int


def get_broadcast_port() -> int:
    return options.port


def get_node_uuid() -> str:
    return node_uuid


def daemon_thread_builder(target, args=()) -> threading.Thread:
    return threading.Thread(target=target, args=args, daemon=True)


def emit(event: str, **fields) -> None:
    """One JSON object per line on stdout, for the Rust test to parse."""
    line = json.dumps({"event": event, **fields}, separators=(",", ":"), allow_nan=False)
    with output_lock:  # one write per line, so fixtures may share a pipe
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def log(message: str) -> None:
    print(f"[{dialect.name} {node_uuid}] {message}", file=sys.stderr, flush=True)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read `size` bytes, or fewer if the peer closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_until_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1024):
        chunks.append(chunk)
    return b"".join(chunks)


def tcp_server_thread(server: socket.socket) -> None:
    while True:
        conn, (ip, _) = server.accept()
        with conn:
            try:
                if dialect.serve(conn):
                    emit("served", ip=ip)
                else:
                    log(f"did not answer client {ip}")
            except OSError as e:
                log(f"serving {ip} failed: {e!r}")


def send_broadcast_thread(sock: socket.socket) -> None:
    message = f"{get_node_uuid()} ON {server_port}".encode("utf-8")
    while True:
        try:
            sock.sendto(message, (options.destination, get_broadcast_port()))
        except OSError as e:
            log(f"broadcast failed: {e!r}")
        time.sleep(options.interval)


def receive_broadcast_thread(sock: socket.socket) -> None:
    while True:
        data, (ip, _) = sock.recvfrom(4096)
        try:
            peer, on, port = data.decode("utf-8").strip().split(" ")
            port = int(port)
            if on != "ON" or not 0 < port < 65536:
                raise ValueError(data)
        except ValueError:  # includes UnicodeDecodeError
            log(f"ignoring malformed broadcast from {ip}: {data!r}")
            continue
        if peer == get_node_uuid():
            continue

        with table_lock:
            info = neighbor_information.get(peer)
            if info is None:
                neighbor_information[peer] = NeighborInfo(None, 0, ip, port)
                emit("discovered", peer=peer, ip=ip, port=port)
                due = True
            else:
                info.ip, info.tcp_port = ip, port
                info.broadcast_count += 1
                due = info.broadcast_count >= options.refresh
                if due:
                    info.broadcast_count = 0
            due = due and peer not in exchanges_in_flight
            if due:
                exchanges_in_flight.add(peer)
        if due:
            daemon_thread_builder(exchange_timestamps_thread, (peer, ip, port)).start()


def exchange_timestamps_thread(peer: str, ip: str, port: int) -> None:
    error = None
    try:
        with socket.create_connection((ip, port), timeout=options.timeout) as sock:
            peer_time = dialect.fetch(sock)
            arrived = time.time()
        if not math.isfinite(peer_time):
            raise ValueError(f"not a finite timestamp: {peer_time}")
    except ConnectionRefusedError:
        error = "connection refused"
    except socket.timeout:
        error = "timed out"
    except OSError as e:
        error = f"network error: {e!r}"
    except (ValueError, struct.error) as e:  # ValueError includes UnicodeDecodeError
        error = f"bad timestamp: {e!r}"

    with table_lock:
        exchanges_in_flight.discard(peer)
        if error is None:
            delay = arrived - peer_time
            if peer in neighbor_information:
                neighbor_information[peer].delay = delay
            emit("measured", peer=peer, ip=ip, delay_ms=delay * 1000)
        else:
            log(f"exchange with {peer} at {ip}:{port} failed: {error}")
            emit("exchange_failed", peer=peer, error=error)
            if neighbor_information.pop(peer, None) is not None:
                emit("removed", peer=peer)


def node_id(text: str) -> str:
    if len(text) != 8 or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError("an id is 8 printable, non-space characters")
    return text


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text}")
        return value

    return parse


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--destination", required=True,
                        help="broadcast destination IP, e.g. 127.255.255.255")
    parser.add_argument("--port", type=int, default=35498, help="UDP broadcast port")
    parser.add_argument("--interval", type=positive(float), default=1.0,
                        help="seconds between broadcasts")
    parser.add_argument("--refresh", type=positive(int), default=10,
                        help="re-measure a peer every N of its broadcasts")
    parser.add_argument("--duration", type=positive(float), default=30.0,
                        help="exit after this many seconds")
    parser.add_argument("--timeout", type=positive(float), default=5.0,
                        help="client-side TCP timeout in seconds")
    parser.add_argument("--id", type=node_id, help="fixed 8-character node id")
    return parser.parse_args()


def main(node_dialect: Dialect, description: str) -> None:
    global options, dialect, node_uuid, server_port
    dialect = node_dialect
    options = parse_args(description)
    node_uuid = options.id or str(uuid.uuid4())[:8]

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("", 0))
    server.listen()
    server_port = server.getsockname()[1]

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    receiver.bind(("", get_broadcast_port()))

    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

    emit("started", id=node_uuid, port=server_port, dialect=dialect.name)
    log(f"TCP server on port {server_port}, broadcasting to "
        f"{options.destination}:{get_broadcast_port()}")
    for target, arg in ((tcp_server_thread, server),
                        (receive_broadcast_thread, receiver),
                        (send_broadcast_thread, sender)):
        daemon_thread_builder(target, (arg,)).start()

    time.sleep(options.duration)
    emit("stopped", id=node_uuid)
    # Daemon threads die with the interpreter.
