//! [`Watcher`]: the background task that notices a failing check of a shared dependency, asks a
//! few peers about it at most once per health interval, records the verdict in [`Outage`] and
//! shows it in the health registry; and clears it the moment the check works again.

use std::{sync::Arc, time::Duration};

use health::{ComponentKind, Curability, Health, Probes, Scope, Status, WeakHealth};
use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
    time::{Instant, MissedTickBehavior},
};

use super::{
    ask::ask,
    sample::{self, Me},
    state::{COMPONENT, Outage},
    verdict::{PeerAnswer, Verdict},
};
use crate::fleet::Peers;

/// How the watcher asks and judges.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The replicas to ask (`--peers`); `None`: no one to ask, every fault is treated as shared.
    pub peers: Option<Peers>,
    /// This replica, as its peers reach it: never asked.
    pub me: Me,
    /// The health interval: how often, at most, peers are asked.
    pub interval: Duration,
    /// How long a peer (and the lookup of the peers) may take to answer.
    pub timeout: Duration,
    /// How long a local fault lasts before the restart signal fails too.
    pub grace: Duration,
}

/// The task that keeps an [`Outage`] up to date; see the module doc.
pub struct Watcher {
    outage: Arc<Outage>,
    health: WeakHealth,
    changes: watch::Receiver<u64>,
    options: WatchOptions,
    rng: fastrand::Rng,
    last_asked: Option<Instant>,
    /// What was last set on the registry, so an unchanged verdict is not set again.
    shown: Option<(Status, String, String, Probes)>,
}

impl Watcher {
    /// A watcher of `health` (not kept alive by it) writing to `outage`.
    pub fn new(outage: Arc<Outage>, health: &Health, options: WatchOptions) -> Self {
        Self {
            outage,
            health: health.downgrade(),
            changes: health.subscribe(),
            options,
            rng: fastrand::Rng::new(),
            last_asked: None,
            shown: None,
        }
    }

    /// Runs the watcher until the registry is gone (the service stopped): on every change of a
    /// status in the registry, and once per interval.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        break; // the registry is gone
                    }
                }
            }
            if !self.step().await {
                break;
            }
        }
        tracing::debug!("outage watcher stopped");
    }

    /// One look: returns `false` once the registry is gone.
    async fn step(&mut self) -> bool {
        let Some(health) = self.health.upgrade() else {
            return false;
        };
        let report = health.report(Scope::Overall);
        // Not held while asking: the registry holds the checks, and they what they check.
        drop(health);
        let watched = self.outage.watched();
        let failing: Vec<String> = report
            .components
            .iter()
            .filter(|(name, c)| {
                c.kind == ComponentKind::Check
                    && c.curability == Curability::NotByRestart
                    && c.status == Status::Down
                    && watched.contains(name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in watched.iter().filter(|name| !failing.contains(name)) {
            if let Some(verdict) = self.outage.recovered(name) {
                tracing::info!(check = %name, was = %verdict.reason(name), "shared dependency reached again");
            }
        }
        let now = Instant::now();
        let due = self
            .last_asked
            .is_none_or(|at| now.saturating_duration_since(at) >= self.options.interval);
        if !failing.is_empty() && due {
            self.last_asked = Some(now);
            self.ask_about(&failing).await;
        }
        for name in self.outage.escalate(Instant::now(), self.options.grace) {
            tracing::warn!(
                check = %name,
                grace = ?self.options.grace,
                "local fault outlasted its grace: failing liveness so that this replica is replaced"
            );
        }
        self.show()
    }

    /// Asks a sample of the peers about each failing check and records the verdicts.
    async fn ask_about(&mut self, failing: &[String]) {
        let targets = match &self.options.peers {
            Some(peers) => {
                let resolved = peers.resolve(self.options.timeout).await;
                if let Some(error) = resolved.error {
                    tracing::debug!(%error, "looking the peers up failed; asking none");
                }
                resolved.targets
            }
            None => Vec::new(),
        };
        let chosen = sample::choose(targets, &self.options.me, &mut self.rng);
        for check in failing {
            let answers = self.answers(&chosen, check).await;
            // The check may have recovered while the peers were asked: a verdict on a fault
            // that is gone would keep this replica out of readiness until the next look.
            if !self.still_failing(check) {
                continue;
            }
            let verdict = Verdict::judge(&answers);
            if let Some(before) = self.outage.judged(check, verdict, answers, Instant::now()) {
                let reason = verdict.reason(check);
                match before {
                    Some(before) => tracing::warn!(%check, was = %before.reason(check), "{reason}"),
                    None => tracing::warn!(%check, "{reason}"),
                }
            }
        }
    }

    /// Whether `check` is still `DOWN` in the registry (not if the registry is gone).
    fn still_failing(&self, check: &str) -> bool {
        self.health.upgrade().is_some_and(|health| {
            health
                .report(Scope::Overall)
                .components
                .get(check)
                .is_some_and(|c| c.status == Status::Down)
        })
    }

    /// Every chosen peer's answer about `check`, asked at once, in the order chosen.
    async fn answers(
        &self,
        chosen: &[(String, std::net::SocketAddr)],
        check: &str,
    ) -> Vec<PeerAnswer> {
        let mut asking = JoinSet::new();
        for (i, (listed, address)) in chosen.iter().enumerate() {
            let (listed, address, check) = (listed.clone(), *address, check.to_owned());
            let timeout = self.options.timeout;
            asking.spawn(async move { (i, ask(address, &listed, &check, timeout).await) });
        }
        let mut answers: Vec<Option<PeerAnswer>> = vec![None; chosen.len()];
        // Every task ends within its own timeout.
        while let Some(joined) = asking.join_next().await {
            if let Ok((i, answer)) = joined {
                answers[i] = Some(PeerAnswer {
                    peer: chosen[i].0.clone(),
                    answer,
                });
            }
        }
        answers.into_iter().flatten().collect()
    }

    /// Sets (or clears) the registry's `outage` component when the verdicts changed what it
    /// says; returns `false` once the registry is gone.
    fn show(&mut self) -> bool {
        let wanted = self.outage.component();
        if wanted == self.shown {
            return true;
        }
        let Some(health) = self.health.upgrade() else {
            return false;
        };
        match &wanted {
            Some((status, reason, detail, probes)) => health.set_manual_with_detail(
                COMPONENT,
                *status,
                reason.clone(),
                Some(detail.clone()),
                *probes,
            ),
            None => {
                health.clear_manual(COMPONENT);
            }
        }
        self.shown = wanted;
        true
    }
}

#[cfg(test)]
mod tests {
    //! The watcher against real peers: health registries served over real sockets, each with a
    //! `database` check a restart cannot cure that the test fails and restores.

    use std::{
        net::SocketAddr,
        sync::{
            Arc, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use axum::{Router, extract::Request};
    use health::{CheckOutcome, Curability, Health, Probes, Scope, Status, check_fn};
    use tokio::net::TcpListener;

    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);
    const DEADLINE: Duration = Duration::from_secs(10);

    /// One replica: its registry, its database switch, where it answers, and how often it was
    /// asked about its database.
    struct Replica {
        health: Health,
        database: Arc<Mutex<CheckOutcome>>,
        address: SocketAddr,
        asked: Arc<AtomicUsize>,
    }

    impl Replica {
        async fn start() -> Replica {
            let database = Arc::new(Mutex::new(CheckOutcome::up()));
            let outcome = database.clone();
            let health = Health::builder()
                .interval(INTERVAL)
                .check(
                    check_fn("database", move || {
                        let outcome = outcome.lock().unwrap().clone();
                        async move { outcome }
                    })
                    .probes(Probes::ALL)
                    .curability(Curability::NotByRestart),
                )
                .build()
                .unwrap();
            health.refresh_now().await;
            health.spawn_refresher(std::future::pending());
            let asked = Arc::new(AtomicUsize::new(0));
            let counter = asked.clone();
            let app: Router = health::http::router(health.clone(), Default::default()).layer(
                tower::util::MapRequestLayer::new(move |request: Request| {
                    if request.uri().path() == "/health/database" {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    request
                }),
            );
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            Replica {
                health,
                database,
                address,
                asked,
            }
        }

        fn database(&self, outcome: CheckOutcome) {
            *self.database.lock().unwrap() = outcome;
        }

        fn asked(&self) -> usize {
            self.asked.load(Ordering::SeqCst)
        }

        /// Watches this replica's registry, asking `fleet` (which may list it too).
        fn watch(&self, fleet: &[&Replica], grace: Duration) -> Arc<Outage> {
            let outage = Arc::new(Outage::new(&self.health, "database", INTERVAL));
            let peers = (!fleet.is_empty()).then(|| {
                let list: Vec<String> = fleet.iter().map(|r| r.address.to_string()).collect();
                list.join(",").parse::<Peers>().unwrap()
            });
            let options = WatchOptions {
                peers,
                me: Me::new(self.address.port(), vec![self.address.ip()]),
                interval: INTERVAL,
                timeout: Duration::from_secs(1),
                grace,
            };
            Watcher::new(outage.clone(), &self.health, options).spawn();
            outage
        }

        /// Waits until the `outage` component says `reason` (or is gone, for `None`).
        async fn until_outage(&self, reason: Option<&str>) -> health::Report {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let report = self.health.report(Scope::Overall);
                let shown = report
                    .components
                    .get(COMPONENT)
                    .and_then(|c| c.reason.as_deref());
                if shown == reason {
                    return report;
                }
                assert!(
                    Instant::now() < deadline,
                    "outage is {shown:?}, not {reason:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    fn refused() -> CheckOutcome {
        CheckOutcome::down("connection refused")
    }

    async fn fleet() -> [Replica; 3] {
        [
            Replica::start().await,
            Replica::start().await,
            Replica::start().await,
        ]
    }

    #[tokio::test]
    async fn nothing_is_asked_while_the_dependency_works() {
        let replicas = fleet().await;
        let [a, b, c] = &replicas;
        let _outage = a.watch(&[a, b, c], Duration::from_secs(30));
        // Many intervals, and status changes of another component that wake the watcher.
        for _ in 0..10 {
            a.health
                .set_manual("other", Status::Down, "x", Probes::NONE);
            tokio::time::sleep(INTERVAL).await;
            a.health.clear_manual("other");
        }
        assert_eq!(b.asked() + c.asked() + a.asked(), 0);
    }

    #[tokio::test]
    async fn everyone_failing_is_a_shared_outage_that_restarts_nothing_and_clears_at_once() {
        let replicas = fleet().await;
        let [a, b, c] = &replicas;
        let outage = a.watch(&[a, b, c], Duration::from_millis(200));
        for replica in &replicas {
            replica.database(refused());
        }
        let report = a
            .until_outage(Some(
                "shared outage: 3 of 3 replicas cannot reach the database",
            ))
            .await;
        assert_eq!(
            report.status,
            Status::Down,
            "/health says the database cannot serve"
        );
        assert_eq!(report.components[COMPONENT].status, Status::Degraded);
        let detail = report.components[COMPONENT].detail.clone().unwrap();
        assert!(
            detail.contains("cannot reach it (connection refused)"),
            "{detail}"
        );
        assert!(outage.store_outage().is_some());
        // Long past the grace: still nothing restarts, and the replica stays in rotation.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(a.health.report(Scope::Liveness).http_status(), 200);
        assert_eq!(a.health.report(Scope::Readiness).http_status(), 200);
        assert_eq!(a.asked(), 0, "a replica never asks itself");

        a.database(CheckOutcome::up());
        a.until_outage(None).await;
        assert_eq!(outage.store_outage(), None);
        assert_eq!(a.health.report(Scope::Overall).status, Status::Up);
    }

    #[tokio::test]
    async fn failing_alone_is_a_local_fault_out_of_readiness_then_liveness_after_the_grace() {
        let replicas = fleet().await;
        let [a, b, c] = &replicas;
        let grace = Duration::from_millis(500);
        let outage = a.watch(&[a, b, c], grace);
        a.database(refused());
        let started = Instant::now();
        let report = a
            .until_outage(Some(
                "local fault: 2 of 3 replicas reach the database, this one cannot",
            ))
            .await;
        assert_eq!(report.components[COMPONENT].status, Status::Down);
        assert_eq!(a.health.report(Scope::Readiness).http_status(), 503);
        assert_eq!(
            a.health.report(Scope::Liveness).http_status(),
            200,
            "not before the grace"
        );
        assert_eq!(outage.store_outage(), None, "lookups are not turned away");
        let deadline = started + DEADLINE;
        while a.health.report(Scope::Liveness).http_status() != 503 {
            assert!(Instant::now() < deadline, "liveness never failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(started.elapsed() >= grace);

        a.database(CheckOutcome::up());
        a.until_outage(None).await;
        assert_eq!(a.health.report(Scope::Liveness).http_status(), 200);
        assert_eq!(a.health.report(Scope::Readiness).http_status(), 200);
    }

    #[tokio::test]
    async fn peers_are_asked_at_most_once_per_interval_each() {
        let replicas = fleet().await;
        let [a, b, c] = &replicas;
        let _outage = a.watch(&[a, b, c], Duration::from_secs(30));
        for replica in &replicas {
            replica.database(refused());
        }
        a.until_outage(Some(
            "shared outage: 3 of 3 replicas cannot reach the database",
        ))
        .await;
        let (b0, c0) = (b.asked(), c.asked());
        let window = Duration::from_secs(1);
        tokio::time::sleep(window).await;
        let intervals = (window.as_millis() / INTERVAL.as_millis()) as usize;
        for (peer, asked) in [(b.asked() - b0, "b"), (c.asked() - c0, "c")] {
            assert!(
                peer >= 1 && peer <= intervals + 1,
                "{asked} asked {peer} times"
            );
        }
    }

    #[tokio::test]
    async fn without_peers_or_answers_the_fault_is_treated_as_shared() {
        let alone = Replica::start().await;
        let outage = alone.watch(&[], Duration::from_millis(100));
        alone.database(refused());
        alone
            .until_outage(Some(
                "shared outage assumed: no peer to ask whether it reaches the database",
            ))
            .await;
        assert!(outage.store_outage().is_some());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(alone.health.report(Scope::Liveness).http_status(), 200);

        // Peers listed but not answering: a closed port.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        let replica = Replica::start().await;
        let outage = Arc::new(Outage::new(&replica.health, "database", INTERVAL));
        let options = WatchOptions {
            peers: Some(format!("{gone},{}", replica.address).parse().unwrap()),
            me: Me::new(replica.address.port(), vec![replica.address.ip()]),
            interval: INTERVAL,
            timeout: Duration::from_secs(1),
            grace: Duration::from_millis(100),
        };
        Watcher::new(outage, &replica.health, options).spawn();
        replica.database(refused());
        replica
            .until_outage(Some(
                "shared outage assumed: none of the 1 peers asked answered whether it reaches \
                 the database",
            ))
            .await;
    }

    #[tokio::test]
    async fn the_watcher_ends_with_the_registry_and_does_not_keep_it_alive() {
        let health = Health::builder()
            .interval(INTERVAL)
            .check(
                check_fn("database", || async { CheckOutcome::down("refused") })
                    .curability(Curability::NotByRestart),
            )
            .build()
            .unwrap();
        health.refresh_now().await;
        let outage = Arc::new(Outage::new(&health, "database", INTERVAL));
        let options = WatchOptions {
            peers: None,
            me: Me::new(1, vec![]),
            interval: INTERVAL,
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
        };
        let weak = health.downgrade();
        let task = Watcher::new(outage.clone(), &health, options).spawn();
        let deadline = Instant::now() + DEADLINE;
        while outage.store_outage().is_none() {
            assert!(Instant::now() < deadline, "no verdict");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(health);
        assert!(
            weak.upgrade().is_none(),
            "the watcher keeps the registry alive"
        );
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the watcher outlived its registry")
            .unwrap();
    }
}
