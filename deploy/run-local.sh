#!/usr/bin/env bash
# Runs what exists of Partner Callbacks locally: today the registry service.
#
# Postgres comes from DATABASE_URL when set, else the server on
# 127.0.0.1:5432 when one answers, else a private cluster under .local/pg
# made with initdb/pg_ctl (PostgreSQL is installed from the distribution's
# packages when root and missing). Ctrl-C stops everything this script
# started, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/partner-callbacks/target}"
REGISTRY_PORT="${REGISTRY_PORT:-50051}"
started_pids=()
private_pg=""

cleanup() {
  trap - EXIT INT TERM
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$private_pg" ]; then
    echo "==> stopping the private Postgres cluster"
    as_pg_owner "$(postgres_bin_dir)/pg_ctl" -D "$private_pg/data" -m fast stop >/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_private_postgres() {
  local bin port=5499
  bin="$(postgres_bin_dir)"
  private_pg="$PWD/.local/pg"
  mkdir -p "$private_pg"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$private_pg"
  if [ ! -f "$private_pg/data/PG_VERSION" ]; then
    echo "==> creating a private Postgres cluster in $private_pg"
    as_pg_owner "$bin/initdb" -D "$private_pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  as_pg_owner "$bin/pg_ctl" -D "$private_pg/data" -l "$private_pg/log" -w \
    -o "-p $port -h 127.0.0.1 -k $private_pg" start >/dev/null
  DATABASE_BASE="postgres://postgres@127.0.0.1:$port"
}

ensure_postgres
if [ -n "${DATABASE_URL:-}" ]; then
  DATABASE_BASE="${DATABASE_URL%/*}"
elif port_answers 127.0.0.1 5432; then
  DATABASE_BASE="postgres://postgres@127.0.0.1:5432"
else
  start_private_postgres
fi

echo "==> building"
cargo build --locked -p registry-service

echo "==> starting the registry on 127.0.0.1:$REGISTRY_PORT"
REGISTRY_LISTEN="127.0.0.1:$REGISTRY_PORT" \
REGISTRY_DATABASE_URL="${REGISTRY_DATABASE_URL:-$DATABASE_BASE/callbacks_registry}" \
REGISTRY_ALLOWED_CALLBACK_NETWORKS="${REGISTRY_ALLOWED_CALLBACK_NETWORKS:-127.0.0.0/8}" \
  "$CARGO_TARGET_DIR/debug/registry-service" &
started_pids+=($!)

for _ in $(seq 1 300); do
  port_answers 127.0.0.1 "$REGISTRY_PORT" && break
  kill -0 "${started_pids[0]}" 2>/dev/null || { echo "the registry exited; see its log above" >&2; exit 1; }
  sleep 0.1
done

cat <<MSG

Partner Callbacks is running:
  registry (gRPC, reflection on)   127.0.0.1:$REGISTRY_PORT
  registry database                ${REGISTRY_DATABASE_URL:-$DATABASE_BASE/callbacks_registry}

Try it with grpcurl:
  grpcurl -plaintext 127.0.0.1:$REGISTRY_PORT list
  grpcurl -plaintext -d '{"name":"Demo partner"}' 127.0.0.1:$REGISTRY_PORT callbacks.registry.v1.RegistryService/CreatePartner
  grpcurl -plaintext -d '{"partnerId":"<id from above>","notificationType":5,"callbackUrl":"https://hooks.example.com/cb"}' \\
    127.0.0.1:$REGISTRY_PORT callbacks.registry.v1.RegistryService/UpsertCallback

Ctrl-C stops everything this script started.
MSG
wait "${started_pids[@]}"
