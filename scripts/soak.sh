#!/usr/bin/env bash
# Soak: N healthy runs of one scenario back to back against the testbed. Counts runs that failed (exit 1)
# or could not run (exit 2), prints every non-passing result, and counts netcheck namespaces left behind
# after each run. Exits 1 when any run did not pass or left something behind.
#   scripts/soak.sh [RUNS] [SCENARIO]     (default: 50 quick)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-50}
scenario=${2:-quick}
netcheck=${NETCHECK_BIN:-$root/target/release/netcheck}
export KUBECONFIG=${KUBECONFIG:-/var/lib/netcheck-testbed/kubeconfig}
kubectl=${KUBECTL:-/var/lib/netcheck-testbed/bin/kubectl}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/soak.sh [RUNS] [SCENARIO]" >&2; exit 2; }
[ -x "$netcheck" ] || { echo "no netcheck at $netcheck (make netcheck)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Namespaces that were there before, and ones still terminating, are not this soak's leftovers.
live_netcheck_namespaces() {
  "$kubectl" get namespaces -l app.kubernetes.io/managed-by=netcheck \
    -o jsonpath='{range .items[?(@.status.phase=="Active")]}{.metadata.name}{"\n"}{end}' | sort
}
before=$(live_netcheck_namespaces)
passed=0 failed=0 errors=0 leftovers=0 start=$SECONDS
for i in $(seq 1 "$runs"); do
  code=0
  t0=$SECONDS
  "$netcheck" run --scenario "$scenario" -o json >"$out/$i.json" 2>"$out/$i.err" || code=$?
  case "$code" in
    0) passed=$((passed + 1)) ;;
    1) failed=$((failed + 1)) ;;
    *) errors=$((errors + 1)) ;;
  esac
  left=$(comm -13 <(echo "$before") <(live_netcheck_namespaces) | grep -c . || true)
  leftovers=$((leftovers + left))
  printf 'run %3d: exit %d in %3d s, %d namespace(s) left\n' "$i" "$code" "$((SECONDS - t0))" "$left"
  if [ "$code" != 0 ]; then
    python3 - "$out/$i.json" <<'PY' || tail -n 3 "$out/$i.err"
import json, sys
report = json.load(open(sys.argv[1]))
for r in report["results"]:
    if r["status"] != "pass" and r["status"] != "skip":
        s = r["subject"]
        print(f'    {r["status"]}: {r["check"]} from {s.get("sourceNode", "-")}: {r["message"]}')
PY
  fi
done
echo "soak: $runs × $scenario in $((SECONDS - start)) s: $passed passed, $failed failed, $errors could not run, $leftovers namespace(s) left"
[ "$passed" -eq "$runs" ] && [ "$leftovers" -eq 0 ]
