//! A small real Locust 2.47 run bundled into the binary, so demo mode has a report to
//! show. It is written to a directory and read like any other run: the demo goes through
//! the same reader, analysis and reload path as real files.

use std::path::Path;

use super::ReportRequest;

/// The run's files (`tests/fixtures/locust/2.47`, a real Locust 2.47 run).
const RUN_FILES: &[(&str, &str)] = &[
    (
        "api_stats.csv",
        include_str!("../../tests/fixtures/locust/2.47/api_stats.csv"),
    ),
    (
        "api_stats_history.csv",
        include_str!("../../tests/fixtures/locust/2.47/api_stats_history.csv"),
    ),
    (
        "api_failures.csv",
        include_str!("../../tests/fixtures/locust/2.47/api_failures.csv"),
    ),
    (
        "api_exceptions.csv",
        include_str!("../../tests/fixtures/locust/2.47/api_exceptions.csv"),
    ),
];

/// Targets for the demo run: some pass, some fail, one names an endpoint the run does
/// not have (to show the warning).
const TARGETS_TOML: &str = include_str!("../../tests/fixtures/targets/demo.toml");

/// Writes the demo run and its targets into `dir`; returns the request that reads them.
pub fn write_demo_run(dir: &Path) -> std::io::Result<ReportRequest> {
    for (name, text) in RUN_FILES {
        std::fs::write(dir.join(name), text)?;
    }
    let targets = dir.join("targets.toml");
    std::fs::write(&targets, TARGETS_TOML)?;
    Ok(ReportRequest {
        inputs: vec![dir.join("api")],
        targets: Some(targets),
        ..ReportRequest::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_run_reads_and_judges() {
        let dir = tempfile::tempdir().unwrap();
        let request = write_demo_run(dir.path()).unwrap();
        let report = super::super::build_report(&request, None).unwrap();
        assert_eq!(report.run.endpoints.len(), 6);
        assert!(report.run.history.is_some());
        let targets = report.targets.unwrap();
        assert!(targets.outcomes.iter().any(|o| o.passed));
        assert!(targets.outcomes.iter().any(|o| !o.passed));
        assert_eq!(targets.warnings.len(), 1);
    }
}
