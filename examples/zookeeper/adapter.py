#!/usr/bin/python3
"""A chaos-runner client adapter for ZooKeeper, through kazoo (docs/client-protocol.md).

    adapter.py [--reads sync|plain] [--txn-reads checked|unchecked]

Registers are znodes /chaos/KEY holding the value; a cas is a read, then a set guarded
by the znode's version. A set is /chaos/KEY's children, one per element. A queue is
/chaos/KEY's sequential children, ELEMENT-NNNNNNNNNN, in the order of the sequence
numbers the leader gives them.

Transactions (list-append, rw-register) keep each key in /chaos/txn/KEY as JSON, and
run optimistically: read every key the transaction touches, apply it in memory, then
commit one multi() that checks the version of every key read and sets every key
written at the version read. The multi is atomic and goes through the leader, so it
commits only if nothing it read has changed: a transaction of reads only commits a
multi of checks, which makes its reads one state of the leader's. `--txn-reads
unchecked` skips that multi for transactions of reads only (a positive control: their
reads are then whatever the connected server has, perhaps old).

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
from kazoo.exceptions import (BadVersionError, ConnectionLoss, KazooException,
                              NodeExistsError, NoNodeError, OperationTimeoutError,
                              SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError

# What leaves a write's outcome unknown: the request may have reached the leader.
UNKNOWN = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, KazooTimeoutError)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reads", choices=["sync", "plain"], default="sync")
    p.add_argument("--txn-reads", choices=["checked", "unchecked"], default="checked")
    a = p.parse_args()
    reads, checked = a.reads, a.txn_reads == "checked"
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

    def txn(ops, lists):
        """One transaction: (type, micro-operations answered or an error)."""
        versions, now = {}, {}
        for k in sorted({m[1] for m in ops}):
            path = f"/chaos/txn/{k}"
            data, stat = read(path)
            if stat is None:
                # An empty znode holds what an absent key does; the multi can then
                # check that it is still empty.
                try:
                    call("create", path, b"null", makepath=True)
                except NodeExistsError:
                    pass
                data, stat = read(path)
                if stat is None:
                    # A lagging server (plain reads) may not show it yet. Nothing was
                    # applied: creating an empty key changes no value.
                    return "fail", f"key {k} is not visible on this server yet"
            versions[k] = stat.version
            now[k] = json.loads(data)
        done, written = [], set()
        for f, k, v in ops:
            if f == "r":
                done.append([f, k, (now[k] or []) if lists else now[k]])
            else:
                now[k] = (now[k] or []) + [v] if f == "append" else v
                written.add(k)
                done.append([f, k, v])
        if not written and not checked:
            return "ok", done
        t = zk.transaction()
        for k, version in versions.items():
            path = f"/chaos/txn/{k}"
            if k in written:
                t.set_data(path, json.dumps(now[k]).encode(), version=version)
            else:
                t.check(path, version)
        results = t.commit_async().get(timeout=wait)
        moved = [r for r in results if isinstance(r, KazooException)]
        if moved:
            # A multi is all or nothing: none of it happened.
            return "fail", f"a key moved since it was read: {moved[0]!r}"
        return "ok", done

    for line in sys.stdin:
        op = json.loads(line)
        path = "/chaos/" + op["key"]
        f = op["f"]
        is_read = f in ("read", "read-all") or (
            f == "txn" and all(m[0] == "r" for m in op["value"]))
        try:
            if f == "txn":
                kind, value = txn(op["value"], op["key"] == "list-append")
                answer = ({"type": "ok", "value": value} if kind == "ok"
                          else {"type": "fail", "reason": "conflict", "error": value})
            elif f == "read":
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
