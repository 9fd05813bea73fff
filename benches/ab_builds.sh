#!/usr/bin/env bash
# A/B of two builds of hive (say, before and after a change) in static mode beside direct Redis
# and nutcracker, in front of the same 3 masters, interleaved by benches/ab.sh. With
# MODE=cluster or MODE=sentinel: both builds in front of one `hive up` deployment of that mode
# (3+3 Redis Cluster, or 3 Sentinel groups; started by the new build, its own proxy left out),
# with a second proxy of the new build for the A/A spread of the same run. PIN=1 puts the
# servers, sentinels and proxies on CPU 1 and redis-benchmark on CPU 0 (issue 27's setup).
# SPECS="get:16 mset:16" picks the tests (default: GET and SET at P1 and P16).
# Usage: [MODE=cluster|sentinel] [PIN=1] bash benches/ab_builds.sh OLD_HIVE_BINARY NEW_HIVE_BINARY [rounds]
#   e.g. git worktree add ../base HEAD~3 && (cd ../base && cargo build --release -p hive-cli)
#        bash benches/ab_builds.sh ../base/target/release/hive target/release/hive 9
set -uo pipefail
[ $# -ge 2 ] || { sed -n 2,11p "$0"; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2") ROUNDS=${3:-9}
SPECS=${SPECS:-get:1 set:1 get:16 set:16}
ON1=() ; [ "${PIN:-0}" = 1 ] && ON1=(taskset -c 1) && export BENCH_CPU=0
MODE=${MODE:-static}
if [ "$MODE" = cluster ] || [ "$MODE" = sentinel ]; then
  . "$(dirname "$0")/lib.sh"
  dir=$(mktemp -d /tmp/hive-ab.XXXXXX)
  "${ON1[@]}" "$NEW" up --mode "$MODE" --port 7900 --listen 127.0.0.1:7899 --dir "$dir" >"$dir/up.log" 2>&1 & UP=$!
  PX=()
  trap 'for p in "${PX[@]}"; do kill "$p" 2>/dev/null; done; kill -INT $UP 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 120); do redis-cli -p 7899 set ready 1 >/dev/null 2>&1 && break; sleep 0.5; done
  if [ "$MODE" = cluster ]; then
    SEEDS=(--cluster 127.0.0.1:7900,127.0.0.1:7901,127.0.0.1:7902)
  else
    SEEDS=(--sentinel 127.0.0.1:7906,127.0.0.1:7907,127.0.0.1:7908 --masters hive-a,hive-b,hive-c)
  fi
  "${ON1[@]}" "$OLD" proxy "${SEEDS[@]}" --listen 127.0.0.1:7771 >"$dir/oc.log" 2>&1 & OC=$!; PX+=($OC)
  "${ON1[@]}" "$NEW" proxy "${SEEDS[@]}" --listen 127.0.0.1:7772 >"$dir/nc.log" 2>&1 & NC=$!; PX+=($NC)
  "${ON1[@]}" "$NEW" proxy "${SEEDS[@]}" --listen 127.0.0.1:7773 >"$dir/n2.log" 2>&1 & N2=$!; PX+=($N2)
  for p in 7771 7772 7773; do
    for _ in $(seq 100); do redis-cli -p $p set ready 1 >/dev/null 2>&1 && break; sleep 0.2; done
  done
  cd "$(dirname "$0")/.."
  for spec in $SPECS; do
    bash benches/ab.sh "$ROUNDS" ${spec/:/ } old:7771:$OC new:7772:$NC new2:7773:$N2
  done
  exit 0
fi
command -v nutcracker >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq nutcracker >/dev/null; }
. "$(dirname "$0")/lib.sh"
start_masters
printf 'bench:\n  listen: 127.0.0.1:7762\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  servers:\n   - 127.0.0.1:7750:1\n   - 127.0.0.1:7751:1\n   - 127.0.0.1:7752:1\n' > "$T/n.yml"
"${ON1[@]}" nutcracker -c "$T/n.yml" -o "$T/n.log" & NUT=$!; PIDS+=($NUT)
S=127.0.0.1:7750,127.0.0.1:7751,127.0.0.1:7752
sleep 1
"${ON1[@]}" $OLD proxy --static $S --listen 127.0.0.1:7771 >"$T/os.log" 2>&1 & OS=$!; PIDS+=($OS)
"${ON1[@]}" $NEW proxy --static $S --listen 127.0.0.1:7772 >"$T/ns.log" 2>&1 & NS=$!; PIDS+=($NS)
sleep 2
cd "$(dirname "$0")/.."
for spec in $SPECS; do
  bash benches/ab.sh "$ROUNDS" ${spec/:/ } direct:7750 old:7771:$OS new:7772:$NS nut:7762:$NUT
done
