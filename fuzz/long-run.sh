#!/usr/bin/env bash
# The long run of issue 12: every target (or the ones named) for FUZZ_RUNS executions (default
# 10 million), one at a time, at low priority, slowest first. Appends one row per target to
# fuzz/target/long-run/summary.md (the README's table) and keeps each log beside it.
#
#   nohup nice -n 10 fuzz/long-run.sh > fuzz/target/long-run/driver.log 2>&1 &
#   FUZZ_PROFILE=fuzz-ci fuzz/long-run.sh jwt cookie   # chosen targets, CI's build
# Several drivers with disjoint targets may run at once (one per core): each appends its rows.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
runs="${FUZZ_RUNS:-10000000}"
if [ "$#" -gt 0 ]; then targets=("$@"); else
  # Fastest first (measured exec/s): on a shared machine most rows finish early, and the slow
  # ones (tens of minutes to hours) run last.
  targets=(history_record h1_head chunked forwarded_chain login_form cookie proxy_protocol
           jwt employees_toml employees_csv config_toml)
fi
./build.sh "${targets[@]}" || exit 1
triple="$(rustc -vV | sed -n 's/^host: //p')"
out="target/long-run"
mkdir -p "$out"
machine="$(nproc) cores shared, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), rustc $(rustc -V | cut -d' ' -f2)"
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  dict=(); [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  cmd="target/$triple/${FUZZ_PROFILE:-fuzz}/$t -runs=$runs -max_len=65536 -timeout=10 -rss_limit_mb=2048 -artifact_prefix=artifacts/$t/ ${dict[*]} target/corpus/$t corpus/$t"
  start=$(date +%s)
  echo "== $t: $cmd (started $(date -u +%FT%TZ))"
  # shellcheck disable=SC2086
  $cmd -print_final_stats=1 </dev/null >"$out/$t.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$t.log")
  corpus=$(grep -oE 'corp: [0-9]+/[0-9a-zA-Z]+' "$out/$t.log" | tail -n 1 | cut -d' ' -f2)
  cov=$(grep -oE 'cov: [0-9]+' "$out/$t.log" | tail -n 1 | cut -d' ' -f2)
  crashes=$(ls "artifacts/$t" | wc -l)
  echo "| $t | ${execs:-?} | ${rate:-?} | ${secs} s | $crashes (exit $rc) | ${corpus:-?} | ${cov:-?} | \`cd fuzz && $cmd\` | $(date -u +%F) | $machine |" >> "$out/summary.md"
  tail -n 1 "$out/summary.md"
done
