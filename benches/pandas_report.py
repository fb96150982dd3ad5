"""The usual alternative to `snaptop report` on a history file: the same aggregation in pandas.

Per endpoint: rows, peak and median p95/p99 (N/A and 0 = no data), peak RPS; over time:
users and RPS of the aggregate row in at most 240 buckets; peak users.

usage: pandas_report.py HISTORY_CSV [--all-columns]
By default only the needed columns are parsed (`usecols`, a tuned script);
--all-columns reads the whole file as the usual `pd.read_csv(path)` script does.
"""
import sys

import pandas as pd


def main() -> None:
    path = sys.argv[1]
    columns = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "95%", "99%"]
    if "--all-columns" in sys.argv[2:]:
        df = pd.read_csv(path, na_values=["N/A"], keep_default_na=False)
    else:
        df = pd.read_csv(path, usecols=columns, na_values=["N/A"], keep_default_na=False)
    for col in ("95%", "99%"):
        df.loc[df[col] <= 0, col] = float("nan")
    per_endpoint = df.groupby(["Type", "Name"], dropna=False).agg(
        rows=("Timestamp", "size"),
        peak_p95=("95%", "max"),
        median_p95=("95%", "median"),
        peak_p99=("99%", "max"),
        median_p99=("99%", "median"),
        peak_rps=("Requests/s", "max"),
    )
    total = df[df["Name"] == "Aggregated"]
    first, last = df["Timestamp"].min(), df["Timestamp"].max()
    width = max(1, -(-(last - first + 1) // 240))
    timeline = total.groupby((total["Timestamp"] - first) // width)[["User Count", "Requests/s"]].mean()
    print(per_endpoint.to_string())
    print(f"timeline points: {len(timeline)}, peak users: {df['User Count'].max()}")


if __name__ == "__main__":
    main()
