#!/usr/bin/env bash
# Checks what SREs load into Prometheus and Grafana, and, given URLs, what
# the services export:
#
#   deploy/promtool.sh          the rules (promtool check rules), their unit
#                               tests (promtool test rules), the dashboard
#   deploy/promtool.sh URL...   the same, then `promtool check metrics` on
#                               each URL (a service's /metrics)
#
# The dashboard must be JSON whose queries parse (promtool reads them as
# recording rules) and name only metrics listed in docs/operations.md's
# metrics table (histograms with _bucket, _sum, _count) or `up`; the rules
# too. Every alert needs summary, description and a runbook pointing at a
# section of docs/operations.md, and unit tests where it fires and where it
# stays silent.
#
# promtool comes from Debian's prometheus package, installed when missing
# (deploy/lib.sh); PyYAML from PyPI into the project's virtualenv. Exits
# non-zero on any problem, saying which.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

RULES=deploy/prometheus/alerts.yml
TESTS=deploy/prometheus/alerts.test.yml
DASHBOARD=deploy/grafana/partner-callbacks.json
METRICS_DOC=docs/operations.md

fail() { echo "promtool.sh: $*" >&2; exit 1; }

ensure_promtool
venv="$(project_venv PyYAML==6.0.3)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "==> promtool check rules $RULES"
promtool check rules "$RULES" || fail "$RULES: promtool check rules found the problems above"

echo "==> promtool test rules $TESTS"
promtool test rules "$TESTS" || fail "$TESTS: the unit tests above failed"

echo "==> $DASHBOARD: JSON, queries, metric names; every alert documented and tested"
python3 -m json.tool "$DASHBOARD" >/dev/null || fail "$DASHBOARD is not valid JSON"
"$venv/bin/python" - "$DASHBOARD" "$RULES" "$TESTS" "$METRICS_DOC" "$scratch/queries.yml" <<'PY' \
  || fail "the dashboard or the rules do not match the metrics, the docs or the tests (above)"
import json, re, sys
import yaml

dashboard_file, rules_file, tests_file, doc_file, queries_file = sys.argv[1:]
doc = open(doc_file).read()
problems = []

# The metrics the services export: the first column of the table under
# "## Metrics", `name{labels}`; a histogram is read as its three series.
known = {"up"}
section = doc.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
for row in re.findall(r"^\| `([a-z_:][a-z0-9_:]*)[^|]*\| *(\w+) *\|", section, re.M):
    name, kind = row
    known.add(name)
    if kind == "histogram":
        known.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
if len(known) < 10:
    problems.append(f"{doc_file}: found only {sorted(known)} in the metrics table")

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}

def metric_names(expr):
    """The metric names an expression selects (a small PromQL reader)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                     # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                    # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)                   # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", expr):
        word, call = match.groups()
        if call or word.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names

def check_names(where, expr):
    for name in sorted(metric_names(expr) - known):
        problems.append(f"{where}: {name} is not in {doc_file}'s metrics table")

# The dashboard: every query's metrics; every query written out as a
# recording rule, for promtool to parse.
dashboard = json.load(open(dashboard_file))
if dashboard.get("templating", {}).get("list", [{}])[0].get("type") != "datasource":
    problems.append(f"{dashboard_file}: the first template variable should be the Prometheus datasource")
queries = []
def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))
for panel in panels(dashboard["panels"]):
    for target in panel.get("targets", []):
        where = f"{dashboard_file}: panel '{panel.get('title')}' query {target.get('refId')}"
        check_names(where, target["expr"])
        if target.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: its datasource is not ${{datasource}}")
        expr = re.sub(r"\$__(rate_)?interval|\$__range", "5m", target["expr"])
        queries.append({"record": f"dashboard:query_{len(queries)}", "expr": expr})
if not queries:
    problems.append(f"{dashboard_file}: no queries")
with open(queries_file, "w") as out:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}, out)

# The rules: metrics, annotations, a runbook section that exists.
anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.*)$", doc, re.M)}
alerts = set()
for group in yaml.safe_load(open(rules_file))["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert") or rule.get("record")
        alerts.add(name)
        check_names(f"{rules_file}: {name}", rule["expr"])
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            if not annotations.get(key):
                problems.append(f"{rules_file}: {name} has no {key} annotation")
        runbook = annotations.get("runbook", "")
        page, _, anchor = runbook.partition("#")
        if runbook and (page != doc_file or anchor not in anchors):
            problems.append(f"{rules_file}: {name}'s runbook {runbook} is not a section of {doc_file}")

# The tests: each alert fires in one and stays silent in another.
fires, silent = set(), set()
for test in yaml.safe_load(open(tests_file))["tests"]:
    for case in test.get("alert_rule_test", []):
        (fires if case.get("exp_alerts") else silent).add(case["alertname"])
for name in sorted(alerts):
    if name not in fires:
        problems.append(f"{tests_file}: no test where {name} fires")
    if name not in silent:
        problems.append(f"{tests_file}: no test where {name} stays silent")

for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
promtool check rules "$scratch/queries.yml" >"$scratch/queries.out" 2>&1 \
  || { cat "$scratch/queries.out" >&2; fail "$DASHBOARD: a query does not parse (above; dashboard:query_N is the Nth query)"; }

# What the running services export.
bad=()
for url in "$@"; do
  echo "==> promtool check metrics $url"
  curl -fsS --max-time 10 "$url" >"$scratch/metrics" || fail "cannot read $url"
  if ! promtool check metrics <"$scratch/metrics" >"$scratch/lint" 2>&1 || [ -s "$scratch/lint" ]; then
    sed "s|^|  $url: |" "$scratch/lint" >&2
    bad+=("$url")
  fi
done
[ "${#bad[@]}" -eq 0 ] || fail "promtool check metrics found problems in ${bad[*]} (above)"
echo "promtool.sh: the rules pass their checks and tests, the dashboard's queries parse and name known metrics${1:+, and every /metrics passes promtool check metrics}"
