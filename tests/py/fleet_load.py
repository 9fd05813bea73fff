"""Load through a fleet of Hives with redis-py's RedisCluster, for tests/tests/operate/fleet.

Starts from one Hive (--port); the client learns the fleet from CLUSTER SLOTS and spreads its
keys over it. SET then GET of keys k0..k999 for --seconds; every GET must read what was set.
Prints "ready" once the client is up, then one JSON line: ok, errors (requests that raised),
wrong (a GET that read another value), first and last error times, ok after the first error.
"""
import argparse
import json
import sys
import time

from redis.cluster import RedisCluster

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--seconds", type=float, default=6.0)
args = ap.parse_args()

rc = RedisCluster(host="127.0.0.1", port=args.port, socket_timeout=2, socket_connect_timeout=1)
print("ready", flush=True)
ok = errors = wrong = ok_after = 0
first_error = last_error = None
start = time.monotonic()
i = 0
while time.monotonic() - start < args.seconds:
    key = f"k{i % 1000}"
    val = str(i)
    i += 1
    try:
        rc.set(key, val)
        got = rc.get(key)
        if got != val.encode():
            wrong += 1
        ok += 1
        if first_error is not None:
            ok_after += 1
    except Exception as e:  # counted: the test bounds how many there may be
        now = round(time.monotonic() - start, 3)
        errors += 1
        first_error = first_error if first_error is not None else now
        last_error = now
        print(f"error at {now}s: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
nodes = sorted(f"{n.host}:{n.port}" for n in rc.get_nodes())
print(json.dumps({"ok": ok, "errors": errors, "wrong": wrong, "ok_after_error": ok_after,
                  "first_error": first_error, "last_error": last_error, "nodes": nodes}),
      flush=True)
