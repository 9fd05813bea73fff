#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, clippy, unit tests and
# the end-to-end tests against real redis-server processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/deps.sh
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the `hive` binary and load the module's .so, so build them first.
cargo build --workspace
cargo test --workspace --no-fail-fast
