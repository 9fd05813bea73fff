//! Runs a `Plan`: size the remote values, copy them to scratch keys in the target slot, run
//! the command there, copy back what it changed, delete the scratch keys.

use bytes::Bytes;
use futures_util::future::join_all;
use hive_common::resp::{parse_i64, Request};

use hive_common::Slot;

use super::plan::{pattern_key, Plan, SCRATCH_TTL_MS};
use super::tags::scratch_key;
use crate::error::{ClientReason, ProxyError, UpstreamReason};
use hive_upstream::route::router::Router;

/// One value copied to the target slot before the command runs.
struct Copy {
    key: Vec<u8>,
    slot: Slot,
    scratch: Vec<u8>,
}

/// Runs `plan` and returns the client's reply (Redis's own, or the error that stopped it).
/// `unique` makes this run's scratch keys unique in the proxy's lifetime.
pub async fn run(router: &Router, plan: &Plan, unique: &str, max_bytes: u64) -> Bytes {
    let base = format!("{}:{unique}", boot());
    let scratch: Vec<Vec<u8>> = (0..plan.remotes.len())
        .map(|i| scratch_key(plan.target, &format!("{base}:{i}")))
        .collect();
    // SORT patterns become `<prefix><pattern>`, so the key a pattern names for an element is
    // found under `<prefix><key>`.
    let prefix = scratch_key(plan.target, &format!("{base}:p:"));
    let mut made = scratch.clone();
    match run_plan(router, plan, &scratch, &prefix, &mut made, max_bytes).await {
        Ok(reply) => reply,
        Err(e) => {
            // Best effort: scratch keys that only hold copies expire on their own anyway.
            let _ = router.call(plan.target, vec![unlink(&made)]).await;
            e.frame()
        }
    }
}

/// The keys SORT's patterns name for the sorted key's elements, read from its owner.
async fn pattern_copies(
    router: &Router,
    plan: &Plan,
    prefix: &[u8],
) -> Result<Result<Vec<Copy>, Bytes>, ProxyError> {
    let src = plan.req.arg(1);
    let out = router
        .call(
            Slot::for_key(src),
            vec![req(&[b"SORT_RO", src, b"BY", b"nosort"])],
        )
        .await?;
    let Some(elements) = array(&out[0]) else {
        // WRONGTYPE and the like: Redis's own answer.
        return Ok(Err(out[0].clone()));
    };
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for &i in &plan.patterns {
        for e in &elements {
            if let Some(k) = pattern_key(plan.req.arg(i as usize), e) {
                keys.push(k);
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(Ok(keys
        .into_iter()
        .map(|k| Copy {
            slot: Slot::for_key(&k),
            scratch: [prefix, &k].concat(),
            key: k,
        })
        .collect()))
}

async fn run_plan(
    router: &Router,
    plan: &Plan,
    scratch: &[Vec<u8>],
    prefix: &[u8],
    made: &mut Vec<Vec<u8>>,
    max_bytes: u64,
) -> Result<Bytes, ProxyError> {
    let mut copies: Vec<Copy> = plan
        .remotes
        .iter()
        .zip(scratch)
        .filter(|(r, _)| r.copy_in)
        .map(|(r, s)| Copy {
            key: r.key.clone(),
            slot: r.slot,
            scratch: s.clone(),
        })
        .collect();
    if !plan.patterns.is_empty() {
        match pattern_copies(router, plan, prefix).await? {
            Ok(more) => {
                made.extend(more.iter().map(|c| c.scratch.clone()));
                copies.extend(more);
            }
            Err(reply) => return Ok(reply),
        }
    }
    // What the values would cost before any of them is read: one huge key must not be.
    let usage = join_all(
        copies
            .iter()
            .map(|c| router.call(c.slot, vec![req(&[b"MEMORY", b"USAGE", &c.key])])),
    )
    .await;
    let mut estimate: u64 = 0;
    for u in usage {
        estimate += u?.first().and_then(|f| int(f)).unwrap_or(0).max(0) as u64;
    }
    if estimate > max_bytes {
        return Err(too_big(estimate, max_bytes));
    }
    let dumps = join_all(copies.iter().map(|c| {
        router.call(
            c.slot,
            vec![req(&[b"DUMP", &c.key]), req(&[b"PTTL", &c.key])],
        )
    }))
    .await;
    let mut restores = Vec::new();
    let mut bytes: u64 = 0;
    for (c, d) in copies.iter().zip(dumps) {
        let d = d?;
        let Some(payload) = bulk(&d[0]) else {
            // No such key: the scratch name stays missing, as the key is.
            continue;
        };
        bytes += payload.len() as u64;
        let pttl = int(&d[1]).unwrap_or(-1);
        let ttl = match (plan.exact_ttl, pttl) {
            (_, n) if n > 0 => n,
            (true, _) => 0,
            (false, _) => SCRATCH_TTL_MS,
        };
        restores.push(restore(&c.scratch, ttl, &payload));
    }
    if bytes > max_bytes {
        return Err(too_big(bytes, max_bytes));
    }
    if !restores.is_empty() {
        for f in router.call(plan.target, restores).await? {
            if f.first() == Some(&b'-') {
                return Err(node_error(&f));
            }
        }
    }
    // The command, the changed scratch keys read back, and every scratch key deleted: one
    // batch, in this order, on the target's connection.
    let backs: Vec<usize> = (0..plan.remotes.len())
        .filter(|&i| plan.remotes[i].write_back)
        .collect();
    let mut batch = vec![plan.rewritten(scratch, prefix)];
    for &i in &backs {
        batch.push(req(&[b"DUMP", &scratch[i]]));
        batch.push(req(&[b"PTTL", &scratch[i]]));
    }
    batch.push(unlink(made));
    let out = router.call(plan.target, batch).await?;
    let reply = unname(&out[0], plan, scratch);
    if backs.is_empty() || plan.nothing_changed(&reply) {
        return Ok(reply);
    }
    let writes = join_all(backs.iter().enumerate().map(|(n, &i)| {
        let r = &plan.remotes[i];
        let (dump, pttl) = (&out[1 + 2 * n], &out[2 + 2 * n]);
        let w = match bulk(dump) {
            Some(payload) => restore(&r.key, int(pttl).unwrap_or(-1).max(0), &payload),
            None => req(&[b"DEL", &r.key]),
        };
        async move { (r, router.call(r.slot, vec![w]).await) }
    }))
    .await;
    for (r, w) in writes {
        let f = w?;
        if f[0].first() == Some(&b'-') {
            return Err(ProxyError::upstream(
                UpstreamReason::Refused,
                format!(
                    "Hive: the command ran, but writing its result to key '{}' failed: {}",
                    String::from_utf8_lossy(&r.key),
                    String::from_utf8_lossy(&f[0][1..f[0].len().saturating_sub(2)])
                ),
            ));
        }
    }
    Ok(reply)
}

/// The reply with scratch key names turned back into the keys they stand for (LMPOP and
/// ZMPOP name the key they popped from).
fn unname(reply: &Bytes, plan: &Plan, scratch: &[Vec<u8>]) -> Bytes {
    if memchr::memmem::find(reply, b"}hive:x:").is_none() {
        return reply.clone();
    }
    let mut out = reply.to_vec();
    for (r, name) in plan.remotes.iter().zip(scratch) {
        let from = bulk_frame(name);
        if let Some(at) = memchr::memmem::find(&out, &from) {
            out.splice(at..at + from.len(), bulk_frame(&r.key));
        }
    }
    Bytes::from(out)
}

fn bulk_frame(s: &[u8]) -> Vec<u8> {
    let mut f = format!("${}\r\n", s.len()).into_bytes();
    f.extend_from_slice(s);
    f.extend_from_slice(b"\r\n");
    f
}

/// This process's part of scratch key names, so a restarted proxy never reuses one.
fn boot() -> &'static str {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{ms:x}.{:x}", std::process::id())
    })
}

fn too_big(bytes: u64, max: u64) -> ProxyError {
    ProxyError::client(
        ClientReason::NotSupported,
        format!(
            "Hive: this command across slots would copy {bytes} bytes of values between shards, over proxy.cross_slot_max_bytes ({max}); keep its keys in one slot with a hash tag, such as {{user1}}:a {{user1}}:b"
        ),
    )
}

fn node_error(f: &[u8]) -> ProxyError {
    ProxyError::upstream(
        UpstreamReason::Refused,
        format!(
            "Hive: copying a key between shards failed: {}",
            String::from_utf8_lossy(&f[1..f.len().saturating_sub(2)])
        ),
    )
}

fn req(args: &[&[u8]]) -> Request {
    Request::from_args(args)
}

fn unlink(keys: &[Vec<u8>]) -> Request {
    let mut args: Vec<&[u8]> = vec![b"UNLINK"];
    args.extend(keys.iter().map(|k| &k[..]));
    req(&args)
}

fn restore(key: &[u8], ttl: i64, payload: &[u8]) -> Request {
    let ttl = ttl.to_string();
    req(&[b"RESTORE", key, ttl.as_bytes(), payload, b"REPLACE"])
}

/// A bulk string reply's body; `None` for a null or anything else.
fn bulk(frame: &Bytes) -> Option<Bytes> {
    let rest = frame.strip_prefix(b"$")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let n: usize = parse_i64(&rest[..nl.checked_sub(1)?])?.try_into().ok()?;
    let start = 1 + nl + 1;
    frame.get(start..start + n)?;
    Some(frame.slice(start..start + n))
}

/// The bulk strings of an array reply (RESP2 `*` or RESP3 `~`/`*`); `None` for anything else.
fn array(frame: &Bytes) -> Option<Vec<Bytes>> {
    if !matches!(frame.first(), Some(b'*' | b'~')) {
        return None;
    }
    let nl = memchr::memchr(b'\n', frame)?;
    let n: usize = parse_i64(&frame[1..nl.checked_sub(1)?])?.try_into().ok()?;
    let items = hive_upstream::route::router::split_frames(&frame.slice(nl + 1..), n);
    items.iter().map(bulk).collect()
}

/// An integer reply's value.
fn int(frame: &[u8]) -> Option<i64> {
    let rest = frame.strip_prefix(b":")?;
    parse_i64(rest.strip_suffix(b"\r\n")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_helpers_read_bulk_and_int() {
        assert_eq!(
            bulk(&Bytes::from_static(b"$3\r\nabc\r\n")).unwrap(),
            &b"abc"[..]
        );
        assert!(bulk(&Bytes::from_static(b"$-1\r\n")).is_none());
        assert!(bulk(&Bytes::from_static(b"_\r\n")).is_none());
        assert_eq!(int(b":-2\r\n"), Some(-2));
        let a = array(&Bytes::from_static(b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n")).unwrap();
        assert_eq!(a, [&b"a"[..], b"bc"]);
        assert!(array(&Bytes::from_static(b"-WRONGTYPE x\r\n")).is_none());
        assert_eq!(int(b"$1\r\n1\r\n"), None);
    }
}
