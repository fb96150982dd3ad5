"""Writes a large k6 `--out csv` file from a real small one, as a bigger run would write it.

Each window of the output is the source run replayed by COPIES virtual copies at once (the
source had 2 VUs, so 50 copies look like 100 VUs), timestamps shifted window after window,
every duration-like value (http_req_*, iteration/group durations) scaled by a per-row
factor in [0.7, 1.6) so the percentiles are not the source's repeated; counters, rates and
gauges are kept as written. Rows stay in time order, as k6 writes them.

usage: make_k6.py SOURCE_CSV OUT_CSV TARGET_BYTES [COPIES]
"""
import csv
import io
import random
import sys

SCALED = {
    "http_req_duration", "http_req_blocked", "http_req_connecting", "http_req_tls_handshaking",
    "http_req_sending", "http_req_waiting", "http_req_receiving", "iteration_duration",
    "group_duration",
}


def main() -> None:
    source, out, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    copies = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    rng = random.Random(14)
    factors = [0.7 + 0.9 * rng.random() ** 2 for _ in range(4099)]
    with open(source, encoding="utf-8", newline="") as f:
        header = f.readline()
        rows = [line.rstrip("\r\n") for line in f if line.strip()]
    parsed = []
    for line in rows:
        metric, ts, value, rest = line.split(",", 3)
        parsed.append((metric, int(ts), float(value), rest, metric in SCALED))
    first = min(p[1] for p in parsed)
    span = max(p[1] for p in parsed) - first + 1
    written = len(header)
    k = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(header)
        shift = 0
        while written < target:
            buf = io.StringIO()
            for metric, ts, value, rest, scaled in parsed:
                stamp = ts + shift
                for _ in range(copies):
                    if scaled:
                        k += 1
                        v = value * factors[k % 4099]
                    else:
                        v = value
                    buf.write(f"{metric},{stamp},{v:.6f},{rest}\n")
            block = buf.getvalue()
            f.write(block)
            written += len(block)
            shift += span


if __name__ == "__main__":
    main()
