#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, the layering check,
# the docs book and its links, clippy, unit tests and the end-to-end tests against real
# redis-server processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/deps.sh
export CARGO_TERM_COLOR=never
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
# The layering check: no import goes up a floor, no file over 500 lines, no folder over 8
# loose files (.ci/layers.py); then the docs book builds and every link in it and in the
# README resolves (mdbook from crates.io, once).
python3 .ci/layers.py
command -v mdbook >/dev/null 2>&1 || cargo install --locked --quiet mdbook --version 0.5.4
mdbook build docs
python3 .ci/doclinks.py
# Clippy's incompatible_msrv keeps our code within rust-version; msrv.py keeps rust-version
# at or above what the locked dependencies need.
cargo clippy --workspace --all-targets -- -D warnings
python3 deploy/local/msrv.py
# The end-to-end tests run the `hive` binary and load the module's .so, so build them first.
cargo build --workspace
# From PyPI: redis-py for the client-compatibility tests (tests/py/compat.py), Celery for a
# task queue blocking on several shards (tests/py/celery_queue.py), moto's S3
# server on loopback for the S3 backup tests (tests/tests/backups/backup_store.rs), and
# kubernetes-validate for the manifests (tests/tests/deploy/deploy.rs).
if [ ! -x target/pyvenv/bin/kubernetes-validate ] || ! target/pyvenv/bin/python -c 'import redis, moto.server, boto3, yaml, celery' 2>/dev/null; then
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install --quiet 'redis>=5' 'moto[server]>=5' kubernetes-validate celery
fi
# From npm: ioredis, a cluster client in another language, for the fleet tests, and
# node-redis 5, whose client-side cache works against Redis 7.0, for the tracking tests
# (tests/js/).
if [ ! -d target/node/node_modules/ioredis ] || [ ! -d target/node/node_modules/redis ]; then
  mkdir -p target/node
  npm install --prefix target/node --silent --no-audit --no-fund ioredis@5 redis@5
fi
cargo test --workspace --no-fail-fast
