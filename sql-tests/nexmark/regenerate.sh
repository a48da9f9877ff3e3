#!/usr/bin/env bash
# Regenerates sql-tests/suites/nexmark/queries.slt: Weir's nexmark
# generator writes a small event stream to CSV, and reference.py computes
# every query's expected rows from those events on its own (plain Python,
# no Weir), so the suite checks Weir's query results against an
# independent computation.
#
#   sql-tests/nexmark/regenerate.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
events=1000
rate=20
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build -p weir >&2
weir="${CARGO_TARGET_DIR:-target}/debug/weir"
options="'connector' = 'nexmark', 'first-event.rate' = '$rate', 'events.num' = '$events'"
person="id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING, \`dateTime\` TIMESTAMP(3), extra STRING"
auction="id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, \`dateTime\` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra STRING"
bid="auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, \`dateTime\` TIMESTAMP(3), extra STRING"
{
  echo "SET 'table.dml-sync' = 'true';"
  for kind in person auction bid; do
    echo "CREATE TABLE $kind (${!kind}) WITH ($options, 'table' = '$kind');"
    echo "CREATE TABLE ${kind}_out (${!kind}) WITH ('connector' = 'filesystem', 'path' = '$work/$kind', 'format' = 'json');"
    echo "INSERT INTO ${kind}_out SELECT * FROM $kind;"
  done
} > "$work/export.sql"
"$weir" run "$work/export.sql" >&2
python3 sql-tests/nexmark/reference.py "$work" "$events" "$rate" > sql-tests/suites/nexmark/queries.slt
echo "wrote sql-tests/suites/nexmark/queries.slt" >&2
