"""The usual alternative to `snaptop report results.jtl`: the same per-label figures in pandas.

Per label: samples, failures, error %, exact p50/p95/p99 (pandas' quantile, sorting), min,
max, mean, RPS over the run; the total over every sample; samples per 5 s bucket.

usage: pandas_jtl.py RESULTS_JTL [--usecols]
By default the whole file is read, as the usual `pd.read_csv("results.jtl")` script does;
--usecols parses only the four columns needed (a tuned script).
"""
import sys

import pandas as pd


def main() -> None:
    path = sys.argv[1]
    if "--usecols" in sys.argv[2:]:
        df = pd.read_csv(path, usecols=["timeStamp", "elapsed", "label", "success"])
    else:
        df = pd.read_csv(path)
    df["failed"] = ~df["success"].astype(bool)
    duration = (df["timeStamp"] + df["elapsed"]).max() - df["timeStamp"].min()
    per_label = df.groupby("label").agg(
        samples=("elapsed", "size"),
        failures=("failed", "sum"),
        mean=("elapsed", "mean"),
        min=("elapsed", "min"),
        max=("elapsed", "max"),
    )
    quantiles = df.groupby("label")["elapsed"].quantile([0.5, 0.95, 0.99]).unstack()
    per_label = per_label.join(quantiles)
    per_label["error_pct"] = per_label["failures"] * 100 / per_label["samples"]
    per_label["rps"] = per_label["samples"] / (duration / 1000)
    total = df["elapsed"].quantile([0.5, 0.95, 0.99])
    buckets = df.groupby(df["timeStamp"] // 5000)["elapsed"].size()
    print(per_label.to_string())
    print(f"total p50/p95/p99: {list(total)}; {len(buckets)} buckets of 5 s")


if __name__ == "__main__":
    main()
