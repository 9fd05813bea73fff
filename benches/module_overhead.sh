#!/usr/bin/env bash
# Throughput of stock redis-server with and without hive-module (each master with one replica,
# so the heartbeat is replicated), and with hive-module while the master hands one slot over
# (its command filter then looks at every command's keys), interleaved A B C A B C, medians of
# ROUNDS rounds. Prints the module's ratios to stock Redis. Judges nothing: exits non-zero only
# when it cannot run.
# Usage: [PIN=1] bash benches/module_overhead.sh [rounds]   (needs redis-server, redis-benchmark)
# PIN=1: the servers on CPU 1 and redis-benchmark on CPU 0 (taskset), for steadier figures.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=${1:-5}
cargo build -q --release -p hive-module
SO=$PWD/target/release/libhive_module.so
TMP=$(mktemp -d)
trap 'for p in 7611 7612 7621 7622 7631 7632; do redis-cli -p $p shutdown nosave >/dev/null 2>&1 || true; done; rm -rf "$TMP"' EXIT
SRV=() CLI=()
if [ "${PIN:-0}" = 1 ]; then SRV=(taskset -c 1) CLI=(taskset -c 0); fi
start() { # port [args...]
  local port=$1; shift
  "${SRV[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --dbfilename "d$port.rdb" --daemonize yes --logfile "$TMP/$port.log" --repl-diskless-sync-delay 0 "$@"
}
start 7611
start 7612 --replicaof 127.0.0.1 7611
start 7621 --loadmodule "$SO"
start 7622 --loadmodule "$SO" --replicaof 127.0.0.1 7621
start 7631 --loadmodule "$SO"
start 7632 --loadmodule "$SO" --replicaof 127.0.0.1 7631
sleep 2
# A slot none of the benchmark's keys (key:000000000000 to key:000000099999) falls in, handed
# over to a node that is not there: the filter now judges every command, and none is refused
# (redis-benchmark stops at an error reply).
FREE=$(python3 - <<'PY'
def crc16(d):
    c = 0
    for b in d:
        c ^= b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
            c &= 0xFFFF
    return c
used = {crc16(b"key:%012d" % i) % 16384 for i in range(100000)}
print(min(set(range(16384)) - used))
PY
)
redis-cli -p 7631 HIVE.SETSLOTS MIGRATING 127.0.0.1:1 "$FREE" >/dev/null
run() { # port pipeline -> "set get"
  "${CLI[@]}" redis-benchmark -p "$1" -t set,get -n 200000 -r 100000 -d 64 -c 50 -P "$2" -q 2>/dev/null \
    | tr '\r' '\n' | grep 'requests per second' | awk '{print $2}' | tr '\n' ' '
}
declare -A R
for P in 1 16; do
  for i in $(seq "$ROUNDS"); do
    for t in stock module open; do
      port=7611; [ $t = module ] && port=7621; [ $t = open ] && port=7631
      read -r s g <<<"$(run $port $P)"
      R[$t-$P-set]+="$s "; R[$t-$P-get]+="$g "
    done
  done
done
printf '%-10s %12s %12s %8s %12s %8s\n' test stock hive-module ratio slot-open ratio
for P in 1 16; do for op in set get; do
  a=$(echo ${R[stock-$P-$op]} | median); b=$(echo ${R[module-$P-$op]} | median)
  c=$(echo ${R[open-$P-$op]} | median)
  printf '%-10s %12.0f %12.0f %8.3f %12.0f %8.3f\n' "${op^^} P$P" "$a" "$b" "$(echo "$b / $a" | bc -l)" \
    "$c" "$(echo "$c / $a" | bc -l)"
done; done
