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

TASKS = '''
from celery import Celery

app = Celery("hive_queue", broker="{url}", backend="{url}")
app.conf.broker_connection_retry_on_startup = True
# kombu 5.7 binds expiring queues (the remote-control pidbox, mingle and gossip replies) with
# a Lua script over two keys of different slots, which Hive does not run across shards;
# everything else is stock, including the four priority steps the worker's BRPOP waits on.
app.conf.worker_enable_remote_control = False


@app.task
def add(x, y):
    # A little work, so the first worker is mid-queue when it is stopped.
    sum(range(200_000))
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
            # A quarter of the tasks done (their results read through Hive), then the restart.
            for r in results[: args.tasks // 4]:
                try:
                    r.get(timeout=120)
                except Exception as e:
                    code = first.poll()
                    sys.exit(f"the first worker did not answer {r.id} ({e!r}; exit {code})")
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
