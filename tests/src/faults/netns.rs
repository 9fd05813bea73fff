//! A private network of Linux network namespaces for fault tests: one namespace per member
//! (node, sentinel, proxy, the test's own control side), each joined by a veth pair to a bridge
//! in a hub namespace, with an address in 10.213.N.0/24. No namespace has a default route and
//! nothing is attached to a host interface, so nothing can leave them. A path is cut with
//! `blackhole` routes on both ends (what this kernel offers; see ../shared/notes). Everything
//! is removed on Drop.

use std::fs::File;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Why namespaces cannot be used on this machine, if they cannot (not root, no `ip netns`).
pub fn unavailable() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("network namespaces need root".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no `ip` command (iproute2): {e}")),
    }
}

/// The namespaces of one fault test.
pub struct Lab {
    /// Namespace names start with this (unique per process and lab).
    prefix: String,
    /// The third octet of this lab's 10.213.N.0/24 (labs share no link, so they may share it).
    net: u8,
    members: Vec<String>,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lab {
    /// A hub with a bridge, and `members` (short names) attached to it, in order: member `k`
    /// gets 10.213.N.(k+10).
    pub fn new(members: &[&str]) -> Result<Lab> {
        use std::sync::atomic::{AtomicU8, Ordering};
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut lab = Lab {
            prefix: format!("hf{}x{n}", std::process::id() % 100_000),
            net: 1,
            members: Vec::new(),
        };
        let hub = lab.ns("hub");
        ip(&["netns", "add", &hub])?;
        lab.members.push("hub".into());
        lab.exec("hub", &["ip", "link", "add", "br0", "type", "bridge"])?;
        lab.exec("hub", &["ip", "link", "set", "br0", "up"])?;
        for (k, m) in members.iter().enumerate() {
            lab.attach(m, k)?;
        }
        Ok(lab)
    }

    fn ns(&self, member: &str) -> String {
        format!("{}-{member}", self.prefix)
    }

    fn attach(&mut self, member: &str, k: usize) -> Result<()> {
        let ns = self.ns(member);
        ip(&["netns", "add", &ns])?;
        self.members.push(member.into());
        // Interface names stay under 16 bytes: the hub's end is named by index.
        let (inner, outer) = ("eth0".to_string(), format!("v{k}"));
        let hub = self.ns("hub");
        ip(&[
            "link", "add", &outer, "netns", &hub, "type", "veth", "peer", "name", &inner, "netns",
            &ns,
        ])?;
        self.exec("hub", &["ip", "link", "set", &outer, "master", "br0", "up"])?;
        let addr = format!("{}/24", self.addr(k));
        self.exec(member, &["ip", "addr", "add", &addr, "dev", &inner])?;
        self.exec(member, &["ip", "link", "set", &inner, "up"])?;
        self.exec(member, &["ip", "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Member `k`'s address.
    pub fn addr(&self, k: usize) -> String {
        format!("10.213.{}.{}", self.net, k + 10)
    }

    /// A member's address, by name.
    pub fn ip(&self, member: &str) -> String {
        // `members` starts with the hub, which has no address.
        let k = self.members[1..]
            .iter()
            .position(|m| m == member)
            .unwrap_or_else(|| panic!("no member {member}"));
        self.addr(k)
    }

    /// Runs `cmd` inside `member`'s namespace.
    pub fn exec(&self, member: &str, cmd: &[&str]) -> Result<()> {
        let ns = self.ns(member);
        let mut args = vec!["netns", "exec", &ns];
        args.extend_from_slice(cmd);
        ip(&args)
    }

    /// The command prefix that runs a program inside `member`'s namespace.
    pub fn prefix(&self, member: &str) -> Vec<String> {
        vec!["netns".into(), "exec".into(), self.ns(member)]
    }

    /// The file that names `member`'s namespace (for `setns`).
    pub fn path(&self, member: &str) -> std::path::PathBuf {
        format!("/run/netns/{}", self.ns(member)).into()
    }

    /// Moves the calling thread into `member`'s namespace: its sockets, and the threads and
    /// processes it starts from then on, live there.
    pub fn enter(&self, member: &str) -> Result<()> {
        let path = self.path(member).display().to_string();
        let f = File::open(&path).with_context(|| format!("open {path}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("setns {path}"))?;
        Ok(())
    }

    /// Cuts the path between members `a` and `b` (addresses `ia`, `ib`), both directions.
    pub fn cut(&self, a: &str, ia: &str, b: &str, ib: &str) -> Result<()> {
        self.exec(a, &["ip", "route", "add", "blackhole", &format!("{ib}/32")])?;
        self.exec(b, &["ip", "route", "add", "blackhole", &format!("{ia}/32")])
    }

    /// Restores the path `cut` took away.
    pub fn heal(&self, a: &str, ia: &str, b: &str, ib: &str) -> Result<()> {
        self.exec(a, &["ip", "route", "del", "blackhole", &format!("{ib}/32")])?;
        self.exec(b, &["ip", "route", "del", "blackhole", &format!("{ia}/32")])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and with them their peers.
        for m in self.members.iter().rev() {
            let _ = ip(&["netns", "del", &self.ns(m)]);
        }
    }
}
