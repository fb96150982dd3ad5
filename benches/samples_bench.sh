#!/usr/bin/env bash
# Speed benchmark of `snaptop report results.jtl` on a ~1 GiB JMeter file (~9 M samples),
# against the usual pandas script computing the same per-label percentiles and against
# `wc -l` (the floor: reading the bytes once).
#
# usage: benches/samples_bench.sh [TARGET_BYTES]   (default 1 GiB)
# Needs python3; installs pandas in a throwaway venv and GNU time (apt) when missing.
# Not part of `cargo test`: it writes 1 GiB and takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/bench_lib.sh

TARGET_BYTES="${1:-1073741824}"
bench_prepare samples-bench
SOURCE=tests/fixtures/jmeter/default-5.x.jtl
BIG="$WORK/results.jtl"
bench_generate benches/make_jtl.py "$SOURCE" "$BIG" "$TARGET_BYTES"

echo "== measuring (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
WC=$(measure "wc-l" 3 wc -l "$BIG")
SNAP=$(measure "snaptop" 5 "$SNAPTOP" report "$BIG" --format json)
WC2=$(measure "wc-l" 3 wc -l "$BIG")
PANDAS=$(measure "pandas" 1 "$VENV/bin/python" benches/pandas_jtl.py "$BIG")
PANDAS_TUNED=$(measure "pandas-cols" 1 "$VENV/bin/python" benches/pandas_jtl.py "$BIG" --usecols)

echo
printf '%-12s %10s %10s %14s\n' tool wall_s cpu_s "peak RSS MiB"
for row in "$WC" "$WC2" "$SNAP" "$PANDAS" "$PANDAS_TUNED"; do
  set -- $row
  printf '%-12s %10.2f %10.2f %14.1f\n' "$1" "$2" "$4" "$(awk "BEGIN{print $3/1024}")"
done
set -- $WC; WC_S=$2
set -- $WC2; WC_S=$(awk "BEGIN{print ($2 < $WC_S) ? $2 : $WC_S}")
set -- $SNAP; SNAP_S=$2; SNAP_RSS=$3
set -- $PANDAS; PANDAS_S=$2
set -- $PANDAS_TUNED; PANDAS_TUNED_S=$2
echo
awk "BEGIN{printf \"snaptop vs pandas (read_csv, usual):  %.1fx faster (target >= 10x)\n\", $PANDAS_S/$SNAP_S}"
awk "BEGIN{printf \"snaptop vs pandas (usecols, tuned):   %.1fx faster\n\", $PANDAS_TUNED_S/$SNAP_S}"
awk "BEGIN{printf \"snaptop vs wc -l:  %.1fx slower (target <= 6x)\n\", $SNAP_S/$WC_S}"
awk "BEGIN{printf \"snaptop peak RSS:  %.1f MiB (target <= 64 MiB)\n\", $SNAP_RSS/1024}"
echo "throughput: $(awk "BEGIN{printf \"%.0f\", $SIZE/1048576/$SNAP_S}") MiB/s on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
