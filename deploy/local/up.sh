#!/usr/bin/env bash
# `hive up`: installs what is missing, builds the proxy and the module, and runs a local 3+3
# cluster (every node loads hive-module) with the proxy on 127.0.0.1:6380. Extra arguments go to `hive up` (see `hive up --help`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/deps.sh
cargo build --release -p hive-cli -p hive-module
exec ./target/release/hive up "$@"
