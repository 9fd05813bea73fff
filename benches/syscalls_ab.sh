#!/usr/bin/env bash
# What each build of the proxy asks of the kernel per request, in cluster mode: its writes and
# reads (client and backend sockets), its epoll_waits and its context switches, counted by
# `perf stat` on syscall tracepoints while redis-benchmark runs (issue 27). A client costs one
# read and one write per request; what is above 2 is the backends' share: fewer, fuller backend
# writes mean fewer wake-ups of the nodes that share the proxy's core.
# One `hive up` 3+3 cluster (started by the last build), each build's proxy in turn in front of
# it, pinned to CPU 1 with the nodes, redis-benchmark on CPU 0 (-c 50 -d 64 -r 100000).
# Usage: [TEST=get] [P=1] [N=200000] bash benches/syscalls_ab.sh BUILD... [--rounds R] [--json]
# Needs perf (Debian's linux-perf) and root for the tracepoints; judges nothing.
set -uo pipefail
[ $# -ge 1 ] || { sed -n 2,10p "$0"; exit 2; }
TEST=${TEST:-get} P=${P:-1} N=${N:-200000} ROUNDS=1 JSON=0 BUILDS=()
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --json) JSON=1 ;;
    *) BUILDS+=("$(realpath "$1")") ;;
  esac
  shift
done
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
perf stat -e syscalls:sys_enter_sendto true >/dev/null 2>&1 || { echo "perf cannot count syscall tracepoints here" >&2; exit 2; }
LAST=${BUILDS[${#BUILDS[@]}-1]}
dir=$(mktemp -d /tmp/hive-sys.XXXXXX)
taskset -c 1 "$LAST" up --mode cluster --port 7900 --listen 127.0.0.1:7899 --dir "$dir" >"$dir/up.log" 2>&1 & UP=$!
PX=0
trap '[ $PX != 0 ] && kill $PX 2>/dev/null; kill -INT $UP 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 120); do redis-cli -p 7899 set ready 1 >/dev/null 2>&1 && break; sleep 0.5; done
EV=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,context-switches
[ $JSON = 1 ] && echo "["
first=1
for r in $(seq "$ROUNDS"); do
  for b in "${BUILDS[@]}"; do
    taskset -c 1 "$b" proxy --cluster 127.0.0.1:7900,127.0.0.1:7901,127.0.0.1:7902 \
      --listen 127.0.0.1:7774 >"$dir/px.log" 2>&1 & PX=$!
    for _ in $(seq 100); do redis-cli -p 7774 set ready 1 >/dev/null 2>&1 && break; sleep 0.2; done
    perf stat -x, -e "$EV" -p $PX -o "$dir/perf.txt" & PERF=$!
    sleep 0.3
    rps=$(taskset -c 0 redis-benchmark -p 7774 -t "$TEST" -n "$N" -r 100000 -d 64 -c 50 -P "$P" -q 2>&1 \
      | tr '\r' '\n' | awk '/requests per second/ {print $2}' | tail -1)
    kill -INT $PERF; wait $PERF 2>/dev/null
    kill $PX; wait $PX 2>/dev/null; PX=0
    # Per request: the counters over the run (a few idle ones before and after are noise).
    row=$(awk -F, -v n="$N" '
      /sys_enter_sendto/ {s=$1} /sys_enter_recvfrom/ {rc=$1} /sys_enter_epoll_wait/ {e=$1}
      /context-switches/ {c=$1}
      END {printf "%.3f %.3f %.3f %.3f", s/n, rc/n, e/n, c/n}' "$dir/perf.txt")
    read -r s rc e c <<<"$row"
    if [ $JSON = 1 ]; then
      [ $first = 1 ] || echo ","
      printf '{"build":"%s","round":%d,"test":"%s","pipeline":%d,"rps":%s,"writes":%s,"reads":%s,"epoll_waits":%s,"context_switches":%s}' \
        "$b" "$r" "$TEST" "$P" "${rps:-0}" "$s" "$rc" "$e" "$c"
    else
      printf '%-40s %s P%-2s %9s req/s  per request: writes %s reads %s epoll_wait %s switches %s\n' \
        "$(basename "$b")" "$TEST" "$P" "${rps:-?}" "$s" "$rc" "$e" "$c"
    fi
    first=0
  done
done
[ $JSON = 1 ] && echo "]"
exit 0
