#!/usr/bin/env python3
"""Writes a synthetic, linearizable register history of a long run, to measure reports.

    scripts/synthetic-history.py SECONDS > history.jsonl

Five clients take turns on five registers (reads, writes, compare-and-sets, one write in
about 300 unknown and its process retired), at about 140 operations per second, with a
kill every 1,500 operations: the shape of a default run, for as long as asked. Seeded,
so the same length gives the same file.
"""
import json
import random
import sys

random.seed(7)
end = int(float(sys.argv[1]) * 1e9)
out = sys.stdout
out.write(json.dumps({"type": "header", "schema": "chaos-history", "version": 1}) + "\n")
t, procs, nextp, reg, events, i = 0, list(range(5)), 5, {k: None for k in range(5)}, [], 0
while t < end:
    c, k = i % 5, random.randrange(5)
    p, key, dur = procs[c], f"r{k}", random.randint(1_000_000, 4_000_000)
    f = random.choice(["read", "write", "write", "cas"])
    done = {"process": p, "f": f, "key": key, "time": t + dur, "node": 1 + k % 3}
    if f == "read":
        events.append({"type": "invoke", "process": p, "f": f, "key": key, "value": None, "time": t})
        events.append({**done, "type": "ok", "value": reg[k]})
    elif f == "write":
        v = str(random.randrange(5))
        events.append({"type": "invoke", "process": p, "f": f, "key": key, "value": v, "time": t})
        if random.random() < 0.003:  # Unknown, and (here) never applied.
            events.append({**done, "type": "info", "value": v})
            procs[c], nextp = nextp, nextp + 1
        else:
            reg[k] = v
            events.append({**done, "type": "ok", "value": v})
    else:
        e, n = str(random.randrange(5)), str(random.randrange(5))
        events.append({"type": "invoke", "process": p, "f": f, "key": key, "value": [e, n], "time": t})
        ok = reg[k] == e
        if ok:
            reg[k] = n
        events.append({**done, "type": "ok" if ok else "fail", "value": [e, n]})
    t += dur + random.randint(3_000_000, 6_000_000)
    i += 1
    if i % 1500 == 0:
        node = random.randint(1, 3)
        for edge, at in (("start", t), ("stop", t + 2_000_000_000)):
            events.append({"type": "nemesis", "process": "nemesis", "f": f"{edge}-kill",
                           "value": {"nodes": [node]}, "time": at})
events.sort(key=lambda e: e["time"])
for e in events:
    out.write(json.dumps(e) + "\n")
