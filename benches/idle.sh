#!/usr/bin/env bash
# Measures what an idle snaptop costs in a tmux pane: CPU over IDLE_SECS, bytes written
# to the terminal over the same time, and start to first frame. Demo mode, after one
# finished snapshot (so "as of …, Nm ago" is on screen and its minute timer is armed).
#
#   benches/idle.sh [path/to/snaptop]      (default: target/release/snaptop)
#
# Needs tmux. Uses a private tmux server and temporary HOME/XDG directories.
set -euo pipefail
BIN=$(realpath "${1:-target/release/snaptop}")
IDLE_SECS=${IDLE_SECS:-60}
WORK=$(mktemp -d)
SOCK="snaptop-idle-$$"
tm() { tmux -L "$SOCK" -f /dev/null "$@"; }
cleanup() { tm kill-server 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_ns=$(date +%s%N)
tm new-session -d -x 200 -y 50 \
  "sh -c 'echo \$\$ > $WORK/pid; exec env -u NO_COLOR HOME=$WORK XDG_CONFIG_HOME=$WORK/c XDG_DATA_HOME=$WORK/d XDG_STATE_HOME=$WORK/s $BIN'; sleep 600"
until tm capture-pane -p -t 0 | grep -q "1 Snapshot"; do sleep 0.005; done
seen_ns=$(date +%s%N)
echo "start to first frame (seen by polling tmux, includes tmux start): $(( (seen_ns - start_ns) / 1000000 )) ms"
sleep 0.5
log=$(ls "$WORK"/s/snaptop/snaptop.log* | head -1)
grep -o 'first frame drawn.*' "$log" | sed 's/^/start to first frame (inside the process, from its log): /' || true

tm send-keys -t 0 r
until tm capture-pane -p -t 0 | grep -q "Last run #"; do sleep 0.1; done
sleep 2
PID=$(cat "$WORK/pid")
tm pipe-pane -o -t 0 "cat >> $WORK/bytes"
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
t0=$(ticks)
sleep "$IDLE_SECS"
t1=$(ticks)
tm pipe-pane -t 0
hz=$(getconf CLK_TCK)
bytes=$(wc -c < "$WORK/bytes")
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$IDLE_SECS" \
  'BEGIN { printf "idle CPU over %ds: %d ticks = %.3f%% of one core\n", s, d, d / hz / s * 100 }'
echo "bytes written to the terminal while idle for ${IDLE_SECS}s: $bytes"
tm send-keys -t 0 q
