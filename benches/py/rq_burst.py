"""RQ's burst: N jobs enqueued, then `rq worker --burst` runs them, through the endpoint on PORT.

Usage (rq from PyPI in the venv): python benches/py/rq_burst.py PORT N
Run it from benches/py (the worker imports rq_jobs from the current directory).
"""
import sys, time, subprocess, os
from redis import Redis
from rq import Queue
port = int(sys.argv[1]); n = int(sys.argv[2])
r = Redis(port=port)
q = Queue(connection=r)
t0 = time.time()
jobs = [q.enqueue("rq_jobs.add", i, i) for i in range(n)]
t1 = time.time()
subprocess.run([sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", f"redis://127.0.0.1:{port}", "-q"], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
t2 = time.time()
ok = sum(1 for j in jobs if j.refresh() or j.get_status() == "finished")
print(f"enqueue {t1-t0:.2f}s, work {t2-t1:.2f}s, finished {ok}/{n}")
