"""A redis-py client with retries through an upgrading Hive, for
tests/tests/operate/lifecycle/upgrade.rs.

SET then GET of its own keys until --stop-file exists and 20 pairs went over its latest
connection (60 s at most), with redis-py's Retry:
a connection the draining proxy closed between replies is dialled again and the command
retried. Prints "ready" after 20 pairs, then one JSON line: ok, errors, wrong reads, connects
(connections made: more than one means it reconnected) and the longest SET/GET pair, in ms.
"""
import argparse
import json
import os
import sys
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--stop-file", required=True)
ap.add_argument("--client", type=int, default=0)
args = ap.parse_args()

connects = 0
since_connect = 0


class Counting(redis.Connection):
    """Counts connections made, so the report shows the client did reconnect."""

    def _connect(self):
        global connects, since_connect
        connects += 1
        since_connect = 0
        return super()._connect()


retry = dict(retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), 5),
             retry_on_error=[ConnectionError, TimeoutError])
pool = redis.ConnectionPool(host="127.0.0.1", port=args.port, socket_timeout=5,
                            connection_class=Counting, **retry)
r = redis.Redis(connection_pool=pool, **retry)
ok = errors = wrong = 0
longest = 0.0
start = time.monotonic()
i = 0
# Told to stop, it still makes 20 pairs on its latest connection, so the report covers the
# new process too.
while (not os.path.exists(args.stop_file) or since_connect < 20) and time.monotonic() - start < 60:
    key = f"py:{args.client}:{i % 100}"
    val = str(i)
    i += 1
    t0 = time.monotonic()
    try:
        r.set(key, val)
        if r.get(key) != val.encode():
            wrong += 1
        ok += 1
        since_connect += 1
        if ok == 20:
            print("ready", flush=True)
    except Exception as e:  # counted: the test wants none
        errors += 1
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    longest = max(longest, time.monotonic() - t0)
print(json.dumps({"ok": ok, "errors": errors, "wrong": wrong, "connects": connects,
                  "longest_ms": round(longest * 1000, 1)}), flush=True)
