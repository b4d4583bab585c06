#!/usr/bin/env bash
# Runs schemathesis (pinned, from PyPI) against a running gateway: every
# partner route with a real partner key, then every operator route with the
# admin key, each with every check (schemathesis's default: server errors,
# status codes and bodies the document does not list, schema-valid requests
# refused, schema-invalid ones accepted), less what deploy/schemathesis.toml
# turns off for one operation, with its reason. Exits non-zero on any
# failure.
#
#   deploy/schemathesis.sh <gateway URL> <partner id> <partner key> <admin key>
#
# The seed is fixed so that a failure found in CI reproduces; set
# SCHEMATHESIS_SEED (or SCHEMATHESIS_EXAMPLES) to explore further.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

gateway="$1" partner="$2" key="$3" admin_key="$4"
venv="$(project_venv schemathesis==4.32.5)"
export PARTNER="$partner"
run() { # header value, schemathesis filter...
  local authorization=$1
  shift
  "$venv/bin/schemathesis" --config-file deploy/schemathesis.toml run "$gateway/openapi.json" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color -H "Authorization: Bearer $authorization" "$@"
}
run "$key" --exclude-tag operators
run "$admin_key" --include-tag operators
