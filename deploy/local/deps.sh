#!/usr/bin/env bash
# Installs what Hive's local cluster and tests need and is missing: redis-server, redis-sentinel,
# redis-tools (redis-cli, redis-benchmark), libclang-dev (for the module's bindgen), prometheus
# (promtool, for the alert rules and the exposition), tmux (drives `hive monitor` in tests) and
# systemd (systemd-analyze verifies the units) and docker-compose (`docker-compose config`
# checks the compose files; no engine is needed), and Node.js with npm (ioredis, a cluster client
# the fleet tests drive).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
{ command -v redis-cli >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1; } || need+=(redis-tools)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts redis-server and prometheus services on install; Hive does not need them.
if [ -n "${need[*]:-}" ] && command -v service >/dev/null 2>&1; then
  service redis-server stop >/dev/null 2>&1 || true
  service prometheus stop >/dev/null 2>&1 || true
fi
redis-server --version
