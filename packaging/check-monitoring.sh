#!/usr/bin/env bash
# Checks the monitoring files with promtool (Debian's `prometheus` package): the alert rules
# parse and pass their unit tests (each alert fires on one synthetic series and stays silent on
# another), and every query of the Grafana dashboard is valid PromQL. That the names in both are
# metrics hookd exports is checked by crates/hookd-cli/tests/monitoring.rs.
set -euo pipefail
cd "$(dirname "$0")"

promtool check rules prometheus/hookd-alerts.yml
(cd prometheus && promtool test rules hookd-alerts.test.yml)

# promtool has no "check this expression" command, but it parses every rule of a rule file:
# the dashboard's queries, with Grafana's variables given plain values, become recording rules.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - grafana/hookd-dashboard.json "$work/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, expr in enumerate(exprs):
        expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(expr)}\n")
print(f"{len(exprs)} dashboard queries")
PY
promtool check rules "$work/dashboard-rules.yml"
