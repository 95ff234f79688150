//! `--slot`: replicas that claim the same slot, as a stale Swarm task and its replacement do
//! after a partition heals; every replica's fleet view shows the one that started first
//! superseded by the later one while both answer, and the slot held again once only one does.

use std::net::SocketAddr;

use crate::helpers::{
    TestApp, free_addresses, listed, peer_list, spawn_app_configured, view_until,
};

/// A replica on `address` that lists `peers` and claims `slot`.
async fn replica(address: SocketAddr, peers: &str, slot: u32) -> TestApp {
    let peers = peers.to_owned();
    spawn_app_configured(move |s| {
        s.port = address.port();
        s.peers = Some(peers.parse().expect("valid peers"));
        s.slot = Some(slot);
    })
    .await
}

#[tokio::test]
async fn of_two_replicas_in_one_slot_the_view_shows_the_earlier_started_superseded() {
    let addresses = free_addresses(3);
    let peers = peer_list(&addresses);
    let (stale_at, other_at, new_at) = (addresses[0], addresses[1], addresses[2]);
    let stale = replica(stale_at, &peers, 1).await;
    let other = replica(other_at, &peers, 2).await;
    let new = replica(new_at, &peers, 1).await;

    let (_, history) = stale.get_json("/health/history").await;
    assert_eq!(history["slot"], 1, "{history}");
    let (_, newer) = new.get_json("/health/history").await;
    assert!(
        newer["startedAt"].as_str() > history["startedAt"].as_str(),
        "the replacement started later: {newer} {history}"
    );

    // Every replica's view, the stale one's included, says the same.
    for viewer in [&stale, &other, &new] {
        let view = view_until(viewer, "the stale replica superseded", |v| {
            listed(v, &stale_at)["status"] == "SUPERSEDED"
                && listed(v, &new_at)["status"] == "UP"
                && listed(v, &other_at)["status"] == "UP"
        })
        .await;
        let superseded = listed(&view, &stale_at);
        assert_eq!(superseded["supersededBy"], new_at.to_string(), "{view}");
        assert_eq!(superseded["slot"], 1);
        assert_eq!(
            superseded["reason"],
            format!("slot 1 is held by {new_at}, which started later")
        );
        assert_eq!(superseded["lastStatus"], "UP", "it still answers: {view}");
        assert!(listed(&view, &new_at).get("supersededBy").is_none());
        assert_eq!(
            (&view["counts"]["UP"], &view["counts"]["SUPERSEDED"]),
            (&2.into(), &1.into()),
            "{view}"
        );
    }
    // The superseded replica is told nothing: its own health is its own.
    let (status, health) = stale.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &"UP".into()), "{health}");

    // Once the later one stops answering, the slot is held by the one left.
    new.stop().await.unwrap();
    let view = view_until(&other, "the stale replica holding its slot again", |v| {
        listed(v, &new_at)["status"] == "UNREACHABLE" && listed(v, &stale_at)["status"] == "UP"
    })
    .await;
    assert!(
        listed(&view, &stale_at).get("supersededBy").is_none(),
        "{view}"
    );
    stale.stop().await.unwrap();
    other.stop().await.unwrap();
}
