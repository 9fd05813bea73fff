//! `hive monitor`: a live terminal dashboard (ratatui), refreshed every second from the same
//! poll as `hive status`: health, slot coverage, nodes with roles and memory bars, hit rate and
//! latency against targets, replication lag, ops/s sparklines, and recent events (role and
//! link changes from hive-module's `__hive__:events`, nodes going down and coming back).
//! `q` (or Esc, Ctrl-C) quits; it keeps running while nodes are down.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use crossterm::event::{self, Event, KeyCode, KeyModifiers};
use hive_upstream::facts::health::{self, Health, Thresholds};
use hive_upstream::facts::Snapshot;
use tokio::sync::{mpsc, watch};

use crate::inspect::view::{self, ProxyFacts};
use crate::target::{poll, ProxyArg, Target};

mod draw;
mod events;

#[derive(Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub target: Target,
    /// A running proxy to include (clients, ops/s, PING latency through it).
    #[command(flatten)]
    pub proxy: ProxyArg,
    /// Hit rate target, percent.
    #[arg(long, default_value_t = 95.0)]
    pub hit_target: f64,
    /// Latency target, milliseconds.
    #[arg(long, default_value_t = 5.0)]
    pub latency_target_ms: f64,
    /// Replicas each master should have.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Refresh interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

/// Everything one frame shows.
pub struct State {
    pub snapshot: Option<Snapshot>,
    pub proxy: Option<ProxyFacts>,
    pub health: Health,
    pub findings: Vec<health::Finding>,
    /// ops/s per node, newest last.
    pub ops: BTreeMap<String, VecDeque<u64>>,
    pub events: VecDeque<String>,
    pub hit_target: f64,
    pub latency_target_ms: f64,
    pub refreshed: String,
}

const HISTORY: usize = 120;
const EVENTS: usize = 200;

impl State {
    fn event(&mut self, e: String) {
        let line = format!("{} {e}", clock());
        self.events.push_front(line);
        self.events.truncate(EVENTS);
    }

    /// Takes a new poll, noting nodes that went down, came back or changed role.
    fn update(&mut self, s: Snapshot, t: &Thresholds) {
        if let Some(old) = &self.snapshot {
            let mut notes = Vec::new();
            for n in &s.nodes {
                match old.node(&n.addr) {
                    Some(o) if o.up && !n.up => notes.push(format!(
                        "{} is DOWN: {}",
                        n.addr,
                        n.error.clone().unwrap_or_default()
                    )),
                    Some(o) if !o.up && n.up => {
                        notes.push(format!("{} is back ({})", n.addr, n.role))
                    }
                    Some(o) if o.up && n.up && o.role != n.role => {
                        notes.push(format!("{} is now {} (was {})", n.addr, n.role, o.role))
                    }
                    _ => {}
                }
            }
            notes.into_iter().for_each(|e| self.event(e));
        }
        for n in &s.nodes {
            let h = self.ops.entry(n.addr.clone()).or_default();
            h.push_back(if n.up { n.ops_per_sec } else { 0 });
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        let (h, f) = health::evaluate(&s, t);
        self.health = h;
        self.findings = f;
        self.snapshot = Some(s);
        self.refreshed = clock();
    }
}

fn clock() -> String {
    let s = view::unix_s() % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

pub fn run(a: MonitorArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let plane = rt.block_on(a.target.connect())?;
    let thresholds = Thresholds {
        expected_replicas: a.replicas,
        ..Thresholds::default()
    };
    let (snap_tx, mut snap_rx) = watch::channel::<Option<(Snapshot, Option<ProxyFacts>)>>(None);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<String>();
    let interval = Duration::from_millis(a.interval_ms.max(200));
    {
        let (plane, proxy, user) = (
            plane.clone(),
            a.proxy.proxy.clone(),
            a.proxy.proxy_user.clone(),
        );
        rt.spawn(async move {
            let mut subscribed = false;
            loop {
                let s = poll(&plane).await;
                if !subscribed {
                    events::subscribe_all(&plane, &s, ev_tx.clone());
                    subscribed = true;
                }
                let p = match &proxy {
                    Some(p) => Some(view::proxy_facts(p, user.as_deref(), interval / 2).await),
                    None => None,
                };
                if snap_tx.send(Some((s, p))).is_err() {
                    return;
                }
                tokio::time::sleep(interval / 2).await;
            }
        });
    }
    let mut state = State {
        snapshot: None,
        proxy: None,
        health: Health::Down,
        findings: Vec::new(),
        ops: BTreeMap::new(),
        events: VecDeque::new(),
        hit_target: a.hit_target,
        latency_target_ms: a.latency_target_ms,
        refreshed: "-".into(),
    };
    state.event("monitor started".into());
    let mut terminal = ratatui::init();
    let result = (|| -> Result<()> {
        loop {
            if snap_rx.has_changed().unwrap_or(false) {
                if let Some((s, p)) = snap_rx.borrow_and_update().clone() {
                    state.update(s, &thresholds);
                    state.proxy = p;
                }
            }
            while let Ok(e) = ev_rx.try_recv() {
                state.event(e);
            }
            terminal.draw(|f| draw::frame(f, &state))?;
            if event::poll(Duration::from_millis(200))? {
                match event::read()? {
                    Event::Key(k) if k.code == KeyCode::Char('q') || k.code == KeyCode::Esc => {
                        return Ok(())
                    }
                    Event::Key(k)
                        if k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL) =>
                    {
                        return Ok(())
                    }
                    _ => {}
                }
            }
        }
    })();
    ratatui::restore();
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}
