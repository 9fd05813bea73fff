//! HIVE.BACKUP in a real redis-server: a restorable, checksummed RDB, the hook, a second START
//! refused, LIST and PRUNE, and a failed BGSAVE reported.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use hive_local::RedisProcess;
use hive_tests::module_node::{fields, int, node, text};
use hive_tests::{connect, free_port_pair, module_so, node_url};
use redis::Value;
use sha2::{Digest, Sha256};

fn wait_backup(c: &mut redis::Connection, id: &str) -> HashMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = fields(
            redis::cmd("HIVE.BACKUP")
                .arg("STATUS")
                .arg(id)
                .query(c)
                .unwrap(),
        );
        if text(&st["status"]) != "running" {
            return st;
        }
        assert!(Instant::now() < deadline, "backup {id} still running");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn backup_produces_a_restorable_checksummed_rdb_and_runs_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hook-saw");
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$HIVE_BACKUP_RDB $HIVE_BACKUP_ID\" > {}\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let hook_arg = hook.display().to_string();
    let backups = dir.path().join("backups");
    let backups_arg = backups.display().to_string();
    let so = module_so().display().to_string();
    let master = RedisProcess::start(
        dir.path(),
        free_port_pair().unwrap(),
        &[
            "--enable-debug-command",
            "yes",
            "--loadmodule",
            &so,
            "backup-hook",
            &hook_arg,
            "backup-dir",
            &backups_arg,
        ],
    )
    .unwrap();
    let mut c = connect(&node_url(&master.addr));
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(10_000)
        .arg("bk")
        .query(&mut c)
        .unwrap();
    // A second START while the first is running is refused.
    let (id, second): (String, redis::RedisResult<String>) = {
        let id: String = redis::cmd("HIVE.BACKUP")
            .arg("START")
            .arg("TAG")
            .arg("nightly")
            .query(&mut c)
            .unwrap();
        (id, redis::cmd("HIVE.BACKUP").arg("START").query(&mut c))
    };
    let e = second.unwrap_err();
    assert!(e.to_string().contains("backup already in progress"), "{e}");
    let st = wait_backup(&mut c, &id);
    assert_eq!(text(&st["status"]), "done", "{st:?}");
    assert_eq!(text(&st["tag"]), "nightly");
    assert_eq!(int(&st["dbsize"]), 10_000);
    assert_eq!(text(&st["role"]), "master");
    let rdb = backups.join(&id).join("dump.rdb");
    let bytes = std::fs::read(&rdb).unwrap();
    assert_eq!(int(&st["file_size"]) as usize, bytes.len());
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(text(&st["sha256"]), sha);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backups.join(&id).join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["sha256"], sha.as_str());
    // The hook ran and saw the backup's path (it runs after the metadata is first written).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() || text(&wait_backup(&mut c, &id)["hook"]) != "ok" {
        assert!(Instant::now() < deadline, "hook did not run");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        format!("{} {id}", rdb.display())
    );
    // A fresh redis-server started on that RDB holds the same 10,000 keys.
    let restore_dir = backups.join(&id);
    let restored = RedisProcess::start(
        &restore_dir,
        free_port_pair().unwrap(),
        &["--dbfilename", "dump.rdb"],
    )
    .unwrap();
    let mut r = connect(&node_url(&restored.addr));
    let n: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    assert_eq!(n, 10_000);
    let v: String = redis::cmd("GET").arg("bk:4242").query(&mut r).unwrap();
    assert_eq!(v, "value:4242");
    // History survives: LIST and PRUNE read the directory.
    let id2: String = redis::cmd("HIVE.BACKUP")
        .arg("START")
        .query(&mut c)
        .unwrap();
    wait_backup(&mut c, &id2);
    let Value::Array(list) = redis::cmd("HIVE.BACKUP").arg("LIST").query(&mut c).unwrap() else {
        panic!()
    };
    assert_eq!(list.len(), 2);
    let removed: i64 = redis::cmd("HIVE.BACKUP")
        .arg("PRUNE")
        .arg("KEEP")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!backups.join(&id).exists() && backups.join(&id2).exists());
}

#[test]
fn failed_bgsave_marks_the_backup_failed() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().display().to_string();
    let master = node(
        dir.path(),
        &[
            "backup-dirs-allowed",
            &allowed,
            "--enable-protected-configs",
            "yes",
        ],
    );
    let mut c = connect(&node_url(&master.addr));
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    // Point Redis at a directory that then disappears: the BGSAVE child cannot write.
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dir")
        .arg(gone.display().to_string())
        .query(&mut c)
        .unwrap();
    std::fs::remove_dir(&gone).unwrap();
    let keep = dir.path().join("kept");
    let id: String = redis::cmd("HIVE.BACKUP")
        .arg("START")
        .arg("DIR")
        .arg(keep.display().to_string())
        .query(&mut c)
        .unwrap();
    let st = wait_backup(&mut c, &id);
    assert_eq!(text(&st["status"]), "failed", "{st:?}");
    assert!(text(&st["error"]).contains("BGSAVE failed"), "{st:?}");
}
