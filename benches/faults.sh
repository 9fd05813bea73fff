#!/usr/bin/env bash
# The long form of the fault tests (issue 30): every scenario the harness runs, with 30 s
# windows, on a Sentinel deployment (1 master + 2 replicas, 3 sentinels, quorum 2,
# down-after-milliseconds 5000) and on a Redis Cluster (3 masters, the faulted one with 2
# replicas, cluster-node-timeout 5000), every process in a network namespace of its own, with
# write_ack = "node" and "replica". The slow, lossy link (200 ms each way, 5% loss) goes
# through the harness's TCP fault relay. Prints one row per scenario and setting: writes
# acknowledged, acknowledged writes lost, registers behind, stale reads, client errors during
# the fault and after the heal, writes acknowledged during the fault and their p99 latency,
# and the time from the fault to the first successful write.
# Needs root (network namespaces). Fails when write_ack = "replica" lost an acknowledged write.
# Usage: bash benches/faults.sh [--json]
set -uo pipefail
cd "$(dirname "$0")/.."
REPORT=$(mktemp /tmp/hive-faults.XXXXXX)
trap 'rm -f "$REPORT"' EXIT
HIVE_FAULTS=long HIVE_FAULTS_REPORT="$REPORT" \
  cargo test -q -p hive-tests --test faults -- --nocapture --test-threads 1 >"$REPORT.log" 2>&1
status=$?
if [ ! -s "$REPORT" ]; then
  cat "$REPORT.log"; rm -f "$REPORT.log"
  echo "no scenario ran (see above)" >&2
  exit 1
fi
if [ "${1:-}" = --json ]; then
  python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1])], indent=1))' "$REPORT"
else
  python3 - "$REPORT" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cols = ["mode", "fault", "write_ack", "acked", "lost", "registers_behind", "stale_reads",
        "errors_during", "errors_after", "acked_during", "p99_during_ms", "first_write_ms"]
w = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
print("  ".join(c.ljust(w[c]) for c in cols))
for r in rows:
    print("  ".join(str(r[c]).ljust(w[c]) for c in cols))
EOF
fi
grep -E "panicked|FAILED" "$REPORT.log" && echo "(the log: $REPORT.log)" >&2
[ $status -eq 0 ] && rm -f "$REPORT.log"
exit $status
