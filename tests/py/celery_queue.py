"""Celery with its stock Redis broker settings through Hive: the worker's BRPOP over one list
per priority step (keys on several shards), tasks sent at every priority, results read back,
and a worker restart (warm shutdown, then a new worker) in the middle that loses nothing.

Usage: celery_queue.py --port PORT [--tasks N]. Exits non-zero with the reason on failure.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

TASKS = '''
import time
from celery import Celery

app = Celery("hive_queue", broker="{url}", backend="{url}")
app.conf.broker_connection_retry_on_startup = True
# kombu 5.7 binds expiring queues (the remote-control pidbox, mingle and gossip replies) with
# a Lua script over two keys of different slots, which Hive does not run across shards;
# everything else is stock, including the four priority steps the worker's BRPOP waits on.
app.conf.worker_enable_remote_control = False


@app.task
def add(x, y):
    time.sleep(0.02)
    return x + y
'''


def worker(tmp, name):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=solo",
         "--hostname", f"{name}@hive", "--loglevel=WARNING",
         "--without-mingle", "--without-gossip"],
        cwd=tmp, env={**os.environ, "PYTHONPATH": tmp},
    )


def stop(proc, what):
    proc.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task it runs, then leaves
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit(f"{what} did not stop within 60 s of SIGTERM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tasks", type=int, default=60)
    args = ap.parse_args()
    url = f"redis://127.0.0.1:{args.port}/0"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "tasks.py"), "w") as f:
            f.write(TASKS.format(url=url))
        sys.path.insert(0, tmp)
        import tasks  # noqa: E402

        first = worker(tmp, "first")
        try:
            results = [tasks.add.apply_async((i, i), priority=i % 10) for i in range(args.tasks)]
            deadline = time.time() + 120
            while sum(r.ready() for r in results) < args.tasks // 4:
                if first.poll() is not None:
                    sys.exit(f"the first worker died (exit {first.returncode})")
                if time.time() > deadline:
                    sys.exit("the first worker ran fewer than a quarter of the tasks in 120 s")
                time.sleep(0.05)
        finally:
            stop(first, "the first worker")
        done_by_first = sum(r.ready() for r in results)
        second = worker(tmp, "second")
        try:
            for i, r in enumerate(results):
                got = r.get(timeout=120)
                if got != 2 * i:
                    sys.exit(f"task {i} answered {got!r}, not {2 * i}")
        finally:
            stop(second, "the second worker")
        print(f"ok: {args.tasks} tasks, {done_by_first} before the restart, "
              f"{args.tasks - done_by_first} after")


if __name__ == "__main__":
    main()
