#!/usr/bin/env bash
# Kafka benchmarks (issue "Kafka connector"), against one tansu broker on a
# loopback port that this script starts (and installs once, as .ci/run does).
#
#   benches/kafka.sh [ROWS] [RUNS] [LATENCY_SECONDS]   e.g. benches/kafka.sh 10000000 3 30
#
# 1. throughput: the ROWS-row bids CSV is written as JSON into a 2-partition
#    topic by weir's kafka sink (timed once), then read back RUNS times by
#    weir's kafka source (JSON, bounded at the latest offsets) into
#    blackhole, each run a fresh process: median records/s, and CPU
#    microseconds per record (user + system, from /usr/bin/time).
# 2. latency: one process generates bids at 10K rows/s into a 1-partition
#    topic while another reads them (default settings) and writes each
#    record's Kafka timestamp (set by the producer when it sends) next to the
#    processing time at which the source read it; the script prints the
#    distribution of the difference.
#
# tansu answers a "latest offset" query with the first offset of the last
# record batch + 1, so the loader ends each partition with a marker record
# sent in a batch of its own; the bounded read then covers every record.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-10000000}"
runs="${2:-3}"
latency_secs="${3:-30}"
data="benches/data/$rows"
work="$(mktemp -d)"
broker_dir="$work/broker"
cleanup() {
  .ci/kafka-broker stop "$broker_dir" >/dev/null 2>&1 || true
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The bids CSV, generated as benches/run.sh does (once per ROWS).
[ -f "$data/bids/bids.csv" ] || SKIP_BUILD=1 benches/run.sh scan_filter_project "$rows" 0 >/dev/null
${SKIP_BUILD:+true} cargo build --release -p weir >&2
weir="$(realpath "${CARGO_TARGET_DIR:-target}/release/weir")"

bootstrap="$(.ci/kafka-broker start "$broker_dir")"
.ci/kafka-broker topic "$broker_dir" bids 2 >/dev/null
.ci/kafka-broker topic "$broker_dir" live 1 >/dev/null
echo "tansu on $bootstrap" >&2

bids_columns="auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING"
kafka_table() { # NAME TOPIC EXTRA_OPTIONS
  cat <<EOF
CREATE TABLE $1 ($bids_columns) WITH (
  'connector' = 'kafka', 'topic' = '$2', 'properties.bootstrap.servers' = '$bootstrap',
  'format' = 'json'$3
);
EOF
}

# --- 1. throughput -----------------------------------------------------------
cat > "$work/load.sql" <<EOF
SET 'parallelism.default' = '2';
CREATE TABLE csv_bids ($bids_columns) WITH (
  'connector' = 'filesystem', 'path' = '$PWD/$data/bids', 'format' = 'csv');
$(kafka_table kafka_bids bids "")
INSERT INTO kafka_bids SELECT * FROM csv_bids;
EOF
cat > "$work/markers.sql" <<EOF
SET 'parallelism.default' = '1';
$(kafka_table kafka_bids bids ",
  'sink.partitioner' = 'round-robin', 'properties.batch.num.messages' = '1'")
INSERT INTO kafka_bids VALUES
  (-1, 0, 0, 'marker', '', TIMESTAMP '2000-01-01 00:00:00', ''),
  (-1, 0, 0, 'marker', '', TIMESTAMP '2000-01-01 00:00:00', '');
EOF
cat > "$work/read.sql" <<EOF
SET 'parallelism.default' = '2';
$(kafka_table kafka_bids bids ",
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'${READ_OPTIONS:-}")
CREATE TABLE sink ($bids_columns) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT * FROM kafka_bids;
EOF

/usr/bin/time -f "%e %U %S %M" -o "$work/time" "$weir" run "$work/load.sql" >/dev/null
read -r secs user sys rss_kb < "$work/time"
python3 -c "import sys; r,s=int(sys.argv[1]),float(sys.argv[2]); print(f'write: {r} JSON records into Kafka in {s:.2f} s = {r/s/1e6:.2f}M records/s, CPU {sys.argv[3]} s user + {sys.argv[4]} s sys, peak RSS {int(sys.argv[5])//1024} MB')" "$rows" "$secs" "$user" "$sys" "$rss_kb"
"$weir" run "$work/markers.sql" >/dev/null

results=()
for i in $(seq 1 "$runs"); do
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$weir" run "$work/read.sql" >/dev/null
  read -r secs user sys rss_kb < "$work/time"
  results+=("$secs $user $sys $rss_kb")
  echo "read run $i: ${secs}s, CPU ${user} s user + ${sys} s sys, peak RSS $((rss_kb / 1024)) MB" >&2
done
printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = int(sys.argv[1]) + 2
runs = [tuple(map(float, line.split())) for line in sys.stdin if line.strip()]
secs = statistics.median(r[0] for r in runs)
cpu = statistics.median(r[1] + r[2] for r in runs)
rss = statistics.median(r[3] for r in runs) / 1024
print(f'read: {rows} JSON records from Kafka into blackhole, median {secs:.2f} s over {len(runs)} runs = {rows / secs / 1e6:.2f}M records/s; CPU {cpu:.2f} s = {cpu / rows * 1e6:.2f} us per record; peak RSS {rss:.0f} MB')
" "$rows"

# --- 2. latency --------------------------------------------------------------
live_rows=$(( latency_secs * 10000 ))
cat > "$work/produce.sql" <<EOF
CREATE TABLE gen (auction BIGINT, price BIGINT) WITH (
  'connector' = 'datagen', 'rows-per-second' = '10000', 'number-of-rows' = '$live_rows');
CREATE TABLE live (auction BIGINT, price BIGINT) WITH (
  'connector' = 'kafka', 'topic' = 'live', 'properties.bootstrap.servers' = '$bootstrap',
  'format' = 'json');
INSERT INTO live SELECT * FROM gen;
EOF
cat > "$work/consume.sql" <<EOF
CREATE TABLE live (
  auction BIGINT, price BIGINT,
  produced TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  read_at AS PROCTIME()
) WITH (
  'connector' = 'kafka', 'topic' = 'live', 'properties.bootstrap.servers' = '$bootstrap',
  'format' = 'json', 'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'specific-offsets',
  'scan.bounded.specific-offsets' = 'partition:0,offset:$live_rows'${READ_OPTIONS:-}
);
CREATE TABLE times (produced TIMESTAMP_LTZ(3), read_at TIMESTAMP_LTZ(3)) WITH (
  'connector' = 'filesystem', 'path' = '$work/times', 'format' = 'csv');
INSERT INTO times SELECT produced, read_at FROM live;
EOF
"$weir" run "$work/consume.sql" >/dev/null &
consumer=$!
sleep 3 # the consumer is up and waiting before the first record is sent
"$weir" run "$work/produce.sql" >/dev/null
wait "$consumer"
cat "$work/times"/* | python3 -c "
import datetime, statistics, sys
def ms(text):
    return datetime.datetime.fromisoformat(text.strip().replace('Z', '+00:00')).timestamp() * 1000
lat = sorted(ms(r) - ms(p) for p, r in (line.split(',') for line in sys.stdin if line.strip()))
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(f'latency, produce to source read at 10K records/s over {len(lat)} records (ms): '
      f'p50 {q(0.5):.0f}, p90 {q(0.9):.0f}, p99 {q(0.99):.0f}, p99.9 {q(0.999):.0f}, max {lat[-1]:.0f}')
"
