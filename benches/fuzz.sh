#!/usr/bin/env bash
# Runs each cargo fuzz target (benches/fuzz) for a bounded time with a seed corpus made from
# the tests' inputs, and prints the executions and any findings per target.
# Usage: bash benches/fuzz.sh [seconds per target] [sanitizer] [targets]   (needs nightly)
# The sanitizer defaults to none: Hive's crates forbid unsafe code, and without AddressSanitizer
# the decoder runs about 10x more inputs per second; pass `address` to use it.
set -euo pipefail
cd "$(dirname "$0")/fuzz"
SECS=${1:-60}
SAN=${2:-none}
TARGETS=${3:-request_decoder reply_scanner key_extraction config_parser}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
cargo +nightly fuzz build -O -s "$SAN" 2>&1 | tail -1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
seed() { mkdir -p "$WORK/$1"; printf '%b' "$3" >"$WORK/$1/$2"; }
seed request_decoder set '\x00*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n'
seed request_decoder inline '\x03PING\r\nSET "a b" '"'"'c'"'"'\r\n'
seed request_decoder pipeline '\x05*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n'
seed reply_scanner nested '*3\r\n:1\r\n$3\r\nabc\r\n%1\r\n+k\r\n$-1\r\n'
seed reply_scanner resp3 '|1\r\n+a\r\n+b\r\n>2\r\n$7\r\nmessage\r\n=8\r\ntxt:hive\r\n'
seed key_extraction eval 'eval\x00s\x002\x00a\x00b'
seed key_extraction sort 'sort\x00k\x00by\x00w\x00store\x00d'
seed key_extraction zunion 'zunionstore\x00d\x002\x00a\x00b\x00weights\x001\x002'
seed config_parser full '[proxy]\nlisten = "127.0.0.1:6380"\nusers = ["app on >p ~a:* +@read"]\n[backend]\nmode = "static"\n[[backend.shards]]\nmaster = "127.0.0.1:7000"\nslots = "0-16383"\n'
for t in $TARGETS; do
  mkdir -p "$WORK/$t" "$WORK/artifacts-$t"
  out=$(cargo +nightly fuzz run -O -s "$SAN" "$t" "$WORK/$t" -- -max_total_time="$SECS" -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts-$t/" 2>&1 || true)
  runs=$(echo "$out" | grep -o 'stat::number_of_executed_units: *[0-9]*' | grep -o '[0-9]*$' || echo '?')
  found=$(find "$WORK/artifacts-$t" -type f | wc -l)
  printf '%-16s %12s executions in %ss, %s findings\n' "$t" "$runs" "$SECS" "$found"
  if [ "$found" -gt 0 ]; then
    echo "$out" | grep -E 'panicked|ERROR' | head -5
    mkdir -p "../../target/fuzz-findings/$t" && cp "$WORK/artifacts-$t"/* "../../target/fuzz-findings/$t/"
  fi
done
