#!/usr/bin/env bash
# The cost of observability (issue 13), interleaved by benches/ab.sh in static mode in front of
# the same 3 masters: OLD (a build before per-command counters), NEW with metrics off (counters
# always run, no admin listener), NEW with metrics on (admin listener, node poll every 2 s and a
# scrape of /metrics every second), beside direct Redis and nutcracker. A second OLD process
# (old2) is an A/A pair: how far two identical proxies differ is the noise floor of the run.
# Usage: bash benches/metrics_ab.sh OLD_HIVE_BINARY NEW_HIVE_BINARY [rounds]
#   e.g. git worktree add ../base b6a79e8 && (cd ../base && cargo build --release -p hive-cli)
#        bash benches/metrics_ab.sh ../base/target/release/hive target/release/hive 5
set -uo pipefail
[ $# -ge 2 ] || { sed -n 2,9p "$0"; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2") ROUNDS=${3:-5}
command -v nutcracker >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq nutcracker >/dev/null; }
. "$(dirname "$0")/lib.sh"
start_masters
printf 'bench:\n  listen: 127.0.0.1:7762\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  servers:\n   - 127.0.0.1:7750:1\n   - 127.0.0.1:7751:1\n   - 127.0.0.1:7752:1\n' > "$T/n.yml"
nutcracker -c "$T/n.yml" -o "$T/n.log" & NUT=$!; PIDS+=($NUT)
S=127.0.0.1:7750,127.0.0.1:7751,127.0.0.1:7752
sleep 1
$OLD proxy --static $S --listen 127.0.0.1:7771 >"$T/old.log" 2>&1 & OP=$!; PIDS+=($OP)
$OLD proxy --static $S --listen 127.0.0.1:7774 >"$T/old2.log" 2>&1 & OP2=$!; PIDS+=($OP2)
$NEW proxy --static $S --listen 127.0.0.1:7772 >"$T/off.log" 2>&1 & OFF=$!; PIDS+=($OFF)
$NEW proxy --static $S --listen 127.0.0.1:7773 --admin 127.0.0.1:7790 >"$T/on.log" 2>&1 & ON=$!; PIDS+=($ON)
sleep 2
# What a Prometheus server scraping every second would cost the proxy.
( while sleep 1; do curl -s -o /dev/null http://127.0.0.1:7790/metrics; done ) & PIDS+=($!)
cd "$(dirname "$0")/.."
for spec in "get 1" "set 1" "get 16" "set 16"; do
  bash benches/ab.sh "$ROUNDS" $spec direct:7750 old:7771:$OP off:7772:$OFF on:7773:$ON old2:7774:$OP2 nut:7762:$NUT
done
