//! TLS on both sides with real tools: redis-server nodes on `--tls-port` requiring client
//! certificates, the proxy dialing them over TLS, and clients (redis-cli --tls, redis-py
//! ssl=True) reaching the proxy's TLS listener; plaintext and untrusted certificates refused
//! without disturbing others; the certificate re-read on SIGHUP; backups, restores and a
//! reshard over TLS. Certificates are made here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_local::{free_port_pair, RedisProcess};
use hive_proxy::config::{Config, Mode, ShardConfig};
use hive_proxy::server::ProxyHandle;
use hive_proxy::tls::server::AuthClients;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tempfile::TempDir;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// Writes `<name>.pem` and `<name>.key`, signed by `ca`, for `purpose`.
fn leaf(dir: &Path, name: &str, ca: &Ca, purpose: ExtendedKeyUsagePurpose) {
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn write_ca(dir: &Path, name: &str, ca: &Ca) {
    std::fs::write(dir.join(format!("{name}.pem")), ca.cert.pem()).unwrap();
}

/// Two TLS-only-to-Hive masters (plain port kept for the harness and for checks), requiring
/// client certificates; and the certificates of a TLS deployment in `dir`.
struct Tls {
    dir: TempDir,
    nodes: Vec<(RedisProcess, u16)>,
}

fn deployment() -> Tls {
    deployment_with(false)
}

/// With `module`, every node loads hive-module (sentinel and static resharding needs it).
fn deployment_with(module: bool) -> Tls {
    let dir = tempfile::Builder::new()
        .prefix("hive-tls-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let good = ca("hive test CA");
    write_ca(d, "ca", &good);
    leaf(d, "server", &good, ExtendedKeyUsagePurpose::ServerAuth);
    leaf(d, "client", &good, ExtendedKeyUsagePurpose::ClientAuth);
    let other = ca("someone else");
    write_ca(d, "other-ca", &other);
    leaf(d, "untrusted", &other, ExtendedKeyUsagePurpose::ClientAuth);
    let s = |f: &str| d.join(f).display().to_string();
    let so = hive_tests::module_so().display().to_string();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let plain = free_port_pair().unwrap();
        let tls = free_port_pair().unwrap();
        let node = RedisProcess::start(
            d,
            plain,
            &[
                "--tls-port",
                &tls.to_string(),
                "--tls-cert-file",
                &s("server.pem"),
                "--tls-key-file",
                &s("server.key"),
                "--tls-ca-cert-file",
                &s("ca.pem"),
                "--tls-auth-clients",
                "yes",
                // MIGRATE (a reshard) dials the other node over TLS, with a client certificate.
                "--tls-cluster",
                "yes",
                "--tls-client-cert-file",
                &s("client.pem"),
                "--tls-client-key-file",
                &s("client.key"),
                "--dbfilename",
                &format!("dump-{plain}.rdb"),
                if module { "--loadmodule" } else { "--loglevel" },
                if module { &so } else { "notice" },
            ],
        )
        .expect("redis-server with TLS (Debian's is built with it)");
        nodes.push((node, tls));
    }
    Tls { dir, nodes }
}

impl Tls {
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn config(&self, auth_clients: AuthClients) -> Config {
        let mut c = Config::default();
        c.proxy.listen = String::new();
        c.proxy.tls_listen = Some("127.0.0.1:0".into());
        c.proxy.threads = 2;
        c.proxy.tls_cert_file = Some(self.path("server.pem"));
        c.proxy.tls_key_file = Some(self.path("server.key"));
        c.proxy.tls_ca_cert_file = Some(self.path("ca.pem"));
        c.proxy.tls_auth_clients = auth_clients;
        c.backend.mode = Mode::Static;
        c.backend.shards = self
            .nodes
            .iter()
            .map(|(_, tls)| ShardConfig::at(format!("127.0.0.1:{tls}"), Vec::new()))
            .collect();
        c.backend.tls = true;
        c.backend.tls_ca_cert_file = Some(self.path("ca.pem"));
        c.backend.tls_cert_file = Some(self.path("client.pem"));
        c.backend.tls_key_file = Some(self.path("client.key"));
        c
    }

    /// redis-cli --tls against `port`; `cert` names a client certificate (`client`, ...).
    fn cli(&self, port: u16, ca: &str, cert: Option<&str>, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("redis-cli");
        cmd.args([
            "--tls",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--cacert",
        ])
        .arg(self.path(&format!("{ca}.pem")));
        if let Some(c) = cert {
            cmd.arg("--cert")
                .arg(self.path(&format!("{c}.pem")))
                .arg("--key")
                .arg(self.path(&format!("{c}.key")));
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.success() && !text.contains("Could not"),
            text.trim().to_string(),
        )
    }
}

#[test]
fn tls_clients_and_nodes_speak_tls_end_to_end() {
    let t = deployment();
    let proxy = ProxyHandle::start(t.config(AuthClients::Optional)).unwrap();
    let port = proxy.tls_addr.unwrap().port();
    let (ok, out) = t.cli(port, "ca", None, &["SET", "tls:k", "v"]);
    assert!(ok && out == "OK", "{out}");
    let (ok, out) = t.cli(port, "ca", None, &["GET", "tls:k"]);
    assert!(ok && out == "v", "{out}");
    // The proxy's node connections arrive on the nodes' TLS ports.
    let mut seen = 0;
    for (node, tls) in &t.nodes {
        let mut c = hive_tests::connect(&hive_tests::node_url(&node.addr));
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        seen += list
            .lines()
            .filter(|l| l.contains(&format!("laddr=127.0.0.1:{tls}")))
            .count();
    }
    assert!(seen >= 1, "no proxy connection on a TLS port");
    // redis-py with ssl=True.
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python");
    let script = "import redis, sys\n\
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2])\n\
r.set('tls:py', 'ok')\n\
assert r.get('tls:py') == b'ok'\n\
assert r.mget('tls:k', 'tls:py') == [b'v', b'ok']\n\
print('ALL OK')\n";
    let out = Command::new(python)
        .args(["-c", script, &port.to_string()])
        .arg(t.path("ca.pem"))
        .output()
        .expect("run python");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ALL OK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plaintext to the TLS port is refused; TLS clients go on.
    let mut s = TcpStream::connect(proxy.tls_addr.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("PONG"));
    let (ok, out) = t.cli(port, "ca", None, &["GET", "tls:k"]);
    assert!(ok && out == "v", "{out}");
    let failures = hive_proxy::metrics::Stats::get(&proxy.shared.stats.tls_handshake_failures);
    assert!(failures >= 1);
}

#[test]
fn tls_auth_clients_yes_refuses_missing_and_untrusted_certificates() {
    let t = deployment();
    let proxy = ProxyHandle::start(t.config(AuthClients::Yes)).unwrap();
    let port = proxy.tls_addr.unwrap().port();
    let (ok, out) = t.cli(port, "ca", None, &["PING"]);
    assert!(
        !ok || out != "PONG",
        "no client certificate was accepted: {out}"
    );
    let (ok, out) = t.cli(port, "ca", Some("untrusted"), &["PING"]);
    assert!(
        !ok || out != "PONG",
        "an untrusted certificate was accepted: {out}"
    );
    let (ok, out) = t.cli(port, "ca", Some("client"), &["PING"]);
    assert!(ok && out == "PONG", "{out}");
}

#[test]
fn tls_certificate_is_reloaded_on_sighup() {
    let t = deployment();
    let port = free_port_pair().unwrap();
    let conf = t.path("hive.toml");
    let shards: Vec<String> = t
        .nodes
        .iter()
        .map(|(_, tls)| format!("[[backend.shards]]\nmaster = \"127.0.0.1:{tls}\"\n"))
        .collect();
    let p = |f: &str| t.path(f).display().to_string();
    std::fs::write(
        &conf,
        format!(
            "[proxy]\nlisten = \"\"\ntls_listen = \"127.0.0.1:{port}\"\ntls_cert_file = {:?}\n\
tls_key_file = {:?}\ntls_auth_clients = \"no\"\n[backend]\nmode = \"static\"\ntls = true\n\
tls_ca_cert_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}\n{}",
            p("server.pem"),
            p("server.key"),
            p("ca.pem"),
            p("client.pem"),
            p("client.key"),
            shards.join("")
        ),
    )
    .unwrap();
    let mut hive = Command::new(hive_tests::hive_bin())
        .args(["proxy", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.cli(port, "ca", None, &["PING"]).1 != "PONG" {
        assert!(Instant::now() < deadline, "the proxy did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new certificate from another CA in the same files, then SIGHUP.
    let next = ca("next CA");
    write_ca(t.dir.path(), "next-ca", &next);
    leaf(
        t.dir.path(),
        "server",
        &next,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let status = Command::new("kill")
        .args(["-HUP", &hive.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.cli(port, "next-ca", None, &["PING"]).1 != "PONG" {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out) = t.cli(port, "ca", None, &["PING"]);
    assert!(
        !ok || out != "PONG",
        "the old certificate is still served: {out}"
    );
    let _ = hive.kill();
    let _ = hive.wait();
}

/// `hive backup` streams each node's RDB over TLS (the config's client certificate), and
/// `hive restore` writes through its in-process proxy over TLS too.
#[test]
fn tls_backup_and_restore_go_over_tls() {
    let t = deployment();
    for (i, (node, _)) in t.nodes.iter().enumerate() {
        let mut c = hive_tests::connect(&hive_tests::node_url(&node.addr));
        for j in 0..100 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}:{j}"))
                .arg(j)
                .query(&mut c)
                .unwrap();
        }
    }
    let path = t.path("hive.toml");
    std::fs::write(&path, toml::to_string(&t.config(AuthClients::No)).unwrap()).unwrap();
    let (conf, dest) = (
        path.display().to_string(),
        t.path("backups").display().to_string(),
    );
    let m = hive_tests::backups::hive_json(
        &["backup", "--config", &conf, "--dest", &dest, "--json"],
        &[],
    );
    let shards = m["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    assert!(
        shards
            .iter()
            .all(|s| s["method"] == "network" && s["dbsize"] == 100),
        "{m:#}"
    );
    let keys = |t: &Tls| -> u64 {
        t.nodes
            .iter()
            .map(|(n, _)| {
                redis::cmd("DBSIZE")
                    .query::<u64>(&mut hive_tests::connect(&hive_tests::node_url(&n.addr)))
                    .unwrap()
            })
            .sum()
    };
    for (node, _) in &t.nodes {
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut hive_tests::connect(&hive_tests::node_url(&node.addr)))
            .unwrap();
    }
    assert_eq!(keys(&t), 0);
    let r = hive_tests::backups::hive_json(
        &[
            "restore",
            m["id"].as_str().unwrap(),
            "--from",
            &dest,
            "--config",
            &conf,
            "--json",
        ],
        &[],
    );
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(keys(&t), 200);
}

#[test]
fn tls_reshard_hands_slots_over_between_tls_nodes() {
    let t = deployment_with(true);
    // Keys where the map (two static shards, even halves) puts them.
    let mut written = [0u64; 2];
    for j in 0..400 {
        let key = format!("k{j}");
        let i = usize::from(hive_common::Slot::for_key(key.as_bytes()).get() >= 8192);
        let mut c = hive_tests::connect(&hive_tests::node_url(&t.nodes[i].0.addr));
        let _: () = redis::cmd("SET").arg(&key).arg(j).query(&mut c).unwrap();
        written[i] += 1;
    }
    let path = t.path("hive.toml");
    std::fs::write(&path, toml::to_string(&t.config(AuthClients::No)).unwrap()).unwrap();
    let conf = path.display().to_string();
    let (from, to) = (
        format!("127.0.0.1:{}", t.nodes[0].1),
        format!("127.0.0.1:{}", t.nodes[1].1),
    );
    let out = hive_tests::backups::hive_json(
        &[
            "reshard", "--config", &conf, "--slots", "4096", "--from", &from, "--to", &to, "--json",
        ],
        &[],
    );
    // The nodes' MIGRATEs went to the TLS ports, where a plaintext MIGRATE fails.
    let moved = out["outcome"]["keys"].as_u64().unwrap();
    assert!(moved > 50, "{out:#}");
    let dbsize = |i: usize| -> u64 {
        redis::cmd("DBSIZE")
            .query(&mut hive_tests::connect(&hive_tests::node_url(
                &t.nodes[i].0.addr,
            )))
            .unwrap()
    };
    assert_eq!(dbsize(0), written[0] - moved);
    assert_eq!(dbsize(1), written[1] + moved);
}
