//! Backups of Sentinel and static deployments without hive-module (the network snapshot path,
//! from replicas too), restored across modes; retention over a simulated week of hourly
//! backups; and wrong credentials, permissions and input, each refused with a clear error and
//! no password in any output.

use std::collections::BTreeSet;

use hive_tests::backups::{check_populated, dbsize, hive, hive_json, populate};
use hive_tests::{connect, Env, GroupEnv};

#[test]
fn backup_sentinel_and_static_use_the_network_path_across_modes() {
    let s = GroupEnv::sentinel(3, None, |_| {});
    populate(&s.url(), 12_000);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let sentinels = s.groups.sentinel_addrs().join(",");
    let names = s.groups.names().join(",");
    let m = hive_json(
        &[
            "backup",
            "--sentinel",
            &sentinels,
            "--masters",
            &names,
            "--dest",
            &d,
            "--consistent",
            "--replica",
            "--json",
        ],
        &[],
    );
    assert_eq!(m["mode"], "sentinel");
    assert_eq!(m["shards"].as_array().unwrap().len(), 3);
    for sh in m["shards"].as_array().unwrap() {
        assert_eq!(sh["method"], "network", "{sh:#}");
        assert_eq!(sh["method_reason"], "no hive-module on the node");
        assert_eq!(sh["role"], "replica", "--replica snapshots a replica");
        assert!(sh["repl_offset"].as_i64().unwrap() > 0);
    }
    assert_eq!(
        m["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["dbsize"].as_u64().unwrap())
            .sum::<u64>(),
        12_000
    );
    let id = m["id"].as_str().unwrap().to_string();

    // Sentinel backup -> 2 static masters.
    let t = GroupEnv::statik(2, |_| {});
    let t_masters = t.groups.initial_masters().join(",");
    let r = hive_json(
        &[
            "restore", &id, "--from", &d, "--static", &t_masters, "--json",
        ],
        &[],
    );
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["source_mode"], "sentinel");
    assert_eq!(dbsize(&t.url()), 12_000);
    check_populated(&t.url(), 12_000, 1);

    // Static backup (compressed) -> a cluster.
    let m2 = hive_json(
        &[
            "backup",
            "--static",
            &t_masters,
            "--dest",
            &d,
            "--compress",
            "--json",
        ],
        &[],
    );
    assert_eq!(m2["mode"], "static");
    assert_eq!(m2["compressed"], true);
    for sh in m2["shards"].as_array().unwrap() {
        assert!(sh["file"].as_str().unwrap().ends_with(".rdb.zst"));
        assert!(sh["size"].as_u64().unwrap() < sh["rdb_size"].as_u64().unwrap());
    }
    let c = Env::with(3, 0, |_| {});
    let seeds = c.cluster.master_addrs().join(",");
    let r = hive_json(
        &[
            "restore",
            m2["id"].as_str().unwrap(),
            "--from",
            &d,
            "--cluster",
            &seeds,
            "--json",
        ],
        &[],
    );
    assert_eq!(r["ok"], true, "{r:#}");
    check_populated(&c.url(), 12_000, 1);

    // The listing shows both, oldest first, with their keys and state.
    let rows = hive_json(&["backups", "--dest", &d, "--json"], &[]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], id.as_str());
    assert!(rows
        .iter()
        .all(|r| r["state"] == "complete" && r["keys"] == 12_000));
    let (ok, table, _) = hive(&["backups", "--dest", &d], &[]);
    assert!(ok && table.contains(&id) && table.contains("sentinel") && table.contains("static"));
}

/// Monday 2026-11-30 00:00 UTC.
const T0: u64 = 1_795_996_800_000;
const HOUR: u64 = 3_600_000;

fn id_at(ms: u64) -> String {
    // The ids `hive backup` gives: UTC `YYYYMMDD-HHMMSS-mmm`.
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (h, mi, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // 2026-11-30 is day 20_787 since the epoch; the week stays within Nov 30 - Dec 6.
    let day = days - 20_787;
    let (month, dom) = if day == 0 { (11, 30) } else { (12, day) };
    format!(
        "2026{month:02}{dom:02}-{h:02}{mi:02}{s:02}-{:03}",
        ms % 1000
    )
}

#[test]
fn backup_retention_over_a_simulated_week_of_hourly_backups() {
    let g = GroupEnv::statik(1, |_| {});
    let master = g.groups.initial_masters()[0].clone();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut connect(&g.url()))
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let at = |h: u64| T0 + h * HOUR + 5 * 60_000;
    for h in 0..168 {
        let now = at(h).to_string();
        let (ok, out, err) = hive(
            &[
                "backup",
                "--static",
                &master,
                "--dest",
                &d,
                "--keep-hourly",
                "3",
                "--keep-daily",
                "7",
                "--keep-weekly",
                "4",
            ],
            &[("HIVE_BACKUP_NOW_MS", &now)],
        );
        assert!(ok, "hour {h}: {out}{err}");
    }
    let rows = hive_json(&["backups", "--dest", &d, "--json"], &[]);
    let kept: BTreeSet<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // The newest 3 hours, the last backup of each of the 6 earlier days (23:05), and the
    // newest of the week (the newest backup).
    let mut want: BTreeSet<String> = [165, 166, 167].iter().map(|&h| id_at(at(h))).collect();
    want.extend((0..6).map(|day| id_at(at(day * 24 + 23))));
    assert_eq!(kept, want);
}

#[test]
fn backup_refuses_wrong_credentials_permissions_and_input_without_leaking_secrets() {
    let g = GroupEnv::start(1, 0, Some("s3cret-node-pw"), |_| {});
    let master = g.groups.initial_masters()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("backups").display().to_string();
    let conf = |user: Option<&str>, pw: &str| {
        let p = dir
            .path()
            .join(format!("hive-{}-{pw}.toml", user.unwrap_or("default")));
        let user_line = user
            .map(|u| format!("username = \"{u}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &p,
            format!("[backend]\nmode = \"static\"\n{user_line}password = \"{pw}\"\n[[backend.shards]]\nmaster = \"{master}\"\n"),
        )
        .unwrap();
        p.display().to_string()
    };
    let no_secret = |text: &str| {
        for s in ["s3cret-node-pw", "wrong-pw-123", "backup-pw-9"] {
            assert!(!text.contains(s), "a password leaked: {text}");
        }
    };
    // No password: the node's own error, nothing written.
    let (ok, out, err) = hive(&["backup", "--static", &master, "--dest", &d], &[]);
    assert!(!ok);
    assert!(
        err.contains("NOAUTH") || err.contains("Authentication required"),
        "{err}"
    );
    // A wrong password.
    let (ok, out2, err2) = hive(
        &[
            "backup",
            "--config",
            &conf(None, "wrong-pw-123"),
            "--dest",
            &d,
        ],
        &[],
    );
    assert!(!ok);
    assert!(err2.contains("WRONGPASS"), "{err2}");
    no_secret(&(out + &err + &out2 + &err2));
    // A user without PSYNC cannot stream a snapshot: the node's refusal is named.
    let mut admin = g.node(&master);
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "backup",
            "on",
            ">backup-pw-9",
            "~*",
            "+@all",
            "-psync",
            "-sync",
        ])
        .query(&mut admin)
        .unwrap();
    let (ok, out, err) = hive(
        &[
            "backup",
            "--config",
            &conf(Some("backup"), "backup-pw-9"),
            "--dest",
            &d,
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("PSYNC refused") && err.contains("NOPERM"),
        "{err}"
    );
    no_secret(&(out.clone() + &err));
    // The right password works, and neither the output nor the manifest holds it.
    let good = conf(None, "s3cret-node-pw");
    let (ok, out, err) = hive(&["backup", "--config", &good, "--dest", &d, "--json"], &[]);
    assert!(ok, "{err}");
    no_secret(&(out.clone() + &err));
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = m["id"].as_str().unwrap();
    let manifest =
        std::fs::read_to_string(dir.path().join("backups").join(id).join("manifest.json")).unwrap();
    no_secret(&manifest);
    // The failed attempts left failed manifests, listed as such.
    let rows = hive_json(&["backups", "--dest", &d, "--json"], &[]);
    let states: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.last(), Some(&"complete"));
    assert!(states.contains(&"failed"), "{states:?}");
    // Wrong input: ids are never paths; unknown ids and bad destinations are named.
    let (ok, _, err) = hive(
        &["restore", "../../etc", "--from", &d, "--config", &good],
        &[],
    );
    assert!(!ok && err.contains("not a backup id"), "{err}");
    let (ok, _, err) = hive(
        &[
            "restore",
            "20200101-000000-000",
            "--from",
            &d,
            "--config",
            &good,
        ],
        &[],
    );
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = hive(&["backups", "--dest", "s3://"], &[]);
    assert!(!ok && err.contains("no bucket"), "{err}");
    let (ok, _, err) = hive(&["backups", "verify", id], &[]);
    assert!(!ok && err.contains("--dest"), "{err}");
}

/// A backup streamed over the network from nodes that run hive-module is recorded on each node
/// (`HIVE.BACKUP RECORD`), so the proxy's `hive_backup_last_success_timestamp_seconds` moves
/// for network backups too.
#[test]
fn backup_network_method_moves_the_backup_age_metric() {
    let d = hive_tests::module_cluster::deployment(|c| {
        c.proxy.admin_listen = Some("127.0.0.1:0".into());
    });
    populate(&format!("redis://{}/", d.proxy.addr), 1_000);
    let dest = tempfile::tempdir().unwrap();
    let seeds = d.cluster.master_addrs().join(",");
    let m = hive_json(
        &[
            "backup",
            "--cluster",
            &seeds,
            "--dest",
            &dest.path().display().to_string(),
            "--method",
            "network",
            "--json",
        ],
        &[],
    );
    let id = m["id"].as_str().unwrap().to_string();
    for sh in m["shards"].as_array().unwrap() {
        assert_eq!(sh["method"], "network", "{sh:#}");
        let mut node = connect(&hive_tests::node_url(sh["node"].as_str().unwrap()));
        let list: redis::Value = redis::cmd("HIVE.BACKUP")
            .arg("LIST")
            .query(&mut node)
            .unwrap();
        let text = format!("{list:?}");
        assert!(
            text.contains(&id) && text.contains("network") && text.contains("done"),
            "{text}"
        );
    }
    let admin = d.proxy.admin_addr.expect("admin listener");
    let masters = d.cluster.master_addrs();
    hive_tests::module_cluster::wait_for(
        "the backup age of every master",
        std::time::Duration::from_secs(20),
        || {
            let scrape = hive_tests::http::get(admin, "/metrics").1;
            masters.iter().all(|m| {
                scrape.contains(&format!(
                    "hive_backup_last_success_timestamp_seconds{{addr=\"{m}\""
                ))
            })
        },
    );
}
