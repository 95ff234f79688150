//! `--release`: the rollout label a replica carries, as the build metadata of the version in
//! every answer that reports one, seen from another replica as during a rolling update.

use std::net::SocketAddr;

use serde_json::Value;

use crate::helpers::{
    TestApp, free_addresses, listed, peer_list, spawn_app_configured, view_until,
};

/// A replica on `address` that lists `peers`, with the release label `release` if any.
async fn replica(address: SocketAddr, peers: &str, release: Option<&str>) -> TestApp {
    let peers = peers.to_owned();
    let release = release.map(|r| r.parse().expect("a valid release label"));
    spawn_app_configured(move |s| {
        s.port = address.port();
        s.peers = Some(peers.parse().expect("valid peers"));
        s.release = release;
    })
    .await
}

/// The version the fleet view of `viewer` shows for the replica at `address`, once it is UP.
async fn version_in_view(viewer: &TestApp, address: SocketAddr) -> Value {
    let view = view_until(viewer, &format!("{address} UP"), |v| {
        v["replicas"]
            .as_array()
            .expect("a replicas array")
            .iter()
            .any(|r| r["address"] == address.to_string() && r["status"] == "UP")
    })
    .await;
    listed(&view, &address)["version"].clone()
}

#[tokio::test]
async fn a_release_label_is_the_versions_build_metadata_in_every_answer_and_in_the_fleet_view() {
    let addresses = free_addresses(2);
    let peers = peer_list(&addresses);
    let new = replica(addresses[0], &peers, Some("v2")).await;
    let old = replica(addresses[1], &peers, None).await;
    let plain = env!("CARGO_PKG_VERSION");
    let labelled = format!("{plain}+v2");

    let (status, history) = new.get_json("/health/history").await;
    assert_eq!(status, 200);
    assert_eq!(history["version"], labelled, "{history}");
    let health: Value = new
        .get_accepting("/health", "application/health+json")
        .await
        .json()
        .await
        .expect("a JSON body");
    assert_eq!(health["version"], labelled, "{health}");
    let metrics = new.get("/metrics").await.text().await.expect("a body");
    assert!(
        metrics.contains(&format!(
            "accountservice_build_info{{version=\"{labelled}\","
        )),
        "{metrics}"
    );

    // Unset: the crate's version alone, as before the label existed.
    let (_, history) = old.get_json("/health/history").await;
    assert_eq!(history["version"], plain, "{history}");

    // Halfway through a rollout: each replica's view tells the two apart.
    for viewer in [&old, &new] {
        assert_eq!(version_in_view(viewer, new.address).await, labelled);
        assert_eq!(version_in_view(viewer, old.address).await, plain);
    }
    new.stop().await.unwrap();
    old.stop().await.unwrap();
}
