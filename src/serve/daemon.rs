//! Starting the daemon in the background, as tmux starts its server: the first `snaptop`
//! pane of a config starts `snaptop serve --auto` detached from its terminal, and every
//! pane (that one included) attaches to it. An auto-started daemon ends by itself once
//! no pane has been attached for [`AUTO_LINGER`] and no run is going; one started by
//! hand or by systemd runs until stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long an auto-started daemon outlives its last pane: reopening a pane within it
/// finds the engine warm (cache, ETA, schedule) instead of starting another.
pub const AUTO_LINGER: Duration = Duration::from_secs(120);
/// How long a pane waits for the daemon it started to answer.
pub const START_WAIT: Duration = Duration::from_secs(10);
/// How long a pane whose daemon ended at once still waits for another one to answer.
const RACE_WAIT: Duration = Duration::from_secs(2);

/// Starts `snaptop --config CONFIG serve --auto` (it finds the socket as the pane did:
/// `[serve] socket` or the config's default) in its own session
/// (a closed terminal's SIGHUP does not reach it), stdin and stdout closed, stderr to
/// `daemon.err` in the state directory (it logs to its file like every snaptop).
pub fn spawn(config: &Path, socket: &Path) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("where is this snaptop binary")?;
    let state_dir = crate::config::default_state_dir();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("state directory {}", state_dir.display()))?;
    let err_path = state_dir.join("daemon.err");
    let err = std::fs::File::create(&err_path)
        .with_context(|| format!("daemon stderr {}", err_path.display()))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .arg("--auto")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().context("cannot start `snaptop serve`")?;
    tracing::info!(pid = child.id(), socket = %socket.display(), "started a daemon");
    Ok(child)
}

/// Starts a daemon and waits until it answers on `socket`. If it ends first, its own
/// words (the last line it wrote on stderr) are the error.
pub async fn start_and_wait(
    config: &Path,
    socket: &Path,
) -> anyhow::Result<(super::client::Client, super::wire::Hello)> {
    use super::client::{Client, ConnectError};
    let mut child = spawn(config, socket)?;
    let began = Instant::now();
    // When ours ends at once, another pane's daemon may have won the race to the store
    // and be a moment from serving: it is waited for a little before giving up.
    let mut ended: Option<(Instant, std::process::ExitStatus)> = None;
    loop {
        match Client::connect(socket).await {
            Ok(found) => {
                // Reaped off the loop when it ends, so no zombie is left.
                std::thread::spawn(move || child.wait());
                return Ok(found);
            }
            Err(e @ (ConnectError::Refused(_) | ConnectError::Mismatch(_))) => {
                return Err(e.into());
            }
            Err(_) => {}
        }
        if ended.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            ended = Some((Instant::now(), status));
        }
        if let Some((at, status)) = ended
            && at.elapsed() > RACE_WAIT
        {
            let text =
                std::fs::read_to_string(crate::config::default_state_dir().join("daemon.err"))
                    .unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            anyhow::bail!(
                "the daemon exited ({status}) before serving {}: {}",
                socket.display(),
                last.strip_prefix("snaptop: ").unwrap_or(last)
            );
        }
        if ended.is_none() && began.elapsed() > START_WAIT {
            std::thread::spawn(move || child.wait());
            anyhow::bail!(
                "the daemon did not answer on {} within {}s",
                socket.display(),
                START_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
