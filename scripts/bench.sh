#!/usr/bin/env bash
# Benchmark: runs `netcheck run --scenario SCENARIO` (default quick) against the testbed RUNS times (default 3)
# and prints wall time per phase; then the NodePort matrix with 1 and 2 target nodes, the DNS and readiness
# figures, the LoadBalancer figures (provisionMs, each node's health-check agreement, the source-range changes)
# and the time per check of one `full` run, the wall time of `netcheck diagnose`, the agent image size and the agents' memory
# (RSS). Prints figures; asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${NETCHECK_TESTBED_STATE:-/var/lib/netcheck-testbed}
export KUBECONFIG=${KUBECONFIG:-$state/kubeconfig}
netcheck=${NETCHECK_BIN:-$root/target/release/netcheck}
runs=${RUNS:-3}
scenario=${SCENARIO:-quick}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

printf '%-4s %8s %8s %8s %8s %8s %8s %8s  %s\n' run connect deploy ready settle probe cleanup total result
for i in $(seq 1 "$runs"); do
  start=$(date +%s%N)
  code=0
  "$netcheck" run --scenario "$scenario" -o json >"$out/$i.json" 2>/dev/null || code=$?
  wall=$(( ($(date +%s%N) - start) / 1000000 ))
  python3 - "$out/$i.json" "$i" "$wall" "$code" <<'PY'
import json, sys
path, run, wall, code = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
try:
    report = json.load(open(path))
except Exception:
    print(f"{run:<4} netcheck could not run (exit {code})")
    sys.exit(0)
phases = {p["name"]: p["millis"] for p in report["phases"]}
s = report["summary"]
cols = [phases.get(n, 0) / 1000 for n in ("connect", "deploy", "ready", "settle", "probe", "cleanup")]
print(f"{run:<4} " + " ".join(f"{c:7.2f}s" for c in cols) + f" {wall/1000:7.2f}s  {s['pass']} pass, {s['fail']} fail (exit {code})")
PY
done

# The NodePort matrix is probed all at once: its probe time should not grow with the number of targets.
for n in 1 2; do
  cat >"$out/np$n.yaml" <<YAML
apiVersion: netcheck.dev/v1
kind: Scenario
metadata: {name: nodeport-$n}
spec:
  checks:
    - id: nodeport/every-node
      params: {targetNodes: $n}
YAML
  "$netcheck" run --scenario "$out/np$n.yaml" -o json 2>/dev/null >"$out/np$n.json" || true
  python3 - "$out/np$n.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
probe = {p["name"]: p["millis"] for p in r["phases"]}["probe"]
cells = [x for x in r["results"] if x["check"] == "nodeport/every-node"]
print(f"nodeport/every-node with {sys.argv[2]} target node(s): {len(cells)} cells, probe phase {probe} ms")
PY
done

# DNS and readiness figures from one full run.
"$netcheck" run --scenario full -o json 2>/dev/null >"$out/full.json" || true
python3 - "$out/full.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("full scenario: " + ", ".join(f"{p['name']} {p['millis']} ms" for p in r["phases"]) + f"; {r['summary']}")
print("full scenario, time per check: " + ", ".join(f"{t['check']} {t['durationMs']} ms" for t in r.get("checkTimes", [])))
for x in r["results"]:
    m, c, node = x["measurements"], x["check"], x["subject"].get("sourceNode", "")
    if c == "dns/service-a" and "newServiceMs" in m:
        print(f"dns/service-a from {node}: p50 {m['p50Ms']} ms, new Service answered after {m['newServiceMs']} ms")
    if c.startswith("endpoints/readiness"):
        figures = ", ".join(f"{k} {m.get(k)}" for k in ("apiMs", "dataPlaneMs", "dnsMs", "failedRequests"))
        print(f"{c} from {node}: {figures} ({x['status']})")
    if c == "endpoints/rollout":
        figures = ", ".join(f"{k} {m.get(k)}" for k in ("rolloutMs", "requests", "failedRequests", "longestGapMs"))
        print(f"{c} from {node}: {figures} ({x['status']})")
    if c.startswith("loadbalancer/") and m:
        where = x["subject"].get("targetNode") or node or x["subject"].get("name", "")
        figures = ", ".join(f"{k} {v}" for k, v in sorted(m.items()))
        print(f"{c} {where}: {figures} ({x['status']})")
PY

# diagnose on the API server's own Service: every active step (pod IP, ClusterIP, DNS) from every node.
for i in 1 2 3; do
  start=$(date +%s%N)
  code=0
  "$netcheck" diagnose service/kubernetes -n default -o json >"$out/diagnose.json" 2>/dev/null || code=$?
  echo "diagnose service/kubernetes run $i: $(( ($(date +%s%N) - start) / 1000000 )) ms wall (exit $code)"
done

image=$root/target/netcheck-agent.tar
[ -f "$image" ] && stat -c %s "$image" | awk '{printf "agent image: %d bytes (%.1f MB)\n", $1, $1 / 1e6}'
[ -f "$image" ] && echo "agent image gzipped: $(gzip -c "$image" | wc -c) bytes"

# Agent memory: keep one run's namespace, read the agents' RSS from their cgroups on the testbed.
if [ -d /sys/fs/cgroup/memory ]; then
  ns=$("$netcheck" run --scenario "$scenario" --keep -o json 2>/dev/null | python3 -c 'import json,sys; print("netcheck-" + json.load(sys.stdin)["runId"])')
  kubectl=/var/lib/netcheck-testbed/bin/kubectl
  for uid in $("$kubectl" -n "$ns" get pods -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}'); do
    for pid in $(find /sys/fs/cgroup/memory -path "*pod${uid}*" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = netcheck-agent ] || continue
      awk -v uid="$uid" '$1=="VmRSS:"{printf "agent pod %s: RSS %.1f MiB\n", substr(uid,1,8), $2/1024}' "/proc/$pid/status"
    done
  done
  "$kubectl" delete namespace "$ns" --wait=false >/dev/null
fi
