//! Whether an address names this machine: the one rule every stage uses
//! before it lets credentials travel unencrypted (SASL_PLAINTEXT, http://).

use std::net::IpAddr;

/// Whether `host` (a name or IP, with or without `:port`, IPv6 bracketed
/// or bare) is `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None if host.parse::<IpAddr>().is_ok() => host,
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn names_and_addresses_with_or_without_ports() {
        for yes in [
            "localhost",
            "LOCALHOST:9092",
            "127.0.0.1",
            "127.0.0.2:8081",
            "[::1]",
            "[::1]:1",
            "::1",
        ] {
            assert!(is_loopback_host(yes), "{yes}");
        }
        for no in [
            "db.example.com",
            "db.example.com:5432",
            "10.0.0.1:9092",
            "[2001:db8::1]:9092",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }
}
