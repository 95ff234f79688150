//! The fleet view (`/health/fleet`, `/status`) over real sockets: real service instances asking
//! each other, and raw TCP peers that hang, send garbage, send the wrong thing or far too much,
//! change identity every round, or trickle and never end their bodies.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::{
    TestApp, free_addresses, listed, peer_list, spawn_app, spawn_app_configured, view_until,
};

/// The health timeout of the asking replica in these tests: how long a hanging peer may hold
/// up a round.
const PEER_TIMEOUT: Duration = Duration::from_millis(300);

/// A valid `/health/history` answer (the documented shape) for raw peers.
fn history_body(instance: &str, status: &str, reason: Option<&str>) -> String {
    let reason = reason.map_or("null".to_owned(), |r| format!("\"{r}\""));
    format!(
        r#"{{"instance":"{instance}","address":null,"version":"9.9.9","startedAt":"2026-12-02T13:00:00Z","status":"{status}","reason":{reason},"since":"2026-12-02T13:00:01Z","transitions":[{{"at":"2026-12-02T13:00:01Z","scope":"overall","from":"UP","to":"{status}","reason":{reason}}}]}}"#
    )
}

/// How a raw peer behaves once a connection is accepted.
#[derive(Clone)]
enum Behaviour {
    /// Accepts and never answers.
    Hang,
    /// Answers bytes that are not HTTP.
    NotHttp,
    /// Answers HTTP 200 with this body.
    Ok(String),
    /// Answers HTTP 200 and streams this many bytes (chunked, no length).
    Flood(usize),
    /// Answers a full history (256 transitions, long reasons) as a new instance every time;
    /// counts its answers.
    Churn(Arc<AtomicUsize>),
    /// Announces a body of 200 KB and sends it 1 KiB at a time, slower than any deadline.
    Trickle,
    /// Announces a body of 10 MB and sends none of it.
    HugeLength,
    /// Reads until the asker hangs up, answering nothing.
    Stall,
    /// Answers a valid history once the gate gives it a permit.
    Gated(Arc<tokio::sync::Semaphore>),
}

/// A raw TCP peer on 127.0.0.1; returns its address and how many connections it accepted.
async fn raw_peer(behaviour: Behaviour) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot bind a raw peer");
    let address = listener.local_addr().expect("a bound address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviour.clone();
            match behaviour {
                // Kept open, never read or written, until the test ends.
                Behaviour::Hang => held.push(stream),
                other => {
                    tokio::spawn(answer(stream, other));
                }
            }
        }
    });
    (address, accepted)
}

async fn answer(mut stream: TcpStream, behaviour: Behaviour) {
    let mut head = vec![0u8; 4096];
    let _ = stream.read(&mut head).await;
    match behaviour {
        Behaviour::Hang => {}
        Behaviour::NotHttp => {
            let _ = stream.write_all(b"\x00\x01\x02 SSH-2.0-nope\r\n\r\n").await;
        }
        Behaviour::Ok(body) => {
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Behaviour::Churn(answers) => {
            let n = answers.fetch_add(1, Ordering::SeqCst);
            let transition = format!(
                r#"{{"at":"2026-12-02T13:00:01Z","component":"database","from":"UP","to":"DOWN","reason":"{}"}}"#,
                "r".repeat(200)
            );
            let body = format!(
                r#"{{"instance":"churn-{n}","status":"UP","since":"2026-12-02T13:00:01Z","transitions":[{}]}}"#,
                vec![transition; 256].join(",")
            );
            respond(&mut stream, &body).await;
        }
        Behaviour::Trickle => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n{\"instance\":\"";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            // Ends when the asker hangs up (a write fails) or the body is sent.
            for _ in 0..200 {
                interval.tick().await;
                if stream.write_all(&[b'a'; 1024]).await.is_err() {
                    return;
                }
            }
        }
        Behaviour::HugeLength => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.read(&mut head_buffer()).await;
        }
        Behaviour::Stall => while matches!(stream.read(&mut head_buffer()).await, Ok(1..)) {},
        Behaviour::Gated(gate) => {
            let _permit = gate.acquire().await;
            respond(&mut stream, &history_body("gated", "UP", None)).await;
        }
        Behaviour::Flood(total) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b'['; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                let head = format!("{:x}\r\n", chunk.len());
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(&chunk).await.is_err()
                    || stream.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
                sent += chunk.len();
            }
        }
    }
}

fn head_buffer() -> Vec<u8> {
    vec![0u8; 4096]
}

async fn respond(stream: &mut TcpStream, body: &str) {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// A service whose `--peers` lists `peers` (comma-separated, so each is one replica).
async fn spawn_viewer(peers: &[SocketAddr]) -> TestApp {
    let list = peer_list(peers);
    // One entry alone would be read as a DNS name; a trailing duplicate keeps it a list.
    let list = if peers.len() == 1 {
        format!("{list},{list}")
    } else {
        list
    };
    spawn_app_configured(|s| {
        s.peers = Some(list.parse().expect("valid peers"));
        s.health_timeout = PEER_TIMEOUT;
    })
    .await
}

#[tokio::test]
async fn without_peers_there_is_no_fleet_view_and_no_status_page() {
    let app = spawn_app().await;
    for path in ["/health/fleet", "/status"] {
        assert_eq!(
            app.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn peers_that_hang_send_garbage_the_wrong_thing_or_too_much_are_listed_with_why() {
    let (hang, _) = raw_peer(Behaviour::Hang).await;
    let (not_http, _) = raw_peer(Behaviour::NotHttp).await;
    let (not_health, _) = raw_peer(Behaviour::Ok(r#"{"error":"not found"}"#.into())).await;
    let (not_json, _) = raw_peer(Behaviour::Ok("<html>hello</html>".into())).await;
    let (flood, _) = raw_peer(Behaviour::Flood(64 * 1024 * 1024)).await;
    let (healthy, _) = raw_peer(Behaviour::Ok(history_body("raw-1", "UP", None))).await;
    // A port nobody listens on: bind one, note it, close it.
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let app = spawn_viewer(&[
        hang, not_http, not_health, not_json, flood, healthy, refused,
    ])
    .await;

    let started = Instant::now();
    let response = app.get("/health/fleet").await;
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let view: Value = response.json().await.unwrap();
    // A round is bounded whatever the peers do: at most twice the peer timeout (the names, then
    // every peer at once), plus slack for a loaded machine; the hanging peer never holds it.
    assert!(
        took < PEER_TIMEOUT * 2 + Duration::from_secs(2),
        "the view took {took:?}"
    );

    let reason = |address| {
        listed(&view, address)["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(listed(&view, &hang)["status"], "UNREACHABLE");
    assert_eq!(reason(&hang), "no answer within 0.3s");
    assert!(
        reason(&not_http).starts_with("answered with something other than HTTP"),
        "{view}"
    );
    assert!(
        reason(&not_health).starts_with("not a health history answer"),
        "{view}"
    );
    assert_eq!(reason(&not_json), "answered with something other than JSON");
    assert_eq!(reason(&flood), "answer longer than 256 KiB");
    assert_eq!(reason(&refused), "cannot connect: connection refused");
    let up = listed(&view, &healthy);
    assert_eq!(
        (&up["status"], &up["instance"]),
        (&"UP".into(), &"raw-1".into())
    );
    assert_eq!(view["counts"]["UP"], 1);
    assert_eq!(view["counts"]["UNREACHABLE"], 6);
    assert_eq!(view["truncated"], false);
    assert_eq!(view["transitions"][0]["instance"], "raw-1");

    // None of it touches the asking replica's own health.
    let (status, health) = app.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &"UP".into()), "{health}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_peer_down_is_shown_down_with_its_reason_while_this_replica_stays_up() {
    let (down, _) = raw_peer(Behaviour::Ok(history_body(
        "raw-down",
        "DOWN",
        Some("database: read failed"),
    )))
    .await;
    let app = spawn_viewer(&[down]).await;
    let (status, view) = app.get_json("/health/fleet").await;
    assert_eq!(status, 200);
    let peer = listed(&view, &down);
    assert_eq!(peer["status"], "DOWN");
    assert_eq!(peer["reason"], "database: read failed");
    assert_eq!(peer["version"], "9.9.9");
    assert_eq!(peer["since"], "2026-12-02T13:00:01Z");
    assert!(
        peer["lastSeen"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{view}"
    );
    let (status, health) = app.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &"UP".into()));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn each_replica_s_components_are_shown_with_whether_a_restart_can_cure_them() {
    let peer = spawn_app().await;
    let app = spawn_viewer(&[peer.address]).await;
    let (status, view) = app.get_json("/health/fleet").await;
    assert_eq!(status, 200);
    // Its own database file: a replacement with a fresh volume can cure its failure.
    assert_eq!(
        listed(&view, &peer.address)["components"],
        serde_json::json!([{"name": "database", "status": "UP", "curableByRestart": true}])
    );
    // A raw peer that says nothing of its components is shown without them.
    let (raw, _) = raw_peer(Behaviour::Ok(history_body("raw", "UP", None))).await;
    let app2 = spawn_viewer(&[raw]).await;
    let (_, view) = app2.get_json("/health/fleet").await;
    assert!(listed(&view, &raw).get("components").is_none(), "{view}");
    for app in [app, app2, peer] {
        app.stop().await.unwrap();
    }
}

#[tokio::test]
async fn many_concurrent_viewers_cost_one_round_per_interval() {
    let (peer, accepted) = raw_peer(Behaviour::Ok(history_body("raw-1", "UP", None))).await;
    let interval = Duration::from_millis(500);
    let app = spawn_app_configured(|s| {
        s.peers = Some(format!("{peer},{peer}").parse().unwrap());
        s.health_interval = interval;
    })
    .await;
    let started = Instant::now();
    let viewers: Vec<_> = (0..200)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/health/fleet");
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for viewer in viewers {
        assert_eq!(viewer.await.unwrap().unwrap(), StatusCode::OK);
    }
    let elapsed = started.elapsed();
    let rounds = accepted.load(Ordering::SeqCst);
    // One round per interval begun, and one more: a round's connection may be accepted by the
    // peer just as the clock read above passes an interval's end. Either way far fewer than one
    // per viewer.
    let allowed = (elapsed.as_secs_f64() / interval.as_secs_f64()).floor() as usize + 2;
    assert!(
        (1..=allowed).contains(&rounds),
        "{rounds} rounds for 200 viewers in {elapsed:?} (interval {interval:?})"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn on_the_management_port_viewers_beyond_the_operator_limit_wait_for_one_slow_round() {
    // A round that outlasts the interval: the peer hangs until the health timeout.
    let (hang, accepted) = raw_peer(Behaviour::Hang).await;
    let app = spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.testability = true;
        s.peers = Some(format!("{hang},{hang}").parse().expect("valid peers"));
        s.health_timeout = PEER_TIMEOUT;
    })
    .await;
    let management = app.management.expect("a management port");
    // More than the operator limit, fewer than the management listener's connections.
    let count = 3 * accountservice::router::MANAGEMENT_MAX_CONCURRENT_REQUESTS;
    assert!(count < accountservice::management::MAX_CONNECTIONS);
    let viewers: Vec<_> = (0..count)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("http://{management}/health/fleet");
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for viewer in viewers {
        assert_eq!(viewer.await.unwrap().unwrap(), StatusCode::OK);
    }
    // They shared the round they waited for (a viewer that came after it ended may start one).
    let rounds = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&rounds),
        "{rounds} rounds for {count} viewers"
    );
    // The switches keep their limit; one at a time is well under it.
    assert_eq!(
        app.get_management("/testability/healthy/true")
            .await
            .status(),
        StatusCode::OK
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn more_peers_than_the_cap_are_cut_and_the_view_says_so() {
    // Ports nobody listens on on 127.0.0.1 refuse at once; 300 of them exceed the cap of 256.
    let mut listeners = Vec::new();
    for _ in 0..300 {
        listeners.push(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    }
    let peers: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    drop(listeners);
    let app = spawn_viewer(&peers).await;
    let (status, view) = app.get_json("/health/fleet").await;
    assert_eq!(status, 200);
    assert_eq!(view["found"], 300);
    assert_eq!(view["asked"], 256);
    assert_eq!(view["truncated"], true);
    assert_eq!(view["replicas"].as_array().unwrap().len(), 256);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_name_that_does_not_resolve_says_the_lookup_failed() {
    let app = spawn_app_configured(|s| {
        s.peers = Some("fleet-test.invalid:6767".parse().unwrap());
        s.health_timeout = Duration::from_secs(2);
    })
    .await;
    let (status, view) = app.get_json("/health/fleet").await;
    assert_eq!(status, 200);
    let error = view["lookupError"].as_str().expect("a lookup error");
    assert!(
        error.starts_with("lookup of fleet-test.invalid:6767 failed"),
        "{error}"
    );
    assert_eq!(view["replicas"], Value::Array(vec![]));
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_status_page_is_one_self_contained_document() {
    let (peer, _) = raw_peer(Behaviour::Ok(history_body("raw-1", "UP", None))).await;
    let app = spawn_viewer(&[peer]).await;
    let response = app.get("/status").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let page = response.text().await.unwrap();
    for external in ["src=\"http", "href=\"http", "@import", "url(http", "//cdn"] {
        assert!(!page.contains(external), "the page loads {external}");
    }
    assert!(page.contains("fetch(\"health/fleet\""));
    // What the page polls exists next to it.
    assert_eq!(app.get("/health/fleet").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn replicas_see_each_other_one_that_fails_one_that_hangs_and_one_that_vanishes() {
    let (hang, _) = raw_peer(Behaviour::Hang).await;
    let addresses = free_addresses(3);
    let peers = format!("{},{hang}", peer_list(&addresses));
    let mut replicas = Vec::new();
    for address in &addresses {
        let peers = peers.clone();
        let port = address.port();
        replicas.push(
            spawn_app_configured(move |s| {
                s.port = port;
                s.testability = true;
                s.health_timeout = PEER_TIMEOUT;
                s.peers = Some(peers.parse().expect("valid peers"));
            })
            .await,
        );
    }
    let [viewer, failing, vanishing]: [TestApp; 3] = replicas.try_into().ok().unwrap();

    let view = view_until(&viewer, "three replicas UP", |v| v["counts"]["UP"] == 3).await;
    for address in &addresses {
        let replica = listed(&view, address);
        assert_eq!(
            replica["instance"],
            viewer_instance(&viewer).await,
            "{view}"
        );
        assert_eq!(replica["version"], env!("CARGO_PKG_VERSION"));
        assert!(replica["startedAt"].as_str().is_some(), "{view}");
    }
    assert_eq!(listed(&view, &hang)["reason"], "no answer within 0.3s");
    assert_eq!(view["asked"], 4);

    let (status, _) = failing.get_json("/testability/healthy/false").await;
    assert_eq!(status, 200);
    let view = view_until(&viewer, "the failing replica DOWN", |v| {
        listed(v, &failing.address)["status"] == "DOWN"
    })
    .await;
    assert_eq!(
        listed(&view, &failing.address)["reason"],
        "testability: forced unhealthy"
    );
    let forced = view["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["component"] == "testability")
        .unwrap_or_else(|| panic!("no testability transition: {view}"));
    assert_eq!(forced["address"], failing.address.to_string());
    assert_eq!(
        (&forced["from"], &forced["to"]),
        (&"UP".into(), &"DOWN".into())
    );
    // The same from another replica: any replica gives the view.
    let other = view_until(&vanishing, "the failing replica DOWN", |v| {
        listed(v, &failing.address)["status"] == "DOWN"
    })
    .await;
    assert_eq!(other["counts"]["UP"], 2);

    let vanished = vanishing.address;
    vanishing.stop().await.unwrap();
    let view = view_until(&viewer, "the stopped replica UNREACHABLE", |v| {
        listed(v, &vanished)["status"] == "UNREACHABLE"
    })
    .await;
    let gone = listed(&view, &vanished);
    assert_eq!(gone["reason"], "cannot connect: connection refused");
    assert!(
        ["UP", "OUT_OF_SERVICE"].contains(&gone["lastStatus"].as_str().unwrap_or("")),
        "its last known state is kept: {gone}"
    );
    assert!(gone["lastSeen"].as_str().is_some(), "{gone}");

    // A peer's state never changes this replica's own.
    let (status, health) = viewer.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &"UP".into()), "{health}");
    failing.stop().await.unwrap();
    viewer.stop().await.unwrap();
}

#[tokio::test]
async fn with_management_ports_peers_are_asked_there_and_a_public_port_is_listed_with_why() {
    let ports = free_addresses(4);
    let (public, management) = ports.split_at(2);
    // Both management ports, and the second replica's public port by mistake.
    let peers = format!("{},{},{}", management[0], management[1], public[1]);
    let mut replicas = Vec::new();
    for (public, management) in public.iter().zip(management) {
        let peers = peers.clone();
        let (port, management) = (public.port(), management.port());
        replicas.push(
            spawn_app_configured(move |s| {
                s.port = port;
                s.management_port = Some(management);
                s.health_timeout = PEER_TIMEOUT;
                s.peers = Some(peers.parse().expect("valid peers"));
            })
            .await,
        );
    }
    let [viewer, other]: [TestApp; 2] = replicas.try_into().ok().unwrap();

    // The view is on the management port only.
    assert_eq!(
        viewer.get("/health/fleet").await.status(),
        StatusCode::NOT_FOUND
    );
    let view = view_until(&viewer, "two replicas UP and one UNREACHABLE", |v| {
        v["counts"]["UP"] == 2 && v["counts"]["UNREACHABLE"] == 1
    })
    .await;
    for address in management {
        assert_eq!(listed(&view, address)["status"], "UP", "{view}");
    }
    // GET /health stays on the public port too (the original's contract).
    let (status, health) = other.get_json("/health").await;
    assert_eq!((status, &health["status"]), (200, &"UP".into()), "{health}");
    let wrong = listed(&view, &public[1]);
    assert_eq!(
        wrong["reason"],
        "answered 404 Not Found to /health/history: is this its public port? With a \
         management port, peers are asked on that port",
        "{view}"
    );
    other.stop().await.unwrap();
    viewer.stop().await.unwrap();
}

async fn viewer_instance(app: &TestApp) -> Value {
    let (_, history) = app.get_json("/health/history").await;
    history["instance"].clone()
}

/// This process's resident memory in bytes, from `/proc/self/status`.
fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Set in the child process that runs the hostile-peer test alone.
const ALONE: &str = "ACCOUNTSERVICE_TEST_HOSTILE_PEERS_ALONE";

/// The hostile-peer test measures the resident memory of its process, which other tests of this
/// binary would share if they ran beside it: it runs in a child process of this same test
/// binary, alone, and this test passes when that one does.
#[test]
fn hostile_peers_over_hundreds_of_rounds_never_grow_the_view_past_its_bound() {
    let name = "fleet::hostile_peers_alone";
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--nocapture", "--include-ignored"])
        .env(ALONE, "1")
        .output()
        .expect("cannot run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{name} failed alone");
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run in the child: {stdout}"
    );
}

#[tokio::test]
#[ignore = "run alone, in a child process, by hostile_peers_over_hundreds_of_rounds_never_grow_the_view_past_its_bound"]
async fn hostile_peers_alone() {
    // Run any other way (`--include-ignored`), every bound but the process's memory is still
    // checked; that one only holds where nothing else shares the process.
    let alone = std::env::var_os(ALONE).is_some();
    const ROUNDS: usize = 300;
    let churned = Arc::new(AtomicUsize::new(0));
    let mut peers = Vec::new();
    for _ in 0..6 {
        peers.push(raw_peer(Behaviour::Churn(churned.clone())).await.0);
    }
    for behaviour in [
        Behaviour::Trickle,
        Behaviour::Flood(usize::MAX),
        Behaviour::HugeLength,
        Behaviour::Stall,
    ] {
        peers.push(raw_peer(behaviour).await.0);
    }
    let budget = accountservice::fleet::Budget {
        per_replica: accountservice::fleet::MAX_REPLICA_BYTES,
        // The least the fleet accepts for 12 peers asked: the answering ones and one more.
        total: 13 * accountservice::fleet::MAX_REPLICA_BYTES,
    };
    let mut options = accountservice::fleet::FleetOptions::new(
        peer_list(&peers).parse().expect("valid peers"),
        Duration::ZERO,
        Duration::from_millis(50),
        "hostile-test".into(),
    );
    options.max_peers = 12;
    options.budget = budget;
    options.round_bytes = 512 * 1024;
    let fleet = accountservice::fleet::Fleet::new(options);
    assert_eq!(
        fleet.options().budget,
        budget,
        "the budget is taken as given"
    );

    let rss_before = resident_bytes();
    let (mut peak_kept, mut peak_rss, mut peak_body) = (0, rss_before, 0);
    let mut peak_replicas = 0;
    for round in 0..ROUNDS {
        let body = fleet.view().await;
        let kept = fleet.kept_bytes();
        assert!(
            kept - body.len() <= budget.total,
            "round {round}: {kept} bytes kept, {} of them the view",
            body.len()
        );
        peak_kept = peak_kept.max(kept);
        peak_replicas = peak_replicas.max(kept - body.len());
        peak_body = peak_body.max(body.len());
        peak_rss = peak_rss.max(resident_bytes());
    }
    let view: Value = serde_json::from_slice(&fleet.view().await).unwrap();
    println!(
        "hostile peers, {} rounds: replicas kept in at most {peak_replicas} bytes against a bound \
         of {}; with the rendered view (at most {peak_body} bytes) at most {peak_kept}; resident \
         memory {} -> at most {} bytes",
        fleet.rounds(),
        budget.total,
        rss_before,
        peak_rss
    );
    assert!(fleet.rounds() >= ROUNDS as u64);
    assert!(
        churned.load(Ordering::SeqCst) >= ROUNDS,
        "the churning peers answered"
    );
    let replaced = view["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("replaced by"))
        })
        .count();
    assert!(replaced >= 1, "{view}");
    // The view itself is derived from what is kept: a few times it, never more.
    assert!(peak_body <= 2 * budget.total, "{peak_body}");
    // A sanity bound on the whole test process, where this test runs alone: before the bounds,
    // the churning peers alone kept hundreds of megabytes.
    if alone {
        assert!(
            peak_rss.saturating_sub(rss_before) <= 96 * 1024 * 1024,
            "{rss_before} -> {peak_rss}"
        );
    } else {
        println!("resident memory not asserted: other tests share this process ({ALONE} unset)");
    }
}

#[tokio::test]
async fn a_viewer_that_hangs_up_mid_round_does_not_cancel_it_for_another() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (peer, accepted) = raw_peer(Behaviour::Gated(gate.clone())).await;
    // A long interval: whoever looks after the round ended gets its result, never a new round.
    let fleet = Arc::new(accountservice::fleet::Fleet::new(
        accountservice::fleet::FleetOptions::new(
            format!("{peer},{peer}").parse().expect("valid peers"),
            Duration::from_secs(600),
            Duration::from_secs(10),
            "viewer-test".into(),
        ),
    ));
    let first = tokio::spawn({
        let fleet = fleet.clone();
        async move { fleet.view().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the round never asked the peer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first viewer hangs up mid-round: what a server does with its handler's future.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let second = tokio::spawn({
        let fleet = fleet.clone();
        async move { fleet.view().await }
    });
    gate.add_permits(100);
    let view: Value = serde_json::from_slice(&second.await.unwrap()).unwrap();
    assert_eq!(listed(&view, &peer)["status"], "UP", "{view}");
    assert_eq!(listed(&view, &peer)["instance"], "gated", "{view}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one round, not cancelled"
    );
    assert_eq!(fleet.rounds(), 1);
}

#[tokio::test]
async fn over_http_a_viewer_that_disconnects_mid_round_leaves_the_round_to_the_next() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (peer, accepted) = raw_peer(Behaviour::Gated(gate.clone())).await;
    let app = spawn_app_configured(|s| {
        s.peers = Some(format!("{peer},{peer}").parse().expect("valid peers"));
        // Long enough that whoever looks after the round gets its result, never a new round.
        s.health_interval = Duration::from_secs(60);
        s.health_timeout = Duration::from_secs(10);
    })
    .await;
    let mut leaving = TcpStream::connect(app.address).await.unwrap();
    leaving
        .write_all(b"GET /health/fleet HTTP/1.1\r\nhost: fleet\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the round never asked the peer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(leaving);
    let staying = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/health/fleet");
        async move { client.get(url).send().await.unwrap().json::<Value>().await }
    });
    gate.add_permits(100);
    let view = staying.await.unwrap().unwrap();
    assert_eq!(listed(&view, &peer)["instance"], "gated", "{view}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one round, not cancelled"
    );
    app.stop().await.unwrap();
}
