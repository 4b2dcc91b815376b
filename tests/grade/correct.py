"""A correct Simple Delay Sync Service node, written from the assignment
(../../../shared/seed/) the way its skeleton lays it out: get_broadcast_port(),
get_node_uuid(), NeighborInfo, daemon_thread_builder() and one *_thread
function per job. Standard library only.

It is the reference the grader must pass on every check. Each fault_*.py
fixture imports it and changes one thing (see the `Node` hooks), so that a
fault fails exactly the checks it should.

Run it only inside a lab (sdss lab grade / sdss lab run), never on the host:
it broadcasts to 255.255.255.255.
"""

import datetime
import socket
import struct
import sys
import threading
import time
import uuid


class NeighborInfo:
    def __init__(self, delay, broadcast_count, ip, tcp_port):
        self.delay = delay
        self.broadcast_count = broadcast_count
        self.ip = ip
        self.tcp_port = tcp_port


def daemon_thread_builder(target, args=()) -> threading.Thread:
    return threading.Thread(target=target, args=args, daemon=True)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Node:
    """One node. Fault fixtures override the attributes and methods marked `hook`."""

    broadcast_destination = "<broadcast>"  # hook: where announcements go
    tcp_port = 0  # hook: the port the TCP server binds
    refresh_every = 10  # hook: broadcasts of a peer between two exchanges
    server_waits_for_client = False  # hook: read the client's time before answering
    busy_wait = False  # hook: spin instead of sleeping between broadcasts

    def __init__(self):
        self.node_uuid = str(uuid.uuid4())[:8]
        self.neighbor_information = {}
        self.in_flight = set()
        self.lock = threading.Lock()
        self.server_port = 0

    # --- the skeleton's helpers -------------------------------------------------

    def get_broadcast_port(self):
        return 35498

    def get_node_uuid(self):
        return self.node_uuid

    def now(self):  # hook: this node's clock
        return datetime.datetime.now(datetime.timezone.utc).timestamp()

    def encode_time(self, t):  # hook: the timestamp on the wire
        return struct.pack("!d", t)

    def decode_time(self, data):
        if len(data) == 8:
            return struct.unpack("!d", data)[0]
        if len(data) == 4:
            return struct.unpack("!f", data)[0]
        raise ValueError(f"{len(data)} bytes are no timestamp")

    def announced_port(self):  # hook: the port put in announcements
        return self.server_port

    def is_own(self, peer):  # hook: whether an announcement is this node's own
        return peer == self.get_node_uuid()

    def exchange_due(self, info, is_new):  # hook: when to connect to a peer
        if is_new:
            return True
        info.broadcast_count += 1
        if info.broadcast_count >= self.refresh_every:
            info.broadcast_count = 0
            return True
        return False

    # --- threads ---------------------------------------------------------------

    def tcp_server_thread(self, server):
        while True:
            conn, (ip, _) = server.accept()
            daemon_thread_builder(self.serve_client, (conn, ip)).start()

    def serve_client(self, conn, ip):
        with conn:
            try:
                conn.settimeout(5)
                if self.server_waits_for_client:
                    conn.recv(64)
                conn.sendall(self.encode_time(self.now()))
            except (socket.timeout, OSError) as e:
                log(f"serving {ip} failed: {e!r}")

    def send_broadcast_thread(self, sock):
        message = f"{self.get_node_uuid()} ON {self.announced_port()}".encode("utf-8")
        next_time = time.monotonic()
        while True:
            try:
                sock.sendto(message, (self.broadcast_destination, self.get_broadcast_port()))
            except OSError as e:
                log(f"broadcast failed: {e!r}")
            next_time += 1.0
            if self.busy_wait:
                while time.monotonic() < next_time:
                    pass
            else:
                time.sleep(max(0.0, next_time - time.monotonic()))

    def receive_broadcast_thread(self, sock):
        while True:
            data, (ip, _) = sock.recvfrom(4096)
            try:
                peer, on, port = data.decode("utf-8").split(" ")
                port = int(port)
                if on != "ON" or len(peer) != 8 or not 0 < port < 65536:
                    raise ValueError(data)
            except ValueError:  # includes UnicodeDecodeError
                continue
            if self.is_own(peer):
                continue
            with self.lock:
                info = self.neighbor_information.get(peer)
                is_new = info is None
                if is_new:
                    info = NeighborInfo(None, 0, ip, port)
                    self.neighbor_information[peer] = info
                info.ip, info.tcp_port = ip, port
                due = self.exchange_due(info, is_new) and peer not in self.in_flight
                if due:
                    self.in_flight.add(peer)
            if due:
                daemon_thread_builder(self.exchange_timestamps_thread, (peer, ip, port)).start()

    def exchange_timestamps_thread(self, peer, ip, port):
        error = None
        try:
            with socket.create_connection((ip, port), timeout=3) as sock:
                if self.server_waits_for_client:
                    sock.sendall(self.encode_time(self.now()))
                data = b""
                while len(data) < 8:
                    chunk = sock.recv(8 - len(data))
                    if not chunk:
                        break
                    data += chunk
            peer_time = self.decode_time(data)
            delay = self.now() - peer_time
        except ConnectionRefusedError:
            error = "connection refused"
        except socket.timeout:
            error = "timed out"
        except OSError as e:
            error = f"network error: {e!r}"
        except (ValueError, struct.error) as e:
            error = f"bad timestamp: {e!r}"
        with self.lock:
            self.in_flight.discard(peer)
            if error is None:
                info = self.neighbor_information.get(peer)
                if info is not None:
                    info.delay = delay
                print(f"{peer} at {ip}: delay {delay * 1000:.3f} ms", flush=True)
            else:
                log(f"exchange with {peer} at {ip}:{port} failed: {error}")
                self.neighbor_information.pop(peer, None)

    # --- start -----------------------------------------------------------------

    def run(self):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("", self.tcp_port))
        server.listen()
        self.server_port = server.getsockname()[1]

        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        receiver.bind(("", self.get_broadcast_port()))

        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

        log(f"node {self.node_uuid}: TCP server on port {self.server_port}")
        threads = [
            daemon_thread_builder(self.tcp_server_thread, (server,)),
            daemon_thread_builder(self.receive_broadcast_thread, (receiver,)),
            daemon_thread_builder(self.send_broadcast_thread, (sender,)),
        ]
        for thread in threads:
            thread.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    Node().run()
