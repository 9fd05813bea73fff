//! The fault relay against a real redis-server on loopback (no namespaces needed): delay and
//! loss hold replies back in order, a stall holds them until cleared, a cut closes every
//! connection and refuses new ones until healed.

use std::time::{Duration, Instant};

use hive_local::RedisProcess;
use hive_tests::faults::relay::{retransmit_after, Faults, LinkFaults, Relay};
use hive_tests::free_port_pair;

fn node() -> (tempfile::TempDir, RedisProcess) {
    let dir = tempfile::tempdir().unwrap();
    let n = RedisProcess::start(dir.path(), free_port_pair().unwrap(), &[]).unwrap();
    (dir, n)
}

fn relay(n: &RedisProcess) -> Relay {
    let to = n.addr.parse().unwrap();
    Relay::start(None, &[("127.0.0.1:0".parse().unwrap(), to)]).unwrap()
}

fn conn(r: &Relay) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{}/", r.listen[0])).unwrap();
    let c = c
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn ping(c: &mut redis::Connection) -> redis::RedisResult<String> {
    redis::cmd("PING").query(c)
}

#[test]
fn relay_delay_holds_each_direction_in_order() {
    let (_d, n) = node();
    let r = relay(&n);
    let mut c = conn(&r);
    assert_eq!(ping(&mut c).unwrap(), "PONG");
    let delay = Duration::from_millis(150);
    r.set(Faults {
        up: LinkFaults {
            delay,
            ..Default::default()
        },
        down: LinkFaults {
            delay,
            ..Default::default()
        },
        cut: false,
    });
    // A pipeline of 50 comes back whole and in order, one round trip late.
    let t = Instant::now();
    let mut p = redis::pipe();
    for i in 0..50 {
        p.cmd("ECHO").arg(i);
    }
    let got: Vec<i64> = p.query(&mut c).unwrap();
    let took = t.elapsed();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert!(took >= delay * 2, "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn relay_loss_costs_a_retransmission_timeout_and_loses_no_byte() {
    let (_d, n) = node();
    let r = relay(&n);
    let mut c = conn(&r);
    r.set(Faults {
        up: LinkFaults {
            loss: 1.0,
            ..Default::default()
        },
        ..Default::default()
    });
    let t = Instant::now();
    assert_eq!(ping(&mut c).unwrap(), "PONG");
    assert!(
        t.elapsed() >= retransmit_after(Duration::ZERO),
        "{:?}",
        t.elapsed()
    );
    r.set(Faults::default());
    let t = Instant::now();
    assert_eq!(ping(&mut c).unwrap(), "PONG");
    assert!(
        t.elapsed() < retransmit_after(Duration::ZERO),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn relay_stall_delivers_nothing_until_cleared() {
    use std::io::{Read, Write};
    let (_d, n) = node();
    let r = relay(&n);
    r.set(Faults {
        down: LinkFaults {
            stall: true,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut s = std::net::TcpStream::connect(r.listen[0]).unwrap();
    s.write_all(b"SET stalled yes\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let held = s.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            held.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{held}"
    );
    // The stall is on the replies only: the write reached the node.
    let mut direct = redis::Client::open(format!("redis://{}/", n.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let v: Option<String> = redis::cmd("GET").arg("stalled").query(&mut direct).unwrap();
    assert_eq!(v.as_deref(), Some("yes"));
    r.set(Faults::default());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let got = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..got], b"+OK\r\n");
}

#[test]
fn relay_cut_closes_connections_and_refuses_until_healed() {
    let (_d, n) = node();
    let r = relay(&n);
    let mut c = conn(&r);
    assert_eq!(ping(&mut c).unwrap(), "PONG");
    r.set(Faults {
        cut: true,
        ..Default::default()
    });
    let e = ping(&mut c).unwrap_err();
    assert!(!e.is_timeout(), "closed, not stalled: {e}");
    let refused = redis::Client::open(format!("redis://{}/", r.listen[0]))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .and_then(|mut c| ping(&mut c));
    assert!(refused.is_err(), "{refused:?}");
    r.set(Faults::default());
    assert_eq!(ping(&mut conn(&r)).unwrap(), "PONG");
}
