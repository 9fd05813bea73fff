#!/usr/bin/env bash
# The cost of TLS, measured in one run: redis-benchmark against one redis-server in plaintext
# and over TLS, and against hive (static mode, that node behind it) in plaintext end to end and
# over TLS on both sides (client -> hive and hive -> node). Interleaved rounds, medians, and
# the proxy's CPU seconds per million requests. Certificates are made with openssl.
# Usage: bash benches/tls.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
ROUNDS=${1:-5}
command -v openssl >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq openssl >/dev/null; }
cargo build -q --release -p hive-cli
HIVE=$PWD/target/release/hive
T=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
redis-server --port 7790 --tls-port 7791 --tls-cert-file server.pem --tls-key-file server.key \
  --tls-ca-cert-file ca.pem --tls-auth-clients no --save '' --appendonly no --dir "$T" --logfile r.log &
PIDS+=($!)
sleep 0.5
"$HIVE" proxy --static 127.0.0.1:7790 --listen 127.0.0.1:7792 >plain.log 2>&1 &
HP=$!; PIDS+=($HP)
cat > tls.toml <<EOC
[proxy]
listen = ""
tls_listen = "127.0.0.1:7793"
tls_cert_file = "$T/server.pem"
tls_key_file = "$T/server.key"
tls_auth_clients = "no"
[backend]
mode = "static"
tls = true
tls_ca_cert_file = "$T/ca.pem"
[[backend.shards]]
master = "127.0.0.1:7791"
EOC
"$HIVE" proxy --config tls.toml >tls.log 2>&1 &
HT=$!; PIDS+=($HT)
sleep 1
declare -A ARGS=([direct]="-p 7790" [direct-tls]="-p 7791 --tls --cacert $T/ca.pem"
  [hive]="-p 7792" [hive-tls]="-p 7793 --tls --cacert $T/ca.pem")
declare -A PID=([direct]=0 [direct-tls]=0 [hive]=$HP [hive-tls]=$HT)
TARGETS=(direct direct-tls hive hive-tls)
printf '%-11s %-7s %10s %9s %9s\n' target test 'req/s' '/direct' 'cpu s/M'
for spec in "get 1" "set 1" "get 16" "set 16"; do
  read -r test P <<<"$spec"
  n=100000; [ "$P" = 16 ] && n=400000
  declare -A RPS=() CPU=()
  for _ in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
      b=$(cpu_ticks "${PID[$t]}")
      # shellcheck disable=SC2086
      rps=$(redis-benchmark ${ARGS[$t]} -h 127.0.0.1 -t "$test" -n "$n" -r 100000 -d 64 -c 50 -P "$P" --csv 2>/dev/null \
        | tail -1 | tr -d '"' | cut -d, -f2)
      a=$(cpu_ticks "${PID[$t]}")
      RPS[$t]+="$rps "; CPU[$t]+="$(echo "($a - $b) / $TICK / $n * 1000000" | bc -l) "
    done
  done
  base=$(echo "${RPS[direct]}" | median)
  for t in "${TARGETS[@]}"; do
    r=$(echo "${RPS[$t]}" | median)
    printf '%-11s %-7s %10.0f %9.2f' "$t" "$test P$P" "$r" "$(echo "$r / $base" | bc -l)"
    [ "${PID[$t]}" != 0 ] && printf ' %9.2f' "$(echo "${CPU[$t]}" | median)"
    printf '\n'
  done
done
