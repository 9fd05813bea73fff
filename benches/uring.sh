#!/usr/bin/env bash
# The io_uring decision of issue 27: GET/SET P1 through the same one-thread relay driven by epoll
# (tokio) and by io_uring (tokio-uring), beside direct Redis and hive (static mode, one master),
# interleaved by benches/ab.sh. The node and the relays are pinned to CPU 1 and redis-benchmark
# to CPU 0, so req/s is requests per second of one CPU, and the CPU columns are the relays' own.
# Judges nothing. Usage: bash benches/uring.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
cargo build -q --release -p hive-cli -p hive-benches --example relay
for p in 7790 7791 7792 7793; do
  # A leftover process on one of these ports would be measured instead of this run's.
  redis-cli -p $p ping >/dev/null 2>&1 && { echo "uring.sh: port $p is already in use" >&2; exit 1; }
done
T=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
taskset -c 1 redis-server --port 7790 --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --logfile "$T/r.log" & PIDS+=($!)
sleep 0.5
taskset -c 1 target/release/examples/relay epoll 127.0.0.1:7791 127.0.0.1:7790 & EP=$!; PIDS+=($EP)
taskset -c 1 target/release/examples/relay uring 127.0.0.1:7792 127.0.0.1:7790 & UR=$!; PIDS+=($UR)
taskset -c 1 target/release/hive proxy --threads 1 --static 127.0.0.1:7790 --listen 127.0.0.1:7793 >"$T/h.log" 2>&1 & HV=$!; PIDS+=($HV)
for p in 7791 7792 7793; do
  for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done
export BENCH_CPU=0
for t in get set; do
  bash benches/ab.sh "$ROUNDS" $t 1 direct:7790 epoll:7791:$EP uring:7792:$UR hive:7793:$HV
done
