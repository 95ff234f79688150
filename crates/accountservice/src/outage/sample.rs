//! Which peers to ask: a bounded random sample of the replicas found, never this replica itself.
//!
//! As SWIM's indirect probes: a handful of members chosen at random each time, so the cost for
//! one replica, and for each replica asked, does not grow with the fleet, and no replica is
//! asked by everyone.

use std::net::{IpAddr, SocketAddr};

use crate::fleet::peers::Target;

/// The most peers asked about one dependency per health interval.
pub const SAMPLE: usize = 3;

/// How this replica's peers reach it: the port they ask on and every address of this host, so
/// that a lookup of every replica (`tasks.<service>`), which finds this one too, does not have it
/// ask itself.
#[derive(Debug, Clone)]
pub struct Me {
    port: u16,
    addresses: Vec<IpAddr>,
}

impl Me {
    /// This replica, reached on `port` at any of `addresses` (its interfaces' addresses).
    pub fn new(port: u16, addresses: Vec<IpAddr>) -> Self {
        Self { port, addresses }
    }

    /// This replica as its network interfaces say (loopback included), on `port`.
    pub fn detect(port: u16) -> Self {
        let addresses = match if_addrs::get_if_addrs() {
            Ok(interfaces) => interfaces.iter().map(if_addrs::Interface::ip).collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot list network interfaces; only loopback counts as this replica");
                vec![
                    IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
                    IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                ]
            }
        };
        Self::new(port, addresses)
    }

    /// Whether `address` is this replica.
    pub fn is(&self, address: SocketAddr) -> bool {
        address.port() == self.port
            && (address.ip().is_unspecified() || self.addresses.contains(&address.ip()))
    }
}

/// Up to [`SAMPLE`] of `targets`, chosen at random, leaving out this replica and those whose name
/// did not resolve.
pub fn choose(targets: Vec<Target>, me: &Me, rng: &mut fastrand::Rng) -> Vec<(String, SocketAddr)> {
    let others = targets.into_iter().filter_map(|target| {
        let address = target.connect?;
        (!me.is(address)).then_some((target.listed, address))
    });
    rng.choose_multiple(others, SAMPLE)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn target(text: &str) -> Target {
        Target {
            listed: text.to_owned(),
            connect: text.parse().ok(),
        }
    }

    fn fleet(size: u8) -> Vec<Target> {
        (1..=size)
            .map(|i| target(&format!("10.0.1.{i}:6768")))
            .collect()
    }

    fn me() -> Me {
        Me::new(
            6768,
            vec!["10.0.1.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        )
    }

    #[test]
    fn this_replica_is_never_asked_and_the_others_all_are_when_few() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50 {
            let chosen = choose(fleet(3), &me(), &mut rng);
            let peers: BTreeSet<_> = chosen.iter().map(|(listed, _)| listed.as_str()).collect();
            assert_eq!(peers, BTreeSet::from(["10.0.1.2:6768", "10.0.1.3:6768"]));
        }
    }

    #[test]
    fn a_large_fleet_is_asked_a_handful_at_a_time_spread_over_every_peer() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut asked = BTreeSet::new();
        for _ in 0..500 {
            let chosen = choose(fleet(100), &me(), &mut rng);
            assert_eq!(chosen.len(), SAMPLE);
            let distinct: BTreeSet<_> = chosen.iter().map(|(listed, _)| listed.clone()).collect();
            assert_eq!(distinct.len(), SAMPLE, "a peer asked twice in one sample");
            assert!(!distinct.contains("10.0.1.1:6768"));
            asked.extend(distinct);
        }
        // Random, not always the same few: every other replica is asked sooner or later.
        assert_eq!(asked.len(), 99);
    }

    #[test]
    fn the_same_host_on_another_port_is_a_peer_and_an_unresolved_name_is_skipped() {
        let mut rng = fastrand::Rng::with_seed(1);
        let targets = vec![
            target("127.0.0.1:6768"),
            target("127.0.0.1:7001"),
            Target {
                listed: "gone.example:6768".into(),
                connect: None,
            },
        ];
        let chosen = choose(targets, &me(), &mut rng);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].0, "127.0.0.1:7001");
    }
}
