#!/usr/bin/env bash
# Nexmark side by side with Apache Flink 2.3 on this machine.
#
#   benches/nexmark/flink.sh [QUERIES|all] [EVENTS] [PARALLELISM] [RUNS]
#   benches/nexmark/flink.sh all 10000000 1 1
#
# 1. Installs Apache Flink 2.3 from PyPI into a virtual environment under
#    $WEIR_CACHE (default ~/.cache/weir), once (~850 MB; Java 17 must be on
#    the PATH).
# 2. Writes EVENTS Nexmark events once, with Weir's generator, as CSV files
#    under benches/data/nexmark-EVENTS/{person,auction,bid}/.
# 3. Runs each query of benches/nexmark/ on both engines, reading those
#    files instead of the generator: the same SQL, with each `nexmark` table
#    replaced by a `filesystem` table over its CSV directory, into the same
#    blackhole sinks. Weir runs with `weir run` (release build), Flink with
#    PyFlink's TableEnvironment in streaming mode (flink_job.py). Both are
#    whole-process and cold: a fresh process per run, start-up, planning and
#    parsing included.
#
# Prints, per query, the median wall seconds, events/s (all EVENTS events
# over the wall time, as Nexmark counts them), CPU seconds and peak RSS of
# each engine (Flink's: the Python driver plus the JVM it starts; the RSS is
# the sum of the two peaks), and Weir's speed-up; writes $OUT/flink.json (default
# target/nexmark). A query an engine cannot run shows its error instead.
# SKIP_BUILD=1 reuses the built `weir`; FLINK_TIMEOUT (seconds, default 1200)
# bounds each Flink run.
#
# WARM=N (N >= 2) also measures Flink in steady state: after the cold runs,
# one more Flink process runs each query's INSERT N times in the same JVM
# (flink_job.py), and the median of rounds 2..N (classes loaded, code
# compiled by the JIT, start-up excluded) is set against Weir's median
# whole-process wall time, whose start-up is included.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
queries="${1:-all}"
events="${2:-10000000}"
parallelism="${3:-1}"
runs="${4:-1}"
out="${OUT:-target/nexmark}"
cache="${WEIR_CACHE:-$HOME/.cache/weir}"
venv="$cache/flink-2.3.0"
mkdir -p "$out"
if [ "$queries" = all ]; then
  queries=$(ls benches/nexmark/q*.sql | sed 's#.*/\(q[0-9]*\)\.sql#\1#' | sort -V | paste -sd, -)
fi

if ! "$venv/bin/python" -c 'import pyflink' 2>/dev/null; then
  echo "installing apache-flink 2.3.0 into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet apache-flink==2.3.0
fi

${SKIP_BUILD:+true} cargo build --release -p weir >&2
weir="$(realpath "${CARGO_TARGET_DIR:-target}")/release/weir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

data="$root/benches/data/nexmark-$events"
if [ ! -f "$data/complete" ]; then
  echo "writing $events Nexmark events to $data" >&2
  rm -rf "$data"
  cat > "$work/generate.sql" <<EOF
SET 'parallelism.default' = '1';
CREATE TABLE person (
  id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR,
  \`dateTime\` TIMESTAMP(3), extra VARCHAR
) WITH ('connector' = 'nexmark', 'table' = 'person', 'first-event.rate' = '10000000', 'events.num' = '$events');
CREATE TABLE auction (
  id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
  \`dateTime\` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR
) WITH ('connector' = 'nexmark', 'table' = 'auction', 'first-event.rate' = '10000000', 'events.num' = '$events');
CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  \`dateTime\` TIMESTAMP(3), extra VARCHAR
) WITH ('connector' = 'nexmark', 'table' = 'bid', 'first-event.rate' = '10000000', 'events.num' = '$events');
CREATE TABLE person_csv (
  id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR,
  \`dateTime\` TIMESTAMP(3), extra VARCHAR
) WITH ('connector' = 'filesystem', 'path' = '$data/person', 'format' = 'csv');
CREATE TABLE auction_csv (
  id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
  \`dateTime\` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR
) WITH ('connector' = 'filesystem', 'path' = '$data/auction', 'format' = 'csv');
CREATE TABLE bid_csv (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  \`dateTime\` TIMESTAMP(3), extra VARCHAR
) WITH ('connector' = 'filesystem', 'path' = '$data/bid', 'format' = 'csv');
EXECUTE STATEMENT SET BEGIN
INSERT INTO person_csv SELECT * FROM person;
INSERT INTO auction_csv SELECT * FROM auction;
INSERT INTO bid_csv SELECT * FROM bid;
END;
EOF
  "$weir" run "$work/generate.sql" > /dev/null
  touch "$data/complete"
fi

# One run of one engine on one query: appends "query engine wall user sys
# rss_kb" (or "query engine FAILED message") to the results.
measure() {
  local q="$1" engine="$2"
  shift 2
  rm -f "$work/jvm"
  if /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > "$work/out" 2> "$work/err"; then
    read -r wall user sys rss_kb < "$work/time"
    if [ -s "$work/jvm" ]; then
      # PyFlink's JVM: its CPU and peak RSS count toward Flink's.
      read -r jvm_cpu jvm_rss_kb < "$work/jvm"
      user="$(python3 -c "print($user + $jvm_cpu)")"
      rss_kb=$((rss_kb + jvm_rss_kb))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$q" "$engine" "$wall" "$user" "$sys" "$rss_kb" >> "$work/results.tsv"
    echo "$q $engine: ${wall}s wall, $((rss_kb / 1024)) MB peak RSS" >&2
  else
    local why
    # Weir's `[ERROR] ...` line, or the exception a Python traceback ends with.
    why="$(grep -E '^\[ERROR\]|Exception: ' "$work/err" | tail -1 | cut -c1-300 | tr '\t' ' ')"
    printf '%s\t%s\tFAILED\t%s\n' "$q" "$engine" "${why:-$(tail -1 "$work/err" | cut -c1-300)}" >> "$work/results.tsv"
    echo "$q $engine failed: $why" >&2
    return 1
  fi
}

: > "$work/results.tsv"
for q in ${queries//,/ }; do
  script="$work/$q.sql"
  {
    echo "SET 'parallelism.default' = '$parallelism';"
    python3 - "benches/nexmark/$q.sql" "$data" "$root" "$work" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
data, root, work = sys.argv[2:5]
# Each generator table reads its kind's CSV files instead.
text = re.sub(r"WITH \('connector' = 'nexmark', 'table' = '(\w+)'[^;]*?\);",
              lambda m: f"WITH ('connector' = 'filesystem', 'path' = '{data}/{m[1]}', 'format' = 'csv');",
              text)
text = text.replace("'benches/nexmark/", f"'{root}/benches/nexmark/")
text = text.replace("'target/nexmark/", f"'{work}/sink/")
print(text)
EOF
  } > "$script"
  for i in $(seq 1 "$runs"); do
    rm -rf "$work/sink"
    measure "$q" weir "$weir" run "$script" || break
  done
  for i in $(seq 1 "$runs"); do
    rm -rf "$work/sink"
    measure "$q" flink timeout "${FLINK_TIMEOUT:-1200}" "$venv/bin/python" benches/nexmark/flink_job.py "$script" "$work/jvm" || break
  done
  if [ "${WARM:-0}" -ge 2 ]; then
    rm -rf "$work/sink" "$work/rounds"
    if timeout "$(( ${FLINK_TIMEOUT:-1200} * WARM ))" "$venv/bin/python" benches/nexmark/flink_job.py \
        "$script" "$work/jvm" "$WARM" "$work/rounds" > "$work/out" 2> "$work/err"; then
      steady="$(python3 -c 'import statistics, sys
print(round(statistics.median(float(l) for l in list(open(sys.argv[1]))[1:]), 3))' "$work/rounds")"
      printf '%s\t%s\t%s\n' "$q" "$steady" "$(paste -sd' ' "$work/rounds")" >> "$work/warm.tsv"
      echo "$q flink warm: ${steady}s a round (rounds: $(paste -sd' ' "$work/rounds"))" >&2
    else
      echo "$q flink warm failed: $(tail -1 "$work/err" | cut -c1-300)" >&2
    fi
  fi
done
touch "$work/warm.tsv"

python3 - "$work/results.tsv" "$events" "$parallelism" "$out" "$work/warm.tsv" <<'EOF'
import json, statistics, sys
path, events, parallelism, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
warm = {}
for line in open(sys.argv[5]):
    q, steady, rounds = line.rstrip("\n").split("\t")
    warm[q] = {"steady_wall_seconds": float(steady), "rounds": [float(r) for r in rounds.split()]}
runs, failed, order = {}, {}, []
for line in open(path):
    q, engine, *rest = line.rstrip("\n").split("\t")
    if q not in order:
        order.append(q)
    if rest[0] == "FAILED":
        failed[(q, engine)] = rest[1] if len(rest) > 1 else ""
    else:
        wall, user, sys_, rss = rest
        runs.setdefault((q, engine), []).append((float(wall), float(user) + float(sys_), int(rss) / 1024))

def figures(q, engine):
    rs = runs.get((q, engine))
    if not rs:
        return {"failed": failed.get((q, engine), "not run")}
    wall = statistics.median(r[0] for r in rs)
    return {"runs": len(rs), "wall_seconds": wall, "events_per_second": round(events / wall),
            "cpu_seconds": round(statistics.median(r[1] for r in rs), 2),
            "peak_rss_mb": round(statistics.median(r[2] for r in rs))}

rows = [{"query": q, "events": events, "parallelism": parallelism,
         "weir": figures(q, "weir"), "flink": figures(q, "flink")} for q in order]
for r in rows:
    if r["query"] in warm:
        r["flink_warm"] = warm[r["query"]]
print(f"Nexmark from CSV files, {events:,} events, parallelism {parallelism}, whole-process and cold (medians)")
print("| query | Weir events/s | Flink events/s | Weir speed-up | Weir wall s / CPU s / RSS MB | Flink wall s / CPU s / RSS MB |")
print("|---|---:|---:|---:|---|---|")
def cell(f):
    return f"{f['events_per_second']:,}" if "failed" not in f else "failed"
def detail(f):
    if "failed" in f:
        return f"failed: {f['failed']}"
    return f"{f['wall_seconds']:.1f} / {f['cpu_seconds']:.1f} / {f['peak_rss_mb']}"
ratios = []
for r in rows:
    w, f = r["weir"], r["flink"]
    ratio = ""
    if "failed" not in w and "failed" not in f:
        ratio = f["wall_seconds"] / w["wall_seconds"]
        ratios.append(ratio)
        ratio = f"{ratio:.1f}x"
    print(f"| {r['query']} | {cell(w)} | {cell(f)} | {ratio} | {detail(w)} | {detail(f)} |")
if ratios:
    print(f"\nWeir's speed-up over Flink: median {statistics.median(ratios):.1f}x over {len(ratios)} queries both ran")
steady = [r for r in rows if "flink_warm" in r and "failed" not in r["weir"]]
if steady:
    print("\nSteady state: Flink's median warm round in one JVM against Weir's whole process (start-up included)")
    print("| query | Weir wall s | Flink warm round s | Weir speed-up |")
    print("|---|---:|---:|---:|")
    for r in steady:
        w, f = r["weir"]["wall_seconds"], r["flink_warm"]["steady_wall_seconds"]
        print(f"| {r['query']} | {w:.1f} | {f:.1f} | {f / w:.1f}x |")
json.dump(rows, open(f"{out}/flink.json", "w"), indent=2)
print(f"JSON: {out}/flink.json")
EOF
