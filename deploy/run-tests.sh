#!/usr/bin/env bash
# Runs every check and every test: formatting, clippy, the whole workspace's
# tests against real Postgres, and the private-cluster fallback of the test
# support on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

ensure_postgres

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test (Postgres: ${TEST_DATABASE_URL:-${DATABASE_URL:-127.0.0.1:5432 or a private cluster}})"
cargo test --workspace --locked

# The suite above used the shared server when one answers; prove that the
# fallback a fresh machine relies on works too.
if [ -n "$(postgres_bin_dir)" ]; then
  echo "==> private Postgres cluster fallback"
  TEST_POSTGRES=private cargo test --locked -p registry-service --test it server::
fi
