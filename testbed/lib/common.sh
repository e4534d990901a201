# shellcheck shell=bash
# Shared helpers: logging, root check, PID-file process control, waits with timeouts.

TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=testbed/lib/config.sh
source "$TESTBED_DIR/lib/config.sh"

log() { printf '[testbed %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (network and mount namespaces, bridges, iptables, cgroups)"
}

node_known() {
  local n
  for n in "${NODES[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

pid_file() { echo "$TB/pids/$1.pid"; }

# Prints the PID recorded for NAME if that process is still alive.
running_pid() {
  local f pid
  f=$(pid_file "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# start_daemon NAME CMD... — runs CMD in its own session, logs to $TB/logs/NAME.log, records its PID.
# setsid and nsenter exec without forking, so the PID file holds the daemon's own PID.
start_daemon() {
  local name=$1; shift
  mkdir -p "$TB/pids" "$TB/logs"
  if running_pid "$name" >/dev/null; then
    log "$name already running"
    return 0
  fi
  setsid "$@" </dev/null >>"$TB/logs/$name.log" 2>&1 &
  echo $! >"$(pid_file "$name")"
}

# stop_daemons NAME... — SIGTERM to all at once, up to 10 s grace, then SIGKILL; only ever the PIDs we
# recorded. Stopping in parallel keeps `down` short: each daemon takes a second or two to exit.
stop_daemons() {
  local name pid pids=()
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  for name in "$@"; do rm -f "$(pid_file "$name")"; done
}

stop_daemon() { stop_daemons "$1"; }

show_log_tail() {
  local f="$TB/logs/$1.log"
  [ -f "$f" ] || return 0
  printf -- '--- last lines of %s ---\n' "$f" >&2
  tail -n 25 "$f" >&2
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMPONENT CMD... — polls CMD every 0.2 s; on timeout prints
# COMPONENT's log tail and fails.
wait_for() {
  local what=$1 timeout=$2 component=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      [ -n "$component" ] && show_log_tail "$component"
      return 1
    fi
    if [ -n "$component" ] && [ -f "$(pid_file "$component")" ] && ! running_pid "$component" >/dev/null; then
      log "$component exited while waiting for $what"
      show_log_tail "$component"
      return 1
    fi
    sleep 0.2
  done
}

kubectl_tb() { "$RUN_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# Runs CMD inside NODE's network, mount and UTS namespaces (never `ip netns exec`: it remounts /sys
# and gives each process a private mount namespace, hiding kubelet's volume mounts from containerd).
in_node() {
  local node=$1; shift
  nsenter --mount="$TB/ns/$node.mnt" --uts="$TB/ns/$node.uts" --net="/run/netns/tb-$node" -- "$@"
}
