//! Backup destinations and the safety rules: compressed backups in S3 (moto's S3 server on
//! loopback) listed, verified and restored; a damaged file found by `hive backups verify` and
//! refused by `hive restore`; a non-empty target refused without `--force`, and `--force`
//! keeping a safety backup that restores what it replaced.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hive_tests::backups::{check_populated, dbsize, hive, hive_json, populate};
use hive_tests::{connect, free_port_pair, Env, GroupEnv};

fn venv(bin: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/pyvenv/bin")
        .join(bin)
}

/// moto's S3 server on a loopback port, killed on Drop.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    fn start() -> S3 {
        let port = free_port_pair().unwrap();
        let child = Command::new(venv("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (deploy/local/test.sh installs it in target/pyvenv)");
        let s3 = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        s3
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    fn make_bucket(&self, name: &str) {
        let code = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', \
             aws_secret_access_key='testing', region_name='us-east-1').create_bucket(Bucket='{name}')",
            self.endpoint
        );
        let ok = Command::new(venv("python"))
            .args(["-c", &code])
            .status()
            .unwrap();
        assert!(ok.success(), "create_bucket");
    }

    fn objects(&self, bucket: &str) -> Vec<String> {
        let code = format!(
            "import boto3\nc = boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', \
             aws_secret_access_key='testing', region_name='us-east-1')\n\
             for o in c.list_objects_v2(Bucket='{bucket}').get('Contents', []): print(o['Key'])",
            self.endpoint
        );
        let out = Command::new(venv("python"))
            .args(["-c", &code])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn backup_compressed_to_s3_lists_verifies_and_restores() {
    let s3 = S3::start();
    s3.make_bucket("hive-backups");
    let env_owned = s3.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let src = Env::with(3, 0, |_| {});
    populate(&src.url(), 9_000);
    let seeds = src.cluster.master_addrs().join(",");
    let dest = "s3://hive-backups/prod/cluster";
    let m = hive_json(
        &[
            "backup",
            "--cluster",
            &seeds,
            "--dest",
            dest,
            "--compress",
            "--tag",
            "hourly",
            "--json",
        ],
        &env,
    );
    let id = m["id"].as_str().unwrap();
    assert_eq!(m["tag"], "hourly");
    let objects = s3.objects("hive-backups");
    assert!(
        objects.contains(&format!("prod/cluster/{id}/manifest.json")),
        "{objects:?}"
    );
    assert_eq!(
        objects.iter().filter(|o| o.ends_with(".rdb.zst")).count(),
        3,
        "{objects:?}"
    );
    let rows = hive_json(&["backups", "--dest", dest, "--json"], &env);
    assert_eq!(rows[0]["id"], id);
    assert_eq!(rows[0]["keys"], 9_000);
    let v = hive_json(&["backups", "verify", id, "--dest", dest, "--json"], &env);
    assert_eq!(v["ok"], true, "{v:#}");
    let target = Env::with(2, 0, |_| {});
    let t = target.cluster.master_addrs().join(",");
    let r = hive_json(
        &["restore", id, "--from", dest, "--cluster", &t, "--json"],
        &env,
    );
    assert_eq!(r["ok"], true, "{r:#}");
    check_populated(&target.url(), 9_000, 1);
    // A sampled verification compares about as many keys as asked.
    let again = Env::with(1, 0, |_| {});
    let a = again.cluster.master_addrs().join(",");
    let r = hive_json(
        &[
            "restore",
            id,
            "--from",
            dest,
            "--cluster",
            &a,
            "--verify",
            "sample",
            "--sample",
            "500",
            "--json",
        ],
        &env,
    );
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(
        r["verify"]
            .as_str()
            .unwrap()
            .starts_with("sample of about 500"),
        "{r:#}"
    );
    let checked: u64 = r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["checked"].as_u64().unwrap())
        .sum();
    assert!(
        (250..1000).contains(&checked),
        "{checked} keys compared for a sample of 500"
    );
    // Without credentials S3 refuses, and the error says where.
    let (ok, _, err) = hive(
        &["backups", "--dest", dest],
        &[("AWS_ENDPOINT_URL", &s3.endpoint)],
    );
    assert!(!ok, "listing without credentials: {err}");
}

#[test]
fn backup_damage_is_found_by_verify_and_refused_by_restore() {
    let src = GroupEnv::statik(2, |_| {});
    populate(&src.url(), 3_000);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let masters = src.groups.initial_masters().join(",");
    let m = hive_json(
        &["backup", "--static", &masters, "--dest", &d, "--json"],
        &[],
    );
    let id = m["id"].as_str().unwrap();
    assert_eq!(
        hive_json(&["backups", "verify", id, "--dest", &d, "--json"], &[])["ok"],
        true
    );
    // One byte flipped in the middle of shard 1's RDB.
    let file = dest
        .path()
        .join(id)
        .join(m["shards"][1]["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let (ok, out, _) = hive(&["backups", "verify", id, "--dest", &d], &[]);
    assert!(!ok, "verify must fail: {out}");
    assert!(
        out.contains("FAIL") && out.contains("damaged") && out.contains("DAMAGED"),
        "{out}"
    );
    let report = {
        let (_, out, _) = hive(&["backups", "verify", id, "--dest", &d, "--json"], &[]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let bad: Vec<&serde_json::Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{report:#}");
    assert_eq!(bad[0]["shard"], m["shards"][1]["name"]);
    let target = Env::with(3, 0, |_| {});
    let t = target.cluster.master_addrs().join(",");
    let (ok, _, err) = hive(&["restore", id, "--from", &d, "--cluster", &t], &[]);
    assert!(!ok);
    assert!(
        err.contains("failed its checks, nothing was restored"),
        "{err}"
    );
    assert_eq!(dbsize(&target.url()), 0, "nothing reached the target");
    // A file that is not an RDB at all, with a matching checksum, is caught by redis-check-rdb.
    let other = hive_json(
        &["backup", "--static", &masters, "--dest", &d, "--json"],
        &[],
    );
    let oid = other["id"].as_str().unwrap();
    let mpath = dest.path().join(oid).join("manifest.json");
    let mut man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    let f0 = dest
        .path()
        .join(oid)
        .join(man["shards"][0]["file"].as_str().unwrap());
    let junk = b"REDIS0010 this is not an rdb".to_vec();
    std::fs::write(&f0, &junk).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&junk)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    man["shards"][0]["sha256"] = sha.into();
    std::fs::write(&mpath, serde_json::to_vec(&man).unwrap()).unwrap();
    let v = {
        let (_, out, _) = hive(&["backups", "verify", oid, "--dest", &d, "--json"], &[]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(v["ok"], false);
    assert_eq!(v["files"][0]["sha256_ok"], true);
    assert_ne!(v["files"][0]["check"], "ok");
}

#[test]
fn restore_refuses_a_non_empty_target_and_force_keeps_a_safety_backup() {
    let src = GroupEnv::statik(1, |_| {});
    populate(&src.url(), 600);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().display().to_string();
    let m = hive_json(
        &[
            "backup",
            "--static",
            &src.groups.initial_masters()[0],
            "--dest",
            &d,
            "--json",
        ],
        &[],
    );
    let id = m["id"].as_str().unwrap();
    let target = Env::with(3, 0, |_| {});
    let t = target.cluster.master_addrs().join(",");
    let mut c = connect(&target.url());
    let _: () = redis::cmd("SET")
        .arg("precious")
        .arg("before")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("bk:0:string")
        .arg("old")
        .query(&mut c)
        .unwrap();
    let (ok, _, err) = hive(&["restore", id, "--from", &d, "--cluster", &t], &[]);
    assert!(!ok);
    assert!(
        err.contains("the target holds 2 keys") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(dbsize(&target.url()), 2, "nothing written");
    let r = hive_json(
        &[
            "restore",
            id,
            "--from",
            &d,
            "--cluster",
            &t,
            "--force",
            "--json",
        ],
        &[],
    );
    assert_eq!(r["ok"], true, "{r:#}");
    let safety = r["safety_backup"]
        .as_str()
        .expect("the safety backup is named")
        .to_string();
    check_populated(&target.url(), 600, 1);
    assert_eq!(dbsize(&target.url()), 601);
    let rows = hive_json(&["backups", "--dest", &d, "--json"], &[]);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == safety.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["tag"], format!("before-restore-{id}"));
    assert_eq!(row["keys"], 2);
    // The safety backup holds what was replaced: restored elsewhere, it gives it back.
    let back = Env::with(3, 0, |_| {});
    let b = back.cluster.master_addrs().join(",");
    let r = hive_json(
        &["restore", &safety, "--from", &d, "--cluster", &b, "--json"],
        &[],
    );
    assert_eq!(r["ok"], true);
    let mut bc = connect(&back.url());
    let v: String = redis::cmd("GET").arg("bk:0:string").query(&mut bc).unwrap();
    assert_eq!(v, "old");
    let v: String = redis::cmd("GET").arg("precious").query(&mut bc).unwrap();
    assert_eq!(v, "before");
}
