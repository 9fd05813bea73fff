//! The deployment files: Kubernetes manifests validate against the Kubernetes schemas
//! (kubernetes-validate) and their PrometheusRule passes promtool; the generated ConfigMap and
//! rules are fresh; docker-compose accepts both compose files; systemd-analyze accepts the
//! units; and redis-server, redis-sentinel and `hive proxy` start from exactly the files the
//! manifests mount, rendered by the same script the containers run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hive_local::process::{redis_sentinel_bin, redis_server_bin};
use hive_local::{free_port_pair, RedisProcess};
use hive_tests::backups::hive;
use hive_tests::{connect, hive_bin, module_so};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv(bin: &str) -> PathBuf {
    root().join("target/pyvenv/bin").join(bin)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn deploy_kubernetes_manifests_validate_and_are_generated_fresh() {
    run(Command::new("python3")
        .arg(root().join("deploy/kubernetes/generate.py"))
        .arg("--check"));
    let mut files = Vec::new();
    for d in [
        "deploy/kubernetes/common",
        "deploy/kubernetes/cluster",
        "deploy/kubernetes/sentinel",
        "deploy/backup/kubernetes",
    ] {
        files.extend(yaml_files(&root().join(d)));
    }
    assert!(files.len() >= 12, "{files:?}");
    let out = run(Command::new(venv("kubernetes-validate"))
        .arg("--strict")
        .args(&files));
    let passed = out
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains("passed"))
        .count();
    // Only the Prometheus Operator's two kinds have no schema there; promtool checks the rules.
    let skipped: Vec<&str> = out.lines().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(skipped.len(), 2, "{out}");
    assert!(
        skipped
            .iter()
            .all(|l| l.contains("ServiceMonitor") || l.contains("PrometheusRule")),
        "{out}"
    );
    assert!(!out.contains("ERROR"), "{out}");
    assert!(passed >= 20, "{passed} resources passed:\n{out}");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    let code =
        format!(
        "import yaml,sys; d=yaml.safe_load(open('{}')); yaml.safe_dump(d['spec'], open('{}','w'))",
        root().join("deploy/kubernetes/common/prometheusrule.yaml").display(),
        rules.display()
    );
    run(Command::new(venv("python")).args(["-c", &code]));
    let out = run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules));
    assert!(out.contains("SUCCESS"), "{out}");
}

/// What the Dockerfile copies exists, and every image target the compose files build is one
/// of its stages (no engine runs here to build it).
#[test]
fn deploy_dockerfile_copies_what_exists_and_has_the_stages_compose_builds() {
    let text = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    let mut copies = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            if *src != "." {
                assert!(root().join(src).exists(), "{line}: {src} is missing");
            }
            copies += 1;
        }
    }
    assert!(copies >= 5);
    let stages: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM ")?.split(" AS ").nth(1))
        .collect();
    assert_eq!(stages, ["build", "proxy", "redis-node"]);
    for f in ["docker-compose.yml", "docker-compose.sentinel.yml"] {
        let compose = std::fs::read_to_string(root().join("deploy/compose").join(f)).unwrap();
        for (i, _) in compose.match_indices("target: ") {
            let t = compose[i + 8..].split(['}', '\n']).next().unwrap().trim();
            assert!(stages.contains(&t), "{f}: target {t}");
        }
    }
}

#[test]
fn deploy_compose_files_validate() {
    let dir = root().join("deploy/compose");
    for f in ["docker-compose.yml", "docker-compose.sentinel.yml"] {
        let out = run(Command::new("docker-compose").current_dir(&dir).args([
            "--env-file",
            ".env.example",
            "-f",
            f,
            "config",
        ]));
        assert!(
            out.contains("hive:") && out.contains("prometheus:") && out.contains("grafana:"),
            "{f}: {out}"
        );
    }
    // Without a password the stack refuses to start rather than run without one.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("docker-compose")
        .current_dir(&dir)
        .args(["--env-file"])
        .arg(empty.path())
        .args(["-f", "docker-compose.yml", "config"])
        .env_remove("REDIS_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set REDIS_PASSWORD"));
}

#[test]
fn deploy_systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let hive = hive_bin().display().to_string();
    for f in [
        "hive-proxy.service",
        "hive-proxy.socket",
        "redis-node@.service",
    ] {
        let text = std::fs::read_to_string(root().join("deploy/systemd").join(f)).unwrap();
        std::fs::write(
            dir.path().join(f),
            text.replace("/usr/local/bin/hive", &hive),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(
        "redis-node@.service",
        dir.path().join("redis-node@6379.service"),
    )
    .unwrap();
    run(Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args([
            "verify",
            "hive-proxy.service",
            "hive-proxy.socket",
            "redis-node@6379.service",
        ]));
}

/// The ConfigMap's files, written out as Kubernetes mounts them.
fn mounted_templates(dir: &Path) -> PathBuf {
    let out = dir.join("hive-templates");
    std::fs::create_dir_all(&out).unwrap();
    let code = format!(
        "import yaml; d=yaml.safe_load(open('{}'))['data']\nfor k, v in d.items(): open('{}/' + k, 'w').write(v)",
        root().join("deploy/kubernetes/common/templates.yaml").display(),
        out.display()
    );
    run(Command::new(venv("python")).args(["-c", &code]));
    out
}

/// `render-conf.sh TEMPLATE OUT` with `env`, as the containers run it.
fn render(template: &Path, out: &Path, env: &[(&str, String)]) {
    run(Command::new("sh")
        .arg(root().join("deploy/docker/render-conf.sh"))
        .arg(template)
        .arg(out)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
}

const PW: &str = "deploy-test-pw";

fn node_env(dir: &Path, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("PASSWORD", PW.into()),
        ("PORT", port.to_string()),
        ("BIND", "127.0.0.1".into()),
        ("DIR", dir.display().to_string()),
        ("MODULE", module_so().display().to_string()),
    ]
}

fn start(bin: String, dir: &Path, port: u16, conf: &Path) -> RedisProcess {
    RedisProcess::start_with(bin, dir, port, vec![conf.display().to_string()]).unwrap()
}

/// `hive proxy` from a rendered hive.toml, killed on Drop; its address.
struct Proxy(std::process::Child, String);

impl Proxy {
    fn start(conf: &Path, addr: String) -> Proxy {
        let child = Command::new(hive_bin())
            .args(["proxy", "--config"])
            .arg(conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let p = Proxy(child, addr);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ok = redis::Client::open(format!("redis://{}/", p.1))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                .and_then(|mut c| {
                    redis::cmd("SET")
                        .arg("deploy:k")
                        .arg("v")
                        .query::<()>(&mut c)
                });
            if ok.is_ok() {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "hive proxy never served: {ok:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn deploy_cluster_starts_from_what_the_manifests_mount() {
    let dir = tempfile::tempdir().unwrap();
    let t = mounted_templates(dir.path());
    let mut nodes = Vec::new();
    for i in 0..6 {
        let port = free_port_pair().unwrap();
        let d = dir.path().join(format!("node-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let conf = d.join("redis.conf");
        render(
            &t.join("redis-cluster-node.conf"),
            &conf,
            &node_env(&d, port),
        );
        nodes.push(start(redis_server_bin(), &d, port, &conf));
    }
    let list: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let (ok, out, err) = hive(
        &["init", "--nodes", &list.join(",")],
        &[("HIVE_NODE_PASSWORD", PW)],
    );
    assert!(ok, "{out}{err}");
    let port = free_port_pair().unwrap();
    let conf = dir.path().join("hive.toml");
    let listen = format!("127.0.0.1:{port}");
    render(
        &t.join("hive-cluster.toml"),
        &conf,
        &[
            ("PASSWORD", PW.into()),
            ("LISTEN", listen.clone()),
            ("ADMIN", format!("127.0.0.1:{}", free_port_pair().unwrap())),
            ("SEEDS", list[..3].join(",")),
        ],
    );
    let p = Proxy::start(&conf, listen.clone());
    let mut c = connect(&format!("redis://{}/", p.1));
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let n: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 101);
    // The nodes run the template's settings: the module, AOF + RDB, the password.
    let mut node = connect(&format!("redis://:{PW}@{}/", list[0]));
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query(&mut node)
        .unwrap();
    assert_eq!(aof[1], "yes");
    let _: redis::Value = redis::cmd("HIVE.LAG").query(&mut node).unwrap();
}

#[test]
fn deploy_sentinel_starts_from_what_the_manifests_mount() {
    let dir = tempfile::tempdir().unwrap();
    let t = mounted_templates(dir.path());
    let mport = free_port_pair().unwrap();
    let rport = free_port_pair().unwrap();
    let (md, rd) = (dir.path().join("redis-a-0"), dir.path().join("redis-a-1"));
    std::fs::create_dir_all(&md).unwrap();
    std::fs::create_dir_all(&rd).unwrap();
    render(
        &t.join("redis-master.conf"),
        &md.join("redis.conf"),
        &node_env(&md, mport),
    );
    let mut renv = node_env(&rd, rport);
    renv.push(("MASTER_HOST", "127.0.0.1".into()));
    renv.push(("MASTER_PORT", mport.to_string()));
    render(&t.join("redis-replica.conf"), &rd.join("redis.conf"), &renv);
    let _master = start(redis_server_bin(), &md, mport, &md.join("redis.conf"));
    let _replica = start(redis_server_bin(), &rd, rport, &rd.join("redis.conf"));
    let mut sentinels = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..3 {
        let port = free_port_pair().unwrap();
        let d = dir.path().join(format!("sentinel-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut env = node_env(&d, port);
        env.extend([
            ("NAME", "hive-a".into()),
            ("MASTER_HOST", "127.0.0.1".into()),
            ("MASTER_PORT", mport.to_string()),
        ]);
        render(&t.join("sentinel.conf"), &d.join("sentinel.conf"), &env);
        sentinels.push(start(
            redis_sentinel_bin(),
            &d,
            port,
            &d.join("sentinel.conf"),
        ));
        addrs.push(format!("127.0.0.1:{port}"));
    }
    let port = free_port_pair().unwrap();
    let conf = dir.path().join("hive.toml");
    let listen = format!("127.0.0.1:{port}");
    render(
        &t.join("hive-sentinel.toml"),
        &conf,
        &[
            ("PASSWORD", PW.into()),
            ("LISTEN", listen.clone()),
            ("ADMIN", format!("127.0.0.1:{}", free_port_pair().unwrap())),
            ("SENTINELS", addrs.join(",")),
            ("NAME", "hive-a".into()),
        ],
    );
    let p = Proxy::start(&conf, listen);
    let mut c = connect(&format!("redis://{}/", p.1));
    let v: String = redis::cmd("GET").arg("deploy:k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let mut m = connect(&format!("redis://:{PW}@127.0.0.1:{mport}/"));
    let v: String = redis::cmd("GET").arg("deploy:k").query(&mut m).unwrap();
    assert_eq!(v, "v", "the write went to the group's master");
}
