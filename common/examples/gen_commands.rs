//! Generates `data/commands.json` from a live server's `COMMAND` reply.
//!
//! Usage: `cargo run -p hive-common --example gen_commands -- 127.0.0.1:6379 > common/data/commands.json`

use std::io::{Read, Write};
use std::net::TcpStream;

use hive_common::command::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use hive_common::resp::{parse_value, Value};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let mut conn = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.write_all(b"*1\r\n$7\r\nCOMMAND\r\n")
        .expect("send COMMAND");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let reply = loop {
        let n = conn.read(&mut chunk).expect("read reply");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some((v, _)) = parse_value(&buf).expect("valid RESP") {
            break v;
        }
    };
    let mut commands: Vec<CommandSpec> = reply
        .as_array()
        .expect("COMMAND returns an array")
        .iter()
        .map(command)
        .collect();
    commands.sort_by(|a, b| a.name.cmp(&b.name));
    println!(
        "{}",
        serde_json::to_string_pretty(&commands).expect("serialize")
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

fn int(v: &Value, what: &str) -> i64 {
    v.as_int()
        .unwrap_or_else(|| panic!("{what} is not an integer: {v:?}"))
}

fn command(v: &Value) -> CommandSpec {
    let a = v.as_array().expect("command entry is an array");
    let json = serde_json::json!({
        "name": a[0].as_str().expect("name").to_ascii_lowercase(),
        "arity": int(&a[1], "arity"),
        "flags": strings(&a[2]),
        "first_key": int(&a[3], "first key"),
        "last_key": int(&a[4], "last key"),
        "step": int(&a[5], "step"),
        "acl_categories": strings(&a[6]),
        "tips": strings(&a[7]),
        "key_specs": [],
        "subcommands": [],
    });
    let mut spec: CommandSpec = serde_json::from_value(json).expect("spec");
    spec.key_specs = a[8]
        .as_array()
        .unwrap_or(&[])
        .iter()
        .map(key_spec)
        .collect();
    spec.subcommands = a[9].as_array().unwrap_or(&[]).iter().map(command).collect();
    spec.subcommands.sort_by(|a, b| a.name.cmp(&b.name));
    spec
}

fn key_spec(v: &Value) -> KeySpec {
    let bs = v.field("begin_search").expect("begin_search");
    let bs_spec = bs.field("spec");
    let begin_search = match bs.field("type").and_then(Value::as_str) {
        Some("index") => BeginSearch::Index {
            pos: int(
                bs_spec.and_then(|s| s.field("index")).expect("index"),
                "index",
            ),
        },
        Some("keyword") => {
            let s = bs_spec.expect("keyword spec");
            BeginSearch::Keyword {
                keyword: s
                    .field("keyword")
                    .and_then(Value::as_str)
                    .expect("kw")
                    .into(),
                startfrom: int(s.field("startfrom").expect("startfrom"), "startfrom"),
            }
        }
        _ => BeginSearch::Unknown,
    };
    let fk = v.field("find_keys").expect("find_keys");
    let f = |name: &str| {
        int(
            fk.field("spec").and_then(|s| s.field(name)).expect(name),
            name,
        )
    };
    let find_keys = match fk.field("type").and_then(Value::as_str) {
        Some("range") => FindKeys::Range {
            lastkey: f("lastkey"),
            keystep: f("keystep"),
            limit: f("limit"),
        },
        Some("keynum") => FindKeys::Keynum {
            keynumidx: f("keynumidx"),
            firstkey: f("firstkey"),
            keystep: f("keystep"),
        },
        _ => FindKeys::Unknown,
    };
    let json = serde_json::json!({
        "flags": strings(v.field("flags").expect("flags")),
        "begin_search": begin_search,
        "find_keys": find_keys,
    });
    serde_json::from_value(json).expect("key spec")
}
