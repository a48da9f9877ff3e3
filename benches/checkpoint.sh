#!/usr/bin/env bash
# Checkpoint overhead: the same windowed Nexmark query (TUMBLE 10 s COUNT per
# auction over N bids at parallelism 2, into blackhole) without checkpoints
# and with a checkpoint every second to local disk; R alternating runs each,
# medians and their ratio.
#   benches/checkpoint.sh [EVENTS=20000000] [RUNS=3]     (SKIP_BUILD=1 to reuse target/release/weir)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-20000000}
RUNS=${2:-3}
if [ -z "${SKIP_BUILD:-}" ]; then
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p weir >&2
fi
WEIR=${CARGO_TARGET_DIR:-target}/release/weir
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
query() {
  cat <<SQL
SET 'parallelism.default' = '2';
$1
CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING, WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
  WITH ('connector' = 'nexmark', 'table' = 'bid', 'events.num' = '$EVENTS');
CREATE TABLE sink (auction BIGINT, bids BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT auction, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
  GROUP BY auction, window_start, window_end;
SQL
}
query "" > "$work/plain.sql"
query "SET 'execution.checkpointing.interval' = '1 s';
SET 'execution.checkpointing.dir' = '$work/chk';" > "$work/checkpointed.sql"
seconds() { local s; s=$(date +%s.%N); "$WEIR" run "$1" > /dev/null; echo "$(date +%s.%N) - $s" | bc; }
plain=(); checkpointed=()
for _ in $(seq "$RUNS"); do
  plain+=("$(seconds "$work/plain.sql")")
  checkpointed+=("$(seconds "$work/checkpointed.sql")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plain[@]}"); c=$(median "${checkpointed[@]}")
printf 'events: %s, runs: %s\n' "$EVENTS" "$RUNS"
printf 'no checkpoints:      %6.2f s  %5.2fM events/s   (runs: %s)\n' "$p" "$(echo "$EVENTS / $p / 1000000" | bc -l)" "${plain[*]}"
printf 'checkpoint every 1s: %6.2f s  %5.2fM events/s   (runs: %s)\n' "$c" "$(echo "$EVENTS / $c / 1000000" | bc -l)" "${checkpointed[*]}"
printf 'throughput with checkpoints / without: %.3f\n' "$(echo "$p / $c" | bc -l)"
