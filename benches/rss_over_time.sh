#!/usr/bin/env bash
# Runs one benchmark script with the release `weir` binary and samples its
# resident memory every INTERVAL seconds, to show whether state stays flat
# as the input grows.
#
#   benches/rss_over_time.sh [BENCH] [ROWS] [INTERVAL]   e.g. benches/rss_over_time.sh interval_join_datagen 100000000 5
#
# Scripts may use BENCH_ROWS and BENCH_TENTH (ROWS / 10); build first
# (cargo build --release -p weir).
set -euo pipefail
cd "$(dirname "$0")/.."
bench="${1:-interval_join_datagen}"
rows="${2:-100000000}"
interval="${3:-5}"
weir="${CARGO_TARGET_DIR:-target}/release/weir"
script="$(mktemp --suffix=.sql)"
trap 'rm -f "$script"' EXIT
sed -e "s#BENCH_ROWS#$rows#g" -e "s#BENCH_TENTH#$(( rows / 10 ))#g" "benches/sql/$bench.sql" > "$script"
start=$(date +%s.%N)
"$weir" run "$script" > /dev/null &
pid=$!
echo "seconds  rss_mb"
while kill -0 "$pid" 2>/dev/null; do
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  now=$(date +%s.%N)
  printf '%7.0f  %6d\n' "$(echo "$now - $start" | bc)" "$(( ${rss_kb:-0} / 1024 ))"
  sleep "$interval"
done
wait "$pid"
printf 'done in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
