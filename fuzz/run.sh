#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time with coverage-guided libFuzzer,
# on the stable toolchain (see build.sh and README.md). A crash, panic, failed invariant, leak,
# timeout or out-of-memory fails the run and its reproducer's path is printed.
#
#   fuzz/run.sh                      every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=60 fuzz/run.sh jwt  one target for a minute
#   FUZZ_RUNS=10000000 fuzz/run.sh h1_head   a fixed number of executions instead of a time
#   FUZZ_PROFILE=fuzz-ci fuzz/run.sh         the build CI uses (quicker to build, slower to run)
#
# New inputs go to fuzz/target/corpus/<target> (not the committed seeds in fuzz/corpus/<target>,
# which are read only); reproducers to fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < targets.txt; fi
./build.sh "${targets[@]}" || { echo "fuzz: build failed"; exit 1; }
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="target/$triple/${FUZZ_PROFILE:-fuzz}"
seconds="${FUZZ_SECONDS:-20}"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  args=(-artifact_prefix="artifacts/$t/" -max_len=65536 -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1)
  if [ -n "${FUZZ_RUNS:-}" ]; then args+=(-runs="$FUZZ_RUNS"); else args+=(-max_total_time="$seconds"); fi
  [ -f "dict/$t.dict" ] && args+=(-dict="dict/$t.dict")
  echo "== fuzz $t (${FUZZ_RUNS:+$FUZZ_RUNS runs}${FUZZ_RUNS:-$seconds s})"
  log="target/fuzz-$t.log"
  "$bin_dir/$t" "${args[@]}" "target/corpus/$t" "corpus/$t" </dev/null >"$log" 2>&1
  rc=$?
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|#[0-9]+ +DONE)' "$log" | tr '\n' ' '
  echo
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "!! fuzz $t FAILED (exit $rc); from $PWD/$log:"
    grep -m 3 -A 2 -E 'panicked at|ERROR: libFuzzer' "$log"
    tail -n 12 "$log"
    for a in "artifacts/$t"/*; do
      [ -f "$a" ] && echo "!! reproducer: fuzz/$a  (replay: fuzz/$bin_dir/$t fuzz/$a)"
    done
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran without a crash"
