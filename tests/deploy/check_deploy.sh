#!/usr/bin/env bash
# The operations files: Prometheus alert rules checked and unit-tested with
# promtool, the Grafana dashboard parsed and each of its queries checked to
# name only metrics conveyor exports (the README's metric table).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
promtool=${PROMTOOL:-promtool}
command -v "$promtool" >/dev/null || { echo "promtool not found (scripts/setup.sh installs it)"; exit 1; }
cd "$root/deploy/prometheus"
"$promtool" check rules alerts.yml
"$promtool" test rules alerts_test.yml
python3 - "$root" <<'PY'
import json, re, sys
root = sys.argv[1]
d = json.load(open(f"{root}/deploy/grafana/conveyor.json"))
readme = open(f"{root}/README.md").read()
documented = set(re.findall(r"^\| `(conveyor_[a-z_]+)` \|", readme, re.M))
assert documented, "README lists no metrics"
bad = []
for p in d["panels"]:
    for t in p.get("targets", []):
        for m in re.findall(r"conveyor_[a-z_]+", t["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            if m not in documented and base not in documented:
                bad.append((p["title"], m))
for f in ["alerts.yml"]:
    for m in re.findall(r"conveyor_[a-z_]+", open(f"{root}/deploy/prometheus/{f}").read()):
        if m not in documented:
            bad.append((f, m))
if bad:
    sys.exit(f"metrics not in the README's table: {bad}")
print(f"dashboard: {len(d['panels'])} panels, every metric documented")
PY
