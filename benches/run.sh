#!/usr/bin/env bash
# Runs a SQL benchmark with the release `weir` binary, whole-process and cold
# (each run is a fresh process), and prints the median wall time, rows/s and
# peak RSS over RUNS runs.
#
#   benches/run.sh [BENCH] [ROWS] [RUNS]      e.g. benches/run.sh scan_filter_project 10000000 5
#
# Scripts may use BENCH_DATA, BENCH_OUT, BENCH_ROWS and BENCH_TENTH (ROWS / 10). CSV data is generated
# once into $BENCH_DATA (default benches/data/<ROWS>) for scripts that read it;
# ROWS should be a multiple of 1M above 1M. SKIP_BUILD=1 reuses the built binary;
# RUNS 0 only generates the data.
set -euo pipefail
cd "$(dirname "$0")/.."
bench="${1:-scan_filter_project}"
rows="${2:-10000000}"
runs="${3:-5}"
data="${BENCH_DATA:-benches/data/$rows}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

if grep -q BENCH_DATA "benches/sql/$bench.sql" && [ ! -f "$data/bids/bids.csv" ]; then
  # Generated in blocks of 1M rows, two at a time (one per core); event
  # time keeps advancing across blocks.
  mkdir -p "$data/bids"
  block=$(( rows < 1000000 ? rows : 1000000 ))
  echo "generating $rows bids into $data/bids/bids.csv ..." >&2
  for b in $(seq 0 $(( rows / block - 1 ))); do
    python3 benches/gen_bids.py "$block" "$data/bids/block-$(printf %05d "$b").csv" --first-row $(( b * block )) &
    if (( b % 2 == 1 )); then wait; fi
  done
  wait
  cat "$data/bids"/block-*.csv > "$data/bids/bids.csv"
  rm "$data/bids"/block-*.csv
fi
if grep -q BENCH_DATA/auctions "benches/sql/$bench.sql" && [ ! -f "$data/auctions/auctions.csv" ]; then
  mkdir -p "$data/auctions"
  echo "generating $(( rows / 10 )) auctions into $data/auctions/auctions.csv ..." >&2
  python3 benches/gen_auctions.py $(( rows / 10 )) "$data/auctions/auctions.csv"
fi
# Rows read: the bids, plus a tenth as many auctions for scripts that join them.
input_rows=$rows
if grep -q 'BENCH_TENTH\|BENCH_DATA/auctions' "benches/sql/$bench.sql"; then
  input_rows=$(( rows + rows / 10 ))
fi
${SKIP_BUILD:+true} cargo build --release -p weir >&2
weir="${CARGO_TARGET_DIR:-target}/release/weir"
script="$out/$bench.sql"

(( runs > 0 )) || exit 0 # RUNS 0: only generate the data
results=()
for i in $(seq 1 "$runs"); do
  rm -rf "$out/picked"
  sed -e "s#BENCH_DATA#$PWD/$data#g" -e "s#BENCH_OUT#$out#g" -e "s#BENCH_ROWS#$rows#g" -e "s#BENCH_TENTH#$(( rows / 10 ))#g" "benches/sql/$bench.sql" > "$script"
  /usr/bin/time -f "%e %M" -o "$out/time" "$weir" run "$script" > /dev/null
  read -r secs rss_kb < "$out/time"
  results+=("$secs $rss_kb")
  echo "run $i: ${secs}s, peak RSS $((rss_kb / 1024)) MB" >&2
done
printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = int(sys.argv[1])
runs = [tuple(map(float, line.split())) for line in sys.stdin if line.strip()]
secs = statistics.median(r[0] for r in runs)
rss = statistics.median(r[1] for r in runs) / 1024
print(f'$bench: {rows} rows, median {secs:.2f} s over {len(runs)} runs = {rows / secs / 1e6:.2f}M rows/s, median peak RSS {rss:.0f} MB')
" "$input_rows"
