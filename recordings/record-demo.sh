#!/usr/bin/env bash
# Records recordings/demo.cast: a short demo-mode session of snaptop, typed through tmux
# and recorded by asciinema. Needs tmux and python3 (asciinema is installed into a
# throw-away venv when it is not on PATH).
#
#   recordings/record-demo.sh [path/to/snaptop]    (default: target/release/snaptop)
#
# Play it back with `asciinema play recordings/demo.cast`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/snaptop}")
OUT=recordings/demo.cast
WORK=$(mktemp -d)
SOCK="snaptop-rec-$$"
tm() { tmux -L "$SOCK" -f /dev/null "$@"; }
cleanup() { tm kill-server 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

ASCIINEMA=$(command -v asciinema || true)
if [ -z "$ASCIINEMA" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q asciinema
  ASCIINEMA="$WORK/venv/bin/asciinema"
fi

rm -f "$OUT"
# asciinema runs snaptop in its own pty and forwards what tmux types into it.
tm new-session -d -x 100 -y 30 \
  "env -u NO_COLOR -u TMUX TERM=xterm-256color HOME=$WORK XDG_CONFIG_HOME=$WORK/c XDG_DATA_HOME=$WORK/d XDG_STATE_HOME=$WORK/s \
   $ASCIINEMA rec -q --idle-time-limit 1.5 --title 'snaptop demo' -c '$BIN' $PWD/$OUT"

wait_for() { until tm capture-pane -p -t 0 | grep -q "$1"; do sleep 0.1; done; }
key() { tm send-keys -t 0 "$1"; sleep "${2:-0.8}"; }

wait_for "1 Snapshot"
sleep 1.5
key r 0.3
wait_for "Last run #"
sleep 2
key j; key l; key j
key Enter 2.5
key j; key j; key j 1
key Escape 1
key '?' 2.5
key Escape
key 2 2
key 3 2
key 4 2
key 1 1
key r 0.5
wait_for "Runs (2)"
sleep 2
key q 1
until [ -s "$OUT" ] && ! tm has-session 2>/dev/null; do sleep 0.2; done
echo "wrote $OUT ($(wc -c < "$OUT") bytes)"
