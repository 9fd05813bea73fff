//! `host:port` addresses as Hive writes them: IPv6 hosts in brackets (`[::1]:7000`), whatever
//! form Redis reports them in (`::1` and a port apart, or `::1:7000` in a MOVED reply).

/// `host:port`, bracketing an IPv6 host.
pub fn join(host: &str, port: impl std::fmt::Display) -> String {
    format!("{}:{port}", bracket(host))
}

/// The host as it goes before `:port`: an IPv6 address in brackets.
pub fn bracket(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

/// Splits at the last colon: `("::1", "7000")` from `::1:7000`, `("::1", "7000")` from
/// `[::1]:7000`. `None` without a colon or with an empty port.
pub fn split(addr: &str) -> Option<(&str, &str)> {
    let (host, port) = addr.rsplit_once(':')?;
    if port.is_empty() {
        return None;
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

/// The same address written the way `join` writes it (`::1:7000` becomes `[::1]:7000`).
pub fn normalize(addr: &str) -> String {
    match split(addr) {
        Some((h, p)) => join(h, p),
        None => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_brackets_ipv6_hosts_only() {
        assert_eq!(join("127.0.0.1", 7000), "127.0.0.1:7000");
        assert_eq!(join("::1", 7000), "[::1]:7000");
        assert_eq!(join("[::1]", "7000"), "[::1]:7000");
        assert_eq!(join("redis-0.svc", 6379), "redis-0.svc:6379");
        assert_eq!(split("[::1]:7000"), Some(("::1", "7000")));
        assert_eq!(split("::1:7000"), Some(("::1", "7000")));
        assert_eq!(split("a:1"), Some(("a", "1")));
        assert_eq!(split("nohost"), None);
        assert_eq!(split("a:"), None);
        assert_eq!(normalize("::1:7001"), "[::1]:7001");
        assert_eq!(normalize("[fe80::1]:7001"), "[fe80::1]:7001");
        assert_eq!(normalize("10.0.0.1:7001"), "10.0.0.1:7001");
    }
}
