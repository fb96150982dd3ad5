//! Fetchers for the four sources, speaking their public REST APIs, over one HTTP layer.

pub mod datadog;
pub mod github;
pub mod http;
pub mod jira;
pub mod kustomize;
pub mod registry;
pub mod teamcity;
