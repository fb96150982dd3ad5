//! Fetchers for the four sources, speaking their public REST APIs, over one HTTP layer.

pub mod http;
