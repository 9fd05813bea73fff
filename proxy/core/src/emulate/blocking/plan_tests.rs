//! Unit tests of the blocking-pop plan: parsing with Redis's errors, grouping, the requests
//! it makes and the replies it reshapes.

use super::*;

fn req(args: &[&str]) -> Request {
    Request::from_args(args)
}

fn err(r: Result<BlockPlan, ProxyError>) -> String {
    r.unwrap_err().message
}

fn text(r: &Request) -> String {
    r.args()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn plan_parses_every_blocking_pop() {
    let p = plan("brpop", &req(&["BRPOP", "q", "q:3", "q:6", "1.5"])).unwrap();
    assert_eq!(p.kind, Kind::List { left: false });
    assert_eq!(p.keys.len(), 3);
    assert_eq!(p.timeout_ms, Some(1500));
    let p = plan("blpop", &req(&["blpop", "a", "b", "0"])).unwrap();
    assert_eq!(p.timeout_ms, None);
    let p = plan(
        "bzmpop",
        &req(&["BZMPOP", "2", "2", "z1", "z2", "max", "COUNT", "3"]),
    )
    .unwrap();
    assert_eq!(p.kind, Kind::Zset { min: false });
    assert_eq!(
        p.form,
        Form::Many {
            count: Some(Bytes::from_static(b"3"))
        }
    );
    assert_eq!(p.keys, vec![Bytes::from("z1"), Bytes::from("z2")]);
    let p = plan("blmove", &req(&["BLMOVE", "s", "d", "LEFT", "RIGHT", "0"])).unwrap();
    assert_eq!(
        p.kind,
        Kind::Move {
            left: true,
            dst: Bytes::from("d"),
            to_left: false
        }
    );
    let p = plan("brpoplpush", &req(&["BRPOPLPUSH", "s", "d", "0"])).unwrap();
    assert_eq!(text(&p.block(&p.keys, b"0")), "BRPOP s 0");
}

#[test]
fn plan_refuses_bad_arguments_with_redis_errors() {
    assert_eq!(
        err(plan("blpop", &req(&["BLPOP", "a", "b", "x"]))),
        "timeout is not a float or out of range"
    );
    assert_eq!(
        err(plan("blpop", &req(&["BLPOP", "a", "b", "-1"]))),
        "timeout is negative"
    );
    assert_eq!(
        err(plan("blmpop", &req(&["BLMPOP", "0", "2", "a", "b", "UP"]))),
        "syntax error"
    );
    assert_eq!(
        err(plan(
            "blmpop",
            &req(&["BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "0"])
        )),
        "count should be greater than 0"
    );
    assert_eq!(
        err(plan(
            "bzmpop",
            &req(&["BZMPOP", "0", "2", "a", "b", "MIN", "COUNT"])
        )),
        "syntax error"
    );
    assert_eq!(
        err(plan(
            "blmove",
            &req(&["BLMOVE", "s", "d", "LEFT", "UP", "0"])
        )),
        "syntax error"
    );
}

#[test]
fn plan_groups_keep_the_clients_order() {
    let p = plan("blpop", &req(&["BLPOP", "a", "b", "c", "d", "0"])).unwrap();
    // a and c in one group, b and d in another.
    let g = p.groups(|s| usize::from(s == Slot::for_key(b"b") || s == Slot::for_key(b"d")));
    assert_eq!(
        g,
        vec![
            vec![Bytes::from("a"), Bytes::from("c")],
            vec![Bytes::from("b"), Bytes::from("d")]
        ]
    );
    assert_eq!(text(&p.block(&g[1], b"2.5")), "BLPOP b d 2.5");
}

#[test]
fn plan_requests_match_the_kind() {
    let p = plan("bzpopmax", &req(&["BZPOPMAX", "a", "b", "0"])).unwrap();
    assert_eq!(text(&p.length(b"a")), "ZCARD a");
    assert_eq!(text(&p.pop_now(b"a")), "ZPOPMAX a");
    let p = plan("blmpop", &req(&["BLMPOP", "0", "2", "a", "b", "RIGHT"])).unwrap();
    assert_eq!(text(&p.length(b"a")), "LLEN a");
    assert_eq!(text(&p.pop_now(b"b")), "LMPOP 1 b RIGHT COUNT 1");
    assert_eq!(text(&p.block(&p.keys, b"0")), "BLMPOP 0 2 a b RIGHT");
}

#[test]
fn plan_reshapes_non_blocking_pops_into_blocking_replies() {
    let p = plan("blpop", &req(&["BLPOP", "a", "b", "0"])).unwrap();
    let got = p
        .served_now(b"b", &Bytes::from_static(b"$1\r\nx\r\n"))
        .unwrap();
    assert_eq!(&got[..], b"*2\r\n$1\r\nb\r\n$1\r\nx\r\n");
    assert!(p
        .served_now(b"b", &Bytes::from_static(b"$-1\r\n"))
        .is_none());
    let p = plan("bzpopmin", &req(&["BZPOPMIN", "a", "b", "0"])).unwrap();
    let got = p
        .served_now(b"a", &Bytes::from_static(b"*2\r\n$1\r\nm\r\n,1.5\r\n"))
        .unwrap();
    assert_eq!(&got[..], b"*3\r\n$1\r\na\r\n$1\r\nm\r\n,1.5\r\n");
    assert!(p.served_now(b"a", &Bytes::from_static(b"*0\r\n")).is_none());
}

#[test]
fn plan_push_back_restores_order_and_scores() {
    let p = plan(
        "blmpop",
        &req(&["BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "2"]),
    )
    .unwrap();
    let (key, r) = p
        .push_back(b"*2\r\n$1\r\na\r\n*2\r\n$2\r\ne1\r\n$2\r\ne2\r\n")
        .unwrap();
    assert_eq!(&key[..], b"a");
    assert_eq!(text(&r), "LPUSH a e2 e1");
    let p = plan("brpop", &req(&["BRPOP", "a", "b", "0"])).unwrap();
    let (_, r) = p.push_back(b"*2\r\n$1\r\nb\r\n$1\r\nx\r\n").unwrap();
    assert_eq!(text(&r), "RPUSH b x");
    let p = plan("bzpopmin", &req(&["BZPOPMIN", "a", "b", "0"])).unwrap();
    let (_, r) = p
        .push_back(b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n2.5\r\n")
        .unwrap();
    assert_eq!(text(&r), "ZADD z 2.5 m");
    let p = plan(
        "bzmpop",
        &req(&["BZMPOP", "0", "2", "a", "b", "MIN", "COUNT", "2"]),
    )
    .unwrap();
    let (_, r) = p
        .push_back(b"*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nm\r\n,1\r\n*2\r\n$1\r\nn\r\n,inf\r\n")
        .unwrap();
    assert_eq!(text(&r), "ZADD z 1 m inf n");
    assert!(p.push_back(b"*-1\r\n").is_none());
}

#[test]
fn plan_parses_the_non_blocking_pops() {
    let p = plan("lmove", &req(&["LMOVE", "s", "d", "RIGHT", "LEFT"])).unwrap();
    assert!(!p.block);
    assert_eq!(
        p.kind,
        Kind::Move {
            left: false,
            dst: Bytes::from("d"),
            to_left: true
        }
    );
    assert_eq!(&p.nil(false)[..], b"$-1\r\n");
    assert_eq!(&p.nil(true)[..], b"_\r\n");
    let p = plan("rpoplpush", &req(&["RPOPLPUSH", "s", "d"])).unwrap();
    assert_eq!(text(&p.pop_now(b"s")), "RPOP s");
    let p = plan(
        "lmpop",
        &req(&["LMPOP", "2", "a", "b", "LEFT", "COUNT", "3"]),
    )
    .unwrap();
    assert_eq!(p.keys, vec![Bytes::from("a"), Bytes::from("b")]);
    assert_eq!(text(&p.pop_now(b"b")), "LMPOP 1 b LEFT COUNT 3");
    assert_eq!(&p.nil(false)[..], b"*-1\r\n");
    let p = plan("zmpop", &req(&["ZMPOP", "1", "z", "MAX"])).unwrap();
    assert_eq!(p.kind, Kind::Zset { min: false });
    assert_eq!(
        err(plan("lmpop", &req(&["LMPOP", "0", "a", "LEFT"]))),
        "numkeys should be greater than 0"
    );
}
