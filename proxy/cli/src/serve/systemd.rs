//! systemd's conventions for `hive proxy`: state over `NOTIFY_SOCKET` (`READY=1` once every
//! listener accepts, `RELOADING=1` then `READY=1` around a SIGHUP reload, `STOPPING=1` when the
//! drain starts; nothing at all without systemd), and the listening sockets systemd passes
//! (`LISTEN_FDS`, socket activation), which the proxy uses instead of binding its own.

use anyhow::{bail, Result};
use sd_notify::NotifyState;
use tracing::warn;

/// Tells systemd `states`, when it asked to be told (`NOTIFY_SOCKET`, Type=notify).
pub fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// `RELOADING=1`, with the monotonic time systemd's Type=notify-reload asks for.
pub fn reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// The listening TCP sockets systemd passed to this process (none unless `LISTEN_PID` is this
/// process). Anything else passed (a UDP or Unix socket, a closed descriptor) is refused with
/// its descriptor number, rather than left unused.
pub fn inherited() -> Result<Vec<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) => out.push(l),
            Ok(None) => {}
            Err(e) => bail!(
                "socket activation: descriptor {} (LISTEN_FDS) is not a listening TCP socket: {e}",
                i + 3
            ),
        }
    }
    Ok(out)
}
