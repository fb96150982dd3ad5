"""Writes a large Locust _stats_history.csv by repeating a real one with shifted timestamps.

usage: make_history.py SOURCE_HISTORY_CSV OUT_CSV TARGET_BYTES
"""
import sys


def main() -> None:
    source, out, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(source, encoding="utf-8", newline="") as f:
        header = f.readline()
        rows = [line if line.endswith("\n") else line + "\n" for line in f if line.strip()]
    # Timestamp is the first column of every Locust generation's history file.
    split = [(int(line.split(",", 1)[0]), "," + line.split(",", 1)[1]) for line in rows]
    first = min(t for t, _ in split)
    span = max(t for t, _ in split) - first + 1
    written = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(header)
        written += len(header)
        shift = 0
        while written < target:
            block = "".join(f"{t + shift}{rest}" for t, rest in split)
            f.write(block)
            written += len(block)
            shift += span


if __name__ == "__main__":
    main()
