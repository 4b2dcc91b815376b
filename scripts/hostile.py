#!/usr/bin/env python3
"""Hostile peers for `sdss node`, and the bookkeeping of scripts/bench-hostile.sh.

Why: a node trusts whatever is broadcast on its LAN and serves whoever connects,
so a flood of fake IDs, servers that never answer or answer garbage, clients that
churn or push megabytes, and a stdout nobody reads must cost it bounded time and
memory and never cost its real neighbors their measurements. Each subcommand
plays one such peer. Every address must be in 127.0.0.0/8 and every attacker is
bounded in count and time, so a slip can never put traffic on a real network.

Attackers:  flood, mute-server, liar-server, churn, bulk, ordinary
Helpers:    wait (for a JSON event), sample (RSS/CPU of a pid), summarize, table
Standard library only (Python 3.11).
"""
import argparse
import datetime
import ipaddress
import json
import os
import random
import resource
import selectors
import socket
import string
import sys
import threading
import time
from collections import deque

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
BROADCAST = "127.255.255.255"  # loopback's broadcast: every node on lo hears it
ALNUM = string.ascii_letters + string.digits


def loopback(addr):
    """argparse type: an IPv4 address in 127.0.0.0/8, or refuse to run at all."""
    try:
        ok = ipaddress.ip_address(addr) in LOOPBACK
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{addr!r} is not in 127.0.0.0/8: loopback only")
    return addr


def loopback_target(text):
    """argparse type: HOST:PORT with HOST on loopback."""
    host, _, port = text.rpartition(":")
    return loopback(host), int(port)


def raise_nofile():
    """Thousands of sockets at once need more descriptors than the usual 1024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fake_id(length):
    """8 chars: hex like a real node, so nothing but its number gives it away.
    Other lengths (7, 9, 300) are alphanumeric: IDs no seed peer would send."""
    if length == 8:
        return os.urandom(4).hex()
    return "".join(random.choices(ALNUM, k=length))


# ---------------------------------------------------------------- attackers

def cmd_flood(a):
    """Announce `count` fake IDs over `seconds`, paced evenly, all pointing at
    target-port on the source address: a table-exhaustion and work-queue attack."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind((a.source, 0))
    start = time.monotonic()
    sent = dropped = 0
    while sent + dropped < a.count and time.monotonic() - start < a.seconds + 5:
        due = min(a.count, int(a.count * (time.monotonic() - start) / a.seconds) + 1)
        while sent + dropped < due:
            try:
                sock.sendto(f"{fake_id(a.id_len)} ON {a.target_port}".encode(), (BROADCAST, a.port))
                sent += 1
            except OSError:  # ENOBUFS/EAGAIN: loopback full, the datagram is lost
                dropped += 1
        time.sleep(0.005)
    print(f"flood: {sent} sent, {dropped} dropped in {time.monotonic() - start:.1f} s", flush=True)


def cmd_mute_server(a):
    """A host whose kernel completes the handshake but whose program never
    accepts: every exchange with it must end by the node's own timeout."""
    srv = socket.socket()
    srv.bind((a.bind, 0))
    srv.listen(4096)
    print(srv.getsockname()[1], flush=True)
    time.sleep(a.seconds)


def cmd_liar_server(a):
    """Accepts everyone, then lies: `random` sends 1 MB of garbage instead of
    8 bytes of time, `trickle` one byte a second. At most `max_open` clients
    are held; past that the listen backlog takes the rest."""
    raise_nofile()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.bind, 0))
    srv.listen(4096)
    srv.setblocking(False)
    print(srv.getsockname()[1], flush=True)
    payload = memoryview(os.urandom(1 << 20))
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    listening, conns, served = True, {}, 0  # conns: socket -> bytes written
    deadline = time.monotonic() + a.seconds
    next_tick = time.monotonic() + 1

    def drop(conn):
        if a.mode == "random":
            sel.unregister(conn)
        conns.pop(conn, None)
        conn.close()

    while (now := time.monotonic()) < deadline:
        for key, _ in sel.select(timeout=0.2):
            if key.fileobj is srv:
                while len(conns) < a.max_open:
                    try:
                        conn, _ = srv.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conns[conn] = 0
                    served += 1
                    if a.mode == "random":
                        sel.register(conn, selectors.EVENT_WRITE)
                continue
            conn = key.fileobj
            try:
                conns[conn] += conn.send(payload[conns[conn]:conns[conn] + 65536])
            except OSError:
                drop(conn)
                continue
            if conns[conn] >= len(payload):
                drop(conn)
        if a.mode == "trickle" and now >= next_tick:
            next_tick += 1
            for conn in list(conns):
                try:
                    conn.send(os.urandom(1))
                except OSError:
                    drop(conn)
        full = len(conns) >= a.max_open
        if full and listening:
            sel.unregister(srv)
        elif not full and not listening:
            sel.register(srv, selectors.EVENT_READ)
        listening = not full
    print(f"liar-server {a.mode}: {served} clients accepted", flush=True)


def cmd_churn(a):
    """Open connections as fast as possible, never read, hold each ~1 s: a
    node that serves clients one by one, or waits on them, starves its peers."""
    raise_nofile()
    held, opened, refused = deque(), 0, 0
    start = time.monotonic()
    deadline = start + a.seconds
    while (opened < a.count or held) and time.monotonic() < deadline:
        now = time.monotonic()
        while held and now - held[0][0] >= a.hold:
            held.popleft()[1].close()
        while opened < a.count and len(held) < a.max_open:
            s = socket.socket()
            s.setblocking(False)
            s.bind((a.source, 0))
            if s.connect_ex(a.target) not in (0, 115):  # 115: EINPROGRESS
                refused += 1
            held.append((now, s))
            opened += 1
        time.sleep(0.005)
    for _, s in held:
        s.close()
    print(f"churn: {opened} connections ({a.max_open} at once, {refused} refused)"
          f" in {time.monotonic() - start:.1f} s", flush=True)


def cmd_bulk(a):
    """Clients that push megabytes at a server that only wants to write 8 bytes:
    its reads must be bounded so that ordinary clients are still served.
    With --seconds, each client starts over until that time is up."""
    payload = os.urandom(a.bytes)
    deadline = time.monotonic() + a.seconds
    done = [0, 0]  # full writes, failed

    def client():
        while True:
            try:
                with socket.create_connection(a.target, timeout=5,
                                              source_address=(a.source, 0)) as s:
                    s.sendall(payload)
                done[0] += 1
            except OSError:
                done[1] += 1
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.seconds + 10)
    print(f"bulk: {done[0]} x {a.bytes} bytes written, {done[1]} cut short", flush=True)


def cmd_ordinary(a):
    """Well-behaved clients spread over --seconds: each must get its 8 bytes
    within 2 s even while bulk or churn clients hammer the same server."""
    ok = [0]
    lock = threading.Lock()

    def client():
        got = b""
        try:
            with socket.create_connection(a.target, timeout=2, source_address=(a.source, 0)) as s:
                end = time.monotonic() + 2
                while len(got) < 8 and (left := end - time.monotonic()) > 0:
                    s.settimeout(left)
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    got += chunk
        except OSError:
            pass
        if len(got) >= 8:
            with lock:
                ok[0] += 1

    threads = []
    for _ in range(a.count):
        threads.append(threading.Thread(target=client, daemon=True))
        threads[-1].start()
        time.sleep(a.seconds / a.count)
    for t in threads:
        t.join(5)
    print(f"ordinary ok={ok[0]} failed={a.count - ok[0]}", flush=True)


# ---------------------------------------------------------------- helpers

def parse_ts(ts):
    """RFC 3339 UTC with nanoseconds (sdss's `ts`) -> epoch seconds."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    base = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    return base.replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0"))


def events(path):
    """JSON lines of a node, tolerating a half-written last line and no file."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    e = json.loads(line)
                    e["t"] = parse_ts(e["ts"])
                    out.append(e)
                except (ValueError, KeyError):
                    pass
    except FileNotFoundError:
        pass
    return out


def cmd_wait(a):
    """Wait for an event in a node's JSON file; print the asked fields. The
    script needs ids and ports the node chose, and must not race its start."""
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        for e in events(a.file):
            if e.get("event") == a.event and (a.id is None or e.get("id") == a.id):
                print(" ".join(str(e.get(k)) for k in a.print.split(",")))
                return 0
        time.sleep(0.1)
    print(f"hostile wait: no {a.event} event{' for ' + a.id if a.id else ''} in {a.file}"
          f" after {a.timeout} s", file=sys.stderr)
    return 1


def cmd_sample(a):
    """Every 0.5 s: epoch time, VmRSS (kB) and utime+stime (ticks) of a pid,
    until it is gone. One sampler for both figures keeps their clocks aligned."""
    with open(a.out, "w") as out:
        while True:
            try:
                with open(f"/proc/{a.pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                with open(f"/proc/{a.pid}/status") as f:
                    rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            except (OSError, StopIteration):
                return
            if fields[0] == "Z":
                return
            out.write(f"{time.time():.3f} {rss} {int(fields[11]) + int(fields[12])}\n")
            out.flush()
            time.sleep(0.5)


def samples(path):
    """The sampler's lines (epoch, rss_kb, ticks); none when A never ran."""
    try:
        with open(path) as f:
            return [tuple(float(x) for x in l.split()) for l in f if len(l.split()) == 3]
    except FileNotFoundError:
        return []


def cmd_summarize(a):
    """Turn one attack's files into figures (JSON rows [figure, target, value]).
    Windows: idle [idle, t0], attack [t0, t1], after [t1, t2], epoch seconds."""
    A, B, S = events(a.a_events), events(a.b_events), samples(a.samples)
    tck = a.clk_tck
    rows = []
    fmt = lambda x, d=1: "n/a" if x is None else f"{x:.{d}f}"

    def lines_rate(t, u):
        return sum(t <= e["t"] < u for e in A) / (u - t) if A and u > t else None

    def ticks_at(t):
        before = [s for s in S if s[0] <= t]
        return (before[-1] if before else S[0]) if S else None

    def cpu(t, u):
        s, v = ticks_at(t), ticks_at(u)
        return None if s is None or v[0] <= s[0] else (v[2] - s[2]) / tck / (v[0] - s[0]) * 100

    if not a.notes_only:
        mine = [e["t"] for e in A if e.get("event") == "neighbor" and e.get("id") == a.b_id]
        if A:
            seq = [max([t for t in mine if t <= a.t0], default=a.t0)]
            seq += [t for t in mine if a.t0 < t <= a.t2] + [a.t2]
            gaps = [v - u for u, v in zip(seq, seq[1:])]
            gap = max(gaps)
            n = sum(a.t0 < t <= a.t2 for t in mine)
            # A gap still open when the watch ends is only a lower bound.
            bound = ">= " if gaps[-1] == gap else ""
            rows.append(["largest gap in A's samples of B", "<= 3 s",
                         f"{bound}{gap:.1f} s ({n} sample{'' if n == 1 else 's'})"])
        else:
            rows.append(["largest gap in A's samples of B", "<= 3 s", "n/a (no output)"])
        removed = sum(e.get("event") == "removed" and e.get("id") == a.a_id
                      and a.t0 <= e["t"] <= a.t2 for e in B)
        rows.append(["B's removals of A", "0", str(removed)])
        after = a.t2 > a.t1
        if A:
            rows.append(["A lines/s idle/attack/after", "back to idle",
                         " / ".join(fmt(x) for x in (lines_rate(a.idle, a.t0), lines_rate(a.t0, a.t1),
                                                    lines_rate(a.t1, a.t2) if after else None))])
        idle_cpu = cpu(a.idle, a.t0)
        rows.append(["A CPU % idle/attack/after", "back to idle",
                     " / ".join(fmt(x, 0) for x in (idle_cpu, cpu(a.t0, a.t1),
                                                   cpu(a.t1, a.t2) if after else None))])
        if after and idle_cpu is not None:
            # Back to normal: the end of the last 0.5 s sample interval after the
            # attack whose output or CPU is still well above the idle level. The
            # summaries of suppressed warnings do not count: they come by design
            # one warning period (10 s) after the first, one line per kind and
            # address, so a short attack's fall in the window after it.
            idle_lines = lines_rate(a.idle, a.t0) or 0
            summaries = [e["t"] for e in A if e.get("event") == "warning" and e.get("suppressed")]
            def output_rate(t, u):
                return lines_rate(t, u) - sum(t <= v < u for v in summaries) / (u - t)
            pts = [s for s in S if a.t1 <= s[0] <= a.t2]
            last_bad = None
            for s, v in zip(pts, pts[1:]):
                c = (v[2] - s[2]) / tck / (v[0] - s[0]) * 100
                busy = c > 2 * idle_cpu + 10
                if A:
                    busy |= output_rate(s[0], v[0]) > 2 * idle_lines + 5
                if busy:
                    last_bad = v[0]
            if last_bad is None:
                settled = "at once"
            elif pts and last_bad >= pts[-1][0]:
                settled = f"> {a.t2 - a.t1:.0f} s (still busy)"
            else:
                settled = f"{last_bad - a.t1:.1f} s"
            rows.append(["output/CPU back to idle after", "<= 0.6 s", settled])
        idle_rss = max((s[1] for s in S if a.idle <= s[0] <= a.t0), default=None)
        max_rss = max((s[1] for s in S if a.t0 <= s[0] <= a.t1), default=None)
        if idle_rss and max_rss:
            rows.append(["A RSS MB idle -> max in attack", "<= 2x idle",
                         f"{idle_rss / 1024:.1f} -> {max_rss / 1024:.1f} ({max_rss / idle_rss:.1f}x)"])
    if a.joiner_events:
        c = next((e for e in events(a.joiner_events) if e.get("event") == "started"), None)
        seen = [e["t"] for e in A if c and e.get("event") == "neighbor" and e.get("id") == c["id"]]
        value = (f"measured after {seen[0] - c['t']:.1f} s" if seen
                 else f"never (watched {a.t2 - a.t1:.0f} s)")
        rows.append(["new node C measured by A", "within ~1 s", value])
    if a.bad_ids:
        by_len = {}
        for e in A:
            if e.get("event") == "discovered" and len(e.get("id", "")) != 8:
                by_len[len(e["id"])] = by_len.get(len(e["id"]), 0) + 1
        rows.append(["discovered bad IDs 7/9/300 chars", "0/0/0",
                     "/".join(str(by_len.get(n, 0)) for n in (7, 9, 300))])
    for note in a.note:
        rows.append((note.split("|", 2) + ["", ""])[:3])
    with open(a.out, "w") as f:
        json.dump(rows, f)


def cmd_table(a):
    """One table for every attack, one column per binary (before/after)."""
    cols = []
    for d in a.dirs:
        col = {}
        for name in a.attacks.split():
            try:
                with open(os.path.join(d, name + ".json")) as f:
                    col[name] = {r[0]: r for r in json.load(f)}
            except (OSError, ValueError):
                col[name] = {}
        cols.append(col)
    table = [["attack", "figure", "target", *a.label]]
    for name in a.attacks.split():
        figures = []
        for col in cols:
            figures += [k for k in col[name] if k not in figures]
        for i, fig in enumerate(figures or ["(no result)"]):
            target = next((c[name][fig][1] for c in cols if fig in c[name]), "")
            table.append([name if i == 0 else "", fig, target,
                          *(c[name][fig][2] if fig in c[name] else "-" for c in cols)])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("flood", help="announce many fake IDs")
    s.add_argument("--port", type=int, required=True, help="broadcast port of the nodes")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--source", type=loopback, default="127.0.0.66")
    s.add_argument("--target-port", type=int, required=True, help="TCP port the fake IDs announce")
    s.add_argument("--id-len", type=int, default=8)
    s.set_defaults(fn=cmd_flood)

    s = sub.add_parser("mute-server", help="listen, never accept")
    s.add_argument("--bind", type=loopback, default="127.0.0.66")
    s.add_argument("--seconds", type=float, required=True)
    s.set_defaults(fn=cmd_mute_server)

    s = sub.add_parser("liar-server", help="accept, then send garbage or trickle")
    s.add_argument("--bind", type=loopback, required=True)
    s.add_argument("--mode", choices=["random", "trickle"], required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--max-open", type=int, default=1000)
    s.set_defaults(fn=cmd_liar_server)

    s = sub.add_parser("churn", help="many connections that never read")
    s.add_argument("--target", type=loopback_target, required=True)
    s.add_argument("--source", type=loopback, default="127.0.0.67")
    s.add_argument("--count", type=int, default=2000)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--hold", type=float, default=1.0)
    s.add_argument("--max-open", type=int, default=1000)
    s.set_defaults(fn=cmd_churn)

    s = sub.add_parser("bulk", help="clients that write megabytes")
    s.add_argument("--target", type=loopback_target, required=True)
    s.add_argument("--source", type=loopback, default="127.0.0.68")
    s.add_argument("--clients", type=int, default=50)
    s.add_argument("--bytes", type=int, default=1_000_000)
    s.add_argument("--seconds", type=float, default=0, help="keep starting over until then")
    s.set_defaults(fn=cmd_bulk)

    s = sub.add_parser("ordinary", help="well-behaved clients; prints ok/failed")
    s.add_argument("--target", type=loopback_target, required=True)
    s.add_argument("--source", type=loopback, default="127.0.0.69")
    s.add_argument("--count", type=int, default=40)
    s.add_argument("--seconds", type=float, default=8, help="spread the clients over this")
    s.set_defaults(fn=cmd_ordinary)

    s = sub.add_parser("wait", help="wait for a node's JSON event, print its fields")
    s.add_argument("--file", required=True)
    s.add_argument("--event", required=True)
    s.add_argument("--id")
    s.add_argument("--print", default="ts")
    s.add_argument("--timeout", type=float, default=10)
    s.set_defaults(fn=cmd_wait)

    s = sub.add_parser("sample", help="RSS and CPU ticks of a pid every 0.5 s")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("summarize", help="figures of one attack, as JSON rows")
    s.add_argument("--out", required=True)
    s.add_argument("--a-events", default="")
    s.add_argument("--b-events", default="")
    s.add_argument("--samples", default="")
    s.add_argument("--a-id", default="")
    s.add_argument("--b-id", default="")
    for t in ("--idle", "--t0", "--t1", "--t2"):
        s.add_argument(t, type=float, default=0)
    s.add_argument("--clk-tck", type=int, default=os.sysconf("SC_CLK_TCK"))
    s.add_argument("--joiner-events")
    s.add_argument("--bad-ids", action="store_true")
    s.add_argument("--notes-only", action="store_true")
    s.add_argument("--note", action="append", default=[], help="FIGURE|TARGET|VALUE")
    s.set_defaults(fn=cmd_summarize)

    s = sub.add_parser("table", help="print the results of every binary side by side")
    s.add_argument("--attacks", required=True)
    s.add_argument("--label", action="append", required=True)
    s.add_argument("dirs", nargs="+")
    s.set_defaults(fn=cmd_table)

    a = p.parse_args()
    try:
        raise SystemExit(a.fn(a) or 0)
    except KeyboardInterrupt:  # Ctrl-C of the bench: stop quietly, it cleans up
        raise SystemExit(130)


if __name__ == "__main__":
    main()
