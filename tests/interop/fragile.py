"""A fragile SDSS node, as several public implementations of the assignment are
written: the exchange decodes whatever arrives with no error handling, so one
unexpected answer or greeting raises in the thread that got it, and that
thread is gone (for a server or receive loop, for the rest of the run).

Each fragile_*.py supplies the exchange (`serve`, `fetch`) and how the node
runs it; this module holds the rest: announcements, the neighbor table, JSON
lines on stdout (as seed_node.py's, see README.md), and the count of its own
tracebacks. Every thread that dies prints its traceback on stderr, as Python
does, and the line {"event":"traceback","thread":NAME,"error":REPR} on
stdout; "stopped" carries "tracebacks": N.

Run it only inside a private network namespace or a lab, never on the host.
"""

import argparse
import json
import socket
import sys
import threading
import time
import uuid

options = None
node_uuid = ""
server_port = 0
neighbors = {}  # id -> [ip, port, broadcasts since the last exchange]
in_flight = set()
lock = threading.Lock()
output_lock = threading.Lock()
tracebacks = 0


def emit(event, **fields):
    line = json.dumps({"event": event, **fields}, separators=(",", ":"))
    with output_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def count_traceback(args):
    """threading.excepthook: print the traceback as Python does, and count it."""
    global tracebacks
    with output_lock:
        tracebacks += 1
    sys.__excepthook__(args.exc_type, args.exc_value, args.exc_traceback)
    sys.stderr.flush()
    emit("traceback", thread=args.thread.name if args.thread else "?",
         error=repr(args.exc_value))


def thread(target, *args, name=None):
    threading.Thread(target=target, args=args, daemon=True, name=name).start()


def serve_forever(server, serve):
    """The only server thread: one client at a time, inline, no error handling."""
    while True:
        conn, (ip, _) = server.accept()
        serve(conn)
        conn.close()
        emit("served", ip=ip)


def measure(peer, ip, port, fetch):
    """One exchange: `fetch` returns the peer's time; no error handling but
    for the connection itself (a refused peer is forgotten, as in the seed)."""
    try:
        sock = socket.create_connection((ip, port), timeout=options.timeout)
    except OSError as e:
        with lock:
            in_flight.discard(peer)
            neighbors.pop(peer, None)
        emit("exchange_failed", peer=peer, error=repr(e))
        return
    with sock:
        peer_time = fetch(sock)
        arrived = time.time()
    with lock:
        in_flight.discard(peer)
    emit("measured", peer=peer, ip=ip, delay_ms=(arrived - peer_time) * 1000)


def receive_loop(sock, fetch, inline):
    while True:
        data, (ip, _) = sock.recvfrom(4096)
        try:
            peer, on, port = data.decode().split(" ")
            port = int(port)
        except ValueError:
            continue
        if on != "ON" or peer == node_uuid:
            continue
        with lock:
            entry = neighbors.get(peer)
            if entry is None:
                neighbors[peer] = entry = [ip, port, 0]
                emit("discovered", peer=peer, ip=ip, port=port)
                due = True
            else:
                entry[2] += 1
                due = entry[2] >= options.refresh
            due = due and peer not in in_flight
            if due:
                entry[2] = 0
                in_flight.add(peer)
        if not due:
            continue
        if inline:
            measure(peer, ip, port, fetch)
        else:
            thread(measure, peer, ip, port, fetch, name=f"exchange-{peer}")


def announce_loop(sock):
    message = f"{node_uuid} ON {server_port}".encode()
    while True:
        sock.sendto(message, (options.destination, options.port))
        time.sleep(options.interval)


def main(description, serve, fetch, inline=False):
    """Runs the node. `inline`: the receive loop runs each exchange itself."""
    global options, node_uuid, server_port
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--destination", required=True)
    parser.add_argument("--port", type=int, default=35498)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--refresh", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=None,
                        help="client-side TCP timeout in seconds (default: none)")
    parser.add_argument("--id")
    options = parser.parse_args()
    node_uuid = options.id or str(uuid.uuid4())[:8]
    threading.excepthook = count_traceback

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("", 0))
    server.listen()
    server_port = server.getsockname()[1]
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    receiver.bind(("", options.port))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

    emit("started", id=node_uuid, port=server_port)
    thread(serve_forever, server, serve, name="server")
    thread(receive_loop, receiver, fetch, inline, name="receiver")
    thread(announce_loop, sender, name="announcer")
    time.sleep(options.duration)
    emit("stopped", id=node_uuid, tracebacks=tracebacks)
