#!/usr/bin/env bash
# A/B of two builds of hive (say, before and after a change) in static mode beside direct Redis
# and nutcracker, in front of the same 3 masters, interleaved by benches/ab.sh. With
# MODE=cluster: both builds in front of one 3+3 Redis Cluster (started by the new build's
# `hive up`, whose own proxy is left out), with a second proxy of the new build for the A/A
# spread of the same run.
# Usage: [MODE=cluster] bash benches/ab_builds.sh OLD_HIVE_BINARY NEW_HIVE_BINARY [rounds]
#   e.g. git worktree add ../base HEAD~3 && (cd ../base && cargo build --release -p hive-cli)
#        bash benches/ab_builds.sh ../base/target/release/hive target/release/hive 9
set -uo pipefail
[ $# -ge 2 ] || { sed -n 2,9p "$0"; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2") ROUNDS=${3:-9}
if [ "${MODE:-static}" = cluster ]; then
  . "$(dirname "$0")/lib.sh"
  dir=$(mktemp -d /tmp/hive-ab.XXXXXX)
  "$NEW" up --mode cluster --port 7900 --listen 127.0.0.1:7899 --dir "$dir" >"$dir/up.log" 2>&1 & UP=$!
  PX=()
  trap 'for p in "${PX[@]}"; do kill "$p" 2>/dev/null; done; kill -INT $UP 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 120); do redis-cli -p 7899 set ready 1 >/dev/null 2>&1 && break; sleep 0.5; done
  C=127.0.0.1:7900,127.0.0.1:7901,127.0.0.1:7902
  "$OLD" proxy --cluster $C --listen 127.0.0.1:7771 >"$dir/oc.log" 2>&1 & OC=$!; PX+=($OC)
  "$NEW" proxy --cluster $C --listen 127.0.0.1:7772 >"$dir/nc.log" 2>&1 & NC=$!; PX+=($NC)
  "$NEW" proxy --cluster $C --listen 127.0.0.1:7773 >"$dir/n2.log" 2>&1 & N2=$!; PX+=($N2)
  for p in 7771 7772 7773; do
    for _ in $(seq 100); do redis-cli -p $p set ready 1 >/dev/null 2>&1 && break; sleep 0.2; done
  done
  cd "$(dirname "$0")/.."
  for spec in "get 1" "set 1" "get 16" "set 16"; do
    bash benches/ab.sh "$ROUNDS" $spec old:7771:$OC new:7772:$NC new2:7773:$N2
  done
  exit 0
fi
command -v nutcracker >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq nutcracker >/dev/null; }
. "$(dirname "$0")/lib.sh"
start_masters
printf 'bench:\n  listen: 127.0.0.1:7762\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  servers:\n   - 127.0.0.1:7750:1\n   - 127.0.0.1:7751:1\n   - 127.0.0.1:7752:1\n' > "$T/n.yml"
nutcracker -c "$T/n.yml" -o "$T/n.log" & NUT=$!; PIDS+=($NUT)
S=127.0.0.1:7750,127.0.0.1:7751,127.0.0.1:7752
sleep 1
$OLD proxy --static $S --listen 127.0.0.1:7771 >"$T/os.log" 2>&1 & OS=$!; PIDS+=($OS)
$NEW proxy --static $S --listen 127.0.0.1:7772 >"$T/ns.log" 2>&1 & NS=$!; PIDS+=($NS)
sleep 2
cd "$(dirname "$0")/.."
for spec in "get 1" "set 1" "get 16" "set 16"; do
  bash benches/ab.sh "$ROUNDS" $spec direct:7750 old:7771:$OS new:7772:$NS nut:7762:$NUT
done
