//! The Unix socket panes attach to: where it lives, who may connect, and how a socket
//! left by a killed daemon is told from a live one.
//!
//! Default: one socket per config under `$XDG_RUNTIME_DIR/snaptop/` (else
//! `/tmp/snaptop-$UID/`), in a directory of mode 0700 that must be ours. Team mode
//! (`--socket PATH --group NAME`): the socket is 0660 and owned by the group. Either
//! way every connection's peer credentials (`SO_PEERCRED`) are checked: the daemon's
//! own uid, or a member of the team group; anyone else is refused with a reason.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use sha2::Digest;
use tokio::net::UnixListener;

/// The directory of the per-user sockets.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("snaptop"),
        None => PathBuf::from(format!("/tmp/snaptop-{}", nix::unistd::getuid())),
    }
}

/// The default socket of a config: its file stem and a digest of its absolute path, so
/// two configs on one box get two daemons and `ls` still says which is which.
pub fn default_socket(config: &Path) -> PathBuf {
    let absolute = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let digest = sha2::Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .unwrap_or("config");
    runtime_dir().join(format!("{stem}-{short}.sock"))
}

/// Creates the per-user directory 0700, or checks that the one there is ours and closed
/// to others (in `/tmp` anyone could have made it first).
pub fn prepare_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(e).with_context(|| format!("socket directory {}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("socket directory {}", dir.display()))?;
    let me = nix::unistd::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != me {
        anyhow::bail!(
            "socket directory {} is not a directory of uid {me} (owner uid {}): remove it or set XDG_RUNTIME_DIR",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("socket directory {}: chmod 700", dir.display()))?;
    }
    Ok(())
}

/// Who may connect.
#[derive(Debug, Clone)]
pub struct Access {
    pub owner_uid: u32,
    /// Team mode: members of this group (its gid and name).
    pub group: Option<(u32, String)>,
}

impl Access {
    pub fn owner_only() -> Access {
        Access {
            owner_uid: nix::unistd::getuid().as_raw(),
            group: None,
        }
    }

    /// Team mode for the group `name`.
    pub fn team(name: &str) -> anyhow::Result<Access> {
        let group = nix::unistd::Group::from_name(name)
            .with_context(|| format!("--group {name}"))?
            .ok_or_else(|| anyhow::anyhow!("--group {name}: no such group"))?;
        Ok(Access {
            owner_uid: nix::unistd::getuid().as_raw(),
            group: Some((group.gid.as_raw(), name.to_string())),
        })
    }

    /// None when `peer` may attach, else the one-line reason it may not.
    pub fn check(&self, peer: &Peer) -> Option<String> {
        let Some(uid) = peer.uid else {
            return Some("the peer's credentials could not be read (SO_PEERCRED)".into());
        };
        if uid == self.owner_uid {
            return None;
        }
        if let Some((gid, _)) = &self.group
            && (peer.gid == Some(*gid) || in_group(uid, *gid))
        {
            return None;
        }
        let who = format!("uid {uid} ({})", user_name(uid));
        let served = format!("uid {} ({})", self.owner_uid, user_name(self.owner_uid));
        Some(match &self.group {
            Some((_, name)) => {
                format!("{who} may not attach: this daemon serves {served} and group {name}")
            }
            None => format!(
                "{who} may not attach: this daemon serves {served} only (a team daemon takes --group NAME)"
            ),
        })
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| "unknown user".into(), |u| u.name)
}

/// Whether `uid` has `gid` among its supplementary groups.
fn in_group(uid: u32, gid: u32) -> bool {
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// The credentials of the process at the other end of a connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
}

impl Peer {
    /// "alice (pid 4242)", for the run log.
    pub fn describe(&self) -> String {
        match (self.uid, self.pid) {
            (Some(uid), Some(pid)) => format!("{} (pid {pid})", user_name(uid)),
            (Some(uid), None) => user_name(uid),
            _ => "an unknown peer".into(),
        }
    }
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Peer {
        match stream.io().peer_cred() {
            Ok(cred) => Peer {
                uid: Some(cred.uid()),
                gid: Some(cred.gid()),
                pid: cred.pid(),
            },
            Err(e) => {
                tracing::warn!("SO_PEERCRED failed: {e}");
                Peer::default()
            }
        }
    }
}

/// A bound socket, removed when the daemon ends (if it is still the one we bound).
pub struct BoundSocket {
    pub path: PathBuf,
    ino: u64,
}

impl BoundSocket {
    /// Removes the socket file unless another daemon has replaced it since.
    pub fn remove(&self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What was at the socket's path before binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    Nothing,
    /// A socket file nobody listens on: left by a daemon that was killed.
    Stale,
}

/// Binds `path`: a live daemon there is an error naming it; a stale socket (connect
/// refused) is replaced. The socket is made under a temporary name, given its mode and
/// group, then renamed into place, so no client ever sees it half set up.
pub async fn bind(
    path: &Path,
    access: &Access,
) -> anyhow::Result<(BoundSocket, UnixListener, Previous)> {
    let mut previous = Previous::Nothing;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("socket {}", path.display())),
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                anyhow::bail!(
                    "socket {}: a file that is not a socket is in the way",
                    path.display()
                );
            }
            match tokio::net::UnixStream::connect(path).await {
                Ok(_) => anyhow::bail!(
                    "socket {}: another snaptop daemon already serves it (`snaptop` attaches to it)",
                    path.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::warn!(socket = %path.display(), "stale socket (connect refused): replacing it");
                    std::fs::remove_file(path).with_context(|| {
                        format!("stale socket {}: cannot remove", path.display())
                    })?;
                    previous = Previous::Stale;
                }
                Err(e) => return Err(e).with_context(|| format!("socket {}", path.display())),
            }
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snaptop.sock".into());
    let temporary = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)
        .with_context(|| format!("socket {}: cannot listen", path.display()))?;
    let set_up = || -> anyhow::Result<()> {
        let mode = match &access.group {
            Some((gid, name)) => {
                nix::unistd::chown(&temporary, None, Some(nix::unistd::Gid::from_raw(*gid)))
                    .with_context(|| format!("socket {}: chgrp {name}", path.display()))?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("socket {}: chmod", path.display()))?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("socket {}: cannot put it in place", path.display()))?;
        Ok(())
    };
    if let Err(e) = set_up() {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    let ino = std::fs::symlink_metadata(path)
        .map(|m| m.ino())
        .unwrap_or(0);
    let bound = BoundSocket {
        path: path.to_path_buf(),
        ino,
    };
    Ok((bound, listener, previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sockets_differ_per_config_and_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("prod.toml");
        let b = dir.path().join("staging.toml");
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let (sa, sb) = (default_socket(&a), default_socket(&b));
        assert_ne!(sa, sb);
        let name = sa.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("prod-") && name.ends_with(".sock"),
            "{name}"
        );
        assert_eq!(default_socket(&a), sa, "stable");
    }

    #[test]
    fn the_owner_is_let_in_and_a_stranger_is_told_why_not() {
        let access = Access {
            owner_uid: 4242,
            group: None,
        };
        let owner = Peer {
            uid: Some(4242),
            gid: Some(1),
            pid: Some(1),
        };
        assert_eq!(access.check(&owner), None);
        let stranger = Peer {
            uid: Some(4343),
            ..owner
        };
        let why = access.check(&stranger).unwrap();
        assert!(why.starts_with("uid 4343"), "{why}");
        assert!(why.contains("serves uid 4242"), "{why}");
        assert!(access.check(&Peer::default()).is_some());
    }

    #[test]
    fn team_mode_lets_in_the_group() {
        let access = Access {
            owner_uid: 4242,
            group: Some((777, "release".into())),
        };
        let member = Peer {
            uid: Some(5000),
            gid: Some(777),
            pid: None,
        };
        assert_eq!(access.check(&member), None);
        let other = Peer {
            gid: Some(778),
            ..member
        };
        assert!(access.check(&other).unwrap().contains("group release"));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A socket file whose listener is gone: what `kill -9` leaves.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (bound, _listener, previous) = bind(&path, &Access::owner_only()).await.unwrap();
        assert_eq!(previous, Previous::Stale);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = bind(&path, &Access::owner_only()).await;
        let err = format!("{:#}", again.err().unwrap());
        assert!(err.contains("already serves"), "{err}");
        bound.remove();
        assert!(!path.exists());
    }
}
