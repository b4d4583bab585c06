#!/usr/bin/env bash
# Runs Partner Callbacks locally: the registry, the dispatcher and the
# gateway, with a demo partner, and prints curl lines that work as printed.
#
#   --with-receiver   also run `callbacksctl receive` on 127.0.0.1:9000,
#                     register it as the demo partner's callback for type 5,
#                     and publish one event, so a webhook arrives at once.
#
# Postgres comes from DATABASE_URL when set, else the server on
# 127.0.0.1:5432 when one answers, else a private cluster under .local/pg
# made with initdb/pg_ctl (PostgreSQL is installed from the distribution's
# packages when root and missing). Ctrl-C stops everything this script
# started, and nothing else. SKIP_BUILD=1 runs the binaries already in
# $CARGO_TARGET_DIR/debug without building (for scripts that built them).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

WITH_RECEIVER=false
for arg in "$@"; do
  case "$arg" in
    --with-receiver) WITH_RECEIVER=true ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/partner-callbacks/target}"
REGISTRY_PORT="${REGISTRY_PORT:-50051}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
DISPATCHER_PORT="${DISPATCHER_PORT:-50052}"
ADMIN_KEY="${GATEWAY_ADMIN_API_KEY:-local-admin-key-not-for-production}"
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

if [ "${SKIP_BUILD:-}" != 1 ]; then
  echo "==> building"
  cargo build --locked -p registry-service -p dispatcher-service -p gateway -p callbacksctl
fi

wait_for() { # name, pid, check command...
  local name=$1 pid=$2
  shift 2
  for _ in $(seq 1 300); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$name exited; see its log above" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name did not become ready" >&2
  exit 1
}

# Each internal caller's token, new for every run (service_kit::callers).
token() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }
DISPATCHER_TO_REGISTRY="$(token)" GATEWAY_TO_REGISTRY="$(token)" OPERATOR_TO_REGISTRY="$(token)"
PUBLISHER_TOKEN="$(token)" GATEWAY_TO_DISPATCHER="$(token)" OPERATOR_TO_DISPATCHER="$(token)"
export CALLBACKSCTL_REGISTRY_TOKEN="$OPERATOR_TO_REGISTRY" CALLBACKSCTL_DISPATCHER_TOKEN="$OPERATOR_TO_DISPATCHER"

REGISTRY_DATABASE_URL="${REGISTRY_DATABASE_URL:-$DATABASE_BASE/callbacks_registry}"
echo "==> starting the registry on 127.0.0.1:$REGISTRY_PORT"
REGISTRY_LISTEN="127.0.0.1:$REGISTRY_PORT" \
REGISTRY_DATABASE_URL="$REGISTRY_DATABASE_URL" \
REGISTRY_ALLOW_HTTP_CALLBACKS="${REGISTRY_ALLOW_HTTP_CALLBACKS:-true}" \
REGISTRY_DEVELOPMENT="${REGISTRY_DEVELOPMENT:-true}" \
REGISTRY_ALLOWED_CALLBACK_NETWORKS="${REGISTRY_ALLOWED_CALLBACK_NETWORKS:-127.0.0.0/8}" \
REGISTRY_CALLERS="dispatcher=$DISPATCHER_TO_REGISTRY,gateway=$GATEWAY_TO_REGISTRY,operator=$OPERATOR_TO_REGISTRY" \
  "$CARGO_TARGET_DIR/debug/registry-service" &
started_pids+=($!)
wait_for registry $! port_answers 127.0.0.1 "$REGISTRY_PORT"

DISPATCHER_DATABASE_URL="${DISPATCHER_DATABASE_URL:-$DATABASE_BASE/callbacks_dispatch}"
echo "==> starting the dispatcher on 127.0.0.1:$DISPATCHER_PORT"
DISPATCHER_LISTEN="127.0.0.1:$DISPATCHER_PORT" \
DISPATCHER_DATABASE_URL="$DISPATCHER_DATABASE_URL" \
DISPATCHER_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT" \
DISPATCHER_ALLOW_HTTP_CALLBACKS="${DISPATCHER_ALLOW_HTTP_CALLBACKS:-true}" \
DISPATCHER_ALLOWED_CALLBACK_NETWORKS="${DISPATCHER_ALLOWED_CALLBACK_NETWORKS:-127.0.0.0/8}" \
DISPATCHER_REGISTRY_TOKEN="$DISPATCHER_TO_REGISTRY" \
DISPATCHER_CALLERS="publisher=$PUBLISHER_TOKEN,gateway=$GATEWAY_TO_DISPATCHER,operator=$OPERATOR_TO_DISPATCHER" \
  "$CARGO_TARGET_DIR/debug/dispatcher-service" &
started_pids+=($!)
wait_for dispatcher $! port_answers 127.0.0.1 "$DISPATCHER_PORT"

GATEWAY="http://127.0.0.1:$GATEWAY_PORT"
echo "==> starting the gateway on $GATEWAY"
GATEWAY_LISTEN="127.0.0.1:$GATEWAY_PORT" \
GATEWAY_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT" \
GATEWAY_DISPATCHER_URL="http://127.0.0.1:$DISPATCHER_PORT" \
GATEWAY_ADMIN_API_KEY="$ADMIN_KEY" \
GATEWAY_REGISTRY_TOKEN="$GATEWAY_TO_REGISTRY" \
GATEWAY_DISPATCHER_TOKEN="$GATEWAY_TO_DISPATCHER" \
  "$CARGO_TARGET_DIR/debug/gateway" &
started_pids+=($!)
wait_for gateway $! curl -sf -o /dev/null "$GATEWAY/readyz"

echo "==> creating a demo partner"
demo="$(curl -sf -X POST "$GATEWAY/v1/admin/partners" -H "authorization: Bearer $ADMIN_KEY" \
  -H 'content-type: application/json' -d '{"name":"Demo partner","keyLabel":"local"}')"
# The value of a string field, wherever it is in the (compact) JSON answer.
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
PARTNER="$(echo "$demo" | json_field partnerUniqueId)"
KEY="$(echo "$demo" | json_field token)"

CALLBACK_URL="https://hooks.example.com/cb"
if [ "$WITH_RECEIVER" = true ]; then
  RECEIVER_PORT="${RECEIVER_PORT:-9000}"
  CALLBACK_URL="http://127.0.0.1:$RECEIVER_PORT/webhooks"
  echo "==> registering a local receiver on 127.0.0.1:$RECEIVER_PORT for the demo partner"
  curl -sf -X PUT "$GATEWAY/$PARTNER/callbacks/5" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d "{\"callBackUrl\":\"http://127.0.0.1:$RECEIVER_PORT/webhooks\"}" >/dev/null
  SECRET="$(curl -sf "$GATEWAY/$PARTNER/callbacks/5/secret" -H "authorization: Bearer $KEY" | json_field secret)"
  "$CARGO_TARGET_DIR/debug/callbacksctl" receive --listen "127.0.0.1:$RECEIVER_PORT" --secret "$SECRET" &
  started_pids+=($!)
  wait_for receiver $! port_answers 127.0.0.1 "$RECEIVER_PORT"
  echo "==> publishing a first event; the receiver prints it below"
  "$CARGO_TARGET_DIR/debug/callbacksctl" --dispatcher "http://127.0.0.1:$DISPATCHER_PORT" \
    publish "$PARTNER" 5 '{"processUniqueId":"hello-from-run-local"}'
fi

cat <<MSG

Partner Callbacks is running:
  gateway (REST)                   $GATEWAY   (OpenAPI: $GATEWAY/openapi.json)
  registry (gRPC, reflection on)   127.0.0.1:$REGISTRY_PORT
  dispatcher (gRPC, reflection on) 127.0.0.1:$DISPATCHER_PORT
  databases                        $REGISTRY_DATABASE_URL, $DISPATCHER_DATABASE_URL
  admin key                        $ADMIN_KEY

A demo partner was created:
  PARTNER=$PARTNER
  KEY=$KEY

Register a callback, list it, read its signing secret:
  curl -s -X PUT $GATEWAY/$PARTNER/callbacks/5 -H "authorization: Bearer $KEY" \\
    -H 'content-type: application/json' -d '{"callBackUrl":"$CALLBACK_URL"}'
  curl -s $GATEWAY/$PARTNER/callbacks -H "authorization: Bearer $KEY"
  curl -s $GATEWAY/$PARTNER/callbacks/5/secret -H "authorization: Bearer $KEY"

Fire a test notification, then read its delivery (deliveryUrl in the answer):
  curl -s -X POST $GATEWAY/v1/callbacks/echo/$PARTNER/5 -H "authorization: Bearer $KEY" \\
    -H 'content-type: application/json' -d '{"processUniqueId":"demo-1"}'

Delete the callback (a soft delete; 204):
  curl -s -X DELETE $GATEWAY/$PARTNER/callbacks/5 -H "authorization: Bearer $KEY" -w '%{http_code}\\n'

Publish an event as a platform service would (gRPC, with the publishers' token):
  grpcurl -plaintext -H "authorization: Bearer $PUBLISHER_TOKEN" \\
    -d '{"partnerId":"$PARTNER","notificationType":5,"payloadJson":"{\\"processUniqueId\\":\\"p-1\\"}"}' \\
    127.0.0.1:$DISPATCHER_PORT callbacks.dispatcher.v1.DispatcherService/Publish

Operate it with callbacksctl ($CARGO_TARGET_DIR/debug/callbacksctl --help), as an operator:
  export CALLBACKSCTL_REGISTRY_TOKEN=$OPERATOR_TO_REGISTRY CALLBACKSCTL_DISPATCHER_TOKEN=$OPERATOR_TO_DISPATCHER
  callbacksctl partner list
  callbacksctl errors
  callbacksctl delivery list $PARTNER

Ctrl-C stops everything this script started.
MSG
wait "${started_pids[@]}"
