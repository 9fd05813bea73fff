"""200 LMOVEs from a 100,000-element list to a key of another slot, through PORT.

Usage: python benches/py/lmove_across.py PORT
"""
import sys, time, redis
r = redis.Redis(port=int(sys.argv[1]))
r.delete("src", "dst")
p = r.pipeline(transaction=False)
for i in range(0, 100000, 1000):
    p.rpush("src", *[f"job-{j:08d}" for j in range(i, i + 1000)])
p.execute()
t = time.time()
for _ in range(200):
    r.lmove("src", "dst", "LEFT", "RIGHT")
el = time.time() - t
print(f"200 LMOVE from a 100,000-element list across slots: {el*1000:.0f} ms ({el/200*1e6:.0f} us each); dst={r.llen('dst')} src={r.llen('src')}")
