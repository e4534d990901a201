#!/usr/bin/env bash
# Benchmark: runs `netcheck run --scenario quick` against the testbed RUNS times (default 3) and prints
# wall time per phase, the agent image size and the agents' memory (RSS). Prints figures; asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${NETCHECK_TESTBED_STATE:-/var/lib/netcheck-testbed}
export KUBECONFIG=${KUBECONFIG:-$state/kubeconfig}
netcheck=${NETCHECK_BIN:-$root/target/release/netcheck}
runs=${RUNS:-3}
scenario=${SCENARIO:-quick}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

printf '%-4s %8s %8s %8s %8s %8s %8s  %s\n' run connect deploy ready probe cleanup total result
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
cols = [phases.get(n, 0) / 1000 for n in ("connect", "deploy", "ready", "probe", "cleanup")]
print(f"{run:<4} " + " ".join(f"{c:7.2f}s" for c in cols) + f" {wall/1000:7.2f}s  {s['pass']} pass, {s['fail']} fail (exit {code})")
PY
done

image=$root/target/netcheck-agent.tar
[ -f "$image" ] && stat -c %s "$image" | awk '{printf "agent image: %d bytes (%.1f MB)\n", $1, $1 / 1e6}'

# Agent memory: keep one run's namespace, read the agents' RSS from their cgroups on the testbed.
if [ -d /sys/fs/cgroup/memory ]; then
  ns=$("$netcheck" run --scenario "$scenario" --keep -o json 2>/dev/null | python3 -c 'import json,sys; print("netcheck-" + json.load(sys.stdin)["runId"])')
  kubectl=$(find /var/cache/netcheck-testbed -path "*/bin/kubectl" | head -n 1)
  for uid in $("$kubectl" -n "$ns" get pods -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}'); do
    for pid in $(find /sys/fs/cgroup/memory -path "*pod${uid}*" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = netcheck ] || continue
      awk -v uid="$uid" '$1=="VmRSS:"{printf "agent pod %s: RSS %.1f MiB\n", substr(uid,1,8), $2/1024}' "/proc/$pid/status"
    done
  done
  "$kubectl" delete namespace "$ns" --wait=false >/dev/null
fi
