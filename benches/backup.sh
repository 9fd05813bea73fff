#!/usr/bin/env bash
# Backup and restore throughput for about 1 GB of data (1,000,000 keys of 1,000 random bytes,
# so neither RDB's LZF nor zstd can shrink it much), and the write pause of --consistent.
# Static mode, 3 masters with hive-module (source) and 3 bare masters (target), release build.
#   bash benches/backup.sh [keys]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
cargo build --release -q -p hive-cli -p hive-module
HIVE=target/release/hive
SO=$PWD/target/release/libhive_module.so
PY=target/pyvenv/bin/python
[ -x "$PY" ] || { python3 -m venv target/pyvenv; target/pyvenv/bin/pip install --quiet 'redis>=5'; }
T=$(mktemp -d /tmp/hive-bench-backup.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
for p in 7760 7761 7762 7770 7771 7772; do
  mod=(); [ "$p" -lt 7770 ] && mod=(--loadmodule "$SO")
  redis-server --port $p --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --dbfilename d$p.rdb \
    --logfile "$T/r$p.log" "${mod[@]}" & PIDS+=($!)
done
sleep 1
SRC=127.0.0.1:7760,127.0.0.1:7761,127.0.0.1:7762
DST=127.0.0.1:7770,127.0.0.1:7771,127.0.0.1:7772
echo "filling $KEYS keys of 1000 random bytes ..."

"$PY" - "$KEYS" <<'PY'
import os, sys, redis
n = int(sys.argv[1])
nodes = [redis.Redis(port=p) for p in (7760, 7761, 7762)]
for start in range(0, n, 1000):
    pipes = [r.pipeline(transaction=False) for r in nodes]
    for i in range(start, min(n, start + 1000)):
        pipes[i % 3].set(f"key:{i}", os.urandom(1000))
    for p in pipes:
        p.execute()
print("used_memory:", sum(r.info("memory")["used_memory"] for r in nodes) // 2**20, "MiB")
PY
# Runs a command, printing its wall time in seconds.
# `run OUT cmd...`: runs cmd with its stdout in OUT, printing its wall time in seconds.
run() { local out=$1 t0; shift; t0=$(date +%s.%N); "$@" >"$out" 2>/dev/null || true; echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.2f'; }
# The baseline: redis-cli --rdb from the three masters at once (what a script does by hand).
t0=$(date +%s.%N)
cli=()
for p in 7760 7761 7762; do redis-cli -p $p --rdb "$T/base-$p.rdb" >/dev/null 2>&1 & cli+=($!); done
wait "${cli[@]}"
base=$(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.2f')
bbytes=$(cat "$T"/base-*.rdb | wc -c)
rm -f "$T"/base-*.rdb
echo "baseline redis-cli --rdb x3: $((bbytes / 1000000)) MB in $base s: $(echo "$bbytes / $base / 1000000" | bc -l | xargs printf '%.0f') MB/s"
for method in network module; do
  rm -rf "$T/bk"
  s=$(run "$T/m.json" $HIVE backup --static $SRC --dest "$T/bk" --method $method --consistent --json)
  read -r bytes keys pause < <("$PY" -c "import json; m=json.load(open('$T/m.json')); print(sum(s['rdb_size'] for s in m['shards']), sum(s['dbsize'] for s in m['shards']), m['pause_ms'])")
  echo "backup --method $method --consistent: $keys keys, $((bytes / 1000000)) MB in $s s: $(echo "$bytes / $s / 1000000" | bc -l | xargs printf '%.0f') MB/s, $(echo "$keys / $s" | bc -l | xargs printf '%.0f') keys/s, $(echo "$base / $s" | bc -l | xargs printf '%.2f')x the baseline's speed; writes paused $pause ms"
done
rm -rf "$T/bk"
s=$(run "$T/m.json" $HIVE backup --static $SRC --dest "$T/bk" --compress --json)
read -r raw stored < <("$PY" -c "import json; m=json.load(open('$T/m.json')); print(sum(s['rdb_size'] for s in m['shards']), sum(s['size'] for s in m['shards']))")
echo "backup --compress: $((raw / 1000000)) MB -> $((stored / 1000000)) MB in $s s: $(echo "$raw / $s / 1000000" | bc -l | xargs printf '%.0f') MB/s"
ID=$("$PY" -c "import json; print(json.load(open('$T/m.json'))['id'])")
for verify in none full; do
  for p in 7770 7771 7772; do redis-cli -p $p flushall >/dev/null; done
  s=$(run "$T/r.json" $HIVE restore "$ID" --from "$T/bk" --static $DST --verify $verify --json)
  "$PY" -c "import json; r=json.load(open('$T/r.json')); print(f\"restore --verify $verify: {r['keys']} keys, {r['bytes']/1e6:.0f} MB in $s s: {r['keys']/$s:.0f} keys/s, {r['bytes']/1e6/$s:.1f} MB/s; ok={r['ok']}\")"
done
