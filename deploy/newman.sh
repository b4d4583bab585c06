#!/usr/bin/env bash
# Runs the Postman collection (deploy/postman) with newman against a running
# gateway: every route of the OpenAPI document in an order that works top to
# bottom, the echo rule's 400s, 401s with a bad key, and, given the admin
# key, the operators' routes. First checks that the committed collection is
# exactly what deploy/postman/generate.mjs makes of the gateway's
# /openapi.json, so that it cannot drift from the document.
#
#   deploy/newman.sh <gateway URL> <partner id> <partner key> [admin key]
#
# The partner's callback for type 7 is registered (to
# http://127.0.0.1:9/hook, which the local stack lets callbacks use),
# exercised and deleted; its payloads are erased. Without the admin key the
# operators' folder is left out. newman and openapi-to-postmanv2 come from
# the npm registry, pinned with their dependencies by
# deploy/postman/package-lock.json, installed with `npm ci` into the
# project's cache. Exits non-zero on any failure or difference.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  sed -n '2,17p' "$0" >&2
  exit 2
fi
gateway="${1%/}" partner="$2" key="$3" admin_key="${4:-}"
POSTMAN=deploy/postman
COLLECTION="$POSTMAN/partner-callbacks.postman_collection.json"
ENVIRONMENT="$POSTMAN/local.postman_environment.json"

fail() { echo "newman.sh: $*" >&2; exit 1; }

# The packages of deploy/postman/package-lock.json, every version pinned,
# installed once per lock file into the cache; prints their node_modules.
postman_modules() {
  local dir="${PARTNER_CALLBACKS_CACHE:-$HOME/.cache/partner-callbacks}/postman"
  if ! command -v npm >/dev/null; then
    if can_apt_install; then apt_install nodejs npm; else fail "Node.js with npm is needed for newman"; fi
  fi
  mkdir -p "$dir"
  (
    flock 9
    if ! cmp -s "$POSTMAN/package-lock.json" "$dir/package-lock.json" || [ ! -d "$dir/node_modules/newman" ]; then
      echo "==> installing newman and openapi-to-postmanv2 (deploy/postman/package-lock.json) into $dir" >&2
      cp "$POSTMAN/package.json" "$POSTMAN/package-lock.json" "$dir/"
      (cd "$dir" && npm ci --no-audit --no-fund --silent) >&2
    fi
  ) 9>"$dir.lock"
  echo "$dir/node_modules"
}

modules="$(postman_modules)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "==> the committed collection against a fresh generation from $gateway/openapi.json"
PARTNER_CALLBACKS_POSTMAN_MODULES="$modules" node "$POSTMAN/generate.mjs" "$gateway/openapi.json" "$scratch/fresh.json" \
  || fail "could not generate the collection from $gateway/openapi.json"
if ! cmp -s "$COLLECTION" "$scratch/fresh.json"; then
  diff -u "$COLLECTION" "$scratch/fresh.json" | head -60 >&2 || true
  fail "$COLLECTION is not what generate.mjs makes of the gateway's OpenAPI document (the start of the difference is above); regenerate it: PARTNER_CALLBACKS_POSTMAN_MODULES=$modules node $POSTMAN/generate.mjs $gateway/openapi.json"
fi

folders=()
while IFS= read -r folder; do
  case "$folder" in
    8*) [ -n "$admin_key" ] && folders+=(--folder "$folder") ;;
    *) folders+=(--folder "$folder") ;;
  esac
done < <(node -e 'for (const f of require(process.argv[1]).item) console.log(f.name)' "$PWD/$COLLECTION")
[ -n "$admin_key" ] || echo "==> no admin key: leaving out the operators' folder"

echo "==> newman run $COLLECTION against $gateway"
color=off
[ -t 1 ] && color=on
status=0
"$modules/.bin/newman" run "$COLLECTION" --environment "$ENVIRONMENT" \
  --env-var "baseUrl=$gateway" --env-var "partnerId=$partner" --env-var "apiKey=$key" \
  --env-var "adminKey=$admin_key" "${folders[@]}" \
  --timeout-request 30000 --color "$color" \
  --reporters cli,json --reporter-json-export "$scratch/report.json" || status=$?

[ -f "$scratch/report.json" ] || fail "newman exited with $status and wrote no report"
summary="$(node -e '
  const run = require(process.argv[1]).run;
  const s = run.stats;
  const items = run.executions.filter((e) => e.item && e.request).map((e) => e.item.id);
  console.log(`newman: ${new Set(items).size} requests of the collection (${s.requests.total} sent, ${s.requests.failed} failed), ` +
    `${s.assertions.total} assertions (${s.assertions.failed} failed), ${run.failures.length} failures`);
  for (const f of run.failures.slice(0, 10)) console.log(`  - ${f.source && f.source.name}: ${f.error.test || f.error.name}: ${f.error.message}`);
  if (run.failures.length > 10) console.log(`  … and ${run.failures.length - 10} more (above)`);
' "$scratch/report.json")"
echo "$summary"
[ "$status" = 0 ] || fail "newman found failures (above)"
grep -q ', 0 failures$' <<<"$(head -1 <<<"$summary")" || fail "newman reported failures (above)"
