#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, clippy, unit tests and
# the end-to-end tests against real redis-server processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/deps.sh
export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
# Clippy's incompatible_msrv keeps our code within rust-version; msrv.py keeps rust-version
# at or above what the locked dependencies need.
cargo clippy --workspace --all-targets -- -D warnings
python3 deploy/local/msrv.py
# The end-to-end tests run the `hive` binary and load the module's .so, so build them first.
cargo build --workspace
# From PyPI: redis-py for the client-compatibility tests (tests/py/compat.py), moto's S3
# server on loopback for the S3 backup tests (tests/tests/backup_store.rs), and
# kubernetes-validate for the manifests (tests/tests/deploy.rs).
if [ ! -x target/pyvenv/bin/kubernetes-validate ] || ! target/pyvenv/bin/python -c 'import redis, moto.server, boto3, yaml' 2>/dev/null; then
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install --quiet 'redis>=5' 'moto[server]>=5' kubernetes-validate
fi
cargo test --workspace --no-fail-fast
