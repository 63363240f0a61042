#!/usr/bin/python3
"""A chaos-runner client adapter for ZooKeeper, through kazoo (docs/client-protocol.md).

    adapter.py [--reads sync|plain]

Registers are znodes /chaos/KEY holding the value; a cas is a read, then a set guarded
by the znode's version. A set is /chaos/KEY's children, one per element. A queue is
/chaos/KEY's sequential children, ELEMENT-NNNNNNNNNN, in the order of the sequence
numbers the leader gives them.

ZooKeeper serves reads from whichever server the session is connected to, which may lag
behind the leader: ZooKeeper documents its reads as sequentially consistent, not
linearizable. `--reads sync` (the default) calls sync() first, which brings that server
up to date with the leader, as ZooKeeper's documentation advises for a read that must
see the latest write. `--reads plain` skips it: a positive control that a correct
harness should catch serving stale reads.
"""
import argparse
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, ConnectionLoss, NodeExistsError,
                              NoNodeError, OperationTimeoutError, SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError

# What leaves a write's outcome unknown: the request may have reached the leader.
UNKNOWN = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, KazooTimeoutError)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reads", choices=["sync", "plain"], default="sync")
    reads = p.parse_args().reads
    hello = json.loads(sys.stdin.readline())
    queue = hello.get("workload") == "queue"
    hosts = [n["addr"] for n in hello["nodes"]]
    # Each client starts at a different server, so every server serves reads.
    k = hello["client"] % len(hosts)
    hosts = hosts[k:] + hosts[:k]
    wait = max(0.2, hello.get("op_timeout_ms", 2000) / 1000 - 0.2)
    zk = KazooClient(hosts=",".join(hosts), randomize_hosts=False, timeout=10)
    zk.start(timeout=20)
    print(json.dumps({"type": "ready"}), flush=True)

    def call(fn, *args, **kw):
        """One request, waiting at most `wait` for its answer."""
        return getattr(zk, fn + "_async")(*args, **kw).get(timeout=wait)

    def read(path):
        if reads == "sync":
            call("sync", path)
        try:
            data, stat = call("get", path)
            return data.decode(), stat
        except NoNodeError:
            return None, None

    for line in sys.stdin:
        op = json.loads(line)
        path = "/chaos/" + op["key"]
        f = op["f"]
        is_read = f in ("read", "read-all")
        try:
            if f == "read":
                answer = {"type": "ok", "value": read(path)[0]}
            elif f == "write":
                value = op["value"].encode()
                try:
                    call("set", path, value)
                except NoNodeError:
                    try:
                        call("create", path, value, makepath=True)
                    except NodeExistsError:
                        call("set", path, value)
                answer = {"type": "ok"}
            elif f == "cas":
                current, stat = read(path)
                if stat is None or current != op["expected"]:
                    answer = {"type": "fail", "reason": "cas-mismatch",
                              "error": f"current {current!r}"}
                else:
                    try:
                        call("set", path, op["new"].encode(), version=stat.version)
                        answer = {"type": "ok"}
                    except (BadVersionError, NoNodeError):
                        answer = {"type": "fail", "reason": "cas-mismatch", "error": "version moved"}
            elif f == "delete":
                try:
                    call("delete", path)
                except NoNodeError:
                    pass
                answer = {"type": "ok"}
            elif f == "add" and queue:
                # Not retried: a create that may have happened is unknown (info), never
                # sent twice (which would enqueue the element twice).
                call("create", f"{path}/{op['value']}-", b"", sequence=True, makepath=True)
                answer = {"type": "ok"}
            elif f == "add":
                try:
                    call("create", f"{path}/{op['value']}", b"", makepath=True)
                except NodeExistsError:
                    pass  # Added before, by this very request retried: the set has it.
                answer = {"type": "ok"}
            elif f == "read-all":
                if reads == "sync":
                    call("sync", path)
                try:
                    children = call("get_children", path)
                except NoNodeError:
                    children = []
                if queue:
                    # ELEMENT-SEQUENCE, in sequence order.
                    named = sorted((int(c.rsplit("-", 1)[1]), c.rsplit("-", 1)[0]) for c in children)
                    answer = {"type": "ok", "value": [e for _, e in named]}
                else:
                    answer = {"type": "ok", "value": sorted(children)}
            else:
                answer = {"type": "fail", "reason": "rejected", "error": f"no {f} here"}
        except UNKNOWN as e:
            answer = {"type": "fail" if is_read else "info", "error": repr(e)}
        answer["id"] = op["id"]
        print(json.dumps(answer), flush=True)
    zk.stop()


if __name__ == "__main__":
    main()
