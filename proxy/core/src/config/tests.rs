//! Config parsing and validation: every error names the file, the key and the reason.

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("hive.toml")).map_err(|e| e.to_string())
}

#[test]
fn config_defaults_are_valid() {
    let c = parse("").unwrap();
    assert_eq!(c.proxy.listen, "127.0.0.1:6380");
    assert_eq!(c.backend.mode, Mode::Cluster);
}

#[test]
fn config_full_file_parses() {
    let c = parse(
        "[proxy]\nlisten = \"127.0.0.1:7777\"\nmax_clients = 5\n\
         [backend]\nmode = \"cluster\"\nseeds = [\"127.0.0.1:7000\", \"localhost:7001\"]\n\
         [log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    assert_eq!(c.proxy.max_clients, 5);
    assert_eq!(c.backend.seeds.len(), 2);
}

#[test]
fn config_example_file_is_valid_and_complete() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/hive.toml"
    ));
    let c = Config::load(path).unwrap();
    let d = Config::default();
    assert_eq!(c.proxy.max_clients, d.proxy.max_clients);
    assert_eq!(c.backend.failover_hold_ms, d.backend.failover_hold_ms);
    // Every key the config has is shown in the example.
    let text = std::fs::read_to_string(path).unwrap();
    let all = toml::to_string(&d).unwrap();
    for line in all.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap();
        assert!(
            text.contains(&format!("{key} = ")),
            "deploy/hive.toml lacks `{key}`"
        );
    }
}

#[test]
fn config_errors_name_file_key_and_reason() {
    let e = parse("[proxy]\nmax_clients = \"many\"\n").unwrap_err();
    assert!(
        e.starts_with("hive.toml: key `proxy.max_clients`: invalid type"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");
    let e = parse("[proxy]\nlisen = \"x\"\n").unwrap_err();
    assert!(e.contains("unknown field `lisen`"), "{e}");
    let e = parse("[backend]\nretry_backoff_ms = 100\nretry_backoff_max_ms = 50\n").unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.retry_backoff_max_ms`: must be at least backend.retry_backoff_ms (and at least 1)"
    );
    let e = parse("[backend]\nseeds = []\n").unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.seeds`: must list at least one node"
    );
    let e = parse("[backend]\nseeds = [\"nohost\"]\n").unwrap_err();
    assert!(e.contains("`nohost` is not a host:port address"), "{e}");
    let e = parse("[backend]\nseeds = [\"::1:7000\"]\n").unwrap_err();
    assert!(e.contains("`::1:7000` is not a host:port address"), "{e}");
    assert!(parse("[backend]\nseeds = [\"[::1]:7000\"]\n").is_ok());
    let e = parse("[backend]\nmode = \"mesh\"\n").unwrap_err();
    assert!(
        e.starts_with("hive.toml: key `backend.mode`: unknown variant `mesh`"),
        "{e}"
    );
    let e = parse("[proxy]\nlisten = \"nowhere\"\n").unwrap_err();
    assert!(e.contains("key `proxy.listen`"), "{e}");
}

#[test]
fn config_sentinel_and_static_modes() {
    let c = parse(
        "[backend]\nmode = \"sentinel\"\nsentinels = [\"127.0.0.1:26379\"]\n\
         [[backend.shards]]\nname = \"a\"\n[[backend.shards]]\nname = \"b\"\n",
    )
    .unwrap();
    let r = c.backend.shard_ranges().unwrap();
    assert_eq!((r[0][0].start, r[0][0].end, r[1][0].end), (0, 8191, 16383));
    let c = parse(
        "[backend]\nmode = \"static\"\n\
         [[backend.shards]]\nmaster = \"127.0.0.1:7000\"\nslots = \"0-99,200-16383\"\n\
         [[backend.shards]]\nmaster = \"127.0.0.1:7001\"\nslots = \"100-199\"\n",
    )
    .unwrap();
    assert_eq!(c.backend.shard_ranges().unwrap()[0].len(), 2);
}

#[test]
fn config_shard_errors_name_the_shard() {
    let sentinel = "[backend]\nmode = \"sentinel\"\nsentinels = [\"127.0.0.1:26379\"]\n";
    let e = parse(sentinel).unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.shards`: must list at least one shard"
    );
    let e = parse(&format!(
        "{sentinel}[[backend.shards]]\nname = \"a\"\n[[backend.shards]]\nname = \"a\"\n"
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.shards[1].name`: `a` is listed twice"
    );
    let e =
        parse("[backend]\nmode = \"sentinel\"\n[[backend.shards]]\nname = \"a\"\n").unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.sentinels`: must list at least one sentinel"
    );
    let stat = "[backend]\nmode = \"static\"\n";
    let e = parse(&format!("{stat}[[backend.shards]]\nname = \"x\"\n")).unwrap_err();
    assert!(
        e.contains("key `backend.shards[0].master`: static mode needs"),
        "{e}"
    );
    let e = parse(&format!(
        "{stat}[[backend.shards]]\nmaster = \"127.0.0.1:1\"\nslots = \"0-100\"\n"
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.shards`: slot ranges leave 16283 of 16384 slots unassigned"
    );
    let e = parse(&format!(
        "{stat}[[backend.shards]]\nmaster = \"127.0.0.1:1\"\nslots = \"0-9000\"\n\
         [[backend.shards]]\nmaster = \"127.0.0.1:2\"\nslots = \"9000-16383\"\n"
    ))
    .unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.shards`: slot ranges: slot 9000 is assigned twice"
    );
    let e = parse(&format!(
        "{stat}[[backend.shards]]\nmaster = \"127.0.0.1:1\"\nslots = \"0-16384\"\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("key `backend.shards[0].slots`: `0-16384` is not a slot"),
        "{e}"
    );
    let e = parse(&format!(
        "{stat}[[backend.shards]]\nmaster = \"127.0.0.1:1\"\nslots = \"0-16383\"\n\
         [[backend.shards]]\nmaster = \"127.0.0.1:2\"\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("give `slots` for every shard or for none"),
        "{e}"
    );
}

#[test]
fn config_read_policy_keys_are_checked() {
    let c = parse("[backend]\nread_from = \"prefer-replica\"\nread_your_writes = true\n").unwrap();
    assert_eq!(c.backend.read_from, ReadFrom::PreferReplica);
    assert!(c.backend.read_your_writes);
    assert_eq!(Config::default().backend.max_replica_lag_ms, 1000);
    let e = parse("[backend]\nread_from = \"nearest\"\n").unwrap_err();
    assert!(
        e.starts_with("hive.toml: key `backend.read_from`: unknown variant `nearest`"),
        "{e}"
    );
    let e = parse("[backend]\nreplica_poll_interval_ms = 5\n").unwrap_err();
    assert_eq!(
        e,
        "hive.toml: key `backend.replica_poll_interval_ms`: must be between 10 and 60000"
    );
    let e = parse("[backend]\nmax_replica_lag_ms = 0\n").unwrap_err();
    assert!(e.contains("key `backend.max_replica_lag_ms`"), "{e}");
}

#[test]
fn config_write_ack_keys_are_checked() {
    let d = Config::default().backend;
    assert_eq!(
        (d.write_ack, d.min_replicas_ack, d.write_ack_timeout_ms),
        (crate::config::WriteAck::Node, 1, 1000)
    );
    let c = parse("[backend]\nwrite_ack = \"replica\"\nmin_replicas_ack = 2\n").unwrap();
    assert_eq!(c.backend.write_ack, crate::config::WriteAck::Replica);
    assert_eq!(c.backend.min_replicas_ack, 2);
    let e = parse("[backend]\nwrite_ack = \"all\"\n").unwrap_err();
    assert!(
        e.starts_with("hive.toml: key `backend.write_ack`: unknown variant `all`"),
        "{e}"
    );
    let e = parse("[backend]\nmin_replicas_ack = 0\n").unwrap_err();
    assert!(
        e.starts_with("hive.toml: key `backend.min_replicas_ack`: must be at least 1"),
        "{e}"
    );
    for bad in ["write_ack_timeout_ms = 0", "write_ack_timeout_ms = 10000"] {
        let e = parse(&format!("[backend]\n{bad}\n")).unwrap_err();
        assert_eq!(
            e,
            "hive.toml: key `backend.write_ack_timeout_ms`: must be at least 1 and less than backend.command_timeout_ms"
        );
    }
}

#[test]
fn config_cache_keys_are_checked() {
    let c = parse("[cache]\nenabled = true\nmax_memory = \"64mb\"\nadmit = \"all\"\nkey_patterns = [\"user:*\"]\n").unwrap();
    assert_eq!(c.cache.max_memory.0, 64 << 20);
    assert_eq!(c.cache.admit, Admit::All);
    for (text, key, reason) in [
        (
            "[cache]\nadmit = \"warm\"\n",
            "cache.admit",
            "unknown variant",
        ),
        (
            "[cache]\nmax_memory = \"lots\"\n",
            "cache.max_memory",
            "not a size",
        ),
        (
            "[cache]\nenabled = true\nmax_memory = \"1kb\"\n",
            "cache.max_memory",
            "at least 1mb",
        ),
        (
            "[cache]\nenabled = true\nmax_value_bytes = 0\n",
            "cache.max_value_bytes",
            "above 0",
        ),
        (
            "[cache]\nenabled = true\nkey_patterns = [\"\"]\n",
            "cache.key_patterns",
            "empty",
        ),
        (
            "[proxy]\nhotkeys_sample_every = 0\n[cache]\nenabled = true\n",
            "cache.admit",
            "hotkeys_sample_every",
        ),
        ("[cache]\nsize = 3\n", "cache", "unknown field"),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.starts_with("hive.toml: key `"), "{e}");
        assert!(e.contains(&format!("`{key}")), "{text}: {e}");
        assert!(e.contains(reason), "{text}: {e}");
    }
}
