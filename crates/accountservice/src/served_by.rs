//! The instance name put in every account answer (`servedBy`), computed once at start.
//!
//! The original listed the network interfaces on every request (a system call and an
//! allocation per answer, which capped its throughput; see BENCHMARKS.md) and panicked on a host without a non-loopback IPv4 address. Here the name is
//! chosen once and the choice cannot fail.

use std::net::{IpAddr, SocketAddr};

/// Picks the name of this instance: the first non-loopback IPv4 address (as the original), else
/// the first non-loopback address of any family, else the host name, else `"unknown"`.
pub fn detect() -> String {
    let addresses = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.iter().map(if_addrs::Interface::ip).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list network interfaces; naming the instance by host name");
            Vec::new()
        }
    };
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    choose(&addresses, &hostname)
}

/// The `host:port` peers reach this instance at, for `/health/history`: the listener's address
/// when it is bound to one address, else the instance name with the listener's port when that
/// name is an address (as [`detect`] picks), else unknown.
pub fn address(served_by: &str, local: SocketAddr) -> Option<String> {
    if !local.ip().is_unspecified() {
        return Some(local.to_string());
    }
    let ip: IpAddr = served_by.parse().ok()?;
    Some(SocketAddr::new(ip, local.port()).to_string())
}

/// The choice behind [`detect`], separated so it can be tested with any interface list.
pub fn choose(addresses: &[IpAddr], hostname: &str) -> String {
    let usable = || addresses.iter().filter(|ip| !ip.is_loopback());
    if let Some(ip) = usable().find(|ip| ip.is_ipv4()).or_else(|| usable().next()) {
        return ip.to_string();
    }
    if hostname.trim().is_empty() {
        "unknown".to_owned()
    } else {
        hostname.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn the_first_non_loopback_ipv4_address_wins() {
        let addresses = ips(&["127.0.0.1", "fe80::1", "10.0.0.5", "192.168.1.2"]);
        assert_eq!(choose(&addresses, "host"), "10.0.0.5");
    }

    #[test]
    fn an_ipv6_address_is_used_when_there_is_no_ipv4() {
        let addresses = ips(&["127.0.0.1", "::1", "2001:db8::7"]);
        assert_eq!(choose(&addresses, "host"), "2001:db8::7");
    }

    #[test]
    fn the_host_name_is_used_when_only_loopback_exists() {
        assert_eq!(choose(&ips(&["127.0.0.1", "::1"]), "box-1"), "box-1");
    }

    #[test]
    fn an_empty_host_name_falls_back_to_unknown() {
        assert_eq!(choose(&[], ""), "unknown");
    }

    #[test]
    fn the_address_is_the_bound_one_or_the_instance_address_with_the_port() {
        let on = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            address("10.0.0.5", on("127.0.0.1:6767")).as_deref(),
            Some("127.0.0.1:6767")
        );
        assert_eq!(
            address("10.0.0.5", on("0.0.0.0:6767")).as_deref(),
            Some("10.0.0.5:6767")
        );
        assert_eq!(
            address("2001:db8::7", on("[::]:80")).as_deref(),
            Some("[2001:db8::7]:80")
        );
        assert_eq!(address("box-1", on("0.0.0.0:6767")), None);
    }

    #[test]
    fn detection_on_this_machine_gives_a_non_empty_name() {
        assert!(!detect().is_empty());
    }
}
