#!/usr/bin/env bash
# Builds the release `weir` binary and runs `weir bench nexmark`: each query
# as a fresh process (whole-process and cold), reporting per query events/s,
# wall seconds, CPU seconds and peak RSS (medians over RUNS runs) as a table
# on stdout, as JSON and as an SVG bar chart of events/s.
#
#   benches/nexmark/run.sh [QUERIES] [EVENTS] [PARALLELISM] [RUNS]
#   benches/nexmark/run.sh all 10000000 1 3
#   benches/nexmark/run.sh q0,q5,q7 1000000 2 1
#
# Results go to $OUT (default target/nexmark): results.json and
# events_per_second.svg. SKIP_BUILD=1 reuses the built binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
${SKIP_BUILD:+true} cargo build --release -p weir >&2
exec "${CARGO_TARGET_DIR:-target}/release/weir" bench nexmark "${1:-all}" \
  --events "${2:-10000000}" --parallelism "${3:-1}" --runs "${4:-3}" \
  --out "${OUT:-target/nexmark}"
