#!/usr/bin/env python3
"""Stalled-body probe of a running raft-node cluster (issue 24, item 2).

Opens N connections to each port of the leader that declare a body and stall, keeps
writing through one kept-alive client connection meanwhile, and reports: how many of
those writes succeeded, when the stalled connections were cut, and the leader's peak
RSS (VmHWM). Start a cluster first, e.g.

    RAFT_CLUSTER_DIR=$(mktemp -d) ./run_cluster.sh start
    python3 scripts/stall-probe.py --shape issue      # the issue's shapes
    python3 scripts/stall-probe.py --shape small      # 64 KiB - 1 of 64 KiB, both ports

Only talks to 127.0.0.1 ports 8001-8003 / 9001-9003 (run_cluster.sh's).
"""
import argparse
import json
import socket
import time
import urllib.request


def status(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/client/status", timeout=2) as r:
        return json.load(r)


def leader():
    for i in (1, 2, 3):
        try:
            s = status(9000 + i)
            if s["role"] == "leader":
                return i, s
        except OSError:
            pass
    raise SystemExit("no leader")


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["issue", "small"], default="issue")
    ap.add_argument("--conns", type=int, default=600)
    ap.add_argument("--pid-dir", required=True, help="run_cluster.sh's data folder (pid files)")
    a = ap.parse_args()
    lid, _ = leader()
    pid = int(open(f"{a.pid_dir}/n{lid}.pid").read())
    api, transport = 9000 + lid, 8000 + lid
    member = lid % 3 + 1
    client = socket.create_connection(("127.0.0.1", api))
    client.settimeout(10)

    def write(v, retry=True):
        """One write on the kept connection; reconnects once if the node closed it."""
        nonlocal client
        body = json.dumps({"value": str(v)}).encode()
        try:
            client.sendall(b"POST /kv/probe HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                           % (len(body), body))
            got = client.recv(4096)
        except OSError:
            got = b""
        if not got and retry:
            client.close()
            try:
                client = socket.create_connection(("127.0.0.1", api), timeout=10)
            except OSError:
                return False
            return write(v, retry=False)
        return got.startswith(b"HTTP/1.1 200")

    assert write(0)
    rss0 = rss_mib(pid)
    t0 = time.monotonic()
    stalls = []
    if a.shape == "issue":
        api_head, api_body = b"POST /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"x"
        peer_len = 9568000
    else:
        api_head = b"POST /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n"
        api_body = b"x" * 65535
        peer_len = 65536
    for _ in range(a.conns):
        s = socket.create_connection(("127.0.0.1", api))
        s.settimeout(0.5)
        try:
            s.sendall(api_head + api_body)
        except OSError:
            pass
        stalls.append(s)
    chunk = b"U" * (1 << 20)
    for _ in range(a.conns):
        s = socket.create_connection(("127.0.0.1", transport))
        s.settimeout(0.5)
        head = (f"POST /raft HTTP/1.1\r\nHost: x\r\nx-raft-from: {member}\r\n"
                f"x-raft-cluster: raft-node\r\nContent-Length: {peer_len}\r\n\r\n").encode()
        try:
            s.sendall(head)
            left = peer_len - 1
            while left:
                n = min(left, len(chunk))
                s.sendall(chunk[:n])
                left -= n
        except OSError:
            pass
        stalls.append(s)
    flooded = time.monotonic() - t0
    ok = sum(write(v) for v in range(1, 21))
    cut = []
    for s in stalls:
        s.settimeout(max(0.001, 60 - (time.monotonic() - t0)))
        try:
            while s.recv(65536):
                pass
        except socket.timeout:
            cut.append(None)
            continue
        except OSError:
            pass
        cut.append(time.monotonic() - t0)
    done = sorted(c for c in cut if c is not None)
    print(json.dumps({
        "shape": a.shape,
        "conns_per_port": a.conns,
        "flood_s": round(flooded, 2),
        "writes_ok_during": f"{ok}/20",
        "cut": len(done),
        "never_cut_60s": cut.count(None),
        "cut_median_s": round(done[len(done) // 2], 2) if done else None,
        "cut_last_s": round(done[-1], 2) if done else None,
        "rss_before_mib": round(rss0, 1),
        "peak_rss_mib": round(peak_rss_mib(pid), 1),
        "rss_after_mib": round(rss_mib(pid), 1),
    }))
    for s in stalls:
        s.close()
    assert write(99), "no client could write after the probe"


if __name__ == "__main__":
    main()
