#!/usr/bin/env bash
# Runs Nexmark queries with the release `weir` binary, each as a fresh
# process (whole-process and cold), and reports per query: events/s, wall
# seconds, CPU seconds and peak RSS, as a table on stdout, as JSON and as an
# SVG bar chart of events/s.
#
#   benches/nexmark/run.sh [QUERIES] [EVENTS] [PARALLELISM] [RUNS]
#   benches/nexmark/run.sh all 10000000 1 3
#   benches/nexmark/run.sh q0,q5,q7 1000000 2 1
#
# Figures are medians over RUNS runs. Results go to $OUT (default
# target/nexmark): results.json and events_per_second.svg.
# SKIP_BUILD=1 reuses the built binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
queries="${1:-all}"
events="${2:-10000000}"
parallelism="${3:-1}"
runs="${4:-3}"
out="${OUT:-target/nexmark}"
mkdir -p "$out"
if [ "$queries" = all ]; then
  queries=$(ls benches/nexmark/q*.sql | sed 's#.*/\(q[0-9]*\)\.sql#\1#' | sort -V | paste -sd, -)
fi

${SKIP_BUILD:+true} cargo build --release -p weir >&2
weir="${CARGO_TARGET_DIR:-target}/release/weir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

results="$work/results.tsv"
: > "$results"
for q in ${queries//,/ }; do
  script="$work/$q.sql"
  {
    echo "SET 'parallelism.default' = '$parallelism';"
    sed -e "s/'events.num' = '[0-9]*'/'events.num' = '$events'/" "benches/nexmark/$q.sql"
  } > "$script"
  for i in $(seq 1 "$runs"); do
    rm -rf target/nexmark/q10
    if /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$weir" run "$script" > "$work/out" 2> "$work/err"; then
      read -r wall user sys rss_kb < "$work/time"
      printf '%s\t%s\t%s\t%s\t%s\n' "$q" "$wall" "$user" "$sys" "$rss_kb" >> "$results"
      echo "$q run $i: ${wall}s wall, $((rss_kb / 1024)) MB peak RSS" >&2
    else
      printf '%s\tFAILED\t%s\n' "$q" "$(tail -1 "$work/err" | tr '\t' ' ')" >> "$results"
      echo "$q run $i failed: $(tail -1 "$work/err")" >&2
      break
    fi
  done
done

python3 - "$results" "$events" "$parallelism" "$out" <<'EOF'
import json, statistics, sys
path, events, parallelism, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs, failed = {}, {}
for line in open(path):
    parts = line.rstrip("\n").split("\t")
    if parts[1] == "FAILED":
        failed[parts[0]] = parts[2] if len(parts) > 2 else ""
        continue
    q, wall, user, sys_, rss = parts
    runs.setdefault(q, []).append((float(wall), float(user) + float(sys_), int(rss) / 1024))
rows = []
for q, rs in runs.items():
    wall = statistics.median(r[0] for r in rs)
    rows.append({
        "query": q, "events": events, "parallelism": parallelism, "runs": len(rs),
        "wall_seconds": wall, "events_per_second": round(events / wall),
        "cpu_seconds": round(statistics.median(r[1] for r in rs), 2),
        "peak_rss_mb": round(statistics.median(r[2] for r in rs), 1),
    })
for q, why in failed.items():
    rows.append({"query": q, "failed": why})
rows.sort(key=lambda r: int(r["query"][1:]))
print(f"Nexmark, {events} events, parallelism {parallelism} (medians)")
print(f"| query | events/s | wall s | CPU s | peak RSS MB |")
print(f"|---|---:|---:|---:|---:|")
for r in rows:
    if "failed" in r:
        print(f"| {r['query']} | failed: {r['failed']} | | | |")
    else:
        print(f"| {r['query']} | {r['events_per_second']:,} | {r['wall_seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['peak_rss_mb']:.0f} |")
json.dump(rows, open(f"{out}/results.json", "w"), indent=2)

# A bar chart of events/s per query, plain SVG.
ok = [r for r in rows if "failed" not in r]
if ok:
    top = max(r["events_per_second"] for r in ok)
    bar, gap, height, left = 28, 8, 300, 70
    width = left + len(ok) * (bar + gap) + 20
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 70}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="16" font-size="13">Weir Nexmark: events/s per query ({events:,} events, parallelism {parallelism})</text>']
    for i in range(5):
        v = top * i / 4
        y = 30 + height - height * i / 4
        svg.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.0f}" y2="{y:.0f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 6}" y="{y + 4:.0f}" text-anchor="end">{v / 1e6:.1f}M</text>')
    for i, r in enumerate(ok):
        h = height * r["events_per_second"] / top
        x = left + gap + i * (bar + gap)
        svg.append(f'<rect x="{x}" y="{30 + height - h:.0f}" width="{bar}" height="{h:.0f}" fill="#3b6ea5"><title>{r["query"]}: {r["events_per_second"]:,} events/s</title></rect>')
        svg.append(f'<text x="{x + bar / 2}" y="{height + 46}" text-anchor="middle">{r["query"]}</text>')
    svg.append("</svg>")
    open(f"{out}/events_per_second.svg", "w").write("\n".join(svg))
print(f"\nJSON: {out}/results.json, chart: {out}/events_per_second.svg")
EOF
