//! The proxy's own client list, for CLIENT LIST / INFO / KILL. Touched on connect, disconnect
//! and name changes only; the per-batch activity stamp is one relaxed store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use hive_upstream::stop::Signal;

/// What CLIENT LIST shows about one client, and the handle that disconnects it.
#[derive(Debug)]
pub struct ClientEntry {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub created: Instant,
    /// `created` as a reading of the request clock (`hive_upstream::stats::clock`), which the
    /// serve loop reads once per turn anyway.
    created_raw: u64,
    /// Milliseconds since `created` at the last batch read.
    pub active_ms: AtomicU64,
    pub info: Mutex<ClientInfo>,
    pub signal: Arc<Signal>,
    /// Bytes of buffers the client holds, as of its last batch (`maxmemory_buffers`).
    pub buffers: AtomicUsize,
    /// What the client is blocked on, for CLIENT UNBLOCK from another connection.
    pub blocked: Mutex<Blocked>,
    /// `client{id, peer}`: entered only around what the connection logs, not on every poll
    /// (instrumenting the task cost ~570 instructions per request at P1, 6.7% of a GET).
    pub span: tracing::Span,
}

/// What a client's blocking command waits on.
#[derive(Debug, Default)]
pub enum Blocked {
    #[default]
    No,
    /// Its own connections (BLPOP on one slot, XREAD BLOCK, WAIT): released with CLIENT UNBLOCK
    /// of their node-side ids.
    Conns(Vec<std::sync::Arc<hive_upstream::conn::backend::Backend>>),
    /// A blocking pop across shards, released by its task.
    Task(std::sync::Arc<crate::emulate::blocking::run::Release>),
}

/// The parts of a client's state that change after connect.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub resp: u8,
    /// Channels + patterns, and shard channels.
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
    pub multi: bool,
    /// The user the client authenticated as.
    pub user: String,
}

#[derive(Debug, Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
}

impl Registry {
    pub fn add(&self, e: Arc<ClientEntry>) {
        lock(&self.clients).insert(e.id, e);
    }

    pub fn remove(&self, id: u64) {
        lock(&self.clients).remove(&id);
    }

    /// Whether client `id` is connected.
    pub fn contains(&self, id: u64) -> bool {
        lock(&self.clients).contains_key(&id)
    }

    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        lock(&self.clients).values().cloned().collect()
    }
}

impl ClientEntry {
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> ClientEntry {
        ClientEntry {
            id,
            peer,
            local,
            created: Instant::now(),
            created_raw: hive_upstream::stats::clock().raw(),
            active_ms: AtomicU64::new(0),
            info: Mutex::new(ClientInfo {
                resp: 2,
                user: "default".into(),
                ..ClientInfo::default()
            }),
            signal: Arc::default(),
            buffers: AtomicUsize::new(0),
            blocked: Mutex::default(),
            span: tracing::info_span!("client", id, %peer),
        }
    }

    /// Records activity at `raw`, a reading of the request clock the caller already took (the
    /// serve loop's one per turn), so this costs no clock read of its own.
    pub fn touch(&self, raw: u64) {
        let ms = hive_upstream::stats::clock().delta_as_nanos(self.created_raw, raw) / 1_000_000;
        self.active_ms.store(ms, Ordering::Relaxed);
    }

    /// Publishes the client's buffer bytes; a store only when they changed, so a steady client
    /// leaves its cache line alone.
    pub fn set_buffers(&self, bytes: usize) {
        if self.buffers.load(Ordering::Relaxed) != bytes {
            self.buffers.store(bytes, Ordering::Relaxed);
        }
    }

    /// Whether the client holds any subscription (CLIENT LIST/KILL `TYPE pubsub`).
    pub fn is_subscriber(&self) -> bool {
        let i = lock(&self.info);
        i.sub + i.psub + i.ssub > 0
    }

    pub fn update(&self, f: impl FnOnce(&mut ClientInfo)) {
        f(&mut lock(&self.info));
    }

    /// One line of CLIENT LIST, with Redis's field names.
    pub fn line(&self) -> String {
        let i = lock(&self.info).clone();
        let age = self.created.elapsed();
        let idle_ms =
            (age.as_millis() as u64).saturating_sub(self.active_ms.load(Ordering::Relaxed));
        let s = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let flags = match (i.sub + i.psub + i.ssub > 0, i.multi) {
            (true, _) => "P",
            (_, true) => "x",
            _ => "N",
        };
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={flags} db=0 sub={} psub={} \
ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 \
tot-mem={} events=r cmd=NULL user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            s(&i.name),
            age.as_secs(),
            idle_ms / 1000,
            i.sub,
            i.psub,
            i.ssub,
            if i.multi { 0 } else { -1 },
            self.buffers.load(Ordering::Relaxed),
            i.user,
            i.resp.max(2),
            s(&i.lib_name),
            s(&i.lib_ver),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
