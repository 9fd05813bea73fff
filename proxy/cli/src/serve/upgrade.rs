//! Upgrades without refusing a connection: SIGUSR2 (or `hive proxy --upgrade --pidfile F`)
//! starts the binary at the path this process started from (the new build, once installed
//! there) with the same arguments, and hands it the listening sockets (client, TLS, admin)
//! over a Unix socket with SCM_RIGHTS. Once the new process accepts, this one drains (stops
//! accepting, finishes what its clients sent, closes each between replies) and exits. A new
//! process that fails (a bad config, a listener it cannot use) leaves this one serving, with
//! the reason in the log; the kernel queues connections on the shared sockets meanwhile.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The handover socket's path, for the new process.
const ENV: &str = "HIVE_UPGRADE_SOCKET";
/// At most this many sockets change hands (client, TLS, admin).
const MAX_FDS: usize = 4;
/// How long the new process may take to take the sockets and to accept.
const TAKE_OVER: Duration = Duration::from_secs(60);

static EXE: OnceLock<PathBuf> = OnceLock::new();

/// Remembers the path this process started from: once the binary there is replaced,
/// `/proc/self/exe` names the old, deleted file.
pub fn remember_exe() {
    if let Ok(p) = std::env::current_exe() {
        let _ = EXE.set(p);
    }
}

fn exe() -> Result<PathBuf> {
    let p = EXE.get().cloned().context("the binary's path is unknown")?;
    // In case it was read after the file was replaced.
    let s = p.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(orig) => PathBuf::from(orig),
        None => p,
    })
}

/// The old side: starts the new process and hands it `sockets`. Returns its pid once it
/// accepts; on an error this process is unchanged and keeps serving.
pub fn hand_over(sockets: &[TcpListener]) -> Result<u32> {
    let dir = tempfile::Builder::new().prefix("hive-upgrade-").tempdir()?;
    let path = dir.path().join("handover.sock");
    let listener = UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let exe = exe()?;
    let mut child = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(ENV, &path)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", exe.display()))?;
    let deadline = Instant::now() + TAKE_OVER;
    let failed = |child: &mut std::process::Child, what: &str| -> anyhow::Error {
        match child.try_wait() {
            Ok(Some(status)) => anyhow::anyhow!("the new process exited ({status}) {what}"),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::anyhow!("the new process did not answer within {TAKE_OVER:?} {what}")
            }
        }
    };
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let exited = matches!(child.try_wait(), Ok(Some(_)));
                if exited || Instant::now() > deadline {
                    return Err(failed(&mut child, "before taking the sockets"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("accept the new process"),
        }
    };
    stream.set_nonblocking(false)?;
    let fds: Vec<_> = sockets.iter().map(|s| s.as_fd()).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        bail!("more than {MAX_FDS} sockets to hand over");
    }
    rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(b"H")],
        &mut control,
        SendFlags::empty(),
    )
    .context("send the sockets")?;
    stream.set_read_timeout(Some(TAKE_OVER))?;
    let mut answer = Vec::new();
    let _ = (&mut stream).take(64 * 1024).read_to_end(&mut answer);
    match answer.split_first() {
        Some((b'R', _)) => Ok(child.id()),
        Some((b'E', why)) => {
            let _ = child.wait();
            bail!(
                "the new process could not start: {}",
                String::from_utf8_lossy(why)
            )
        }
        _ => Err(failed(&mut child, "before accepting")),
    }
}

/// The new side: when started by `hand_over`, the sockets it was handed, and the stream to
/// say `ready` on.
pub fn take_over() -> Result<Option<(UnixStream, Vec<TcpListener>)>> {
    let Some(path) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    // Not passed on to anything this process starts.
    std::env::remove_var(ENV);
    let stream = UnixStream::connect(Path::new(&path))
        .with_context(|| format!("upgrade: connect to {}", Path::new(&path).display()))?;
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("upgrade: receive the sockets")?;
    let mut sockets = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            sockets.extend(fds.map(TcpListener::from));
        }
    }
    if sockets.is_empty() {
        bail!("upgrade: the old process sent no socket");
    }
    Ok(Some((stream, sockets)))
}

/// The new side accepts: the old one may drain now.
pub fn ready(mut stream: UnixStream) -> Result<()> {
    stream
        .write_all(b"R")
        .context("upgrade: tell the old process")
}

/// The new side could not start: the old one keeps serving and reports `why`.
pub fn failed(mut stream: UnixStream, why: &str) {
    let _ = stream.write_all(format!("E{why}").as_bytes());
}

/// `hive proxy --upgrade --pidfile F`: signals the proxy whose pid `F` holds and waits until a
/// new pid is written there (the new process accepts), or the old one reports why not.
pub fn request(pidfile: &Path) -> Result<()> {
    let read_pid = || -> Result<i32> {
        let text = std::fs::read_to_string(pidfile)
            .with_context(|| format!("read {}", pidfile.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{}: not a pid", pidfile.display()))
    };
    let old = read_pid()?;
    let errors = error_file(pidfile);
    let _ = std::fs::remove_file(&errors);
    let pid = rustix::process::Pid::from_raw(old).context("pid 0")?;
    rustix::process::kill_process(pid, rustix::process::Signal::USR2)
        .with_context(|| format!("signal pid {old} (from {})", pidfile.display()))?;
    let deadline = Instant::now() + TAKE_OVER + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(why) = std::fs::read_to_string(&errors) {
            bail!(
                "the upgrade failed; pid {old} keeps serving: {}",
                why.trim()
            );
        }
        match read_pid() {
            Ok(new) if new != old => {
                println!("upgraded: pid {new} accepts; pid {old} drains and exits");
                return Ok(());
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    bail!("no new process took over within {TAKE_OVER:?}; see the proxy's log")
}

/// Where a failed upgrade's reason is written, beside the pid file.
pub fn error_file(pidfile: &Path) -> PathBuf {
    let mut p = pidfile.as_os_str().to_owned();
    p.push(".upgrade-error");
    PathBuf::from(p)
}
