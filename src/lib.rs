//! snaptop: a terminal cockpit for a delivery team.
//!
//! The library holds everything; `main.rs` only parses the command line. The engine
//! (`config`, `store`, `sources`, `engine`, `sim`, `report`) knows nothing of the UI;
//! `app` (state, keys, event loop) and `ui` (drawing, themes) are the TUI on top.

pub mod app;
pub mod cache;
pub mod clock;
pub mod config;
pub mod engine;
pub mod headless;
pub mod redact;
pub mod report;
pub mod sanitize;
pub mod schedule;
pub mod serve;
pub mod sim;
pub mod sources;
pub mod store;
pub mod ui;
