#!/usr/bin/env bash
# What a proxy's traffic costs the nodes: reads, writes and commands per client request, bytes
# per read, node CPU per million requests, and the connections on each master. Measured on the
# masters of one 3+3 Redis Cluster (the given build's `hive up`, its own proxy left out) from
# Redis's `INFO stats`/`INFO cpu` before and after each run, behind a `hive proxy --cluster` of
# each build given, and behind `redis-benchmark --cluster` run directly against the nodes (the
# floor: every node gets its clients' requests with no hop). Servers and proxies are pinned to
# CPU 1 and redis-benchmark to CPU 0, so the proxy and the nodes share one core as in issue 27.
# Judges nothing.
# Usage: bash benches/node_cost.sh NAME=HIVE_BINARY [NAME=HIVE_BINARY ...] [-- rounds]
#   e.g. bash benches/node_cost.sh old=/tmp/b742/target/release/hive new=target/release/hive
#   SPECS="get:16 set:16 mset:16" picks the tests; --json prints one object per line instead.
set -uo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
JSON=0 BUILDS=() ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    --json) JSON=1 ;;
    --) shift; ROUNDS=${1:-3} ;;
    *=*) BUILDS+=("$1") ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
  shift
done
[ ${#BUILDS[@]} -ge 1 ] || { sed -n 2,13p "$0"; exit 2; }
FIRST=$(realpath "${BUILDS[0]#*=}")
dir=$(mktemp -d /tmp/hive-nodecost.XXXXXX)
PX=()
trap 'for p in "${PX[@]}"; do kill "$p" 2>/dev/null; done; kill -INT $UP 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
taskset -c 1 "$FIRST" up --mode cluster --port 7900 --listen 127.0.0.1:7899 --dir "$dir" >"$dir/up.log" 2>&1 & UP=$!
for _ in $(seq 120); do redis-cli -p 7899 set ready 1 >/dev/null 2>&1 && break; sleep 0.5; done
MASTERS=()
for p in 7900 7901 7902 7903 7904 7905; do
  redis-cli -p $p role 2>/dev/null | head -1 | grep -q master && MASTERS+=($p)
done
[ ${#MASTERS[@]} = 3 ] || { echo "expected 3 masters, found: ${MASTERS[*]}" >&2; exit 1; }
declare -A PORT PID
port=7771
for b in "${BUILDS[@]}"; do
  name=${b%%=*} bin=$(realpath "${b#*=}")
  taskset -c 1 "$bin" proxy --threads 1 --cluster 127.0.0.1:7900 --listen 127.0.0.1:$port >"$dir/$name.log" 2>&1 &
  PID[$name]=$! PORT[$name]=$port; PX+=($!)
  for _ in $(seq 100); do redis-cli -p $port set ready 1 >/dev/null 2>&1 && break; sleep 0.2; done
  port=$((port + 1))
done

# The sum over the masters of INFO fields: reads writes commands input-bytes cpu-seconds.
snapshot() {
  for p in "${MASTERS[@]}"; do redis-cli -p "$p" info everything; done | tr -d '\r' | awk -F: '
    $1 == "total_reads_processed" {r += $2} $1 == "total_writes_processed" {w += $2}
    $1 == "total_commands_processed" {c += $2} $1 == "total_net_input_bytes" {b += $2}
    $1 == "used_cpu_user" || $1 == "used_cpu_sys" {cpu += $2}
    END {printf "%.0f %.0f %.0f %.0f %.3f\n", r, w, c, b, cpu}'
}
# Connections on the masters, minus redis-cli's own.
conns() {
  local n=0 p
  for p in "${MASTERS[@]}"; do
    n=$((n + $(redis-cli -p "$p" info clients | tr -d '\r' | awk -F: '$1 == "connected_clients" {print $2}') - 1))
  done
  echo "$n"
}
declare -A ACC
# run NAME TEST P: one benchmark through NAME (or direct), accumulating the deltas.
run() {
  local name=$1 test=$2 p=$3 n=200000 args rps
  [ "$p" -ge 16 ] && n=800000
  [ "$test" = mset ] && n=$((n / 4))
  if [ "$name" = direct ]; then args=(--cluster -p "${MASTERS[0]}"); else args=(-p "${PORT[$name]}"); fi
  read -r r0 w0 c0 b0 u0 <<<"$(snapshot)"
  rps=$(taskset -c 0 redis-benchmark "${args[@]}" -t "$test" -n $n -r 100000 -d 64 -c 50 -P "$p" --csv 2>/dev/null \
    | grep -i "\"$test" | tail -1 | tr -d '"' | cut -d, -f2)
  read -r r1 w1 c1 b1 u1 <<<"$(snapshot)"
  ACC[$name,$test,$p]+="$rps $n $((r1 - r0)) $((w1 - w0)) $((c1 - c0)) $((b1 - b0)) $(echo "$u1 - $u0" | bc -l);"
}
NAMES=(direct)
for b in "${BUILDS[@]}"; do NAMES+=("${b%%=*}"); done
for spec in ${SPECS:-get:16 set:16 mset:16 get:1 set:1}; do
  IFS=: read -r test p <<<"$spec"
  for r in $(seq "$ROUNDS"); do
    for k in $(seq 0 $((${#NAMES[@]} - 1))); do
      run "${NAMES[$(( (k + r) % ${#NAMES[@]} ))]}" "$test" "$p"
    done
  done
done
# Per round: req/s, reads/request, writes/request, node commands/request, bytes/read, node CPU s/M;
# medians over the rounds.
[ $JSON = 0 ] && printf '%-8s %-9s %10s %10s %10s %10s %10s %12s\n' endpoint test req/s reads/req writes/req cmds/req bytes/read node-cpu-s/M
for spec in ${SPECS:-get:16 set:16 mset:16 get:1 set:1}; do
  IFS=: read -r test p <<<"$spec"
  for name in "${NAMES[@]}"; do
    cols=$(echo "${ACC[$name,$test,$p]}" | tr ';' '\n' | grep . | awk '{
      printf "%s %.4f %.4f %.4f %.1f %.3f\n", $1, $3/$2, $4/$2, $5/$2, ($3 ? $6/$3 : 0), $7/$2*1e6}')
    med=()
    for i in 1 2 3 4 5 6; do med+=("$(echo "$cols" | awk -v i=$i '{print $i}' | median)"); done
    if [ $JSON = 1 ]; then
      printf '{"endpoint":"%s","test":"%s","pipeline":%s,"rps":%s,"reads_per_req":%s,"writes_per_req":%s,"cmds_per_req":%s,"bytes_per_read":%s,"node_cpu_s_per_m":%s}\n' \
        "$name" "$test" "$p" "${med[@]}"
    else
      printf '%-8s %-9s %10.0f %10.4f %10.4f %10.4f %10.1f %12.3f\n' "$name" "${test^^} P$p" "${med[@]}"
    fi
  done
done
[ $JSON = 0 ] && echo "connections on the masters (all proxies idle, each with its pools): $(conns)"
