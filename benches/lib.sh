# Sourced by the bench scripts: the numbers helpers they share, and `start_hive_up`.

# The median of the numbers on stdin, separated by spaces or newlines.
median() { tr -s ' \t' '\n\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# User + system CPU ticks of PID (0 for pid 0, which stands for "not a process we measure").
cpu_ticks() { if [ "${1:-0}" = 0 ]; then echo 0; else awk '{print $14+$15}' "/proc/$1/stat"; fi; }
# A kB field of /proc/PID/status: VmRSS (resident now), VmHWM (peak resident).
status_kb() { if [ "${1:-0}" = 0 ]; then echo 0; else awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; fi; }
TICK=$(getconf CLK_TCK)

# `rows_json NAME...`: the whitespace-separated rows on stdin as a JSON list of objects with
# those keys; a field that reads as a number is one, "-" is null, the rest stay strings.
rows_json() {
  python3 -c '
import json, sys
def val(x):
    if x == "-":
        return None
    try:
        return float(x)
    except ValueError:
        return x
names = sys.argv[1:]
print(json.dumps([dict(zip(names, map(val, l.split()))) for l in sys.stdin if l.strip()]))' "$@"
}

# `scratch`: a temporary directory $TMP, and $PIDS, the background processes a script starts;
# on exit every one of them is killed and the directory removed.
scratch() {
  TMP=$(mktemp -d)
  PIDS=()
  trap scratch_end EXIT
}
scratch_end() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}

# `start_hive_up NAME PORT PROXY_PORT [MODE]` builds the release binary and hive-module, starts a
# 3+3 cluster (or, with MODE sentinel, 3 sentinel groups) with the proxy on PROXY_PORT, waits until it answers, and tears it down on exit. It
# sets $dir (the data directory) and $UP (the `hive up` pid). Pids appended to BG are killed
# first.
BG=()
stop_hive_up() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${UP:-}" ] && { kill -INT "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; }
  # A node may still be writing its last file as it stops: one more try after it has.
  [ -n "${dir:-}" ] && { rm -rf "$dir" 2>/dev/null || { sleep 1; rm -rf "$dir"; }; }
  return 0
}
start_hive_up() {
  local name=$1 port=$2 proxy_port=$3 mode=${4:-cluster}
  cargo build --release -q -p hive-cli -p hive-module
  dir=$(mktemp -d "/tmp/hive-$name.XXXXXX")
  target/release/hive up --mode "$mode" --port "$port" --listen "127.0.0.1:$proxy_port" --dir "$dir" >"$dir/up.log" 2>&1 &
  UP=$!
  trap stop_hive_up EXIT
  for _ in $(seq 1 120); do
    redis-cli -p "$proxy_port" set ready 1 >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  cat "$dir/up.log"
  echo "hive up did not start" >&2
  exit 1
}

# `start_masters`: a temporary directory $T and three bare redis-server masters on 7750-7752,
# killed (with every pid appended to PIDS) and removed on exit.
PIDS=()
start_masters() {
  T=$(mktemp -d)
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
  for p in 7750 7751 7752; do
    ${ON1[@]+"${ON1[@]}"} redis-server --port $p --bind 127.0.0.1 --save '' --appendonly no --dir "$T" --dbfilename d$p.rdb --logfile "$T/r$p.log" & PIDS+=($!)
  done
  sleep 1
}

# `json_get JSON EXPR`: a field of a JSON document, e.g. `json_get "$out" "['outcome']['keys']"`.
json_get() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval('d'+sys.argv[2]))" "$1" "$2"; }

# `under_load CMD...`: runs CMD while "${LOAD[@]}" (a zipf_load command line) runs; the load
# stops when CMD ends. Sets MOVE_OUT (CMD's stdout) and LOAD_OUT (the load's JSON).
under_load() {
  rm -f "$dir/stop"
  "${LOAD[@]}" --seconds 600 --stop-file "$dir/stop" --json >"$dir/load.json" &
  local lp=$!
  local out
  out=$("$@")
  touch "$dir/stop"
  wait $lp
  MOVE_OUT=$out
  LOAD_OUT=$(cat "$dir/load.json")
}
