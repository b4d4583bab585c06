#!/usr/bin/env bash
# Model-checks the delivery queue's protocol (queue.pml) with SPIN:
#
# - every property on the bounded configurations: 0 errors, every state
#   explored;
# - every mutation, each against the property it breaks, checked on its
#   own (-DONLY=n): SPIN must find a counterexample, so a model that
#   checks nothing cannot pass.
#
#   ./check.sh           # the bounded checks, as the test command runs them
#   ./check.sh --large   # the larger configurations (README.md: time, memory)
#
# Needs spin (Debian's package) and a C compiler.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here"/*.pml "$work/"
cd "$work"

failed=0
printf '%-28s %-10s %-44s %12s %8s\n' check property configuration states seconds

# run NAME PROPERTY EXPECT DEPTH FLAGS...: EXPECT is "pass" or the text of
# the assertion the counterexample must break.
run() {
  local name="$1" property="$2" expect="$3" depth="$4"
  shift 4
  spin -a "$@" queue.pml >/dev/null
  gcc -O2 -DSAFETY -DCOLLAPSE -DMEMLIM="${SPIN_MEMORY_MB:-8000}" -w -o pan pan.c
  local start end out states verdict
  start=$(date +%s.%N)
  out="$(./pan -m"$depth" 2>&1 || true)"
  end=$(date +%s.%N)
  states="$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' <<<"$out")"
  if [ "$expect" = pass ]; then
    if grep -q "errors: 0" <<<"$out" && ! grep -q "Search not completed\|max search depth too small\|out of memory" <<<"$out"; then
      verdict=ok
    else
      verdict=FAILED
    fi
  elif grep -q "assertion violated.*$expect" <<<"$out"; then
    verdict=caught
  else
    verdict=MISSED
  fi
  printf '%-28s %-10s %-44s %12s %8.1f  %s\n' "$name" "$property" "$*" "${states:-?}" \
    "$(awk "BEGIN { print $end - $start }")" "$verdict"
  case "$verdict" in
    ok | caught) ;;
    *)
      failed=1
      echo "$out" | tail -25
      [ -f queue.pml.trail ] && spin -t "$@" queue.pml | grep -E "^ *t=|assert" | sed 's/  */ /g' | tail -30
      ;;
  esac
  rm -f queue.pml.trail
}

if [ "${1:-}" = --large ]; then
  run "every property" all pass 1000000 -DTMAX=5
  run "every property, redelivery" all pass 1000000 -DTMAX=5 -DREDELIVERIES=1 -DCRASHES=0 -DDBCRASHES=0
else
  # The bounded configuration: 2 deliveries, 2 replicas, a replica crash,
  # a database crash, a retry and a release, time 0..4 (faults at 0..1).
  run "every property" all pass 1000000 -DTMAX=4
  # Redelivery, with the crashes left out to keep it small.
  run "every property, redelivery" all pass 1000000 -DTMAX=4 -DREDELIVERIES=1 -DCRASHES=0 -DDBCRASHES=0
  # Each mutation, searched to depth 40 (its counterexample is shorter).
  run MUT_NO_FENCE "P1" "finished\|version" 40 -DTMAX=4 -DONLY=1 -DMUT_NO_FENCE
  run MUT_KEEP_HANDOFF_TOKEN "P2" "owner" 40 -DTMAX=4 -DONLY=2 -DMUT_KEEP_HANDOFF_TOKEN
  run MUT_NO_CLAIMS_ROW_CHECK "P2" "owner" 40 -DTMAX=4 -DONLY=2 -DMUT_NO_CLAIMS_ROW_CHECK
  run MUT_NO_SWEEP "P3" "status" 40 -DTMAX=4 -DONLY=3 -DMUT_NO_SWEEP
  run MUT_SWEEP_TAKES_LIVE "P4" "unsettled" 40 -DTMAX=4 -DONLY=4 -DMUT_SWEEP_TAKES_LIVE
  run MUT_EARLY_BATCH_DELETE "P4" "unsettled" 40 -DTMAX=4 -DONLY=4 -DMUT_EARLY_BATCH_DELETE
fi

if [ "$failed" = 0 ]; then
  echo "model: every property holds; every mutation is caught"
else
  echo "model: FAILED (above: the output and the trail)" >&2
  exit 1
fi
