"""Writes a large JMeter .jtl by repeating a real small one as a bigger test would write it.

Each block is 16 copies of SOURCE's samples (16 load generators' worth of threads, renamed
per copy, each copy shifted by up to a second), merged in the order JMeter writes samples
(when each ends); blocks follow each other in time. The labels, latencies, failures and
their mix are SOURCE's.

usage: make_jtl.py SOURCE_JTL OUT_JTL TARGET_BYTES
"""
import csv
import io
import random
import sys

COPIES = 16


def main() -> None:
    source, out, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(source, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], [r for r in rows[1:] if r]
    ts, el, thread = header.index("timeStamp"), header.index("elapsed"), header.index("threadName")
    threads = [header.index(c) for c in ("grpThreads", "allThreads") if c in header]
    first = min(int(r[ts]) for r in rows)
    span = max(int(r[ts]) + int(r[el]) for r in rows) - first + 1000
    rng = random.Random(14)
    block = []
    for copy in range(COPIES):
        shift = rng.randrange(0, 1000)
        for r in rows:
            r = list(r)
            r[ts] = int(r[ts]) - first + shift
            group, _, n = r[thread].rpartition("-")
            r[thread] = f"{group}-{int(n) + 10 * copy}"
            for col in threads:
                r[col] = str(int(r[col]) * COPIES)
            block.append(r)
    block.sort(key=lambda r: r[ts] + int(r[el]))
    # One template per row: the timestamp (JMeter's first column) is all that changes.
    assert ts == 0, "timeStamp must be the first column"
    templates = []
    for r in block:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(r[1:])
        rest = buf.getvalue().replace("{", "{{").replace("}", "}}")
        templates.append((r[ts], "{}," + rest))
    written = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        line = ",".join(header) + "\n"
        f.write(line)
        written += len(line)
        base = first
        while written < target:
            chunk = "".join(t.format(base + offset) for offset, t in templates)
            f.write(chunk)
            written += len(chunk)
            base += span


if __name__ == "__main__":
    main()
