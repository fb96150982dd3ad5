//! A client of the daemon's socket: what an attached pane and the CLI use. HTTP/1.1 over
//! the Unix socket (reqwest), the same routes as the loopback API.
//!
//! [`Link`] keeps a pane attached: it follows the attach stream, says within a second
//! when the daemon is gone (the socket closes with the process), and reconnects,
//! starting the daemon again when this pane started the first one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc;

use super::wire::{self, AttachState, Envelope, Hello, TriggerOutcome, WireEvent};
use crate::cache::CacheReport;
use crate::cache::maintenance::{Done, Job};
use crate::engine::events::EngineEvent;
use crate::engine::model::Snapshot;

/// The largest event a client takes (the state of a very large estate is a few MiB).
const MAX_EVENT_BYTES: usize = 64 << 20;
/// A command (trigger, cancel, cache job…) that takes longer than this is reported as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client could not attach.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// Nothing listens there: no socket file, or one a killed daemon left.
    #[error("no daemon at {0}")]
    Absent(PathBuf),
    /// The daemon refused this user (its reason).
    #[error("{0}")]
    Refused(String),
    /// The daemon speaks another protocol version (both named).
    #[error("{0}")]
    Mismatch(String),
    #[error("daemon at {socket}: {message}")]
    Other { socket: PathBuf, message: String },
}

/// Talks to one daemon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    socket: PathBuf,
}

impl Client {
    /// Connects and checks the protocol version before anything else.
    pub async fn connect(socket: &Path) -> Result<(Client, Hello), ConnectError> {
        // What the plain connect says tells "nobody there" from "not for you".
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ConnectError::Absent(socket.to_path_buf()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ConnectError::Refused(format!(
                    "socket {}: permission denied (a team's daemon lets in the members of its --group)",
                    socket.display()
                )));
            }
            Err(e) => {
                return Err(ConnectError::Other {
                    socket: socket.to_path_buf(),
                    message: e.to_string(),
                });
            }
        }
        let other = |message: String| ConnectError::Other {
            socket: socket.to_path_buf(),
            message,
        };
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| other(e.to_string()))?;
        let client = Client {
            http,
            socket: socket.to_path_buf(),
        };
        // Without our protocol header: a daemon of any version answers hello.
        let response = client
            .http
            .get("http://snaptop/api/hello")
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    ConnectError::Absent(socket.to_path_buf())
                } else {
                    other(e.to_string())
                }
            })?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| other(format!("hello: {e}")))?;
        if status == StatusCode::FORBIDDEN {
            return Err(ConnectError::Refused(error_text(&body)));
        }
        if !status.is_success() {
            return Err(other(format!("hello: {status}: {}", error_text(&body))));
        }
        let protocol = body["protocol"].as_u64().unwrap_or(0) as u32;
        let version = body["version"].as_str().unwrap_or("unknown").to_string();
        if protocol != wire::PROTOCOL {
            return Err(ConnectError::Mismatch(wire::mismatch(protocol, &version)));
        }
        let hello: Hello =
            serde_json::from_value(body).map_err(|e| other(format!("hello: {e}")))?;
        Ok((client, hello))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("http://snaptop{path}"))
            .header(wire::PROTOCOL_HEADER, wire::PROTOCOL.to_string())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, T), String> {
        let response = request
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() && status != StatusCode::CONFLICT {
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(format!("daemon: {status}: {}", error_text(&body)));
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("daemon: unreadable answer ({status}): {e}"))?;
        Ok((status, value))
    }

    fn unreachable(&self, e: &reqwest::Error) -> String {
        if e.is_connect() {
            format!("the daemon at {} is not running", self.socket.display())
        } else {
            format!("daemon at {}: {e}", self.socket.display())
        }
    }

    /// Starts a snapshot, or says which one is already running (coalesced).
    pub async fn trigger(&self, from_cli: bool) -> Result<TriggerOutcome, String> {
        let path = if from_cli {
            "/api/snapshot/trigger?by=cli"
        } else {
            "/api/snapshot/trigger"
        };
        let (status, v): (_, serde_json::Value) =
            self.call(self.request(reqwest::Method::POST, path)).await?;
        let id = v["run_id"].as_u64();
        Ok(if status == StatusCode::CONFLICT {
            TriggerOutcome::AlreadyRunning(id)
        } else {
            TriggerOutcome::Started(id)
        })
    }

    /// Cancels the running snapshot (false: none was running).
    pub async fn cancel(&self) -> Result<bool, String> {
        let (status, _): (_, serde_json::Value) = self
            .call(self.request(reqwest::Method::POST, "/api/snapshot/cancel"))
            .await?;
        Ok(status != StatusCode::CONFLICT)
    }

    pub async fn set_schedule(&self, edits: &crate::schedule::Layer) -> Result<(), String> {
        let body: serde_json::Map<String, serde_json::Value> = edits
            .iter()
            .map(|(k, v)| (k.name().to_string(), json!(v)))
            .collect();
        let _: (_, serde_json::Value) = self
            .call(
                self.request(reqwest::Method::PUT, "/api/schedule")
                    .json(&body),
            )
            .await?;
        Ok(())
    }

    pub async fn schedule(&self) -> Result<wire::ScheduleAnswer, String> {
        Ok(self
            .call(self.request(reqwest::Method::GET, "/api/schedule"))
            .await?
            .1)
    }

    pub async fn pause(&self, paused: bool) -> Result<(), String> {
        let _: (_, serde_json::Value) = self
            .call(
                self.request(reqwest::Method::POST, "/api/schedule/pause")
                    .json(&json!({ "paused": paused })),
            )
            .await?;
        Ok(())
    }

    pub async fn cache_report(&self) -> Result<CacheReport, String> {
        Ok(self
            .call(self.request(reqwest::Method::GET, "/api/cache"))
            .await?
            .1)
    }

    pub async fn cache_job(&self, job: Job) -> Result<Done, String> {
        Ok(self
            .call(
                self.request(reqwest::Method::POST, "/api/cache/jobs")
                    .json(&job),
            )
            .await?
            .1)
    }

    /// Opens the attach stream: a state first, then every engine event.
    pub async fn attach(&self) -> Result<Attachment, String> {
        let response = self
            .request(reqwest::Method::GET, "/api/attach")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let v: serde_json::Value = response.json().await.unwrap_or_default();
            return Err(format!("attach: {status}: {}", error_text(&v)));
        }
        Ok(Attachment {
            response,
            buffer: Vec::new(),
            client: self.clone(),
        })
    }

    /// A matrix the attach stream announced (`/api/attach/provisional` or `/latest`).
    async fn matrix(&self, path: &str) -> Result<Option<Snapshot>, String> {
        let response = self
            .request(reqwest::Method::GET, path)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(format!("{path}: {status}"));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{path}: unreadable snapshot: {e}"))
    }
}

fn error_text(body: &serde_json::Value) -> String {
    body["error"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_string)
}

/// What the attach stream brings.
#[derive(Debug, Clone)]
pub enum AttachItem {
    /// Everything a pane shows (first, and again after falling behind).
    State(Box<AttachState>),
    /// An engine event, with when the daemon sent it and when its notice arrived here
    /// (µs since the epoch; a matrix is fetched after its notice, so `received_us` is
    /// the event's delivery and the moment `next` returns is the matrix's).
    Event {
        event: EngineEvent,
        sent_us: u64,
        received_us: u64,
    },
}

/// The attach stream: Server-Sent Events (`event:`/`data:` lines, a blank line ends
/// one), parsed here: twenty lines that keep reqwest's default features.
pub struct Attachment {
    response: reqwest::Response,
    buffer: Vec<u8>,
    client: Client,
}

impl Attachment {
    /// The next item; None when the daemon closed the stream (it ended or was killed).
    pub async fn next(&mut self) -> Option<Result<AttachItem, String>> {
        loop {
            if let Some(end) = find_event_end(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end.1).take(end.0).collect();
                let received_us = wire::now_us();
                match parse_block(&block) {
                    Some(Ok(Parsed::State(state))) => return Some(Ok(AttachItem::State(state))),
                    Some(Ok(Parsed::Event(envelope))) => {
                        let sent_us = envelope.sent_us;
                        let event = match envelope.event.into_engine() {
                            Ok(event) => event,
                            Err(notice) => match self.fetch(notice).await {
                                Ok(Some(event)) => event,
                                // A matrix already replaced (the run moved on).
                                Ok(None) => continue,
                                Err(e) => return Some(Err(e)),
                            },
                        };
                        return Some(Ok(AttachItem::Event {
                            event,
                            sent_us,
                            received_us,
                        }));
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    // A keep-alive comment.
                    None => continue,
                }
            }
            if self.buffer.len() > MAX_EVENT_BYTES {
                return Some(Err(format!(
                    "attach: an event over {} MiB",
                    MAX_EVENT_BYTES >> 20
                )));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) => return None,
                Err(e) => return Some(Err(format!("attach: {e}"))),
            }
        }
    }
}

impl Attachment {
    /// The engine event a matrix notice stands for, its matrix fetched; None for a
    /// provisional matrix that is gone already.
    async fn fetch(&self, notice: Box<WireEvent>) -> Result<Option<EngineEvent>, String> {
        match *notice {
            WireEvent::Provisional { run_id } => {
                let got = self.client.matrix("/api/attach/provisional").await?;
                Ok(got
                    .filter(|s| s.run_id == run_id)
                    .map(|s| EngineEvent::Provisional(Box::new(s))))
            }
            WireEvent::Finished { summary } => {
                match self.client.matrix("/api/attach/latest").await? {
                    Some(snapshot) => Ok(Some(EngineEvent::Finished {
                        summary,
                        snapshot: Box::new(snapshot),
                    })),
                    None => Err(format!(
                        "attach: run #{} finished but its snapshot is not there",
                        summary.id
                    )),
                }
            }
            other => Ok(other.into_engine().ok()),
        }
    }
}

#[derive(Debug)]
enum Parsed {
    State(Box<AttachState>),
    Event(Envelope),
}

/// (length of the event, length including its blank line).
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    memchr::memmem::find(buffer, b"\n\n").map(|i| (i, i + 2))
}

fn parse_block(block: &[u8]) -> Option<Result<Parsed, String>> {
    let text = String::from_utf8_lossy(block);
    let mut name = "message";
    let mut data = String::new();
    for line in text.split('\n') {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(if name == "state" {
        serde_json::from_str::<AttachState>(&data)
            .map(|s| Parsed::State(Box::new(s)))
            .map_err(|e| format!("attach: unreadable state: {e}"))
    } else {
        serde_json::from_str::<Envelope>(&data)
            .map(Parsed::Event)
            .map_err(|e| format!("attach: unreadable {name} event: {e}"))
    })
}

/// How a pane starts a daemon when none serves its config.
#[derive(Debug, Clone)]
pub struct Autostart {
    pub config: PathBuf,
}

/// What a [`Link`] tells the pane.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// Attached (again): the daemon and everything it shows now.
    Attached {
        hello: Box<Hello>,
        state: Box<AttachState>,
    },
    Engine(EngineEvent),
    /// The daemon is gone; reconnecting.
    Lost(String),
    /// Reconnecting is pointless (a refusal, a protocol mismatch): the reason.
    GaveUp(String),
}

/// Keeps a pane attached to the daemon at `socket`.
pub struct Link {
    pub client: Client,
    pub events: mpsc::Receiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    /// Follows `attachment` (its state already read by the caller), then reattaches
    /// whenever it ends.
    pub fn start(
        client: Client,
        hello: Hello,
        attachment: Attachment,
        autostart: Option<Autostart>,
    ) -> Link {
        let (tx, rx) = mpsc::channel(crate::engine::EVENT_BUFFER);
        let task = tokio::spawn(follow(
            client.clone(),
            hello,
            Some(attachment),
            autostart,
            tx,
        ));
        Link {
            client,
            events: rx,
            task,
        }
    }
}

async fn follow(
    mut client: Client,
    mut hello: Hello,
    mut first: Option<Attachment>,
    autostart: Option<Autostart>,
    tx: mpsc::Sender<LinkEvent>,
) {
    loop {
        let attached = match first.take() {
            Some(stream) => Ok(stream),
            None => client.attach().await,
        };
        let lost = match attached {
            Ok(mut stream) => loop {
                match stream.next().await {
                    Some(Ok(AttachItem::State(state))) => {
                        let ev = LinkEvent::Attached {
                            hello: Box::new(hello.clone()),
                            state,
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(AttachItem::Event { event, .. })) => {
                        if tx.send(LinkEvent::Engine(event)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => break e,
                    None => break format!("daemon pid {} closed the connection", hello.pid),
                }
            },
            Err(e) => e,
        };
        tracing::warn!("detached: {lost}");
        if tx.send(LinkEvent::Lost(lost)).await.is_err() {
            return;
        }
        match reconnect(client.socket(), autostart.as_ref()).await {
            Ok((c, h)) => {
                tracing::info!(pid = h.pid, "reattached");
                client = c;
                hello = h;
            }
            Err(why) => {
                let _ = tx.send(LinkEvent::GaveUp(why)).await;
                return;
            }
        }
    }
}

/// Tries again with backoff (a quarter second, doubling to two), forever unless the
/// daemon refuses us; starts the daemon when this pane may.
async fn reconnect(
    socket: &Path,
    autostart: Option<&Autostart>,
) -> Result<(Client, Hello), String> {
    let mut delay = Duration::from_millis(250);
    let mut started_at: Option<std::time::Instant> = None;
    loop {
        match Client::connect(socket).await {
            Ok(found) => return Ok(found),
            Err(e @ (ConnectError::Refused(_) | ConnectError::Mismatch(_))) => {
                return Err(e.to_string());
            }
            Err(ConnectError::Absent(_)) => {
                if let Some(auto) = autostart
                    && started_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                {
                    started_at = Some(std::time::Instant::now());
                    if let Err(e) = super::daemon::spawn(&auto.config, socket) {
                        tracing::warn!("cannot start the daemon again: {e:#}");
                    }
                }
            }
            Err(e) => tracing::debug!("reconnect: {e}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_parse_and_keep_alives_are_skipped() {
        assert!(parse_block(b":").is_none());
        let state = serde_json::to_string(&AttachState::default()).unwrap();
        let block = format!("event: state\ndata: {state}");
        assert!(matches!(
            parse_block(block.as_bytes()),
            Some(Ok(Parsed::State(_)))
        ));
        let bad = parse_block(b"event: progress\ndata: {\"sent_us\": 1}").unwrap();
        assert!(bad.unwrap_err().contains("unreadable progress"));
        assert_eq!(find_event_end(b"event: a\ndata: b\n\nrest"), Some((16, 18)));
    }
}
