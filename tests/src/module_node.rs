//! Helpers for tests of hive-module in real redis-server processes: a node with the module
//! loaded, and readers of its RESP2-flattened map replies.

use std::collections::HashMap;
use std::path::Path;

use hive_local::RedisProcess;
use redis::Value;

use crate::{free_port_pair, module_so};

/// Reads a RESP2-flattened map reply into field -> value.
pub fn fields(v: Value) -> HashMap<String, Value> {
    let Value::Array(items) = v else {
        panic!("not a map: {v:?}")
    };
    items
        .chunks(2)
        .map(|kv| {
            (
                redis::from_redis_value::<String>(&kv[0]).unwrap(),
                kv[1].clone(),
            )
        })
        .collect()
}

pub fn int(v: &Value) -> i64 {
    redis::from_redis_value(v).unwrap()
}

pub fn text(v: &Value) -> String {
    redis::from_redis_value(v).unwrap()
}

pub fn node(dir: &Path, extra: &[&str]) -> RedisProcess {
    let so = module_so().display().to_string();
    let mut args = vec!["--enable-debug-command", "yes", "--loadmodule", &so];
    args.extend_from_slice(extra);
    RedisProcess::start(dir, free_port_pair().unwrap(), &args).unwrap()
}
