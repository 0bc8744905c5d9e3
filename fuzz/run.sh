#!/usr/bin/env bash
# Runs fuzz targets one after another for SECONDS each (default 600),
# seeding each corpus from the test fixtures first. Without arguments, all
# targets. Logs go to fuzz/logs/TARGET.log; a crash or hang leaves its
# input in fuzz/artifacts/TARGET/ and the run goes on with the next target.
#
#   fuzz/run.sh [-t SECONDS] [TARGET...]
#
# Uses stable Rust without a sanitizer (`-s none`): our code forbids
# `unsafe`, and what libFuzzer finds without ASan (panics, overflows in our
# crate, hangs, memory blow-ups, stack overflows) is what a hostile upload
# could do here. `-O`: see the profile notes in Cargo.toml.
set -uo pipefail
cd "$(dirname "$0")"
seconds=600
if [ "${1:-}" = "-t" ]; then seconds=$2; shift 2; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sniff mp4 mkv audio pdf image render)
python3 seeds.py "${targets[@]}" >/dev/null
cargo fuzz build -O -s none >/dev/null 2>&1 || { cargo fuzz build -O -s none; exit 1; }
mkdir -p logs
status=0
for t in "${targets[@]}"; do
  start=$SECONDS
  cargo fuzz run -O -s none "$t" -- -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=3072 -print_final_stats=1 >"logs/$t.log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    echo "$t: clean, ${runs:-?} executions in $((SECONDS - start)) s"
  else
    echo "$t: FOUND an input (fuzz/artifacts/$t/) after ${runs:-?} executions, $((SECONDS - start)) s"
    status=1
  fi
done
exit $status
