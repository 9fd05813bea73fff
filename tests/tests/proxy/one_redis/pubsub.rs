//! Subscribers as one Redis treats them: SSUBSCRIBE and SUNSUBSCRIBE confirmations count the
//! client's own shard channels however many masters its channels live on (byte for byte
//! against a standalone redis-server, in RESP2 and RESP3), and a subscriber closed by CLIENT
//! KILL sees its connection closed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hive_common::resp::parse_value;
use hive_tests::{Env, GroupEnv};

use super::{cmd, standalone};

/// Sends `args` and reads `frames` complete replies; their bytes.
fn exchange(s: &mut TcpStream, args: &[&str], frames: usize) -> Vec<u8> {
    s.write_all(cmd(args).as_bytes()).unwrap();
    read_frames(s, frames)
}

/// Reads `frames` complete frames; their bytes.
fn read_frames(s: &mut TcpStream, frames: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let (mut at, mut n) = (0, 0);
        while let Ok(Some((_, len))) = parse_value(&got[at..]) {
            at += len;
            n += 1;
        }
        if n >= frames {
            return got;
        }
        let k = s.read(&mut buf).expect("a reply within 10 s");
        assert!(k > 0, "closed");
        got.extend_from_slice(&buf[..k]);
    }
}

fn same_confirmations(proxy: &hive_proxy::server::ProxyHandle, single: SocketAddr) {
    let topo = proxy.shared.plane.topology.load();
    let mut shards: Vec<_> = ["sa", "sb", "sc"]
        .iter()
        .map(|c| topo.map.shard_of(hive_common::Slot::for_key(c.as_bytes())))
        .collect();
    drop(topo);
    shards.sort();
    shards.dedup();
    assert!(shards.len() >= 2, "the channels live on several masters");
    let hive = proxy.addr;
    for resp3 in [false, true] {
        let mut h = TcpStream::connect(hive).unwrap();
        let mut o = TcpStream::connect(single).unwrap();
        if resp3 {
            for s in [&mut h, &mut o] {
                exchange(s, &["HELLO", "3"], 1);
            }
        }
        // Channels of different slots, hence (mostly) different masters through Hive.
        let steps: [(&[&str], usize); 6] = [
            (&["SSUBSCRIBE", "sa"], 1),
            (&["SSUBSCRIBE", "sb"], 1),
            (&["SSUBSCRIBE", "sc"], 1),
            (&["SSUBSCRIBE", "sa"], 1),
            (&["SUNSUBSCRIBE", "sb"], 1),
            (&["SUNSUBSCRIBE"], 2),
        ];
        for (args, frames) in steps {
            let (a, b) = (
                exchange(&mut h, args, frames),
                exchange(&mut o, args, frames),
            );
            if args.len() == 1 {
                // Without arguments the order of the channels is each server's own.
                let (mut a, mut b) = (lines(&a), lines(&b));
                a.sort();
                b.sort();
                assert_eq!(a, b, "{args:?} resp3={resp3}");
            } else {
                assert_eq!(
                    String::from_utf8_lossy(&a),
                    String::from_utf8_lossy(&b),
                    "{args:?} resp3={resp3}"
                );
            }
        }
    }
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn shard_subscription_counts_are_the_clients_own() {
    let (_d, node) = standalone();
    let single = SocketAddr::from(([127, 0, 0, 1], node.port));
    let env = GroupEnv::statik(3, |_| {});
    same_confirmations(&env.proxy, single);
    let env = Env::with(3, 0, |_| {});
    same_confirmations(&env.proxy, single);
}

/// A subscriber (RESP2 and RESP3) killed by ID or by TYPE pubsub is disconnected.
#[test]
fn subscriber_closed_by_client_kill_sees_its_connection_closed() {
    let env = GroupEnv::statik(2, |_| {});
    for (by_id, resp3) in [(true, false), (true, true), (false, false), (false, true)] {
        let mut sub = TcpStream::connect(env.proxy.addr).unwrap();
        if resp3 {
            exchange(&mut sub, &["HELLO", "3"], 1);
        }
        let id = exchange(&mut sub, &["CLIENT", "ID"], 1);
        let id = String::from_utf8_lossy(&id[1..id.len() - 2]).into_owned();
        exchange(&mut sub, &["SUBSCRIBE", "news", "more"], 2);
        exchange(&mut sub, &["PSUBSCRIBE", "n*"], 1);
        let mut killer = TcpStream::connect(env.proxy.addr).unwrap();
        let killed = if by_id {
            exchange(&mut killer, &["CLIENT", "KILL", "ID", &id], 1)
        } else {
            exchange(&mut killer, &["CLIENT", "KILL", "TYPE", "pubsub"], 1)
        };
        assert_eq!(killed, b":1\r\n", "by_id={by_id} resp3={resp3}");
        sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = sub.read(&mut buf).expect("closed, not timed out");
        assert_eq!(n, 0, "by_id={by_id} resp3={resp3}");
    }
}

/// CLIENT REPLY OFF does not silence pub/sub, as in Redis 7.0 (it pushes subscribe
/// confirmations and messages past it), and RESET turns replies back on before it answers:
/// the subscriber reads the same bytes as from a standalone redis-server.
#[test]
fn client_reply_off_pushes_pubsub_as_redis() {
    let (_d, node) = standalone();
    let single = SocketAddr::from(([127, 0, 0, 1], node.port));
    let env = GroupEnv::statik(2, |_| {});
    let mut seen = Vec::new();
    for addr in [env.proxy.addr, single] {
        let mut sub = TcpStream::connect(addr).unwrap();
        sub.write_all(cmd(&["CLIENT", "REPLY", "OFF"]).as_bytes())
            .unwrap();
        let confirmed = exchange(&mut sub, &["SUBSCRIBE", "quiet"], 1);
        let mut publisher = TcpStream::connect(addr).unwrap();
        assert_eq!(
            exchange(&mut publisher, &["PUBLISH", "quiet", "m"], 1),
            b":1\r\n"
        );
        let mut got = confirmed;
        got.extend(read_frames(&mut sub, 1));
        got.extend(exchange(&mut sub, &["RESET"], 1));
        seen.push(String::from_utf8_lossy(&got).into_owned());
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0].ends_with("$1\r\nm\r\n+RESET\r\n"), "{}", seen[0]);
}
