//! Bottleneck reports from load-test CSVs (Locust).

pub mod cli;
