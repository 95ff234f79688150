//! Is it me, or everyone? Three real replicas (the binary, `--peers` listing all three) over one
//! real PostgreSQL server: the server stopped is a shared outage that restarts nothing and
//! fails lookups at once; one replica cut off from it alone leaves readiness, then liveness
//! after its grace, while the others serve throughout; both recover without a restart.

use std::{
    net::SocketAddr,
    thread,
    time::{Duration, Instant},
};

use crate::{
    pg::{PgServer, Proxy, free_port},
    support::{Answer, Service, get, poll_until},
};

/// The replicas' health interval: a verdict is due within about two of them.
const INTERVAL: &str = "0.2";
/// How long a verdict may take to show: the check's timeout, one interval to notice and ask, a
/// peer's timeout, and room for a busy machine.
const VERDICT_BOUND: Duration = Duration::from_secs(10);
/// The local fault grace the replicas run with.
const GRACE: Duration = Duration::from_secs(2);

/// Three replicas on fixed loopback ports, each listing all three as its peers, replica `i`
/// over `urls[i]`.
struct Fleet {
    replicas: Vec<(Service, SocketAddr)>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    fn start(urls: [&str; 3]) -> Self {
        Fleet::start_every(urls, INTERVAL)
    }

    /// The fleet, checking every `interval` seconds.
    fn start_every(urls: [&str; 3], interval: &str) -> Self {
        let ports: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
        let peers = ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let grace = GRACE.as_secs().to_string();
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("a temporary directory"))
            .collect();
        let mut replicas = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let args = [
                "--bind",
                "127.0.0.1",
                "--port",
                &ports[i],
                "--db-path",
                "accounts.db",
                "--database-url",
                urls[i],
                "--peers",
                &peers,
                "--health-interval",
                interval,
                "--local-fault-grace",
                &grace,
                "--health-details",
                "always",
            ];
            let mut service = Service::start(dir.path(), &args);
            let address = service.wait_until_listening();
            replicas.push((service, address));
        }
        Fleet {
            replicas,
            _dirs: dirs,
        }
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|(_, address)| *address).collect()
    }

    fn stop(mut self) {
        for (service, _) in &mut self.replicas {
            service.terminate();
            assert!(service.wait().success(), "{}", service.stderr());
        }
    }
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

fn outage_reason(answer: &Answer) -> String {
    answer.json()["components"]["outage"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_database_stopped_is_a_shared_outage_that_restarts_nothing_then_every_replica_serves_again() {
    let server = PgServer::start();
    let url = server.url(&server.create_database("shared_outage"));
    let mut fleet = Fleet::start([&url, &url, &url]);
    let addresses = fleet.addresses();
    for address in &addresses {
        assert_eq!(get(*address, "/accounts/10001").status, 200);
        let metrics = get(*address, "/metrics").body;
        assert!(
            metrics.contains(r#"outage_verdict{component="database",verdict="none"} 1"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"outage_peers_asked_total{component="database"} 0"#));
    }

    server.stop();
    let stopped = Instant::now();
    let shared = "shared outage: 3 of 3 replicas cannot reach the database";
    for address in &addresses {
        let (health, _) = poll_until(*address, "/health", VERDICT_BOUND, |answer| {
            outage_reason(answer) == shared
        });
        // The original's contract: /health is 503 with the reason while the database cannot
        // serve.
        assert_eq!(health.status, 503);
        let reason = health.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(reason.starts_with("database: "), "{reason}");
        assert!(reason.ends_with(&format!("outage: {shared}")), "{reason}");
        let detail = health.json()["components"]["outage"]["details"]["detail"].clone();
        assert!(
            detail
                .as_str()
                .is_some_and(|d| d.contains("cannot reach it")),
            "{detail}"
        );
        println!(
            "{address}: {shared:?} {:?} after the stop",
            stopped.elapsed()
        );
    }

    // Long past the grace, nothing restarts and every replica stays in rotation; every lookup
    // is answered at once, with the reason and Retry-After.
    let watch_until = Instant::now() + GRACE * 2;
    let mut slowest = Duration::ZERO;
    while Instant::now() < watch_until {
        for address in &addresses {
            assert_eq!(get(*address, "/health/live").status, 200, "liveness failed");
            let ready = get(*address, "/health/ready");
            assert_eq!(ready.status, 200, "readiness failed: {}", ready.body);
            let started = Instant::now();
            let lookup = get(*address, "/accounts/10001");
            slowest = slowest.max(started.elapsed());
            assert_eq!(lookup.status, 503);
            assert_eq!(lookup.json()["error"], shared);
            assert_eq!(header(&lookup, "retry-after"), Some("1"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    println!("lookups during the outage: slowest {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a lookup waited {slowest:?}"
    );
    for (service, _) in &mut fleet.replicas {
        assert!(service.is_running(), "{}", service.stderr());
    }

    // The fleet view and /metrics say so too.
    let view = get(addresses[0], "/health/fleet").json();
    for replica in view["replicas"]
        .as_array()
        .expect("replicas in the fleet view")
    {
        let reason = replica["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(shared), "{replica}");
        assert_eq!(replica["components"][0]["name"], "database", "{replica}");
        assert_eq!(
            replica["components"][0]["curableByRestart"], false,
            "{replica}"
        );
    }
    let metrics = get(addresses[0], "/metrics").body;
    for expected in [
        r#"outage_verdict{component="database",verdict="shared"} 1"#,
        r#"outage_peer_answers{component="database",answer="cannot_reach"} 2"#,
        r#"health_check_curable_by_restart{component="database"} 0"#,
    ] {
        assert!(metrics.contains(expected), "missing {expected}\n{metrics}");
    }

    // Recovery without a restart: within an interval plus the reconnect.
    server.start_again();
    let back = Instant::now();
    for address in &addresses {
        poll_until(*address, "/accounts/10001", VERDICT_BOUND, |answer| {
            answer.status == 200
        });
        // A replica whose own check came back last may have heard from peers that already
        // reached the database ("local fault") just before: its next look clears that.
        let (health, _) = poll_until(*address, "/health", VERDICT_BOUND, |answer| {
            answer.status == 200
        });
        assert!(health.json()["components"].get("outage").is_none());
    }
    println!(
        "every replica served again {:?} after the database returned",
        back.elapsed()
    );
    fleet.stop();
}

#[test]
fn every_replica_reaches_the_shared_outage_verdict_within_two_intervals_and_never_blames_itself() {
    // Long enough that two intervals leave room for a busy machine; short enough to be quick.
    let interval = Duration::from_millis(500);
    let server = PgServer::start();
    let url = server.url(&server.create_database("verdict_time"));
    let fleet = Fleet::start_every([&url, &url, &url], &interval.as_secs_f64().to_string());
    let addresses = fleet.addresses();
    for address in &addresses {
        poll_until(*address, "/health", VERDICT_BOUND, |answer| {
            answer.status == 200
        });
    }

    // Timed from before the stop begins: the measure can only be too long, never too short.
    let stopping = Instant::now();
    server.stop();
    let stop_took = stopping.elapsed();
    let shared = "shared outage: 3 of 3 replicas cannot reach the database";
    let mut reached: Vec<Option<Duration>> = vec![None; addresses.len()];
    let mut fleet_view: Option<Duration> = None;
    while reached.iter().any(Option::is_none) || fleet_view.is_none() {
        assert!(
            stopping.elapsed() < VERDICT_BOUND,
            "no verdict on every replica: {reached:?}, fleet view {fleet_view:?}"
        );
        for (address, reached) in addresses.iter().zip(&mut reached) {
            let reason = outage_reason(&get(*address, "/health"));
            // A peer's cached "reaches" from before the stop must not make the first replica to
            // notice it blame itself.
            assert!(
                !reason.starts_with("local fault"),
                "{address} said {reason:?} {:?} after the stop",
                stopping.elapsed()
            );
            if reason == shared && reached.is_none() {
                *reached = Some(stopping.elapsed());
            }
        }
        if fleet_view.is_none() {
            let view = get(addresses[0], "/health/fleet").json();
            let replicas = view["replicas"].as_array().cloned().unwrap_or_default();
            if replicas.len() == 3
                && replicas.iter().all(|replica| {
                    replica["reason"]
                        .as_str()
                        .is_some_and(|reason| reason.contains(shared))
                })
            {
                fleet_view = Some(stopping.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    let slowest = reached.iter().flatten().max().copied().unwrap_or_default();
    println!(
        "interval {interval:?}; the stop took {stop_took:?}; every replica said {shared:?} \
         {slowest:?} after it began ({reached:?}); the fleet view of the first showed it on all \
         three after {:?}",
        fleet_view.unwrap_or_default()
    );
    assert!(
        slowest <= interval * 2,
        "the verdict took {slowest:?}, more than two intervals ({:?})",
        interval * 2
    );
    // A replica stops with success only when healthy.
    server.start_again();
    for address in &addresses {
        poll_until(*address, "/health", VERDICT_BOUND, |answer| {
            answer.status == 200
        });
    }
    fleet.stop();
}

#[test]
fn a_replica_cut_off_alone_leaves_readiness_then_liveness_while_the_others_serve() {
    let server = PgServer::start();
    let url = server.url(&server.create_database("local_fault"));
    let proxy = Proxy::to(server.port());
    let cut_url = url.replace(
        &format!(":{}/", server.port()),
        &format!(":{}/", proxy.port()),
    );
    let fleet = Fleet::start([&cut_url, &url, &url]);
    let addresses = fleet.addresses();
    let (alone, others) = (addresses[0], &addresses[1..]);
    assert_eq!(get(alone, "/health/ready").status, 200);

    proxy.set_cut(true);
    let cut = Instant::now();
    let local = "local fault: 2 of 3 replicas reach the database, this one cannot";
    let (ready, took) = poll_until(alone, "/health/ready", VERDICT_BOUND, |answer| {
        answer.status == 503
    });
    assert!(
        ready.json()["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains(local)),
        "{}",
        ready.body
    );
    println!("the cut replica left readiness {took:?} after the cut");
    assert_eq!(
        get(alone, "/health/live").status,
        200,
        "liveness failed before the grace"
    );

    // The others serve throughout, until the cut one's restart signal fails too.
    let mut served = 0;
    let (live, took) = loop {
        for other in others {
            let lookup = get(*other, "/accounts/10001");
            assert_eq!(lookup.status, 200, "{other}: {}", lookup.body);
            assert_eq!(get(*other, "/health/ready").status, 200);
            served += 1;
        }
        let live = get(alone, "/health/live");
        if live.status == 503 {
            break (live, cut.elapsed());
        }
        assert!(
            cut.elapsed() < GRACE + VERDICT_BOUND,
            "liveness never failed"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        took >= GRACE,
        "liveness failed after {took:?}, before the grace"
    );
    assert!(live.body.contains(local), "{}", live.body);
    println!(
        "the cut replica failed liveness {took:?} after the cut; {served} lookups served by the others meanwhile"
    );
    let metrics = get(alone, "/metrics").body;
    assert!(
        metrics.contains(r#"outage_verdict{component="database",verdict="local"} 1"#),
        "{metrics}"
    );

    // The link back: the same process serves again, nothing restarted it.
    proxy.set_cut(false);
    poll_until(alone, "/health/live", VERDICT_BOUND, |answer| {
        answer.status == 200
    });
    poll_until(alone, "/accounts/10001", VERDICT_BOUND, |answer| {
        answer.status == 200
    });
    assert_eq!(get(alone, "/health/ready").status, 200);
    fleet.stop();
}
