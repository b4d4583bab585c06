#!/usr/bin/env bash
# Proves the receiver examples (Python, Node.js, Rust; examples/README.md)
# against a running stack, as a partner would use them: for each, registers
# it as the partner's callback for one notification type (5, 6, 7), starts
# it with that registration's secret, fires an echo and waits for the
# example's "verified" line naming the echo's delivery, and for the
# platform to record the delivery as delivered; then sends the example a
# forged signature (must be refused, 401 or 400) and the same delivery
# again, signed afresh as a retry would be (must get a 2xx, be logged as a
# duplicate and be worked on once). Deletes its registrations at the end.
#
#   examples/run.sh <gateway URL> <partner id> <partner key>
#
# Needs python3, curl, Node.js with npm (installed when missing and root)
# and cargo; PyPI and the npm registry for the pinned packages
# (deploy/lib.sh). Builds the Rust example into CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

if [ $# -ne 3 ]; then sed -n '2,16p' "$0"; exit 2; fi
gateway="${1%/}" partner="$2" key="$3"

workdir="$(mktemp -d)"
pids=()
registered=()
current_log=""
cleanup() {
  local status=$? pid type
  if [ "$status" -ne 0 ] && [ -s "$current_log" ]; then
    echo "--- what the example said:" >&2
    cat "$current_log" >&2
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for type in "${registered[@]}"; do
    curl -sS -o /dev/null -X DELETE "$gateway/$partner/callbacks/$type" -H "authorization: Bearer $key" || true
  done
  rm -rf "$workdir"
}
trap cleanup EXIT

fail() { echo "examples/run.sh: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# One field of the JSON object on stdin.
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
api() { # method path [JSON body]: the answer's body; fails on a non-2xx
  curl -sS --fail-with-body -X "$1" "$gateway$2" -H "authorization: Bearer $key" \
    -H 'content-type: application/json' ${3:+-d "$3"}
}
# Waits up to 30 s for a line matching the pattern in the example's log;
# gives up at once if the example has exited.
wait_for() { # log pid pattern
  local deadline=$((SECONDS + 30))
  until grep -q -- "$3" "$1"; do
    kill -0 "$2" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# The pinned dependencies of each example.
venv="$(project_venv $(grep -v '^#' examples/python-receiver/requirements.txt))"
node_modules="$(project_node $(python3 -c 'import json, sys
for path, package in json.load(open(sys.argv[1]))["packages"].items():
    if path:
        print(path.rsplit("node_modules/", 1)[1] + "@" + package["version"])' examples/node-receiver/package-lock.json))"
cargo build --locked -q -p receiver-example
rust_receiver="${CARGO_TARGET_DIR:-target}/debug/receiver-example"

# A Standard Webhooks signature, as the platform makes it.
sign() { # secret webhook-id timestamp body
  "$venv/bin/python" -c 'import sys
from datetime import datetime, timezone
from standardwebhooks import Webhook
print(Webhook(sys.argv[1]).sign(sys.argv[2], datetime.fromtimestamp(int(sys.argv[3]), timezone.utc), sys.argv[4].encode()))' "$@"
}
post() { # URL webhook-id timestamp signature body: prints the status code
  curl -sS -o /dev/null -w '%{http_code}' -X POST "$1" -H 'content-type: application/json' \
    -H "webhook-id: $2" -H "webhook-timestamp: $3" -H "webhook-signature: $4" -d "$5"
}

prove() { # name notification-type command...
  local name="$1" type="$2"
  shift 2
  local port log url secret pid body delivery status refused now
  port="$(free_port)"
  log="$workdir/$name.log"
  url="http://127.0.0.1:$port/webhooks/$type"
  current_log="$log"
  : >"$log"
  api PUT "/$partner/callbacks/$type" "{\"callBackUrl\":\"$url\",\"signatureScheme\":\"hmac-sha256\"}" >/dev/null
  registered+=("$type")
  secret="$(api GET "/$partner/callbacks/$type/secret" | field secret)"
  WEBHOOK_SECRET="$secret" PORT="$port" "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for "$log" "$pid" '^listening on' || fail "the $name example did not start"

  body="{\"processUniqueId\":\"examples-$name-$RANDOM$RANDOM\"}"
  delivery="$(api POST "/v1/callbacks/echo/$partner/$type" "$body" | field deliveryId)"
  wait_for "$log" "$pid" "^verified webhook-id=$delivery type=$type test=true$" \
    || fail "the $name example did not verify the echo $delivery"
  wait_for "$log" "$pid" "^processed webhook-id=$delivery type=$type " \
    || fail "the $name example did not work on the echo $delivery"
  local deadline=$((SECONDS + 30))
  until [ "$(api GET "/v1/callbacks/deliveries/$delivery" | field status)" = delivered ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the platform does not record the echo $delivery to the $name example as delivered"
    sleep 0.1
  done

  now="$(date +%s)"
  refused="$(post "$url" "forged-$delivery" "$now" "v1,$(head -c 32 /dev/urandom | base64)" "$body")"
  [[ "$refused" == 40[01] ]] || fail "the $name example answered $refused to a forged signature"
  wait_for "$log" "$pid" '^refused' || fail "the $name example did not log the refusal"
  ! grep -q "webhook-id=forged-" "$log" || fail "the $name example accepted a forged signature"

  status="$(post "$url" "$delivery" "$now" "$(sign "$secret" "$delivery" "$now" "$body")" "$body")"
  [[ "$status" == 2?? ]] || fail "the $name example answered $status to a retry of $delivery"
  wait_for "$log" "$pid" "^duplicate webhook-id=$delivery type=$type " \
    || fail "the $name example did not take the retry of $delivery for a duplicate"
  [ "$(grep -c "^verified webhook-id=$delivery " "$log")" = 1 ] && [ "$(grep -c "^processed webhook-id=$delivery " "$log")" = 1 ] \
    || fail "the $name example verified or worked on $delivery more than once"

  kill "$pid"
  current_log=""
  echo "examples/run.sh: $name: verified and worked on echo $delivery once, refused a forged signature ($refused), took a retry for a duplicate ($status)"
}

prove python 5 "$venv/bin/python" examples/python-receiver/receiver.py
prove node 6 env NODE_PATH="$node_modules" node examples/node-receiver/server.js
prove rust 7 "$rust_receiver"
echo "examples/run.sh: the Python, Node.js and Rust receivers each verified a signed echo, answered 2xx, refused a forged signature and deduplicated a retry"
