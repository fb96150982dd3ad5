"""The usual alternative to `snaptop report` on a k6 CSV: the same per-name numbers in pandas.

Per endpoint (k6's `name` tag, which is the URL unless the script set it, with the method):
requests, failures (`http_req_failed` = 1), mean, min, max and exact p50/p95/p99 of
`http_req_duration`, requests per second over the run; checks: passes and fails per name.

usage: pandas_k6_report.py K6_CSV [--all-columns]
By default only the needed columns are parsed (`usecols`, a tuned script);
--all-columns reads the whole file as the usual `pd.read_csv(path)` script does.
"""
import sys

import pandas as pd


def main() -> None:
    path = sys.argv[1]
    columns = ["metric_name", "timestamp", "metric_value", "check", "method", "name"]
    if "--all-columns" in sys.argv[2:]:
        df = pd.read_csv(path, low_memory=False)
    else:
        df = pd.read_csv(path, usecols=columns)
    span = max(1, df["timestamp"].max() - df["timestamp"].min() + 1)
    durations = df[df["metric_name"] == "http_req_duration"]
    per_name = durations.groupby(["method", "name"])["metric_value"].agg(
        requests="size",
        mean="mean",
        min="min",
        max="max",
        p50=lambda s: s.quantile(0.50),
        p95=lambda s: s.quantile(0.95),
        p99=lambda s: s.quantile(0.99),
    )
    failed = df[df["metric_name"] == "http_req_failed"]
    per_name["failures"] = failed.groupby(["method", "name"])["metric_value"].sum()
    per_name["rps"] = per_name["requests"] / span
    checks = df[df["metric_name"] == "checks"].groupby("check")["metric_value"].agg(
        passes="sum", total="size"
    )
    checks["fails"] = checks["total"] - checks["passes"]
    print(per_name.to_string())
    print(checks[["passes", "fails"]].to_string())


if __name__ == "__main__":
    main()
