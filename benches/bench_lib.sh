# Shared by the report speed benchmarks (report_bench.sh, samples_bench.sh, k6_bench.sh):
# source it from the repository root after `set -euo pipefail`.

# bench_prepare NAME: a temp dir $WORK (removed on exit), GNU time, the release binary
# $SNAPTOP, and pandas in $VENV (SNAPTOP_BENCH_VENV reuses one).
bench_prepare() {
  WORK="$(mktemp -d "/tmp/snaptop-$1.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  VENV="${SNAPTOP_BENCH_VENV:-$WORK/venv}"
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
}

# bench_generate GENERATOR SOURCE BIG TARGET_BYTES: writes BIG from the real small SOURCE,
# sets $SIZE and $LINES, writes it out (background writeback would compete for the cores
# while measuring) and warms the page cache so every contender reads from memory.
bench_generate() {
  echo "== generating $3 ($4 bytes from $2)"
  python3 "$1" "$2" "$3" "$4"
  SIZE=$(stat -c %s "$3")
  LINES=$(wc -l < "$3")
  echo "   $SIZE bytes, $LINES lines"
  sync
  cat "$3" > /dev/null
}

# measure NAME RUNS COMMAND...: prints "NAME wall_seconds max_rss_kib cpu_seconds" (the
# run with the best wall time of RUNS).
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
