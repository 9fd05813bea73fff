//! A fleet of three `hive proxy` processes in front of one Redis Cluster: what cluster clients
//! are shown (`view`), real cluster clients spreading their load and surviving a Hive's
//! death (`clients`), and the state the fleet shares: ACL users and pub/sub counts (`shared`).

use std::net::SocketAddr;
use std::time::Duration;

use hive_local::{ClusterOpts, LocalCluster};
use hive_tests::module_cluster::wait_for;
use hive_tests::process::HiveProcess;
use tempfile::TempDir;

mod clients;
mod shared;
mod view;

/// Heartbeats this often in tests, so a change shows within a fraction of a second.
const HEARTBEAT_MS: u64 = 200;

/// Three Hives (listed in each other's config, or discovering each other) in front of a
/// 3-master cluster. Field order matters: the Hives stop before the nodes.
pub(super) struct Fleet {
    pub hives: Vec<Option<HiveProcess>>,
    pub addrs: Vec<SocketAddr>,
    pub cluster: LocalCluster,
    toml: String,
    _dir: TempDir,
}

impl Fleet {
    /// `discover`: `proxy.fleet = "discover"` instead of the list; `extra` goes under
    /// `[proxy]` of every Hive.
    pub fn start(discover: bool, extra: &str) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("hive-fleet-")
            .tempdir()
            .unwrap();
        let cluster =
            LocalCluster::start(&ClusterOpts::new(3, 0, dir.path().to_path_buf())).unwrap();
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|_| {
                let p = hive_local::process::free_port_pair().unwrap();
                format!("127.0.0.1:{p}").parse().unwrap()
            })
            .collect();
        let fleet = if discover {
            "\"discover\"".to_string()
        } else {
            let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
            format!("[{}]", list.join(", "))
        };
        let seeds: Vec<String> = cluster
            .master_addrs()
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect();
        let toml = format!(
            "[proxy]\nthreads = 1\nfleet = {fleet}\nfleet_heartbeat_ms = {HEARTBEAT_MS}\n{extra}\n\
             [backend]\nmode = \"cluster\"\nseeds = [{}]\n",
            seeds.join(", ")
        );
        let hives = addrs
            .iter()
            .map(|a| Some(HiveProcess::start_at(*a, &toml)))
            .collect();
        let f = Fleet {
            hives,
            addrs,
            cluster,
            toml,
            _dir: dir,
        };
        f.wait_members(&[0, 1, 2]);
        f
    }

    pub fn url(&self, i: usize) -> String {
        format!("redis://{}/", self.addrs[i])
    }

    pub fn client(&self, i: usize) -> redis::Connection {
        hive_tests::connect(&self.url(i))
    }

    /// The addresses CLUSTER SLOTS of Hive `i` gives, in slot order.
    pub fn slot_owners(&self, i: usize) -> Vec<String> {
        let Ok(mut c) = redis::Client::open(self.url(i)).and_then(|c| c.get_connection()) else {
            return Vec::new();
        };
        let Ok(ranges) = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<Vec<redis::Value>>>(&mut c)
        else {
            return Vec::new();
        };
        ranges
            .iter()
            .filter_map(|r| {
                let node: Vec<redis::Value> = redis::from_redis_value(r.get(2)?).ok()?;
                let host: String = redis::from_redis_value(node.first()?).ok()?;
                let port: u16 = redis::from_redis_value(node.get(1)?).ok()?;
                Some(format!("{host}:{port}"))
            })
            .collect()
    }

    /// Waits until every Hive in `live` shows exactly the Hives `live` as the cluster.
    pub fn wait_members(&self, live: &[usize]) {
        let mut want: Vec<String> = live.iter().map(|&i| self.addrs[i].to_string()).collect();
        want.sort();
        wait_for("the fleet's view", Duration::from_secs(20), || {
            live.iter().all(|&i| {
                let mut got = self.slot_owners(i);
                got.sort();
                got == want
            })
        });
    }

    /// Starts Hive `i` again (after `kill`), with the config it had.
    pub fn restart(&mut self, i: usize) {
        self.hives[i] = Some(HiveProcess::start_at(self.addrs[i], &self.toml));
    }

    /// kill -9 of Hive `i`.
    pub fn kill(&mut self, i: usize) {
        let h = self.hives[i].take().expect("a running Hive");
        let ok = std::process::Command::new("kill")
            .args(["-9", &h.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -9");
        drop(h);
    }
}
