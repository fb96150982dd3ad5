//! The simulator of the GitHub, TeamCity, Datadog and Jira APIs, served on loopback.

pub mod cli;
