#!/usr/bin/env bash
# Does the proxy's memory stay flat under long mixed load? Runs `hive up` (3+3 cluster) and, for
# DURATION seconds, rounds of redis-benchmark against the proxy: 50 clients over GET/SET/MSET/
# MGET/INCR/LPUSH/LRANGE/HSET at P1 and P16, plus one round of 2,000 short-lived connections
# (-k 0). Samples the proxy process's RSS every 10 s and prints the samples, the first and last
# minute's peaks and their difference. Judges nothing; exits non-zero only when it cannot run.
# Usage: bash benches/soak.sh [DURATION_SECONDS]
set -euo pipefail
DURATION=${1:-300}
cd "$(dirname "$0")/.."
PROXY_PORT=6680
. benches/lib.sh
start_hive_up soak 7400 "$PROXY_PORT"

(
  start=$(date +%s)
  while kill -0 "$UP" 2>/dev/null; do
    echo "$(($(date +%s) - start)) $(status_kb "$UP" VmRSS)" >>"$dir/rss"
    sleep 10
  done
) &
SAMPLER=$!
BG=("$SAMPLER")

end=$(($(date +%s) + DURATION))
rounds=0
tests=0
errors=0
bench() { # bounded by -n; counts requests and error lines
  local out
  out=$(timeout 120 redis-benchmark -p "$PROXY_PORT" -r 100000 -d 64 --csv "$@" 2>&1 || true)
  tests=$((tests + $(echo "$out" | grep -c '^"' || true)))
  errors=$((errors + $(echo "$out" | grep -ci 'error' || true)))
}
while [ "$(date +%s)" -lt "$end" ]; do
  bench -t get,set,mset,incr,lpush,lrange_100,hset -n 50000 -c 50 -P 1
  [ "$(date +%s)" -lt "$end" ] || break
  bench -t get,set,mset -n 200000 -c 50 -P 16
  [ "$(date +%s)" -lt "$end" ] || break
  bench -t get -n 2000 -c 20 -k 0
  rounds=$((rounds + 1))
done
sleep 11
kill "$SAMPLER" 2>/dev/null || true
BG=()

echo "Soak: ${DURATION}s of mixed redis-benchmark load through hive up (cluster), $rounds full rounds"
echo "benchmark tests run: $tests, error lines: $errors"
echo "RSS samples (seconds, MB):"
awk '{printf "  %4d s %7.1f MB\n", $1, $2 / 1024}' "$dir/rss"
awk -v d="$DURATION" '
  $1 <= 70 && $1 >= 10 { if ($2 > first) first = $2 }
  $1 >= d - 60 { if ($2 > last) last = $2 }
  END {
    printf "peak RSS, first minute (10-70 s): %.1f MB; last minute: %.1f MB; growth: %+.1f MB\n",
      first / 1024, last / 1024, (last - first) / 1024
  }' "$dir/rss"
