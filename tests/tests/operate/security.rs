//! Security at the proxy, against real nodes that all have `requirepass`: the proxy's own
//! users (requirepass, ACL rules, hashed passwords), Redis's NOAUTH/WRONGPASS/NOPERM texts,
//! credentials kept from clients, and commands that are never forwarded.

use std::path::PathBuf;
use std::process::Command;

use hive_proxy::auth::hash_password;
use hive_tests::{connect, GroupEnv};
use hive_tests::{error_text as err, run};
use redis::{Commands, Value};

const NODE_PW: &str = "node-secret-4711";
const PROXY_PW: &str = "proxy-secret-0815";

/// 3 static masters with `requirepass`; the proxy with its own users.
fn env() -> GroupEnv {
    GroupEnv::start(3, 0, Some(NODE_PW), |c| {
        c.proxy.requirepass = Some(PROXY_PW.into());
        c.proxy.users = vec![
            "app on >apppw ~app:* &events:* +@read +@write +@pubsub +@transaction -@dangerous"
                .into(),
            "user reader on >readpw %R~* +@read +@connection".into(),
            format!("hashed on #{} ~* &* +@all", hash_password(b"hashedpw")).into(),
            "retired off >oldpw ~* +@all".into(),
        ];
    })
}

fn plain(env: &GroupEnv) -> redis::Connection {
    connect(&env.url())
}

#[test]
fn security_unauthenticated_clients_get_noauth_and_bad_credentials_wrongpass() {
    let env = env();
    let mut c = plain(&env);
    for cmd in [
        &["GET", "k"][..],
        &["SET", "k", "v"],
        &["KEYS", "*"],
        &["FLUSHALL"],
        &["CLIENT", "KILL", "TYPE", "normal"],
        &["PING"],
        &["CONFIG", "GET", "requirepass"],
    ] {
        assert_eq!(
            err(run(&mut c, cmd)),
            "NOAUTH Authentication required.",
            "{cmd:?}"
        );
    }
    let wrongpass = "WRONGPASS invalid username-password pair or user is disabled.";
    assert_eq!(
        err(run(&mut c, &["AUTH", "default", "wrongpassword"])),
        wrongpass
    );
    assert_eq!(err(run(&mut c, &["AUTH", "nosuchuser", "x"])), wrongpass);
    assert_eq!(err(run(&mut c, &["AUTH", "wrongpassword"])), wrongpass);
    assert_eq!(err(run(&mut c, &["AUTH", "retired", "oldpw"])), wrongpass);
    assert_eq!(
        err(run(&mut c, &["HELLO", "3", "AUTH", "default", "wrong"])),
        wrongpass
    );
    assert!(err(run(&mut c, &["HELLO", "3"])).starts_with("NOAUTH HELLO must be called"));
    assert_eq!(
        err(run(&mut c, &["AUTH", "a", "b", "c"])),
        "ERR syntax error"
    );
    // Still not authenticated after all that.
    assert_eq!(
        err(run(&mut c, &["GET", "k"])),
        "NOAUTH Authentication required."
    );
    // QUIT needs no authentication.
    assert_eq!(run(&mut c, &["QUIT"]).unwrap(), Value::Okay);

    let mut c = plain(&env);
    let hello = run(
        &mut c,
        &[
            "HELLO", "2", "AUTH", "default", PROXY_PW, "SETNAME", "web-1",
        ],
    );
    assert!(matches!(hello, Ok(Value::Array(_))), "{hello:?}");
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, "web-1");
    let _: () = c.set("after-hello", "1").unwrap();

    let mut c = plain(&env);
    let hello = run(
        &mut c,
        &[
            "HELLO", "3", "AUTH", "default", PROXY_PW, "SETNAME", "web-3",
        ],
    );
    assert!(matches!(hello, Ok(Value::Map(_))), "{hello:?}");
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(
        info.contains("name=web-3") && info.contains("resp=3"),
        "{info}"
    );

    let mut c = plain(&env);
    assert_eq!(run(&mut c, &["AUTH", PROXY_PW]).unwrap(), Value::Okay);
    let got: Option<String> = c.get("after-hello").unwrap();
    assert_eq!(got.as_deref(), Some("1"));
    assert_eq!(
        run(&mut c, &["AUTH", "hashed", "hashedpw"]).unwrap(),
        Value::Okay
    );
    let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut c).unwrap();
    assert_eq!(who, "hashed");
    // The redis crate's own AUTH (user and password in the URL) works too.
    let url = format!("redis://app:apppw@{}/", env.proxy.addr);
    let mut app = connect(&url);
    let _: () = app.set("app:url", "1").unwrap();
}

#[test]
fn security_acl_rules_are_enforced_before_routing() {
    let env = env();
    let mut app = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    let _: () = app.set("app:1", "v").unwrap();
    let nokey = "NOPERM this user has no permissions to access one of the keys used as arguments";
    assert_eq!(err(run(&mut app, &["SET", "other", "v"])), nokey);
    assert_eq!(err(run(&mut app, &["GET", "other"])), nokey);
    assert_eq!(err(run(&mut app, &["MGET", "app:1", "other"])), nokey);
    assert_eq!(
        err(run(&mut app, &["FLUSHALL"])),
        "NOPERM this user has no permissions to run the 'flushall' command"
    );
    assert_eq!(
        err(run(&mut app, &["KEYS", "*"])),
        "NOPERM this user has no permissions to run the 'keys' command"
    );
    let n: i64 = redis::cmd("PUBLISH")
        .arg("events:a")
        .arg("m")
        .query(&mut app)
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        err(run(&mut app, &["PUBLISH", "other", "m"])),
        "NOPERM this user has no permissions to access one of the channels used as arguments"
    );
    // A refused command inside MULTI aborts the transaction, as in Redis.
    let _: () = redis::cmd("MULTI").query(&mut app).unwrap();
    assert!(err(run(&mut app, &["SET", "other", "v"])).starts_with("NOPERM"));
    assert!(err(run(&mut app, &["EXEC"])).starts_with("EXECABORT"));

    let mut reader = connect(&format!("redis://reader:readpw@{}/", env.proxy.addr));
    let got: Option<String> = reader.get("app:1").unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    assert_eq!(
        err(run(&mut reader, &["SET", "app:1", "x"])),
        "NOPERM this user has no permissions to run the 'set' command"
    );
    // Nothing refused reached a node.
    for i in 0..3 {
        let master = env.routed_master(i);
        let mut node = env.node(&master);
        let other: Option<String> = node.get("other").unwrap();
        assert_eq!(other, None, "on {master}");
    }
    assert_eq!(
        err(run(&mut app, &["CLIENT", "LIST"])),
        "NOPERM this user has no permissions to run the 'client|list' command"
    );
    let mut admin = connect(&format!("redis://:{PROXY_PW}@{}/", env.proxy.addr));
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(list.contains("user=app"), "{list}");
    assert!(list.contains("user=default"), "{list}");
    assert!(list.contains("user=reader"), "{list}");
}

#[test]
fn security_no_secret_leaves_the_proxy() {
    let env = env();
    let mut c = connect(&format!("redis://:{PROXY_PW}@{}/", env.proxy.addr));
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("requirepass")
        .query(&mut c)
        .unwrap();
    assert!(v.is_empty(), "{v:?}");
    let all: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("*")
        .query(&mut c)
        .unwrap();
    assert!(
        all.iter().any(|k| k == "maxmemory"),
        "CONFIG GET * still works"
    );
    for secret in [
        "requirepass",
        "masterauth",
        "masteruser",
        "tls-key-file-pass",
    ] {
        assert!(!all.iter().any(|k| k == secret), "{secret} returned");
    }
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    let wrong = err(run(&mut c, &["AUTH", "app", NODE_PW]));
    for text in [all.join(" "), info, list, wrong] {
        assert!(
            !text.contains(NODE_PW),
            "the nodes' password leaked: {text}"
        );
        assert!(
            !text.contains(PROXY_PW),
            "the proxy's password leaked: {text}"
        );
    }
}

#[test]
fn security_commands_that_would_break_hive_are_never_forwarded() {
    let env = env();
    let mut c = connect(&format!("redis://:{PROXY_PW}@{}/", env.proxy.addr));
    for i in 0..30 {
        let _: () = c.set(format!("swap:{i}"), i).unwrap();
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    for cmd in [
        &["MIGRATE", "127.0.0.1", "1", "swap:1", "0", "1000"][..],
        &["SWAPDB", "0", "1"],
        &["ASKING"],
        &["PFDEBUG", "GETREG", "swap:1"],
        &["PFSELFTEST"],
        &["MEMORY", "PURGE"],
        &["MEMORY", "DOCTOR"],
        &["SHUTDOWN"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["DEBUG", "SLEEP", "0"],
        &["MODULE", "UNLOAD", "hive"],
        &["MODULE", "LOAD", "/tmp/x.so"],
    ] {
        let e = err(run(&mut c, cmd));
        assert!(e.starts_with("ERR Hive does not support"), "{cmd:?}: {e}");
    }
    let after: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(after, dbsize, "no key vanished or moved");
    let v: Option<String> = c.get("swap:1").unwrap();
    assert_eq!(v.as_deref(), Some("1"));
}

#[test]
fn security_without_users_the_default_user_is_redis_default() {
    let env = GroupEnv::statik(1, |_| {});
    let mut c = plain(&env);
    assert_eq!(
        run(&mut c, &["PING"]).unwrap(),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        err(run(&mut c, &["AUTH", "x"])),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    assert_eq!(
        run(&mut c, &["AUTH", "default", "anything"]).unwrap(),
        Value::Okay
    );
    assert_eq!(
        err(run(&mut c, &["AUTH", "nosuchuser", "x"])),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
}

#[test]
fn security_redis_py_authenticates_with_an_acl_user() {
    let env = env();
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python");
    let script = "import redis, sys\n\
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), username='app', password='apppw')\n\
r.set('app:py', 'ok')\n\
assert r.get('app:py') == b'ok'\n\
try:\n    r.get('other')\n    sys.exit('no NOPERM')\n\
except redis.exceptions.NoPermissionError:\n    pass\n\
try:\n    redis.Redis(port=int(sys.argv[1]), username='app', password='bad').ping()\n    sys.exit('no auth error')\n\
except redis.exceptions.AuthenticationError:\n    pass\n\
print('ALL OK')\n";
    let out = Command::new(python)
        .args(["-c", script, &env.proxy.addr.port().to_string()])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn security_acl_commands_change_users_live_and_log_denials() {
    let env = env();
    let mut admin = connect(&format!("redis://:{PROXY_PW}@{}/", env.proxy.addr));
    let ok = |c: &mut redis::Connection, args: &[&str]| {
        assert_eq!(run(c, args).unwrap(), Value::Okay, "{args:?}");
    };
    ok(
        &mut admin,
        &[
            "ACL", "SETUSER", "bob", "on", ">bobpw", "~bob:*", "+get", "+set",
        ],
    );
    let mut bob = connect(&format!("redis://bob:bobpw@{}/", env.proxy.addr));
    let _: () = bob.set("bob:1", "b").unwrap();
    assert!(err(run(&mut bob, &["GET", "x"])).starts_with("NOPERM"));
    // A change reaches bob's open connection at once.
    ok(&mut admin, &["ACL", "SETUSER", "bob", "-set"]);
    assert_eq!(
        err(run(&mut bob, &["SET", "bob:1", "c"])),
        "NOPERM this user has no permissions to run the 'set' command"
    );
    let list: Vec<String> = redis::cmd("ACL").arg("LIST").query(&mut admin).unwrap();
    let line = list.iter().find(|l| l.starts_with("user bob ")).unwrap();
    let hash = hash_password(b"bobpw");
    assert_eq!(
        line,
        &format!("user bob on #{hash} ~bob:* resetchannels -@all +get")
    );
    assert!(!list.join(" ").contains("bobpw"));
    let getuser = run(&mut admin, &["ACL", "GETUSER", "bob"]).unwrap();
    assert!(format!("{getuser:?}").contains("~bob:*"), "{getuser:?}");
    assert_eq!(
        run(&mut admin, &["ACL", "GETUSER", "nobody"]).unwrap(),
        Value::Nil
    );
    let dry: String = redis::cmd("ACL")
        .arg("DRYRUN")
        .arg("bob")
        .arg("SET")
        .arg("bob:1")
        .arg("x")
        .query(&mut admin)
        .unwrap();
    assert_eq!(dry, "This user has no permissions to run the 'set' command");
    let dry: String = redis::cmd("ACL")
        .arg("DRYRUN")
        .arg("bob")
        .arg("GET")
        .arg("y")
        .query(&mut admin)
        .unwrap();
    assert_eq!(dry, "This user has no permissions to access the 'y' key");
    ok(&mut admin, &["ACL", "DRYRUN", "bob", "GET", "bob:2"]);
    assert_eq!(
        err(run(&mut admin, &["ACL", "DRYRUN", "nobody", "GET", "k"])),
        "ERR User 'nobody' not found"
    );
    // Failed logins and denials are in ACL LOG, without passwords.
    let mut c = plain(&env);
    let _ = run(&mut c, &["AUTH", "nosuch", "guessed-password"]);
    let entries: Vec<Vec<String>> = redis::cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    let has = |reason: &str, object: &str, user: &str| {
        entries.iter().any(|e| {
            let f = |k: &str| e.chunks(2).find(|kv| kv[0] == k).map(|kv| kv[1].as_str());
            f("reason") == Some(reason)
                && f("object") == Some(object)
                && f("username") == Some(user)
        })
    };
    assert!(has("auth", "AUTH", "nosuch"), "{entries:?}");
    assert!(has("key", "x", "bob"), "{entries:?}");
    assert!(has("command", "set", "bob"), "{entries:?}");
    let log = format!("{entries:?}");
    assert!(
        !log.contains("guessed-password") && !log.contains("bobpw"),
        "{log}"
    );
    ok(&mut admin, &["ACL", "LOG", "RESET"]);
    // Only users allowed to may change users.
    let mut app = connect(&format!("redis://app:apppw@{}/", env.proxy.addr));
    assert_eq!(
        err(run(&mut app, &["ACL", "SETUSER", "app", "+@all"])),
        "NOPERM this user has no permissions to run the 'acl|setuser' command"
    );
    assert_eq!(
        err(run(&mut admin, &["ACL", "SETUSER", "bob", "+nosuch"])),
        "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
    );
    assert_eq!(
        err(run(&mut admin, &["ACL", "DELUSER", "default"])),
        "ERR The 'default' user cannot be removed"
    );
    assert!(err(run(&mut admin, &["ACL", "SAVE"])).contains("not configured to use an ACL file"));
    // Deleting bob closes bob's connection.
    let n: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg("bob")
        .query(&mut admin)
        .unwrap();
    assert_eq!(n, 1);
    assert!(run(&mut bob, &["GET", "bob:1"]).is_err());
    assert!(connect_err(&format!(
        "redis://bob:bobpw@{}/",
        env.proxy.addr
    )));
}

fn connect_err(url: &str) -> bool {
    redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(std::time::Duration::from_secs(5))
        .is_err()
}

#[test]
fn security_acl_save_and_load_use_the_aclfile() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.acl");
    std::fs::write(&file, "user app on >pw ~* &* +@all\n").unwrap();
    let acl = file.clone();
    let env = GroupEnv::statik(1, move |c| {
        c.proxy.requirepass = Some(PROXY_PW.into());
        c.proxy.aclfile = Some(acl);
    });
    let mut admin = connect(&format!("redis://:{PROXY_PW}@{}/", env.proxy.addr));
    assert_eq!(
        run(
            &mut admin,
            &["ACL", "SETUSER", "carol", "on", ">c", "~c:*", "+get"]
        )
        .unwrap(),
        Value::Okay
    );
    assert_eq!(run(&mut admin, &["ACL", "SAVE"]).unwrap(), Value::Okay);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("user carol on #"), "{saved}");
    assert!(saved.contains("user app on #"), "{saved}");
    assert!(!saved.contains(">c") && !saved.contains(">pw"), "{saved}");
    // What ACL SAVE wrote loads back as it was.
    assert_eq!(run(&mut admin, &["ACL", "LOAD"]).unwrap(), Value::Okay);
    let mut carol = connect(&format!("redis://carol:c@{}/", env.proxy.addr));
    let _: Option<String> = carol.get("c:1").unwrap();
    std::fs::write(&file, "user dave on >d ~* +@read\n").unwrap();
    assert_eq!(run(&mut admin, &["ACL", "LOAD"]).unwrap(), Value::Okay);
    let users: Vec<String> = redis::cmd("ACL").arg("USERS").query(&mut admin).unwrap();
    assert_eq!(users, ["dave", "default"]);
    let mut dave = connect(&format!("redis://dave:d@{}/", env.proxy.addr));
    let _: Option<String> = dave.get("k").unwrap();
}
