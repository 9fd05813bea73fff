#!/usr/bin/env bash
# A/B of the near cache in two builds of hive: both with [cache] on (admit = "all"), in front of
# the same redis-server, under benches/near_cache.sh's skewed load (zipf_load: s = 0.99 over
# 1,000,000 keys of 64 B, 95% GET, 50 clients), interleaved with direct Redis and the ceiling
# (benches/examples/ceiling.rs), P1 and P16, servers on CPU1 and the load on CPU0. Each cache
# is warmed for 15 s at P16 first; its hit ratio is read per run (CONFIG RESETSTAT before it;
# a build older than that counter's reset reports its ratio since start instead).
# Extra arguments go to zipf_load (e.g. --reads 1.0).
# Usage: bash benches/near_cache_ab.sh OLD_HIVE NEW_HIVE [rounds] [zipf_load args...] [--json]
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,9p "$0"; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2")
shift 2
ROUNDS=3
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then ROUNDS=$1; shift; fi
JSON=0 EXTRA=()
for a in "$@"; do if [ "$a" = --json ]; then JSON=1; else EXTRA+=("$a"); fi; done
SECONDS_EACH=${SECONDS_EACH:-5}
cd "$(dirname "$0")/.."
. benches/lib.sh
cargo build -q --release -p hive-benches --example zipf_load --example ceiling
LOAD=(taskset -c 0 "$PWD/target/release/examples/zipf_load")
scratch
log() { [ $JSON = 1 ] || echo "$@" >&2; }

# Ports: redis 7880, the ceiling 7881, the old build 7882, the new 7883.
taskset -c 1 redis-server --port 7880 --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
  --logfile "$TMP/redis.log" &
PIDS+=($!)
taskset -c 1 "$PWD/target/release/examples/ceiling" 127.0.0.1:7881 64 &
PIDS+=($!)
printf '[proxy]\nthreads = 1\n[cache]\nenabled = true\nadmit = "all"\nmax_memory = "512mb"\n' >"$TMP/cache.toml"
for _ in $(seq 100); do redis-cli -p 7880 ping >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c 1 "$OLD" proxy --config "$TMP/cache.toml" --static 127.0.0.1:7880 --listen 127.0.0.1:7882 >"$TMP/old.log" 2>&1 &
PIDS+=($!)
taskset -c 1 "$NEW" proxy --config "$TMP/cache.toml" --static 127.0.0.1:7880 --listen 127.0.0.1:7883 >"$TMP/new.log" 2>&1 &
PIDS+=($!)
for p in 7882 7883; do
  for _ in $(seq 100); do redis-cli -p $p info 2>/dev/null | grep -q 'cache_ready:1' && break; sleep 0.1; done
done
log "preloading 1,000,000 keys"
"${LOAD[@]}" --addr 127.0.0.1:7880 --preload --keys 1000000 2>/dev/null
for p in 7882 7883; do
  log "warming the cache on $p (15 s at P16)"
  "${LOAD[@]}" --addr 127.0.0.1:$p --pipeline 16 --seconds 15 "${EXTRA[@]}" >/dev/null
done

declare -A RES HIT
TARGETS=(direct:7880 ceiling:7881 old:7882 new:7883)
for r in $(seq "$ROUNDS"); do
  for P in 1 16; do
    for tp in "${TARGETS[@]}"; do
      t=${tp%:*} port=${tp#*:}
      redis-cli -p "$port" config resetstat >/dev/null 2>&1 || true
      out=$("${LOAD[@]}" --addr 127.0.0.1:"$port" --pipeline "$P" --seconds "$SECONDS_EACH" --json "${EXTRA[@]}")
      rps=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['ops_per_sec'])" "$out")
      RES[$t,$P]+="$rps "
      if [ "$t" = old ] || [ "$t" = new ]; then
        HIT[$t,$P]+="$(redis-cli -p "$port" info | awk -F: '/^cache_hit_ratio/ {print $2}' | tr -d '\r') "
      fi
      log "round $r P$P $t: $rps ops/s"
    done
  done
done

rows=()
for P in 1 16; do
  d=$(echo "${RES[direct,$P]}" | median)
  o=$(echo "${RES[old,$P]}" | median)
  for tp in "${TARGETS[@]}"; do
    t=${tp%:*}
    v=$(echo "${RES[$t,$P]}" | median)
    h=-
    [ -n "${HIT[$t,$P]:-}" ] && h=$(echo "${HIT[$t,$P]}" | median)
    rows+=("$t P$P $v $(python3 -c "print(round($v/$d,3), round($v/$o,3))") $h")
  done
done
if [ $JSON = 1 ]; then
  table=$(printf '%s\n' "${rows[@]}" | rows_json target pipeline ops_per_sec vs_direct vs_old hit_ratio)
  echo "{\"rounds\":$ROUNDS,\"rows\":$table}"
else
  echo "zipf_load ${EXTRA[*]}: ${SECONDS_EACH} s each, median of $ROUNDS interleaved rounds"
  printf '%-8s %-4s %12s %10s %8s %6s\n' target P ops/s vs_direct vs_old hits
  printf '%s\n' "${rows[@]}" | awk '{printf "%-8s %-4s %12.0f %10s %8s %6s\n", $1, $2, $3, $4, $5, $6}'
fi
