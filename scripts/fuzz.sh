#!/usr/bin/env bash
# Fuzzes what netcheck reads from others (cargo-fuzz, libFuzzer; needs the nightly toolchain and
# `cargo install cargo-fuzz`): every target at once for SECONDS of wall time (default 600). A target's
# body is netcheck::fuzzing::TARGET. Inputs start from fixtures/fuzz/TARGET and what the run finds
# grows target/fuzz-corpus/TARGET (untracked, so the next run here goes on from there). At the end the
# union is minimized by coverage back into fixtures/fuzz/TARGET, which `make unit` replays on stable.
# A crash stops its target and leaves the input in fuzz/artifacts/TARGET/: fix the code, then copy the
# input into fixtures/fuzz/TARGET so the replay keeps it fixed.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: protocol scenario dns diagnose
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(protocol scenario dns diagnose)

cd "$root/fuzz"
cargo +nightly fuzz build -O >/dev/null
mkdir -p "$root/target"

fuzz_one() {
  local target=$1 corpus="$root/target/fuzz-corpus/$1" kept="$root/fixtures/fuzz/$1" log="$root/target/fuzz-$1.log"
  local started=$SECONDS outcome status=0 merged
  mkdir -p "$corpus" "$kept"
  if cargo +nightly fuzz run -O "$target" "$corpus" "$kept" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    outcome="no crash"
  else
    outcome="CRASH (see fuzz/artifacts/$target and $log)"
    status=1
  fi
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  # Keep the smallest set of inputs with the same coverage; the hand-written seeds (named *.json or
  # *.yaml) stay as they are, and libFuzzer's copies of them (named by their SHA-1) are dropped.
  merged=$(mktemp -d)
  cargo +nightly fuzz run -O "$target" "$merged" "$corpus" "$kept" -- -merge=1 >>"$log" 2>&1
  find "$kept" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
  local seed
  for seed in "$kept"/*; do rm -f "$merged/$(sha1sum "$seed" | cut -d' ' -f1)"; done
  cp "$merged"/* "$kept"/ 2>/dev/null || true
  rm -rf "$merged"
  echo "fuzz $target: ${runs:-?} inputs in $((SECONDS - started)) s; $(find "$corpus" -type f | wc -l) in the working corpus, $(find "$kept" -type f | wc -l) kept in fixtures/fuzz/$target: $outcome"
  return "$status"
}

pids=()
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
