#!/bin/sh
# Renders one of Hive's config templates (deploy/redis/*.conf, deploy/kubernetes/*.toml) by
# replacing its @PLACEHOLDERS@ with environment variables, then runs the program it configures.
# The same script runs in the container images, docker-compose and Kubernetes, and in the
# tests that start real servers from what those deployments mount.
#   render-conf.sh TEMPLATE OUTPUT [exec PROGRAM ARGS...]
# Variables: PORT (6379) BIND (0.0.0.0) DIR (/data) MODULE (/usr/local/lib/hive/libhive_module.so)
# NAME (hive-a) MASTER_HOST MASTER_PORT (6379) PASSWORD (required; never logged), LISTEN
# (0.0.0.0:6380), ADMIN (0.0.0.0:9180) and SEEDS / SENTINELS (comma-separated host:port, written as TOML lists).
set -eu
template=$1
output=$2
shift 2
: "${PASSWORD:?PASSWORD is required (from a Secret, never a ConfigMap)}"
toml_list() { printf '%s' "$1" | sed -e 's/^/"/' -e 's/,/", "/g' -e 's/$/"/'; }
esc() { printf '%s' "$1" | sed -e 's/[\\&#]/\\&/g'; }
sed -e "s#@PORT@#$(esc "${PORT:-6379}")#g" \
    -e "s#@BIND@#$(esc "${BIND:-0.0.0.0}")#g" \
    -e "s#@DIR@#$(esc "${DIR:-/data}")#g" \
    -e "s#@MODULE@#$(esc "${MODULE:-/usr/local/lib/hive/libhive_module.so}")#g" \
    -e "s#@NAME@#$(esc "${NAME:-hive-a}")#g" \
    -e "s#@MASTER_HOST@#$(esc "${MASTER_HOST:-}")#g" \
    -e "s#@MASTER_PORT@#$(esc "${MASTER_PORT:-6379}")#g" \
    -e "s#@LISTEN@#$(esc "${LISTEN:-0.0.0.0:6380}")#g" \
    -e "s#@ADMIN@#$(esc "${ADMIN:-0.0.0.0:9180}")#g" \
    -e "s#@SEEDS@#$(esc "$(toml_list "${SEEDS:-}")")#g" \
    -e "s#@SENTINELS@#$(esc "$(toml_list "${SENTINELS:-}")")#g" \
    -e "s#@PASSWORD@#$(esc "$PASSWORD")#g" \
    "$template" > "$output.tmp"
chmod 600 "$output.tmp"
mv "$output.tmp" "$output"
if grep -q '@[A-Z_]*@' "$output"; then
  echo "render-conf.sh: $template: unreplaced placeholder: $(grep -o '@[A-Z_]*@' "$output" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi
if [ "${1:-}" = exec ]; then
  shift
  exec "$@"
fi
