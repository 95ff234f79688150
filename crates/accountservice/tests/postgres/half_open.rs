//! A half-open connection, made by the kernel rather than by a proxy: the server's port stops
//! answering at the IP level (an nftables rule drops every packet to and from it, as a vanished
//! host or a partition does: no FIN, no RST, no ACK), while the pool's connection sits idle.
//! Only TCP keepalive can notice that; tokio-postgres's default would take two hours.
//!
//! Needs root (nftables): `cargo test` lists it as ignored, `cargo xtask faults` runs it as root
//! (CI does), and without root it fails. The rule lives in a table of its own that names this
//! process and matches only the test server's port on 127.0.0.1; a watchdog removes it if the
//! test process dies.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use accountservice::store::postgres::settings::{
    KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES,
};

use crate::{
    app::{ACQUIRE_TIMEOUT, SLACK, spawn_over},
    pg::{PgServer, Watchdog},
};

/// Every packet to and from one loopback port dropped, until [`Blackout::lift`] or drop.
struct Blackout {
    table: String,
    /// Removes the table (if it is still there) once the blackout is dropped or the test ends.
    _watchdog: Watchdog,
}

impl Blackout {
    fn port(port: u16) -> Self {
        let table = format!("accountservice_test_{}_{port}", std::process::id());
        let rules = format!(
            "table inet {table} {{\n\
               chain output {{\n\
                 type filter hook output priority 0; policy accept;\n\
                 ip daddr 127.0.0.1 tcp dport {port} drop\n\
                 ip saddr 127.0.0.1 tcp sport {port} drop\n\
               }}\n\
             }}\n"
        );
        // The watchdog first, so that no moment exists with the rule in place and nobody to
        // remove it.
        let watchdog = Watchdog::spawn(&format!("nft delete table inet {table}"));
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft runs (nftables installed)");
        nft.stdin
            .take()
            .expect("piped")
            .write_all(rules.as_bytes())
            .expect("the rules reach nft");
        let output = nft.wait_with_output().expect("nft ends");
        assert!(
            output.status.success(),
            "nft refused the rule (this test needs root: run `cargo xtask faults`): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self {
            table,
            _watchdog: watchdog,
        }
    }

    /// Packets flow again.
    fn lift(&mut self) {
        let status = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status()
            .expect("nft runs");
        assert!(status.success(), "nft could not remove {}", self.table);
    }
}

/// The local ports of this host's established connections to 127.0.0.1:`port`, as the kernel
/// sees them (`ss`): the service runs in this process, so these are its pool's.
fn connections_to(port: u16) -> Vec<u16> {
    let output = Command::new("ss")
        .args(["-tnH", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .expect("ss (iproute2) runs");
    assert!(output.status.success(), "ss failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            // `Recv-Q Send-Q Local:Port Peer:Port`: the first address is ours.
            let local = line.split_whitespace().find(|word| word.contains(':'))?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: run by `cargo xtask faults`"]
async fn an_idle_connection_to_a_vanished_server_is_detected_by_keepalive_and_replaced() {
    let server = PgServer::start();
    let db = server.create_database("half_open");
    // Health rounds would take the idle connection and drop it at the statement bound (the
    // proxy test covers that path); without them only keepalive can notice the peer is gone.
    let app = spawn_over(&server.url(&db), &["--health-interval", "3600"]).await;
    assert_eq!(app.get("/accounts/10001").await.0, 200);
    let before = connections_to(server.port());
    assert!(!before.is_empty(), "the pool holds no connection");

    let mut blackout = Blackout::port(server.port());
    let cut = Instant::now();
    // The first probe after KEEPALIVE_IDLE, dropped after the retries (or TCP_USER_TIMEOUT
    // after the first unanswered probe, whichever Linux applies first).
    let bound = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_RETRIES + SLACK;
    loop {
        let open = connections_to(server.port());
        if before.iter().all(|port| !open.contains(port)) {
            break;
        }
        assert!(
            cut.elapsed() < bound,
            "the half-open connections {open:?} are still open {:?} after the cut",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detected = cut.elapsed();
    println!("keepalive closed the half-open connections {detected:?} after the cut");

    // Still cut off: no connection can be had (every SYN is dropped), and the lookup says so
    // within the acquire timeout instead of hanging.
    let acquire = Duration::from_secs_f64(ACQUIRE_TIMEOUT.parse().expect("seconds"));
    let started = Instant::now();
    let (status, body) = app.get("/accounts/10001").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < acquire + SLACK,
        "{:?}",
        started.elapsed()
    );

    // Back: the first lookup gets a new connection, not the dead one (it would time out).
    blackout.lift();
    let started = Instant::now();
    let (status, body) = app.get("/accounts/10001").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < acquire + SLACK,
        "{:?}",
        started.elapsed()
    );
    let after = connections_to(server.port());
    assert!(!after.is_empty(), "no connection after the lookup");
    assert!(
        after.iter().all(|port| !before.contains(port)),
        "an old connection survived: before {before:?}, after {after:?}"
    );
    app.stop().await;
}
