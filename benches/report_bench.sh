#!/usr/bin/env bash
# Speed benchmark of `snaptop report` on a ~1 GiB Locust history file, against pandas doing
# the same aggregation and against `wc -l` (the floor: reading the bytes once).
#
# usage: benches/report_bench.sh [TARGET_BYTES]   (default 1 GiB)
# Needs python3; installs pandas in a throwaway venv and GNU time (apt) when missing.
# Not part of `cargo test`: it writes 1 GiB and takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/bench_lib.sh

TARGET_BYTES="${1:-1073741824}"
bench_prepare bench
SOURCE=tests/fixtures/locust/2.47/api_stats_history.csv
BIG="$WORK/big_stats_history.csv"
bench_generate benches/make_history.py "$SOURCE" "$BIG" "$TARGET_BYTES"

echo "== measuring"
WC=$(measure "wc-l" 3 wc -l "$BIG")
# A report needs the run's stats table: the real one, beside the big history.
SNAP=$(measure "snaptop" 5 "$SNAPTOP" report "$PWD/tests/fixtures/locust/2.47/api_stats.csv" "$BIG" --format json)
PANDAS=$(measure "pandas" 1 "$VENV/bin/python" benches/pandas_report.py "$BIG")
PANDAS_ALL=$(measure "pandas-all" 1 "$VENV/bin/python" benches/pandas_report.py "$BIG" --all-columns)

echo
printf '%-10s %10s %14s\n' tool seconds "peak RSS MiB"
for row in "$WC" "$SNAP" "$PANDAS" "$PANDAS_ALL"; do
  set -- $row
  printf '%-10s %10.2f %14.1f\n' "$1" "$2" "$(awk "BEGIN{print $3/1024}")"
done
set -- $WC; WC_S=$2
set -- $SNAP; SNAP_S=$2; SNAP_RSS=$3
set -- $PANDAS; PANDAS_S=$2
set -- $PANDAS_ALL; PANDAS_ALL_S=$2
echo
awk "BEGIN{printf \"snaptop vs pandas (usecols, tuned):   %.1fx faster (target >= 10x)\n\", $PANDAS_S/$SNAP_S}"
awk "BEGIN{printf \"snaptop vs pandas (read_csv, usual):  %.1fx faster (target >= 10x)\n\", $PANDAS_ALL_S/$SNAP_S}"
awk "BEGIN{printf \"snaptop vs wc -l:  %.1fx slower (target <= 6x)\n\", $SNAP_S/$WC_S}"
awk "BEGIN{printf \"snaptop peak RSS:  %.1f MiB (target <= 64 MiB)\n\", $SNAP_RSS/1024}"
echo "throughput: $(awk "BEGIN{printf \"%.0f\", $SIZE/1048576/$SNAP_S}") MiB/s on $(nproc) cores"
