#!/usr/bin/env bash
# Large keyed state: how long a checkpoint of about 1 GB takes to local
# disk, and how long a killed job takes to run again from it.
#
# The job is a regular inner join whose left side (ROWS datagen rows with a
# 100-character string) never finds a match, so the join keeps every left
# row as state; its right side trickles forever, so the job keeps running
# and checkpointing (every 10 s) once the left side has ended. After three
# checkpoints of the full state, the process is killed with SIGKILL and
# started again with the same checkpoint directory; recovery is the time
# from that start to the job running again with its state restored (the
# "job running" log line), then the process is stopped.
#   benches/state.sh [ROWS=8000000]   (SKIP_BUILD=1 to reuse the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-8000000}
if [ -z "${SKIP_BUILD:-}" ]; then
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p weir >&2
fi
WEIR=$(realpath "${CARGO_TARGET_DIR:-target}/release/weir")
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/state.sql" <<SQL
SET 'parallelism.default' = '2';
SET 'execution.checkpointing.interval' = '10 s';
SET 'execution.checkpointing.dir' = '$work/chk';
CREATE TABLE l (id BIGINT, payload STRING) WITH ('connector' = 'datagen',
  'rows-per-second' = '100000000', 'number-of-rows' = '$ROWS',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '$ROWS',
  'fields.payload.length' = '100');
CREATE TABLE r (id BIGINT, note STRING) WITH ('connector' = 'datagen',
  'rows-per-second' = '1', 'fields.id.min' = '-1000', 'fields.id.max' = '-1');
CREATE TABLE out (id BIGINT, payload STRING, note STRING) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT l.id, l.payload, r.note FROM l JOIN r ON l.id = r.id;
SQL
plain() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
# The completed checkpoints' "<bytes> <seconds>" so far.
completed() {
  plain "$1" | grep 'checkpoint completed' \
    | sed -E 's/.*duration=([0-9.]+)(m?s).*bytes=([0-9]+).*/\3 \1 \2/' \
    | awk '{ s = ($3 == "ms") ? $2 / 1000 : $2; print $1, s }'
}
cd "$work"
WEIR_LOG=info "$WEIR" run state.sql > /dev/null 2> first.log &
pid=$!
# The state is full once three checkpoints have its size.
full=()
until [ "${#full[@]}" -ge 3 ]; do
  sleep 1
  kill -0 "$pid" 2>/dev/null || { echo "the job ended:" >&2; tail -5 first.log >&2; exit 1; }
  mapfile -t all < <(completed first.log)
  [ "${#all[@]}" -ge 1 ] || continue
  last=${all[-1]%% *}
  # The checkpoints within 0.1% of the last one's size (the right side
  # still adds a row a second).
  full=()
  for entry in "${all[@]}"; do
    size=${entry%% *}
    [ "$((size * 1000))" -ge "$((last * 999))" ] && full+=("$entry")
  done
done
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
bytes=${full[0]%% *}
durations=$(printf '%s\n' "${full[@]}" | awk '{print $2}' | sort -n)
median=$(echo "$durations" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
started=$(date +%s.%N)
WEIR_LOG=info "$WEIR" run state.sql > /dev/null 2> second.log &
pid=$!
until plain second.log | grep -q 'job running'; do
  sleep 0.05
  kill -0 "$pid" 2>/dev/null || { echo "the restarted job ended:" >&2; tail -5 second.log >&2; exit 1; }
done
recovered=$(echo "$(date +%s.%N) - $started" | bc)
restored=$(plain second.log | grep -c 'restoring from checkpoint' || true)
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
# Seconds from the job's start to a log line of the restarted run.
at() {
  plain second.log | grep -m1 "$1" | cut -d' ' -f1 \
    | python3 -c 'import sys, datetime as d; print(d.datetime.fromisoformat(sys.stdin.read().strip().rstrip("Z")).timestamp())'
}
started_at=$(at 'job submitted'); read_at=$(at 'checkpoint state read'); running_at=$(at 'job running')
printf 'rows: %s, state per checkpoint: %.2f GB (Arrow IPC), peak RSS %.2f GB\n' \
  "$ROWS" "$(echo "$bytes / 1000000000" | bc -l)" "$(echo "$peak_kib / 1048576" | bc -l)"
printf 'checkpoint of the full state: median %.2f s (runs: %s)\n' "$median" "$(echo $durations)"
printf 'killed and started again: running with its state after %.2f s (restored: %s)\n' "$recovered" "$restored"
printf '  of which: reading the checkpoint %.2f s, restoring operators and starting %.2f s\n' \
  "$(echo "$read_at - $started_at" | bc -l)" "$(echo "$running_at - $read_at" | bc -l)"
