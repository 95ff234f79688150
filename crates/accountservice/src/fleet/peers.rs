//! `--peers`: which replicas make up the fleet, parsed at start and resolved on each look.
//!
//! Two forms, told apart by a comma:
//! - one `name:port` (in Swarm `tasks.<service>:6768`): a DNS name looked up again on every
//!   refresh, every A and AAAA record one replica, so replicas that come and go are followed;
//! - a comma-separated list of `host:port`: each entry one replica, listed under the address as
//!   written (a name in it is looked up on each refresh and its first address asked).
//!
//! The port is where the peers serve `/health/history`: their management port when they have
//! one (the image's 6768), since their public port answers 404 there.

use std::{fmt, net::SocketAddr, str::FromStr, sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};

/// The longest `--peers` value accepted; a fleet view is capped far below what this can list.
const MAX_SPEC_LEN: usize = 16 * 1024;

/// The most names of a list looked up at once (each lookup may hold a blocking thread).
const LOOKUPS_AT_ONCE: usize = 16;

/// One `host:port` as given on the command line, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    /// A DNS name or an IP literal (without brackets).
    host: String,
    port: u16,
}

impl PeerAddress {
    /// The host part: a DNS name or an IP literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address itself when the host is an IP literal (no lookup needed).
    pub fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for PeerAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty peer address".into());
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| format!("`{text}` is not [ipv6]:port"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`{host}` in `{text}` is not an IPv6 address"));
            }
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("`{text}` has no port (host:port)"))?;
            if host.contains(':') {
                return Err(format!("`{text}`: write an IPv6 address as [address]:port"));
            }
            if host.parse::<std::net::Ipv4Addr>().is_err() && !is_dns_name(host) {
                return Err(format!(
                    "`{host}` in `{text}` is not a host name or IP address"
                ));
            }
            (host, port)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` in `{text}` is not a port number"))?;
        if port == 0 {
            return Err(format!("port 0 in `{text}` cannot be asked"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// Letters, digits, `-`, `_` and dots, labels of 1 to 63 bytes, 253 bytes at most.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The parsed `--peers` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// One name whose every A/AAAA record is a replica, looked up again on each refresh.
    Dns(PeerAddress),
    /// A fixed list; each entry one replica.
    List(Vec<PeerAddress>),
}

impl FromStr for Peers {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_SPEC_LEN {
            return Err(format!("longer than {MAX_SPEC_LEN} bytes"));
        }
        if !text.contains(',') {
            return text.parse().map(Peers::Dns);
        }
        let list = text
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<PeerAddress>, _>>()?;
        Ok(Peers::List(list))
    }
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peers::Dns(name) => write!(f, "{name}"),
            Peers::List(list) => {
                for (i, peer) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{peer}")?;
                }
                Ok(())
            }
        }
    }
}

/// One replica to ask: the address listed in the view and the socket address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` as listed in the fleet view.
    pub listed: String,
    /// Where to connect; `None` when the name did not resolve this time.
    pub connect: Option<SocketAddr>,
}

/// The outcome of looking the peers up once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The replicas found, sorted by listed address, without duplicates.
    pub targets: Vec<Target>,
    /// Why the lookup failed, if it did (the caller keeps the replicas it knew).
    pub error: Option<String>,
}

impl Peers {
    /// Looks the peers up: every name of a list concurrently, the whole under `timeout`.
    pub async fn resolve(&self, timeout: Duration) -> Resolved {
        match self {
            Peers::Dns(name) => {
                if let Some(address) = name.literal() {
                    return Resolved {
                        targets: vec![target(address)],
                        error: None,
                    };
                }
                let lookup = tokio::time::timeout(timeout, lookup(name)).await;
                match lookup.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}"))) {
                    Ok(mut addresses) => {
                        addresses.sort();
                        addresses.dedup();
                        Resolved {
                            targets: addresses.into_iter().map(target).collect(),
                            error: None,
                        }
                    }
                    Err(error) => Resolved {
                        targets: Vec::new(),
                        error: Some(format!("lookup of {name} failed: {error}")),
                    },
                }
            }
            Peers::List(list) => {
                let connect = resolve_all(list, timeout).await;
                let mut errors = Vec::new();
                let mut targets = Vec::with_capacity(list.len());
                for (peer, connect) in list.iter().zip(connect) {
                    let connect = match connect {
                        Ok(address) => Some(address),
                        Err(error) => {
                            errors.push(format!("lookup of {peer} failed: {error}"));
                            None
                        }
                    };
                    targets.push(Target {
                        listed: peer.to_string(),
                        connect,
                    });
                }
                targets.sort_by(|a, b| a.listed.cmp(&b.listed));
                targets.dedup_by(|a, b| a.listed == b.listed);
                Resolved {
                    targets,
                    error: (!errors.is_empty()).then(|| errors.join("; ")),
                }
            }
        }
    }
}

/// Where to connect to each of `list`, in order: literals at once, names looked up
/// concurrently (at most [`LOOKUPS_AT_ONCE`] at a time) under one deadline `timeout` away.
async fn resolve_all(list: &[PeerAddress], timeout: Duration) -> Vec<Result<SocketAddr, String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let late = || Err(format!("no answer within {timeout:?}"));
    let mut found: Vec<Result<SocketAddr, String>> = list
        .iter()
        .map(|peer| peer.literal().ok_or_else(String::new))
        .collect();
    let slots = Arc::new(Semaphore::new(LOOKUPS_AT_ONCE));
    let mut lookups = JoinSet::new();
    for (index, peer) in list.iter().enumerate() {
        if peer.literal().is_some() {
            continue;
        }
        found[index] = late();
        let (peer, slots) = (peer.clone(), slots.clone());
        lookups.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let first = lookup(&peer).await.map(|addresses| {
                // `lookup` never answers an empty list.
                addresses.into_iter().min()
            });
            (index, first)
        });
    }
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, lookups.join_next()).await {
        if let Ok((index, first)) = joined {
            found[index] = first.and_then(|first| first.ok_or_else(|| "no addresses".to_owned()));
        }
    }
    // Lookups still running are abandoned with the set; their entries say they were late.
    found
}

fn target(address: SocketAddr) -> Target {
    Target {
        listed: address.to_string(),
        connect: Some(address),
    }
}

/// Every address of `peer`, or why there is none; the caller bounds the wait.
async fn lookup(peer: &PeerAddress) -> Result<Vec<SocketAddr>, String> {
    let query = (peer.host.as_str(), peer.port);
    match tokio::net::lookup_host(query).await {
        Err(error) => Err(error.to_string()),
        Ok(addresses) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err("no addresses".into())
            } else {
                Ok(addresses)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_is_looked_up_and_a_comma_makes_a_list() {
        let dns: Peers = "tasks.accountservice:6767".parse().unwrap();
        assert_eq!(
            dns,
            Peers::Dns(PeerAddress {
                host: "tasks.accountservice".into(),
                port: 6767
            })
        );
        let list: Peers = "127.0.0.1:1, [::1]:2,host-a:3".parse().unwrap();
        let Peers::List(list) = list else {
            panic!("not a list")
        };
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1:1", "[::1]:2", "host-a:3"]);
    }

    #[test]
    fn malformed_peers_are_refused_with_a_reason() {
        for bad in [
            "",
            "tasks.accountservice",
            "host:",
            "host:0",
            "host:70000",
            "host:port",
            "::1:6767",
            "[nothost]:1",
            "[::1]6767",
            "a b:1",
            "-host:1",
            "a..b:1",
            "127.0.0.1:1,",
            ",127.0.0.1:1",
            "http://host:1",
        ] {
            let error = bad.parse::<Peers>().expect_err(bad);
            assert!(!error.is_empty() && !error.contains('\n'), "{bad}: {error}");
        }
        assert!("x".repeat(MAX_SPEC_LEN + 1).parse::<Peers>().is_err());
    }

    #[tokio::test]
    async fn literals_resolve_without_a_lookup_and_lists_keep_their_spelling() {
        let peers: Peers = "127.0.0.1:2,127.0.0.1:1,127.0.0.1:2".parse().unwrap();
        let resolved = peers.resolve(Duration::from_secs(1)).await;
        assert_eq!(resolved.error, None);
        let listed: Vec<&str> = resolved.targets.iter().map(|t| t.listed.as_str()).collect();
        assert_eq!(listed, ["127.0.0.1:1", "127.0.0.1:2"]);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_says_the_lookup_failed() {
        let peers: Peers = "no-such-host.invalid:6767".parse().unwrap();
        let resolved = peers.resolve(Duration::from_secs(5)).await;
        assert!(resolved.targets.is_empty());
        let error = resolved.error.expect("an error");
        assert!(
            error.starts_with("lookup of no-such-host.invalid:6767 failed"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_names_of_a_list_are_looked_up_together_and_each_answer_lands_on_its_own_name() {
        let peers: Peers = "no-such-host.invalid:2,localhost:1,127.0.0.1:3"
            .parse()
            .unwrap();
        let resolved = peers.resolve(Duration::from_secs(5)).await;
        let connect: Vec<(&str, Option<u16>)> = resolved
            .targets
            .iter()
            .map(|t| (t.listed.as_str(), t.connect.map(|a| a.port())))
            .collect();
        assert_eq!(
            connect,
            [
                ("127.0.0.1:3", Some(3)),
                ("localhost:1", Some(1)),
                ("no-such-host.invalid:2", None)
            ]
        );
        let error = resolved.error.expect("the failed name is named");
        assert!(
            error.starts_with("lookup of no-such-host.invalid:2 failed"),
            "{error}"
        );
    }
}
