#!/usr/bin/env bash
# Drives the partner portal in headless Chromium (Debian's) with
# playwright-core (pinned, from npm) against a running gateway: sign in,
# register a callback, a refused URL explained, an echo that reaches a
# local receiver with its attempt shown, pause and resume, a secret
# rotated, deliveries browsed and one redelivered, partner B seeing
# nothing of A's, the API reference, keyboard sign-in, a phone-sized
# screen, and axe-core's WCAG 2 A/AA rules on the main pages. Screenshots of the main pages go to $SCREENSHOTS (default
# target/screenshots). Exits non-zero on any failure.
#
#   deploy/browser.sh <gateway URL> <admin key>
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

gateway="$1" admin_key="$2"
chromium="$(ensure_chromium)"
modules="$(project_node playwright-core@1.65.2 axe-core@4.14.1)"
export SCREENSHOTS="${SCREENSHOTS:-$PWD/target/screenshots}"
mkdir -p "$SCREENSHOTS"
NODE_PATH="$modules" CHROMIUM="$chromium" GATEWAY="$gateway" ADMIN_KEY="$admin_key" \
  node deploy/browser/portal.cjs
