//! A fleet: several Hives in front of one deployment that cluster clients see as one Redis
//! Cluster. Each Hive shows the live ones as the cluster's nodes (`view`), keeps a link to each
//! to know it is alive (`link`), and talks with them over the deployment's `__hive__:fleet`
//! channel (`channel`, `message`): heartbeats, its clients' subscriptions (`peers`, so PUBLISH
//! counts the whole fleet's subscribers) and its ACL users (`acl`, so a change on one reaches
//! all).

mod acl;
mod channel;
mod link;
pub mod message;
pub mod peers;
pub mod view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::config::{Config, FleetSetting};
use crate::state::pubsub_index::Change;
pub use acl::lines as acl_lines;
pub use channel::run;
use message::{Origin, Stamp};
pub use view::Member;

/// Where the pubsub index sends its numbered changes.
pub type ChangeTx = mpsc::UnboundedSender<(u64, Change)>;

/// What the serving side hands the fleet task.
pub(crate) enum Out {
    /// The ACL users changed here.
    Acl { stamp: Stamp, lines: Vec<String> },
}

pub struct Fleet {
    pub me: Member,
    /// This process's run: its start time, so peers tell a restarted Hive from the old one.
    pub run: u64,
    /// `proxy.fleet = "discover"`: peers are the Hives heard on the deployment.
    pub discover: bool,
    /// `proxy.fleet = [..]` without this Hive's own address.
    pub listed: Vec<String>,
    pub heartbeat: Duration,
    /// Whether a peer link may PING (the client port is plaintext, as this Hive's is).
    pub ping: bool,
    key: [u8; 32],
    /// The live members, this Hive among them, ordered by id.
    members: ArcSwap<Vec<Member>>,
    pub peers: peers::PeerIndexes,
    /// The ACL state this Hive holds: `(0, "")` until a change is made or heard.
    acl: Mutex<Stamp>,
    out: mpsc::UnboundedSender<Out>,
    inbox: Mutex<Option<Inbox>>,
}

/// The receiving ends the fleet task takes.
pub(crate) struct Inbox {
    pub out: mpsc::UnboundedReceiver<Out>,
    pub changes: mpsc::UnboundedReceiver<(u64, Change)>,
}

impl Fleet {
    /// The fleet of `config`, if it sets one, and the sender the pubsub index reports to.
    pub fn from_config(config: &Config) -> Option<(Arc<Fleet>, ChangeTx)> {
        let setting = config.proxy.fleet.as_ref()?;
        let me = Member::new(config.announce());
        let secret = match (&config.proxy.fleet_secret, &config.backend.password) {
            (Some(s), _) | (None, Some(s)) => s.expose().to_string(),
            (None, None) => String::new(),
        };
        let (out, out_rx) = mpsc::unbounded_channel();
        let (changes, changes_rx) = mpsc::unbounded_channel();
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let fleet = Fleet {
            run,
            discover: matches!(setting, FleetSetting::Word(_)),
            listed: setting
                .peers()
                .iter()
                .filter(|a| **a != me.addr)
                .cloned()
                .collect(),
            heartbeat: Duration::from_millis(config.proxy.fleet_heartbeat_ms),
            ping: !config.proxy.listen.is_empty(),
            key: message::key(&secret),
            members: ArcSwap::from_pointee(vec![me.clone()]),
            me,
            peers: Default::default(),
            acl: Mutex::new((0, String::new())),
            out,
            inbox: Mutex::new(Some(Inbox {
                out: out_rx,
                changes: changes_rx,
            })),
        };
        Some((Arc::new(fleet), changes))
    }

    /// The live members, ordered by id; always holds this Hive.
    pub fn members(&self) -> Arc<Vec<Member>> {
        self.members.load_full()
    }

    pub(crate) fn set_members(&self, m: Vec<Member>) {
        self.members.store(Arc::new(m));
    }

    pub(crate) fn take_inbox(&self) -> Option<Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn from(&self) -> Origin {
        Origin {
            id: self.me.id.clone(),
            run: self.run,
        }
    }

    pub(crate) fn acl_stamp(&self) -> Stamp {
        self.acl.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
