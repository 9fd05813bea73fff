//! Replies built by the pure logic, before the FFI adapter turns them into Redis values:
//! metadata JSON becomes maps, arrays and scalars. Pure: unit-tested without Redis.

/// A RESP3 value (RESP2 clients receive maps flattened).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Reply>),
    /// Keys in order.
    Map(Vec<(String, Reply)>),
}

impl Reply {
    pub fn from_json(v: serde_json::Value) -> Reply {
        match v {
            serde_json::Value::Null => Reply::Null,
            serde_json::Value::Bool(b) => Reply::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Reply::Int(i),
                None => Reply::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Reply::Str(s),
            serde_json::Value::Array(a) => {
                Reply::Array(a.into_iter().map(Reply::from_json).collect())
            }
            serde_json::Value::Object(o) => Reply::Map(
                o.into_iter()
                    .map(|(k, v)| (k, Reply::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Any serializable value (backup metadata).
    pub fn of<T: serde::Serialize>(v: &T) -> Reply {
        Reply::from_json(serde_json::to_value(v).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_from_json_keeps_types_and_order() {
        let v = serde_json::json!({"id": "b1", "size": 42, "ratio": 0.5, "ok": true,
            "hook": null, "slots": ["0-5460", "12000"]});
        let Reply::Map(m) = Reply::from_json(v) else {
            panic!("an object becomes a map");
        };
        let get = |k: &str| m.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("id"), Some(Reply::Str("b1".into())));
        assert_eq!(get("size"), Some(Reply::Int(42)));
        assert_eq!(get("ratio"), Some(Reply::Float(0.5)));
        assert_eq!(get("ok"), Some(Reply::Bool(true)));
        assert_eq!(get("hook"), Some(Reply::Null));
        assert_eq!(
            get("slots"),
            Some(Reply::Array(vec![
                Reply::Str("0-5460".into()),
                Reply::Str("12000".into())
            ]))
        );
    }

    #[test]
    fn reply_of_metadata_is_a_map() {
        let m = crate::backup::Metadata {
            id: "b2".into(),
            ..Default::default()
        };
        assert!(matches!(Reply::of(&m), Reply::Map(f) if f.iter().any(|(k, _)| k == "id")));
    }
}
