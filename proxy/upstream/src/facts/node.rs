//! What one node's INFO says, as the numbers `/metrics`, `hive status`, `hive monitor` and
//! `hive check` show. Pure parsing: unit-tested without a server.

use hive_common::info;
use serde::Serialize;

/// One Redis node as last polled.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NodeFacts {
    pub addr: String,
    /// The shard it belongs to in the proxy's topology (index and name).
    pub shard: Option<usize>,
    pub shard_name: String,
    /// The metrics' `shard` label (`Topology::shard_label`).
    pub shard_label: String,
    /// The role the topology gives it (`master`/`replica`); `role` is what the node says.
    pub expected_role: String,
    pub up: bool,
    /// Why it is not up (connection refused, NOAUTH, timeout ...).
    pub error: Option<String>,
    pub role: String,
    pub redis_version: String,
    /// hive-module's version, when the node has it loaded.
    pub module_version: Option<String>,
    pub uptime_s: u64,
    pub used_memory: u64,
    pub maxmemory: u64,
    pub keys: u64,
    pub expires: u64,
    pub hits: u64,
    pub misses: u64,
    pub evicted: u64,
    pub expired: u64,
    pub ops_per_sec: u64,
    pub connected_clients: u64,
    pub commands_processed: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub repl_offset: i64,
    /// Replica side: whether the link to its master is up.
    pub master_link_up: Option<bool>,
    /// Master side: replicas connected.
    pub connected_replicas: u64,
    /// Replica side: how far behind its master it is, and where the number came from
    /// (`module`: `HIVE.LAG`'s heartbeat, to the millisecond; `info`: the master's `lag`
    /// field, in whole seconds since the replica's last ACK).
    pub lag_ms: Option<u64>,
    pub lag_source: Option<String>,
    pub loading: bool,
    pub rdb_last_save_time: u64,
    pub rdb_last_bgsave_ok: bool,
    pub rdb_changes_since_last_save: u64,
    pub aof_enabled: bool,
    pub aof_last_write_ok: bool,
    pub aof_last_rewrite_ok: bool,
    /// Cluster mode: the node's `cluster_state` (`ok`/`fail`).
    pub cluster_state: Option<String>,
    /// Cluster mode, masters: slots it has open for a move (`[slot->-id]`, `[slot-<-id]`).
    pub slots_migrating: u64,
    pub slots_importing: u64,
    /// Cluster mode: keys moved into this node by MIGRATE since it started (its
    /// `restore-asking` calls).
    pub keys_imported: u64,
    /// Round trip of a PING, microseconds.
    pub ping_us: u64,
    /// When the newest successful `HIVE.BACKUP` of this node finished (module nodes).
    pub last_backup_unix_ms: Option<u64>,
}

impl NodeFacts {
    /// Open-slot marks from CLUSTER NODES (the node's own line) and keys moved in from
    /// `INFO commandstats`.
    pub fn apply_cluster(&mut self, nodes: &str, commandstats: &str) {
        let me = nodes.lines().find(|l| l.contains("myself")).unwrap_or("");
        self.slots_migrating = me.split(' ').filter(|f| f.contains("->-")).count() as u64;
        self.slots_importing = me.split(' ').filter(|f| f.contains("-<-")).count() as u64;
        self.keys_imported = info::field(commandstats, "cmdstat_restore-asking")
            .and_then(|v| info::pairs(v).get("calls").and_then(|c| c.parse().ok()))
            .unwrap_or(0);
    }

    /// Sentinel/static modes: slots this master hands over (hive-module's `HIVE.SLOTS GET`),
    /// slots the deployment's map moves to it (`me`: its shard names), and keys moved in
    /// (`RESTORE` calls: MIGRATE restores with it outside a cluster).
    pub fn apply_handover(&mut self, state: &str, me: &[String], commandstats: &str) {
        use hive_common::topology::deployed::{expand, parse_ranges, DeployedMap};
        let count = |text: &str| expand(&parse_ranges(text).unwrap_or_default()).len() as u64;
        let v: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
        self.slots_migrating = v
            .get("migrating")
            .and_then(|m| m.as_array())
            .map_or(0, |a| {
                // Slots still guarded after their move (`until`) are done, not moving.
                a.iter()
                    .filter(|h| h.get("until").is_none())
                    .filter_map(|h| h.get("slots").and_then(|s| s.as_str()))
                    .map(count)
                    .sum()
            });
        self.slots_importing = v
            .get("map")
            .and_then(|m| serde_json::from_value::<DeployedMap>(m.clone()).ok())
            .map_or(0, |m| {
                m.moving
                    .iter()
                    .filter(|mv| me.contains(&mv.to))
                    .map(|mv| count(&mv.slots))
                    .sum()
            });
        self.keys_imported = info::field(commandstats, "cmdstat_restore")
            .and_then(|v| info::pairs(v).get("calls").and_then(|c| c.parse().ok()))
            .unwrap_or(0);
    }

    /// Fills the numbers from the text of `INFO` (default sections).
    pub fn apply_info(&mut self, text: &str) {
        let f = info::fields(text);
        let num = |k: &str| {
            f.get(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let ok = |k: &str| f.get(k).map(|v| v.trim()) == Some("ok");
        self.role = match f.get("role").map(|r| r.trim()) {
            Some("slave") => "replica".into(),
            Some(r) => r.into(),
            None => String::new(),
        };
        self.redis_version = f.get("redis_version").unwrap_or(&"").trim().into();
        self.uptime_s = num("uptime_in_seconds");
        self.used_memory = num("used_memory");
        self.maxmemory = num("maxmemory");
        self.hits = num("keyspace_hits");
        self.misses = num("keyspace_misses");
        self.evicted = num("evicted_keys");
        self.expired = num("expired_keys");
        self.ops_per_sec = num("instantaneous_ops_per_sec");
        self.connected_clients = num("connected_clients");
        self.commands_processed = num("total_commands_processed");
        self.net_input_bytes = num("total_net_input_bytes");
        self.net_output_bytes = num("total_net_output_bytes");
        self.connected_replicas = num("connected_slaves");
        self.loading = num("loading") == 1;
        self.rdb_last_save_time = num("rdb_last_save_time");
        self.rdb_last_bgsave_ok = ok("rdb_last_bgsave_status");
        self.rdb_changes_since_last_save = num("rdb_changes_since_last_save");
        self.aof_enabled = num("aof_enabled") == 1;
        self.aof_last_write_ok = ok("aof_last_write_status");
        self.aof_last_rewrite_ok = ok("aof_last_bgrewrite_status");
        self.cluster_state = None;
        let repl = info::replication(text);
        self.repl_offset = repl.offset;
        self.master_link_up = (self.role == "replica").then_some(repl.link_up);
        let (mut keys, mut expires) = (0, 0);
        for (k, v) in &f {
            if k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()) {
                let p = info::pairs(v.trim());
                keys += p
                    .get("keys")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                expires += p
                    .get("expires")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            // `module:name=hive,ver=1,...` in the modules section.
            if k.starts_with("module") {
                let p = info::pairs(v.trim());
                if p.get("name") == Some(&"hive") {
                    self.module_version = p.get("ver").map(|s| s.to_string());
                }
            }
        }
        self.keys = keys;
        self.expires = expires;
    }

    /// The replica lag a master's INFO reports for `replica` (seconds since its last ACK).
    pub fn lag_from_master(master_info: &str, replica: &str) -> Option<u64> {
        let repl = info::replication(master_info);
        repl.replicas
            .iter()
            .find(|r| format!("{}:{}", r.host, r.port) == replica)
            .map(|r| r.lag_s.max(0) as u64 * 1000)
    }

    /// The newest `finished_ms` of a `done` backup in a `HIVE.BACKUP LIST` reply.
    pub fn newest_backup(list: &hive_common::resp::Value) -> Option<u64> {
        list.as_array()?
            .iter()
            .filter(|b| b.field("status").and_then(|s| s.as_str()) == Some("done"))
            .filter_map(|b| b.field("finished_ms").and_then(|t| t.as_int()))
            .map(|t| t.max(0) as u64)
            .max()
    }

    /// Hits over lookups, when there were lookups.
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\
# Clients\r\nconnected_clients:3\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:2097152\r\n\
# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:5\r\nrdb_last_save_time:1700000000\r\n\
rdb_last_bgsave_status:ok\r\naof_enabled:1\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:err\r\n\
# Stats\r\ninstantaneous_ops_per_sec:17\r\nkeyspace_hits:90\r\nkeyspace_misses:10\r\nevicted_keys:2\r\n\
# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=7003,state=online,offset=100,lag=2\r\nmaster_repl_offset:120\r\n\
# Modules\r\nmodule:name=hive,ver=1,api=1,filters=0,usedby=[],using=[],options=[]\r\n\
# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\n";

    #[test]
    fn apply_handover_counts_handed_and_incoming_slots() {
        let mut n = NodeFacts::default();
        n.apply_handover(
            r#"{"v":1,"map":{"epoch":4,"shards":[{"name":"a","slots":"0-99"},{"name":"b","slots":"100-16383"}],
              "moving":[{"slots":"90-99","from":"a","to":"b"}]},"migrating":[{"to":"127.0.0.1:2","slots":"95-99"},{"to":"127.0.0.1:2","slots":"7","until":5}]}"#,
            &["b".to_string()],
            "# Commandstats\r\ncmdstat_restore:calls=7,usec=9,usec_per_call=0.21,rejected_calls=0,failed_calls=0\r\n",
        );
        assert_eq!(
            (n.slots_migrating, n.slots_importing, n.keys_imported),
            (5, 10, 7)
        );
    }

    #[test]
    fn apply_cluster_counts_open_slots_and_keys_moved_in() {
        let mut n = NodeFacts::default();
        n.apply_cluster(
            "a 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-10 [5->-b] [6->-b] [20-<-c]\nb 127.0.0.1:3@4 master - 0 0 2 connected [7->-a]\n",
            "# Commandstats\r\ncmdstat_restore-asking:calls=42,usec=9,usec_per_call=0.21,rejected_calls=0,failed_calls=0\r\n",
        );
        assert_eq!(
            (n.slots_migrating, n.slots_importing, n.keys_imported),
            (2, 1, 42)
        );
    }

    #[test]
    fn node_facts_read_info_like_redis_exporter() {
        let mut n = NodeFacts::default();
        n.apply_info(INFO);
        assert_eq!(n.role, "master");
        assert_eq!(n.redis_version, "7.0.15");
        assert_eq!((n.used_memory, n.maxmemory), (1 << 20, 2 << 20));
        assert_eq!((n.keys, n.expires), (12, 3));
        assert_eq!(n.hit_rate(), Some(0.9));
        assert_eq!(n.evicted, 2);
        assert_eq!(n.ops_per_sec, 17);
        assert_eq!(n.repl_offset, 120);
        assert_eq!(n.connected_replicas, 1);
        assert_eq!(n.master_link_up, None);
        assert!(n.aof_enabled && !n.aof_last_write_ok && n.rdb_last_bgsave_ok);
        assert_eq!(n.module_version.as_deref(), Some("1"));
        assert_eq!(
            NodeFacts::lag_from_master(INFO, "127.0.0.1:7003"),
            Some(2000)
        );
        assert_eq!(NodeFacts::lag_from_master(INFO, "127.0.0.1:7004"), None);
    }

    #[test]
    fn node_facts_read_a_replica() {
        let mut n = NodeFacts::default();
        n.apply_info("role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7000\r\nmaster_link_status:down\r\nslave_repl_offset:5\r\n");
        assert_eq!(n.role, "replica");
        assert_eq!(n.master_link_up, Some(false));
        assert_eq!(n.hit_rate(), None);
    }
}
