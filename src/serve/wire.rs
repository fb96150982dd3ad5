//! What travels between the daemon and the panes attached to it: the protocol version
//! both check first, the state a pane draws on attach, and the engine's events (matrices as
//! notices, fetched apart).
//!
//! JSON (serde) over HTTP on the Unix socket, the same routes as the loopback API. The
//! engine's own types already serialize for the store; this module only adds the
//! envelopes, so the protocol cannot drift from what the engine sends.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::engine::events::{EngineEvent, LogLine, Progress};
use crate::engine::model::{RunDetail, RunSummary, Snapshot};
use crate::engine::scheduler::ScheduleStatus;

/// Bumped on any change a client of the previous version would misread. Client and
/// daemon compare it before anything else; a mismatch names both versions.
pub const PROTOCOL: u32 = 1;

/// Every request from a pane carries its protocol version in this header; the daemon
/// answers a different one with 409 naming both.
pub const PROTOCOL_HEADER: &str = "snaptop-protocol";

/// `GET /api/hello`: who serves, so a client can check before it attaches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    pub protocol: u32,
    /// The daemon's `snaptop` version.
    pub version: String,
    pub pid: u32,
    /// The config file it serves (absolute).
    pub config: String,
    /// [`crate::config::Config::identity`]: what that config snapshots.
    pub identity: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl Hello {
    pub fn ours(config: String, identity: String, started_at: OffsetDateTime) -> Hello {
        Hello {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            config,
            identity,
            started_at,
        }
    }
}

/// A protocol mismatch, in the words both sides print.
pub fn mismatch(their_protocol: u32, their_version: &str) -> String {
    format!(
        "protocol mismatch: this snaptop is {} (protocol {PROTOCOL}), the daemon is {their_version} (protocol {their_protocol}); restart the daemon with this version (`systemctl --user restart snaptop` or stop it and run snaptop again)",
        env!("CARGO_PKG_VERSION"),
    )
}

/// The first event of `GET /api/attach`: everything a pane shows, as the daemon has it
/// now. Sent again after a pane fell too far behind to follow the events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttachState {
    pub snapshot: Option<Snapshot>,
    /// Newest first.
    pub history: Vec<RunSummary>,
    pub run_details: HashMap<u64, RunDetail>,
    pub store_problem: Option<String>,
    /// The run in progress, if any.
    pub progress: Option<Progress>,
    pub provisional: Option<Snapshot>,
    /// The running (or last) run's log so far.
    pub log: Vec<LogLine>,
    pub schedule: Option<ScheduleStatus>,
}

/// An engine event as it crosses the socket (everything but the coalesced-trigger
/// answer, which goes only to the client that triggered, as 409).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireEvent {
    Started {
        progress: Box<Progress>,
    },
    Progress {
        progress: Box<Progress>,
    },
    /// The matrix so far changed: `GET /api/attach/provisional` has it. The events stay
    /// small so that no pane's progress waits behind a whole matrix on its connection.
    Provisional {
        run_id: u64,
    },
    Log {
        line: LogLine,
    },
    /// The run ended with a snapshot, stored: `GET /api/attach/latest` has it.
    Finished {
        summary: RunSummary,
    },
    Failed {
        summary: RunSummary,
        error: String,
    },
    Schedule {
        status: Option<Box<ScheduleStatus>>,
    },
}

impl WireEvent {
    pub fn from_engine(ev: &EngineEvent) -> Option<WireEvent> {
        Some(match ev {
            EngineEvent::Started(p) => WireEvent::Started {
                progress: p.clone(),
            },
            EngineEvent::Progress(p) => WireEvent::Progress {
                progress: p.clone(),
            },
            EngineEvent::Provisional(s) => WireEvent::Provisional { run_id: s.run_id },
            EngineEvent::Log(l) => WireEvent::Log { line: l.clone() },
            EngineEvent::Finished { summary, .. } => WireEvent::Finished {
                summary: summary.clone(),
            },
            EngineEvent::Failed { summary, error } => WireEvent::Failed {
                summary: summary.clone(),
                error: error.clone(),
            },
            EngineEvent::Schedule(s) => WireEvent::Schedule { status: s.clone() },
            EngineEvent::AlreadyRunning => return None,
        })
    }

    /// The engine event, for those that carry everything; the matrix notices need
    /// their snapshot fetched first (`Err` gives it back).
    pub fn into_engine(self) -> Result<EngineEvent, Box<WireEvent>> {
        Ok(match self {
            WireEvent::Started { progress } => EngineEvent::Started(progress),
            WireEvent::Progress { progress } => EngineEvent::Progress(progress),
            WireEvent::Log { line } => EngineEvent::Log(line),
            WireEvent::Failed { summary, error } => EngineEvent::Failed { summary, error },
            WireEvent::Schedule { status } => EngineEvent::Schedule(status),
            notice @ (WireEvent::Provisional { .. } | WireEvent::Finished { .. }) => {
                return Err(Box::new(notice));
            }
        })
    }
}

/// One event of the attach stream with the moment the daemon sent it (microseconds since
/// the Unix epoch), from which the fan-out bench measures engine-to-pane latency.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub sent_us: u64,
    #[serde(flatten)]
    pub event: WireEvent,
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The answer to `POST /api/snapshot/trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerOutcome {
    Started(Option<u64>),
    /// Coalesced into the run in progress.
    AlreadyRunning(Option<u64>),
}

/// `GET /api/schedule`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduleAnswer {
    pub status: Option<ScheduleStatus>,
    /// Newest first.
    pub history: Vec<RunSummary>,
}
