#!/usr/bin/env bash
# The cluster's figures (issue "Coordinator and workers"), with the release
# binary on this machine:
#  1. shuffle: benches/sql/shuffle.sql over ROWS Nexmark bids at parallelism 2,
#     embedded (one process) and on a coordinator with two one-slot workers
#     (half of the rows cross between the worker processes); median wall
#     time and rows/s over RUNS runs each.
#  2. submission: the time from `weir run --coordinator` starting to every
#     subtask of a job running on warm workers (the REST API reports RUNNING
#     once every worker has deployed its share), median over RUNS.
#
#   benches/cluster.sh [ROWS] [RUNS]       e.g. benches/cluster.sh 20000000 5
# SKIP_BUILD=1 reuses the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-20000000}"
runs="${2:-5}"
${SKIP_BUILD:+true} cargo build --release -p weir >&2
weir=$(realpath "${CARGO_TARGET_DIR:-target}/release/weir")
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$weir" coordinator --listen 127.0.0.1:0 --rest-listen 127.0.0.1:0 > "$work/coordinator.out" 2>/dev/null &
pids+=($!)
until grep -q listening "$work/coordinator.out" 2>/dev/null; do sleep 0.1; done
rpc=$(sed -E 's/.*listening on ([^ ]+) .*/\1/' "$work/coordinator.out")
rest=$(sed -E 's/.*http:\/\/([^)]+)\).*/\1/' "$work/coordinator.out")
for w in 1 2; do
  "$weir" worker --coordinator "$rpc" --slots 1 > "$work/worker$w.out" 2>/dev/null &
  pids+=($!)
done
until [ "$(curl -s "http://$rest/v1/workers" | grep -o '"id"' | wc -l)" = 2 ]; do sleep 0.1; done

sed -e "s#BENCH_ROWS#$rows#g" benches/sql/shuffle.sql > "$work/shuffle.sql"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for mode in embedded cluster; do
  : > "$work/$mode.times"
  for i in $(seq 1 "$runs"); do
    if [ "$mode" = embedded ]; then args=(run "$work/shuffle.sql"); else args=(run --coordinator "$rpc" "$work/shuffle.sql"); fi
    start=$(date +%s.%N)
    "$weir" "${args[@]}" > /dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l >> "$work/$mode.times"
    echo "$mode run $i: $(tail -1 "$work/$mode.times") s" >&2
  done
  secs=$(median < "$work/$mode.times")
  printf '%-9s %12s rows in %6.2f s (median of %s) = %5.2fM rows/s\n' "$mode" "$rows" "$secs" "$runs" "$(echo "$rows / $secs / 1000000" | bc -l)"
done

# Submission: an endless job, RUNNING as soon as every subtask is deployed.
cat > "$work/endless.sql" <<'SQL'
SET 'parallelism.default' = '2';
CREATE TABLE ticks (k BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '10');
CREATE TABLE sink (k BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT k, COUNT(*) FROM ticks GROUP BY k;
SQL
: > "$work/submit.times"
for i in $(seq 1 "$runs"); do
  start=$(date +%s%N)
  id=$("$weir" run --coordinator "$rpc" "$work/endless.sql" | sed -n 's/^Job ID: //p')
  until curl -s "http://$rest/v1/jobs/$id" | grep -q '"status":"RUNNING"'; do sleep 0.005; done
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 ))" >> "$work/submit.times"
  "$weir" jobs cancel --coordinator "$rpc" "$id" > /dev/null
done
printf 'submission to running: %s ms (median of %s; includes the client process start and planning)\n' "$(median < "$work/submit.times")" "$runs"
