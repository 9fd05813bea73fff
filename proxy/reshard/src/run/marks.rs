//! hive-module's marks on a Redis Cluster source, so that a replica promoted mid-move carries
//! the move on instead of serving the slot as its own (Redis keeps MIGRATING on the master
//! alone): the slots handed over (`HIVE.SETSLOTS STANDBY`), and before each round of
//! MIGRATEs its keys (`INFLIGHT`), confirmed on every replica with `WAIT` before a key moves.
//! The same WAIT confirms the last round's DELs. Without the module on the source, a move
//! runs as Redis Cluster alone would. Sentinel and static handovers use the in-flight marks
//! too: their source's replicas carry the handover itself already.

use bytes::Bytes;
use hive_common::resp::Value;
use hive_common::topology::deployed::format_slots;

use crate::error::{ReshardError, Result};
use crate::session::{req, Session};

/// How long the source's replicas get to confirm a round's marks.
const WAIT_MS: u64 = 10_000;

/// The source carries hive-module's marks; `replicas` is how many confirm them.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    pub replicas: usize,
}

/// No hive-module (or one without these subcommands), or a backend user without `hive.*`:
/// the move runs as Redis Cluster alone would.
fn module_missing(v: &ReshardError) -> bool {
    matches!(v, ReshardError::Node(hive_upstream::conn::control::QueryError::Redis { message, .. })
        if message.contains("unknown command")
            || message.contains("unknown subcommand")
            || message.starts_with("NOPERM"))
}

/// Marks `slots` as handed from `src` to `dst` on the source's module; `None` without it.
pub async fn standby(
    s: &mut Session,
    src: &str,
    dst: &str,
    slots: &[u16],
) -> Result<Option<Marks>> {
    match s
        .call(
            src,
            &["HIVE.SETSLOTS", "STANDBY", dst, &format_slots(slots)],
        )
        .await
    {
        Ok(_) => Ok(Some(Marks {
            replicas: online_replicas(s, src).await?,
        })),
        Err(e) if module_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The marks for a source whose handover hive-module guards already (sentinel and static
/// modes): only the in-flight keys are added.
pub async fn for_source(s: &mut Session, src: &str) -> Result<Marks> {
    Ok(Marks {
        replicas: online_replicas(s, src).await?,
    })
}

async fn online_replicas(s: &mut Session, src: &str) -> Result<usize> {
    let info = s.text(src, &["INFO", "replication"]).await?;
    Ok(hive_common::info::replication(&info)
        .replicas
        .iter()
        .filter(|r| r.state == "online")
        .count())
}

/// Marks `keys` in flight on `src` and waits until its replicas have the mark (and every
/// DEL before it). A replica that went away meanwhile no longer counts; one that is there
/// and does not confirm stops the move.
pub async fn inflight(s: &mut Session, src: &str, m: &mut Marks, keys: &[&Bytes]) -> Result<()> {
    let mut mark = req(&["HIVE.SETSLOTS", "INFLIGHT"]);
    mark.extend(keys.iter().map(|k| (*k).clone()));
    confirm(s, src, m, mark).await
}

/// Clears the marks of `slots` once they are settled (and any key still marked in them). A
/// source whose last slot left is a replica now: its new master's state replaces its own.
pub async fn clear(s: &mut Session, src: &str, m: &mut Marks, slots: &[u16]) -> Result<()> {
    let stable = req(&["HIVE.SETSLOTS", "STABLE", &format_slots(slots)]);
    confirm(s, src, m, stable).await
}

async fn confirm(s: &mut Session, src: &str, m: &mut Marks, mark: Vec<Bytes>) -> Result<()> {
    let wait = req(&["WAIT", &m.replicas.to_string(), &WAIT_MS.to_string()]);
    let r = s.pipeline(src, &[mark, wait]).await?;
    if matches!(&r[0], Value::Error(e) if e.starts_with(b"READONLY")) {
        return Ok(());
    }
    if let Value::Error(e) = &r[0] {
        return Err(ReshardError::Reply {
            addr: src.into(),
            why: format!("HIVE.SETSLOTS: {}", String::from_utf8_lossy(e)),
        });
    }
    let acked = r[1].as_int().unwrap_or(0).max(0) as usize;
    if acked >= m.replicas {
        return Ok(());
    }
    let online = online_replicas(s, src).await?;
    if acked >= online {
        m.replicas = online;
        return Ok(());
    }
    Err(ReshardError::Reply {
        addr: src.into(),
        why: format!(
            "{acked} of its {online} replicas confirmed the handover marks within {WAIT_MS} ms; a replica promoted now could serve keys that moved"
        ),
    })
}

/// A master's hive-module state, as far as a resume needs it.
#[derive(Debug, Default)]
pub struct Held {
    /// Slot → the target it is handed to (guarded or standby).
    pub handed: std::collections::BTreeMap<u16, String>,
    /// Keys held back after a promotion mid-move.
    pub suspects: Vec<Vec<u8>>,
}

/// `HIVE.SLOTS GET` on `addr`, read for a resume; `None` without the module.
pub async fn held(s: &mut Session, addr: &str) -> Result<Option<Held>> {
    let v = match s.call(addr, &["HIVE.SLOTS", "GET"]).await {
        Ok(v) => v,
        Err(e) if module_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: String| ReshardError::Reply {
        addr: addr.into(),
        why: format!("HIVE.SLOTS GET: {why}"),
    };
    let json: serde_json::Value =
        serde_json::from_slice(v.as_bytes().unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
    let mut out = Held::default();
    for list in ["migrating", "standby"] {
        for h in json[list].as_array().into_iter().flatten() {
            let (Some(to), Some(slots)) = (h["to"].as_str(), h["slots"].as_str()) else {
                return Err(bad(format!("a {list} entry without to/slots: {h}")));
            };
            let ranges = hive_common::topology::deployed::parse_ranges(slots).map_err(bad)?;
            for slot in hive_common::topology::deployed::expand(&ranges) {
                out.handed.insert(slot, to.to_string());
            }
        }
    }
    if json["suspect"].as_bool() == Some(true) {
        for k in json["inflight"].as_array().into_iter().flatten() {
            let key = k
                .as_str()
                .and_then(hive_common::topology::deployed::key_from_hex)
                .ok_or_else(|| bad(format!("a bad in-flight key {k}")))?;
            out.suspects.push(key);
        }
    }
    Ok(Some(out))
}

/// On a replica promoted mid-move: each key held back is looked up on its target. A copy
/// there is the live one (a key reaches the target only by a MIGRATE, which deleted it at
/// the source, and every write since went there), so the copy here is dropped; otherwise
/// the copy here is the live one and moves with the rest. Nothing answers for these keys
/// meanwhile (TRYAGAIN), so neither side changes under the check. Returns the copies dropped.
pub async fn settle_suspects(s: &mut Session, addr: &str, held: &Held) -> Result<usize> {
    let mut by_target: std::collections::BTreeMap<&str, Vec<&[u8]>> = Default::default();
    for k in &held.suspects {
        let slot = hive_common::Slot::for_key(k).get();
        // A key of a slot no longer handed over is not held back (its move ended): released
        // with the rest below.
        if let Some(to) = held.handed.get(&slot) {
            by_target.entry(to).or_default().push(k);
        }
    }
    let mut stale: Vec<Bytes> = Vec::new();
    for (to, keys) in by_target {
        let reqs: Vec<Vec<Bytes>> = keys
            .iter()
            .flat_map(|k| [req(&["ASKING"]), req(&[&b"EXISTS"[..], k])])
            .collect();
        let r = s.pipeline(to, &reqs).await?;
        for (k, v) in keys.iter().zip(r.chunks(2)) {
            match v[1].as_int() {
                Some(1) => stale.push(Bytes::copy_from_slice(k)),
                Some(_) => {}
                None => {
                    return Err(ReshardError::Reply {
                        addr: to.into(),
                        why: format!("EXISTS of a key in flight answered {:?}", v[1]),
                    })
                }
            }
        }
    }
    let dropped = stale.len();
    if !stale.is_empty() {
        let mut forget = req(&["HIVE.SETSLOTS", "FORGET"]);
        forget.extend(stale);
        s.call(addr, &forget).await?;
    }
    s.call(addr, &["HIVE.SETSLOTS", "INFLIGHT"]).await?;
    Ok(dropped)
}
