//! Faults at run time, each against a real server: an answer within the bounds (503 with a true
//! reason, never a hung request) and recovery within one health interval of the server coming
//! back, without a restart.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    app::{App, SLACK, database, shared, spawn_over},
    pg::{BlackHole, PASSWORD, PgServer, Proxy},
};

/// The longest a lookup may take with these tests' bounds (acquire 2 s, statement 0.4 s plus
/// the client's 0.1 s), with slack for a busy machine.
const REQUEST_BOUND: Duration = Duration::from_millis(2500).saturating_add(SLACK);

/// How long after the server is back health must be `UP` again: one health interval (0.2 s in
/// these tests) plus a connect within the acquire timeout, with slack for a busy machine.
const RECOVERY_BOUND: Duration = Duration::from_millis(2200).saturating_add(SLACK);

/// How long a fault may take to show as `DOWN`: the same.
const DETECTION_BOUND: Duration = RECOVERY_BOUND;

/// Requests `/accounts/10001` in a loop until stopped; counts answers by status and records the
/// slowest.
struct Load {
    running: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    unavailable: Arc<AtomicU64>,
    other: Arc<AtomicU64>,
    slowest_micros: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(app: &App) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let ok = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(AtomicU64::new(0));
        let other = Arc::new(AtomicU64::new(0));
        let slowest_micros = Arc::new(AtomicU64::new(0));
        let url = format!("http://{}/accounts/10001", app.address);
        let client = app.client.clone();
        let task = tokio::spawn({
            let (running, ok, unavailable, other, slowest) = (
                running.clone(),
                ok.clone(),
                unavailable.clone(),
                other.clone(),
                slowest_micros.clone(),
            );
            async move {
                let workers: Vec<_> = (0..4)
                    .map(|_| {
                        let (running, ok, unavailable, other, slowest, client, url) = (
                            running.clone(),
                            ok.clone(),
                            unavailable.clone(),
                            other.clone(),
                            slowest.clone(),
                            client.clone(),
                            url.clone(),
                        );
                        tokio::spawn(async move {
                            while running.load(Ordering::Relaxed) {
                                let started = Instant::now();
                                let answer = client.get(&url).send().await.map(|r| {
                                    (r.status().as_u16(), r.headers().contains_key("retry-after"))
                                });
                                let micros = started.elapsed().as_micros() as u64;
                                slowest.fetch_max(micros, Ordering::Relaxed);
                                // A 503 without Retry-After counts as another answer: over a
                                // shared database every one carries it, verdict or not.
                                match answer {
                                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                                    Ok((503, true)) => unavailable.fetch_add(1, Ordering::Relaxed),
                                    _ => other.fetch_add(1, Ordering::Relaxed),
                                };
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    let _ = worker.await;
                }
            }
        });
        Self {
            running,
            ok,
            unavailable,
            other,
            slowest_micros,
            task,
        }
    }

    /// Stops the load; (ok, 503 with Retry-After, other, slowest).
    async fn stop(self) -> (u64, u64, u64, Duration) {
        self.running.store(false, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        (
            self.ok.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
            Duration::from_micros(self.slowest_micros.load(Ordering::Relaxed)),
        )
    }
}

fn reason(body: &serde_json::Value) -> String {
    database(body)["reason"].as_str().unwrap_or("").to_owned()
}

/// Stops or kills the server under load, checks 503s within the bound and a true reason, starts
/// it again and checks recovery within the bound.
async fn survives(server: &PgServer, app: &App, fault: impl Fn(&PgServer), reasons: &[&str]) {
    let load = Load::start(app);
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    fault(server);
    let (_, body, _) = app
        .health_until(DETECTION_BOUND, |status, _| status == 503)
        .await;
    let why = reason(&body);
    assert!(
        reasons.iter().any(|reason| why.contains(reason)),
        "reason {why:?} is none of {reasons:?}: {body}"
    );
    // A replica without peers treats the fault as shared: once it has said so, lookups fail at
    // once with that reason, without waiting on the pool.
    let shared = "shared outage assumed: no peer to ask whether it reaches the database";
    app.health_until(Duration::from_secs(10), |_, body| {
        body["components"]["outage"]["reason"] == shared
    })
    .await;
    let started = Instant::now();
    let (status, answer) = app.get("/accounts/10001").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer, format!(r#"{{"error":"{shared}"}}"#));
    assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());

    server.start_again();
    let (_, _, took) = app
        .health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    assert!(took < RECOVERY_BOUND, "recovered after {took:?}");
    let (status, _) = app.get("/accounts/10001").await;
    assert_eq!(status, 200);
    let (ok, unavailable, other, slowest) = load.stop().await;
    assert!(ok > 0 && unavailable > 0, "ok {ok}, 503 {unavailable}");
    assert_eq!(other, 0, "answers other than 200 and 503 with Retry-After");
    assert!(
        slowest < REQUEST_BOUND,
        "the slowest request took {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_killed_and_restarted_under_load_is_survived_without_a_restart() {
    let server = PgServer::start();
    let db = server.create_database("restart");
    let app = spawn_over(&server.url(&db), &[]).await;
    survives(
        &server,
        &app,
        PgServer::stop,
        &[
            "terminated by the server",
            "server shutting down",
            "connection refused",
            "connection lost",
        ],
    )
    .await;
    survives(
        &server,
        &app,
        PgServer::kill_9,
        &[
            "connection refused",
            "connection lost",
            "terminated by the server",
        ],
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_timeout_is_a_503_saying_so() {
    let server = shared();
    let db = server.create_database("slow");
    let app = spawn_over(&server.url(&db), &["--database-statement-timeout", "0.2"]).await;
    // Another session holds the table locked: every read waits, until the timeout.
    let url = server.url(&db);
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("a connection");
        let driver = tokio::spawn(connection);
        let transaction = client.transaction().await.unwrap();
        transaction
            .batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let _ = locked_tx.send(());
        let _ = released.await;
        transaction.rollback().await.unwrap();
        drop(client);
        let _ = driver.await;
    });
    locked.await.unwrap();
    let started = Instant::now();
    let response = app
        .client
        .get(format!("http://{}/accounts/10001", app.address))
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    // Before any verdict on the database: the store's own failure, with its cause and when to
    // retry (one health interval, in whole seconds).
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().await.expect("a body");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());
    assert_eq!(
        body,
        r#"{"error":"database unavailable: statement timeout"}"#
    );
    assert_eq!(
        retry_after.as_ref().and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // The first failing round may be another true reason (a connection opened for the check
    // while the machine is busy can outlast the acquire timeout); the statement's own comes.
    let (status, _, _) = app
        .health_until(DETECTION_BOUND, |_, body| {
            reason(body) == "statement timeout"
        })
        .await;
    assert_eq!(status, 503);
    release.send(()).unwrap();
    holder.await.unwrap();
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_taken_by_others_is_a_503_saying_too_many_clients() {
    const MAX_CONNECTIONS: usize = 4;
    let server = PgServer::start_with(&[
        ("max_connections", "4"),
        ("superuser_reserved_connections", "0"),
    ]);
    let db = server.create_database("crowded");
    let url = server.url(&db);
    let app = spawn_over(&url, &[]).await;
    // Take every slot: whenever none is free, end the service's connections (its checks
    // reconnect meanwhile, a race, hence the loop) until all of them are ours.
    let mut others = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10) + SLACK;
    while others.len() < MAX_CONNECTIONS {
        assert!(
            Instant::now() < deadline,
            "the service kept its connections"
        );
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => others.push((client, tokio::spawn(connection))),
            Err(_) => {
                let (ours, _) = others.first().expect("a connection of our own");
                ours.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'accountservice'",
                    &[],
                )
                .await
                .expect("the service's connections ended");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // The first failing round may report the ended connection ("terminated by the server");
    // the next one, opening a connection, meets the full server.
    let (status, _, _) = app
        .health_until(DETECTION_BOUND, |_, body| {
            reason(body) == "too many clients"
        })
        .await;
    assert_eq!(status, 503);
    let started = Instant::now();
    let (status, _) = app.get("/accounts/10001").await;
    assert_eq!(status, 503);
    assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());
    drop(others);
    let (_, _, took) = app
        .health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    assert!(took < RECOVERY_BOUND, "{took:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_on_open_connections_is_a_503_within_the_bound() {
    let server = shared();
    let db = server.create_database("silent");
    let proxy = Proxy::to(server.port());
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
        proxy.port()
    );
    let app = spawn_over(&url, &[]).await;
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    // Every connection stays open, and nothing comes back on any of them: half-open.
    proxy.set_cut(true);
    let started = Instant::now();
    let (status, body) = app.get("/accounts/10001").await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());
    let (_, body, _) = app
        .health_until(DETECTION_BOUND, |status, _| status == 503)
        .await;
    assert!(reason(&body).starts_with("timed out after"), "{body}");
    // The connections that went silent were dropped, not handed to the next caller.
    proxy.set_cut(false);
    let (_, _, took) = app
        .health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    assert!(took < RECOVERY_BOUND, "{took:?}");
    for _ in 0..20 {
        assert_eq!(app.get("/accounts/10001").await.0, 200);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_under_a_running_replica_is_reported_as_authentication_failed() {
    let server = shared();
    let db = server.create_database("rotated");
    let role = format!("{db}_app");
    server.psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'first'; ALTER DATABASE {db} OWNER TO {role}"),
    );
    let url = format!("postgres://{role}:first@127.0.0.1:{}/{db}", server.port());
    let app = spawn_over(&url, &[]).await;
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    server.psql(
        "postgres",
        &format!(
            "ALTER ROLE {role} PASSWORD 'second'; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        ),
    );
    // The pool reports the server's refusal as such, not as a timeout.
    let (_, body, _) = app
        .health_until(DETECTION_BOUND, |_, body| {
            reason(body) == "authentication failed"
        })
        .await;
    assert!(!body.to_string().contains("first"), "{body}");
    server.psql("postgres", &format!("ALTER ROLE {role} PASSWORD 'first'"));
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn pooled_connections_probe_an_idle_peer_within_seconds_not_hours() {
    let server = shared();
    let db = server.create_database("keepalive");
    let app = spawn_over(&server.url(&db), &[]).await;
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    // The kernel's view of the service's sockets to the server: `timer:(keepalive,9.8sec,0)`.
    let filter = format!("( dport = :{} )", server.port());
    let output = std::process::Command::new("ss")
        .args(["-tno", "state", "established", &filter])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&output.stdout);
    // The time left until the next probe, as ss prints it: `9.8sec`, `2min15sec`; some
    // versions print seconds as `9.788ms`. The kernel's default would be some `119min`.
    let timers: Vec<f64> = text
        .split("timer:(keepalive,")
        .skip(1)
        .filter_map(|rest| rest.split(',').next())
        .map(|time| {
            let split = time.find(|c: char| !(c.is_ascii_digit() || c == '.'));
            let (number, unit) = time.split_at(split.unwrap_or(time.len()));
            let number: f64 = number.parse().unwrap_or(f64::INFINITY);
            match unit {
                "ms" => number / 1000.0,
                "sec" | "s" => number,
                _ => f64::INFINITY,
            }
        })
        .collect();
    assert!(
        !timers.is_empty(),
        "no keepalive timer on any connection:\n{text}"
    );
    for seconds in timers {
        assert!(seconds <= 10.0, "keepalive in {seconds} s:\n{text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_for_a_busy_pool_give_up_at_the_acquire_timeout() {
    let server = shared();
    let db = server.create_database("crowdedpool");
    let app = spawn_over(
        &server.url(&db),
        &[
            "--database-pool-size",
            "1",
            "--database-statement-timeout",
            "1",
        ],
    )
    .await;
    // Every read waits on a lock until its statement times out, holding the one connection.
    let url = server.url(&db);
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a connection");
    let driver = tokio::spawn(connection);
    let transaction = client.transaction().await.unwrap();
    transaction
        .batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (
                app.client.clone(),
                format!("http://{}/accounts/10001", app.address),
            );
            tokio::spawn(async move {
                let started = Instant::now();
                let status = client.get(url).send().await.map(|r| r.status().as_u16());
                (status.ok(), started.elapsed())
            })
        })
        .collect();
    for request in requests {
        let (status, took) = request.await.unwrap();
        assert_eq!(status, Some(503));
        // Acquire (2 s) then at most one statement (1 s and the grace).
        assert!(took < Duration::from_millis(3100) + SLACK, "{took:?}");
    }
    assert!(started.elapsed() < Duration::from_millis(3100) + SLACK);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("accountservice_db_errors_total{cause=\"timeout\"}"),
        "no waiter timed out:\n{metrics}"
    );
    transaction.rollback().await.unwrap();
    drop(client);
    let _ = driver.await;
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropped_under_a_running_replica_is_a_503_saying_unknown_database() {
    let server = shared();
    let db = server.create_database("dropped");
    let app = spawn_over(&server.url(&db), &[]).await;
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    // FORCE ends the replica's sessions; every connection it opens next is refused by name.
    server.psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    let (status, body, _) = app
        .health_until(DETECTION_BOUND, |_, body| {
            reason(body) == "unknown database"
        })
        .await;
    assert_eq!(status, 503, "{body}");
    let started = Instant::now();
    let (status, answer) = app.get("/accounts/10001").await;
    assert_eq!(status, 503, "{answer}");
    assert!(started.elapsed() < REQUEST_BOUND, "{:?}", started.elapsed());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_skip_a_first_host_that_hangs_at_run_time() {
    let server = shared();
    let db = server.create_database("hung_host");
    let hole = BlackHole::new();
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{},127.0.0.1:{}/{db}?connect_timeout=1",
        hole.port(),
        server.port()
    );
    // A connection must come within 0.8 s, less than the first host's 1 s: tried first every
    // time, it would take every new connection's whole bound.
    let app = spawn_over(&url, &["--database-acquire-timeout", "0.8"]).await;
    assert_eq!(app.get("/accounts/10001").await.0, 200);
    // The server ends the replica's connections: the pool must open new ones.
    server.psql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}' AND application_name = 'accountservice'"
        ),
    );
    let started = Instant::now();
    loop {
        if app.get("/accounts/10001").await.0 == 200 {
            break;
        }
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "no new connection got past the hung host in {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        assert_eq!(app.get("/accounts/10001").await.0, 200);
    }
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutting_down_is_a_503_saying_so_not_starting_up() {
    let server = PgServer::start();
    let db = server.create_database("shutting_down");
    let url = server.url(&db);
    let app = spawn_over(&url, &[]).await;
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    // A session of ours keeps a smart shutdown waiting: meanwhile new connections are refused.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a connection");
    let driver = tokio::spawn(connection);
    server.begin_smart_stop();
    // The replica's own sessions would go on serving: end them, until it has had to reconnect.
    let started = Instant::now();
    let body = loop {
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'accountservice'",
                &[],
            )
            .await
            .expect("the replica's sessions ended");
        let (status, body) = app.health().await;
        if status == 503 && reason(&body) != "terminated by the server" {
            break body;
        }
        assert!(
            started.elapsed() < DETECTION_BOUND,
            "still {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reason(&body), "server shutting down", "{body}");
    drop(client);
    let _ = driver.await;
    server.start_again();
    app.health_until(RECOVERY_BOUND, |status, _| status == 200)
        .await;
    app.stop().await;
}
