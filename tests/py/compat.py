"""redis-py (from PyPI) pointed at a Hive proxy: the usage of a normal application, in
redis.Redis and redis.RedisCluster modes, over RESP2 and RESP3. Exits non-zero on the first
failed check. Run by tests/tests/proxy/clients.rs."""

import argparse
import subprocess
import sys
import threading
import time

import redis
from redis.cluster import RedisCluster

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--mode", required=True)
ap.add_argument("--reshard", default="", help="cluster node to run redis-cli --cluster reshard from")
ap.add_argument("--from-id", default="")
ap.add_argument("--to-id", default="")
ap.add_argument("--keys", type=int, default=50000)
a = ap.parse_args()


def check(cond, what):
    if not cond:
        print(f"FAIL {a.mode}: {what}", flush=True)
        sys.exit(1)


def client(kind, proto):
    if kind == "cluster":
        return RedisCluster(host="127.0.0.1", port=a.port, protocol=proto, decode_responses=True)
    return redis.Redis(port=a.port, protocol=proto, decode_responses=True, socket_timeout=20)


def suite(kind, proto):
    r = client(kind, proto)
    tag = f"{kind}{proto}"
    r.delete(f"{{{tag}}}list", f"{{{tag}}}w2")
    if kind == "plain":
        hello = r.execute_command("HELLO", proto)
        if isinstance(hello, list):
            hello = dict(zip(hello[::2], hello[1::2]))
        check(hello.get("proto") == proto, f"HELLO {proto} answered {hello}")
    # Pipelines.
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set(f"{{{tag}}}p{i}", i)
    check(all(p.execute()), "pipeline SETs")
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.get(f"{{{tag}}}p{i}")
    check(p.execute() == [str(i) for i in range(500)], "pipeline GETs in order")
    # Transactions with WATCH: a concurrent change aborts, a retry succeeds.
    other = client(kind, proto)
    key = f"{{{tag}}}w"
    r.set(key, 1)
    with r.pipeline(transaction=True) as t:
        t.watch(key)
        v = int(t.get(key))
        other.set(key, 100)
        t.multi()
        t.set(key, v + 1)
        try:
            t.execute()
            check(False, "a WATCHed key changed but EXEC ran")
        except redis.WatchError:
            pass
    with r.pipeline(transaction=True) as t:
        t.watch(key)
        v = int(t.get(key))
        t.multi()
        t.set(key, v + 1)
        t.incr(f"{{{tag}}}w2")
        check(t.execute()[0] in (True, "OK"), "EXEC after WATCH")
    check(r.get(key) == "101", "the transaction applied")
    # Pub/sub with a listener thread: every message exactly once.
    got = []
    ps = r.pubsub()
    ps.subscribe(**{f"ch-{tag}": lambda m: got.append(m["data"])})
    worker = ps.run_in_thread(sleep_time=0.01, daemon=True)
    time.sleep(0.3)
    for i in range(100):
        other.publish(f"ch-{tag}", str(i))
    deadline = time.time() + 10
    while len(got) < 100 and time.time() < deadline:
        time.sleep(0.05)
    worker.stop()
    worker.join(timeout=5)
    ps.close()
    check(got == [str(i) for i in range(100)], f"pub/sub got {len(got)} of 100 in order: {got[:5]}")
    # Blocking: a timeout, then a value pushed from another client while blocked.
    lst = f"{{{tag}}}list"
    t0 = time.time()
    check(r.blpop([lst], timeout=1) is None, "BLPOP timed out empty")
    check(0.8 < time.time() - t0 < 5, "BLPOP honoured its timeout")
    threading.Timer(0.3, lambda: other.rpush(lst, "x")).start()
    res = r.blpop([lst], timeout=5)
    check(res is not None and res[1] == "x", f"BLPOP woke with the pushed value: {res}")
    # Scripts.
    r.delete(f"{{{tag}}}e")
    check(r.eval("return redis.call('incr', KEYS[1])", 1, f"{{{tag}}}e") == 1, "EVAL")
    sha = r.script_load("return ARGV[1]")
    check(r.evalsha(sha, 0, "hi") == "hi", "EVALSHA")
    print(f"OK {a.mode} {kind} RESP{proto}", flush=True)


def scan_exactly_once(reshard):
    r = client("plain", 2)
    r.flushall()
    p = r.pipeline(transaction=False)
    for i in range(a.keys):
        p.set(f"scan:{i}", i)
        if i % 5000 == 4999:
            p.execute()
    p.execute()
    check(r.dbsize() == a.keys, f"DBSIZE {r.dbsize()}")
    seen = {}
    for n, k in enumerate(r.scan_iter(count=200)):
        seen[k] = seen.get(k, 0) + 1
        if reshard and n == a.keys // 2:
            out = subprocess.run(
                ["redis-cli", "--cluster", "reshard", a.reshard, "--cluster-from", a.from_id,
                 "--cluster-to", a.to_id, "--cluster-slots", "1500", "--cluster-yes",
                 "--cluster-pipeline", "50"],
                capture_output=True, text=True, timeout=300)
            check(out.returncode == 0, f"reshard failed: {out.stderr[-500:]}")
    dups = [k for k, c in seen.items() if c > 1]
    check(not dups, f"{len(dups)} keys returned twice, e.g. {dups[:3]}")
    check(len(seen) == a.keys, f"scan returned {len(seen)} of {a.keys} keys")
    print(f"OK {a.mode} scan_iter {a.keys} keys exactly once{' across a reshard' if reshard else ''}", flush=True)


for kind in ("plain", "cluster"):
    for proto in (2, 3):
        suite(kind, proto)
scan_exactly_once(False)
if a.reshard:
    scan_exactly_once(True)
print("ALL OK", flush=True)
