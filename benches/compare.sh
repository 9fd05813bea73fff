#!/usr/bin/env bash
# End-to-end comparison: direct redis-server, hive (cluster mode, 3+3 cluster), hive (static
# mode, 3 standalone masters) and twemproxy (nutcracker, same 3 masters), measured in one run
# with the targets interleaved A B C D over ROUNDS rounds. Prints medians, ratios to direct
# and to nutcracker, p50/p99, proxy CPU seconds per million requests and proxy RSS; then a
# latency run (-c 1), a 1,000-client run (GET/SET P1: hive static, direct and twemproxy) and a
# connection-scale run (10,000 idle clients); then the cost of write_ack = "replica"
# (benches/write_ack.sh). Judges nothing: exits
# non-zero only when it cannot run.
# Usage: [PIN=1] [WRITE_ACK=0] bash benches/compare.sh [rounds]
#   PIN=1: servers, sentinels and proxies on CPU 1 and redis-benchmark on CPU 0 (taskset), as the
#   performance issue measured; WRITE_ACK=0 leaves out the write_ack run at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=${1:-5}
command -v nutcracker >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq nutcracker >/dev/null; }
cargo build -q --release -p hive-cli
HIVE=$PWD/target/release/hive
scratch
ulimit -n 65536 2>/dev/null || true
ON1=() ON0=()
[ "${PIN:-0}" = 1 ] && ON1=(taskset -c 1) ON0=(taskset -c 0)

# Ports: cluster 7740-7745 (hive up's own proxy 7760), standalone 7750-7752, hive static 7761,
# nutcracker 7762, hive cluster 7763.
"${ON1[@]}" "$HIVE" up --port 7740 --listen 127.0.0.1:7760 --dir "$TMP/cluster" >"$TMP/up.log" 2>&1 &
PIDS+=($!)
for p in 7750 7751 7752; do
  "${ON1[@]}" redis-server --port $p --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" --dbfilename "d$p.rdb" \
    --logfile "$TMP/r$p.log" &
  PIDS+=($!)
done
cat >"$TMP/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:7762
  hash: fnv1a_64
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:7750:1
   - 127.0.0.1:7751:1
   - 127.0.0.1:7752:1
EOF
"${ON1[@]}" nutcracker -c "$TMP/nutcracker.yml" -o "$TMP/nutcracker.log" &
NUT=$!; PIDS+=($NUT)
for _ in $(seq 120); do grep -q "Press Ctrl-C" "$TMP/up.log" 2>/dev/null && break; sleep 0.5; done
grep -q "Press Ctrl-C" "$TMP/up.log" || { cat "$TMP/up.log"; echo "hive up did not start" >&2; exit 1; }
# Room for the 10,000 idle clients of the connection-scale run plus the load.
printf '[proxy]\nmax_clients = 20000\n' >"$TMP/static.toml"
"${ON1[@]}" "$HIVE" proxy --config "$TMP/static.toml" --static 127.0.0.1:7750,127.0.0.1:7751,127.0.0.1:7752 \
  --listen 127.0.0.1:7761 >"$TMP/static.log" 2>&1 &
HSTATIC=$!; PIDS+=($HSTATIC)
# A proxy process of its own in front of the cluster, so its CPU and RSS are the proxy's alone
# (`hive up` also supervises the nodes).
"${ON1[@]}" "$HIVE" proxy --cluster 127.0.0.1:7740 --listen 127.0.0.1:7763 >"$TMP/cluster.log" 2>&1 &
HCLUSTER=$!; PIDS+=($HCLUSTER)
sleep 1
declare -A PORT=([direct]=7750 [hive-cluster]=7763 [hive-static]=7761 [nutcracker]=7762)
declare -A PID=([direct]=0 [hive-cluster]=$HCLUSTER [hive-static]=$HSTATIC [nutcracker]=$NUT)
TARGETS=(direct hive-cluster hive-static nutcracker)


# bench TARGET TEST PIPELINE REQUESTS CLIENTS -> "rps p50 p99 cpu_s_per_M"
bench() {
  local t=$1 test=$2 p=$3 n=$4 c=$5 before after line
  before=$(cpu_ticks "${PID[$t]}")
  line=$("${ON0[@]}" redis-benchmark -p "${PORT[$t]}" -t "$test" -n "$n" -r 100000 -d 64 -c "$c" -P "$p" --csv 2>/dev/null | tail -1)
  after=$(cpu_ticks "${PID[$t]}")
  echo "$line" | tr -d '"' | awk -F, -v b="$before" -v a="$after" -v n="$n" -v tk="$TICK" \
    '{printf "%s %s %s %.3f\n", $2, $5, $7, (a-b)/tk/n*1e6}'
}

declare -A RES
for test in get set mset; do
  for P in 1 16; do
    n=100000; [ "$P" = 16 ] && n=400000; [ "$test" = mset ] && n=$((n / 4))
    for r in $(seq "$ROUNDS"); do
      for t in "${TARGETS[@]}"; do
        read -r rps p50 p99 cpu <<<"$(bench "$t" "$test" "$P" "$n" 50)"
        RES[$t,$test,$P,rps]+="$rps "; RES[$t,$test,$P,p50]+="$p50 "; RES[$t,$test,$P,p99]+="$p99 "; RES[$t,$test,$P,cpu]+="$cpu "
      done
    done
  done
done

echo
echo "Throughput: redis-benchmark -c 50 -d 64 -r 100000, median of $ROUNDS interleaved rounds"
printf '%-13s %-9s %10s %9s %9s %8s %8s %10s %9s\n' target test req/s vs-direct vs-nut p50-ms p99-ms cpu-s/M peak-rss-MB
for test in get set mset; do for P in 1 16; do
  d=$(echo ${RES[direct,$test,$P,rps]} | median)
  nu=$(echo ${RES[nutcracker,$test,$P,rps]} | median)
  for t in "${TARGETS[@]}"; do
    rps=$(echo ${RES[$t,$test,$P,rps]} | median)
    p50=$(echo ${RES[$t,$test,$P,p50]} | median)
    p99=$(echo ${RES[$t,$test,$P,p99]} | median)
    cpu=$(echo ${RES[$t,$test,$P,cpu]} | median)
    printf '%-13s %-9s %10.0f %9.2f %9.2f %8s %8s %10s %9.1f\n' "$t" "${test^^} P$P" "$rps" \
      "$(echo "$rps / $d" | bc -l)" "$(echo "$rps / $nu" | bc -l)" "$p50" "$p99" \
      "$([ "$t" = direct ] && echo - || echo "$cpu")" "$(echo "$(status_kb "${PID[$t]}" VmHWM) / 1024" | bc -l)"
  done
done; done

echo
echo "Latency: GET -c 1 -P 1 -n 20000 (median of $ROUNDS rounds), added over direct"
declare -A LAT
for r in $(seq "$ROUNDS"); do for t in "${TARGETS[@]}"; do
  read -r _ p50 p99 _ <<<"$(bench "$t" get 1 20000 1)"
  LAT[$t,p50]+="$p50 "; LAT[$t,p99]+="$p99 "
done; done
d50=$(echo ${LAT[direct,p50]} | median); d99=$(echo ${LAT[direct,p99]} | median)
printf '%-13s %8s %8s %12s %12s\n' target p50-ms p99-ms added-p50-us added-p99-us
for t in "${TARGETS[@]}"; do
  a=$(echo ${LAT[$t,p50]} | median); b=$(echo ${LAT[$t,p99]} | median)
  printf '%-13s %8s %8s %12.0f %12.0f\n' "$t" "$a" "$b" "$(echo "($a - $d50) * 1000" | bc -l)" "$(echo "($b - $d99) * 1000" | bc -l)"
done

echo
echo "1,000 clients at P1: redis-benchmark -c 1000 -n 200000, median of $ROUNDS interleaved rounds"
# Hive multiplexes the 1,000 clients over one connection per master and worker, which saves
# Redis its per-client work (a read and a write per client per event-loop turn).
declare -A MANY
for r in $(seq "$ROUNDS"); do for test in get set; do for t in direct hive-static nutcracker; do
  read -r rps _ p99 cpu <<<"$(bench "$t" "$test" 1 200000 1000)"
  MANY[$t,$test,rps]+="$rps "; MANY[$t,$test,p99]+="$p99 "; MANY[$t,$test,cpu]+="$cpu "
done; done; done
printf '%-13s %-9s %10s %9s %8s %10s\n' target test req/s vs-direct p99-ms cpu-s/M
for test in get set; do
  d=$(echo ${MANY[direct,$test,rps]} | median)
  for t in direct hive-static nutcracker; do
    rps=$(echo ${MANY[$t,$test,rps]} | median)
    printf '%-13s %-9s %10.0f %9.2f %8s %10s\n' "$t" "${test^^} P1" "$rps" "$(echo "$rps / $d" | bc -l)" \
      "$(echo ${MANY[$t,$test,p99]} | median)" "$([ "$t" = direct ] && echo - || echo ${MANY[$t,$test,cpu]} | median)"
  done
done

echo
echo "Connection scale: 10,000 idle clients on hive-static, plus a 50-client GET load"
# Rounds alternate without and with the idle clients (a fresh 10,000 each time), because
# single runs drift more on this machine than the effect being measured.
idle_clients() { # holds 10,000 connections until killed; touches $TMP/idle.ready once open
  rm -f "$TMP/idle.ready"
  python3 - "$TMP/idle.ready" <<'PY' &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", 7761)) for _ in range(10000)]
open(sys.argv[1], "w").write("ok")
time.sleep(120)
PY
  IDLE=$!; PIDS+=($IDLE)
  for _ in $(seq 120); do [ -f "$TMP/idle.ready" ] && break; sleep 0.5; done
  sleep 1
}
base=() idle=()
for r in $(seq "$ROUNDS"); do
  base+=("$(bench hive-static get 1 100000 50 | awk '{print $1}')")
  # Memory is measured in the first round: freed connections' memory is reused later.
  [ "$r" = 1 ] && rss0=$(status_kb "$HSTATIC" VmRSS)
  idle_clients
  [ "$r" = 1 ] && rss1=$(status_kb "$HSTATIC" VmRSS)
  idle+=("$(bench hive-static get 1 100000 50 | awk '{print $1}')")
  kill "$IDLE" 2>/dev/null || true
  wait "$IDLE" 2>/dev/null || true
  sleep 1
done
base_rps=$(echo "${base[@]}" | median)
idle_rps=$(echo "${idle[@]}" | median)
printf 'RSS %.1f MB -> %.1f MB: %.2f KiB per idle connection\n' "$(echo "$rss0/1024" | bc -l)" "$(echo "$rss1/1024" | bc -l)" "$(echo "($rss1-$rss0)/10000" | bc -l)"
printf 'GET P1 with 10,000 idle clients: %.0f req/s vs %.0f without (%.2f)\n' "$idle_rps" "$base_rps" "$(echo "$idle_rps/$base_rps" | bc -l)"

[ "${WRITE_ACK:-1}" = 0 ] && exit 0
# The cost of write_ack = "replica" (issue 30), on deployments of its own once these are gone.
scratch_end
trap - EXIT
echo
echo "write_ack = \"replica\" against \"node\" (benches/write_ack.sh):"
bash benches/write_ack.sh "$ROUNDS"
