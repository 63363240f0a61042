#!/usr/bin/env python3
"""A chaos-runner client adapter for raft-node's HTTP API (docs/client-protocol.md).

The runner starts one of these per logical client and writes one JSON object per line:
first the cluster ({"type": "init", "client": K, "nodes": [{"id", "addr"}], ...}), then
one operation at a time. Each answer says ok, fail (certainly did not happen) or info
(may have happened). It needs only Python's standard library.

    chaos-runner test --target command --client-cmd 'python3 examples/adapters/raft-node.py' \
      --node-cmd 'raft-node --id {id} --transport-port {peer_port} --api-port {api_port} \
                  --data-dir {data_dir} --peers {peers}' ...
"""

import http.client
import json
import sys
import time
import urllib.parse


def main():
    hello = json.loads(sys.stdin.readline())
    nodes = {n["id"]: n["addr"] for n in hello["nodes"]}
    ids = sorted(nodes)
    conns = {}
    # Reads go first to this client's own node, as the built-in client sends them (a node
    # that serves reads it should not is only caught if someone reads from it); writes go
    # to the leader as last seen.
    home = ids[hello["client"] % len(ids)]
    leader = home

    def call(node, method, path, body=None):
        """One HTTP exchange with node; (status, JSON body) or raises OSError."""
        conn = conns.get(node)
        if conn is None:
            host, port = nodes[node].rsplit(":", 1)
            conn = conns[node] = http.client.HTTPConnection(host, int(port), timeout=1.5)
        try:
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, data, headers)
            r = conn.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        except (OSError, http.client.HTTPException, ValueError):
            conns.pop(node).close()
            raise

    print(json.dumps({"type": "ready"}), flush=True)
    for line in sys.stdin:
        op = json.loads(line)
        key = urllib.parse.quote(op["key"], safe="")
        f = op["f"]
        method, path, body = {
            "read": ("GET", f"/kv/{key}", None),
            "write": ("POST", f"/kv/{key}", {"value": op.get("value")}),
            "cas": ("POST", f"/kv/{key}/cas", {"expected": op.get("expected"), "value": op.get("new")}),
            "delete": ("DELETE", f"/kv/{key}", None),
            "add": ("POST", f"/kv/{key}/append", {"value": op.get("value")}),
            "append": ("POST", f"/kv/{key}/append", {"value": op.get("value")}),
            "read-all": ("GET", f"/kv/{key}/list", None),
        }[f]
        reads = f in ("read", "read-all")
        answer = {"type": "info", "error": "no node answered in time"}
        deadline = time.monotonic() + 1.8
        node, tried = (home if reads else leader), 0
        while time.monotonic() < deadline and tried < 2 * len(ids):
            tried += 1
            try:
                status, b = call(node, method, path, body)
            except OSError as e:
                # Sent or not is unknown for a write: only a refused connection is sure.
                if isinstance(e, ConnectionRefusedError):
                    node = ids[(ids.index(node) + 1) % len(ids)]
                    answer = {"type": "fail", "reason": "unreachable", "error": str(e)}
                    continue
                answer = {"type": "fail" if reads else "info", "error": str(e)}
                break
            b = b or {}
            if 200 <= status < 300:
                value = b.get("values") if f == "read-all" else b.get("value")
                answer = {"type": "ok", "value": value}
                if not reads:
                    leader = node
            elif status == 404 and f == "read":
                answer = {"type": "ok", "value": None}
            elif status == 409:
                answer = {"type": "fail", "reason": "cas-mismatch", "error": "cas mismatch"}
            elif b.get("error") == "not_leader":
                hint = b.get("leader")
                hint = hint.get("id") if isinstance(hint, dict) else hint
                node = int(hint) if hint in nodes or str(hint).isdigit() and int(hint) in nodes \
                    else ids[(ids.index(node) + 1) % len(ids)]
                answer = {"type": "fail", "error": "no leader"}
                continue
            elif b.get("outcome") == "not_applied":
                answer = {"type": "fail", "error": b.get("error", "")}
            elif 400 <= status < 500:
                answer = {"type": "fail", "reason": "rejected", "error": f"{status}"}
            else:
                answer = {"type": "fail" if reads else "info", "error": f"{status} {b.get('error', '')}"}
            break
        answer["id"] = op["id"]
        answer["node"] = node  # Who served it, for the report (optional in the protocol).
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
