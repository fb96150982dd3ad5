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

TARGET_BYTES="${1:-1073741824}"
WORK="$(mktemp -d /tmp/snaptop-samples-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
VENV="${SNAPTOP_BENCH_VENV:-$WORK/venv}"
SOURCE=tests/fixtures/jmeter/default-5.x.jtl
BIG="$WORK/results.jtl"

if [ ! -x /usr/bin/time ]; then
  (apt-get update -qq && apt-get install -y -qq time) >/dev/null
fi

echo "== building snaptop (release)"
cargo build --release --quiet
SNAPTOP="$PWD/target/release/snaptop"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pandas' 2>/dev/null; then
  echo "== installing pandas in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet pandas
fi

echo "== generating $BIG ($TARGET_BYTES bytes from $SOURCE)"
python3 benches/make_jtl.py "$SOURCE" "$BIG" "$TARGET_BYTES"
SIZE=$(stat -c %s "$BIG")
LINES=$(wc -l < "$BIG")
echo "   $SIZE bytes, $LINES lines"
sync
cat "$BIG" > /dev/null

# measure NAME RUNS COMMAND...: prints "NAME wall_seconds max_rss_kib cpu_seconds" (best wall
# time of RUNS runs).
measure() {
  local name="$1" runs="$2"; shift 2
  local best="" best_rss="" best_cpu=""
  for _ in $(seq "$runs"); do
    /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1 || {
      local rc=$?
      # snaptop exits 1 when the gate fails; that is a result, not an error.
      if [ "$rc" -ne 1 ]; then echo "$name failed (exit $rc)"; cat "$WORK/out.txt"; exit 1; fi
    }
    local wall rss cpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$WORK/time.txt")
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; best_rss=$rss; best_cpu=$cpu; fi
  done
  echo "$name $best $best_rss $best_cpu"
}

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
