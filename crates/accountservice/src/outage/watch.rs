//! [`Watcher`]: the background task that notices a failing check of a shared dependency, asks a
//! few peers about it at most once per health interval, records the verdict in [`Outage`] and
//! shows it in the health registry; and clears it the moment the check works again.
//!
//! A peer's "I reach it" counts only if its check began after this replica's failing check did:
//! in the first moments of an outage a peer's cached result can predate it, and counting that
//! as "reaches" would make a shared outage look like this replica's own fault. Such an answer is
//! not yet known; the peers that gave one are asked once more as soon as their next check is due
//! (within the interval), and the verdict waits for them.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use health::{ComponentKind, Curability, Health, Probes, Scope, Status, WeakHealth};
use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
    time::{Instant, MissedTickBehavior},
};

use super::{
    ask::{Reply, ask},
    sample::{self, Me},
    state::{COMPONENT, Outage},
    verdict::{Answer, PeerAnswer, Verdict},
};
use crate::fleet::Peers;

/// What a peer's "reaches" from a check older than this replica's failure counts as, once asking
/// again did not bring a newer one.
const NOT_SINCE: &str = "its last check began before this replica's failed";

/// The longest wait, past when a peer's next check is due, before asking it again: room for
/// the check to finish and the answer to travel (a tenth of the interval when that is less).
const FOLLOW_UP_MARGIN: Duration = Duration::from_millis(50);

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
    /// For each failing check, when its failure began as far as can be told: when its first
    /// failing check began, on this replica's clock.
    failing_since: BTreeMap<String, SystemTime>,
    /// For each failing check, the question still to ask again before judging.
    follow_ups: BTreeMap<String, FollowUp>,
    /// What was last set on the registry, so an unchanged verdict is not set again.
    shown: Option<(Status, String, String, Probes)>,
}

/// Peers whose "reaches" came from a check older than this replica's failure, to be asked again
/// once their next check is due; the verdict waits for them.
#[derive(Debug)]
struct FollowUp {
    /// When to ask.
    at: Instant,
    /// The answers of the first question that count as they are.
    kept: Vec<PeerAnswer>,
    /// The peers to ask again.
    again: Vec<(String, SocketAddr)>,
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
            failing_since: BTreeMap::new(),
            follow_ups: BTreeMap::new(),
            shown: None,
        }
    }

    /// Runs the watcher until the registry is gone (the service stopped): on every change of a
    /// status in the registry, once per interval, and when a question is due again.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let follow_up = self.follow_ups.values().map(|f| f.at).min();
            tokio::select! {
                _ = ticker.tick() => {}
                () = until(follow_up) => {}
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
        let failing: Vec<(String, SystemTime)> = report
            .components
            .iter()
            .filter(|(name, c)| {
                c.kind == ComponentKind::Check
                    && c.curability == Curability::NotByRestart
                    && c.status == Status::Down
                    && watched.contains(name)
            })
            .map(|(name, c)| {
                // The failure began no later than the failing check did: a check that was
                // working when it began ends within its usual few milliseconds, so one that
                // failed began at most that long before the failure.
                (
                    name.clone(),
                    c.check_began().unwrap_or_else(SystemTime::now),
                )
            })
            .collect();
        for name in watched
            .iter()
            .filter(|name| !failing.iter().any(|(failing, _)| failing == *name))
        {
            self.failing_since.remove(name);
            self.follow_ups.remove(name);
            if let Some(verdict) = self.outage.recovered(name) {
                tracing::info!(check = %name, was = %verdict.reason(name), "shared dependency reached again");
            }
        }
        for (name, seen) in &failing {
            self.failing_since.entry(name.clone()).or_insert(*seen);
        }
        let failing: Vec<String> = failing.into_iter().map(|(name, _)| name).collect();
        let now = Instant::now();
        let due = self
            .last_asked
            .is_none_or(|at| now.saturating_duration_since(at) >= self.options.interval);
        if !failing.is_empty() && due {
            self.last_asked = Some(now);
            self.ask_about(&failing).await;
        } else {
            let ready: Vec<String> = self
                .follow_ups
                .iter()
                .filter(|(_, follow_up)| follow_up.at <= now)
                .map(|(name, _)| name.clone())
                .collect();
            for check in ready {
                if let Some(follow_up) = self.follow_ups.remove(&check) {
                    self.ask_again(&check, follow_up).await;
                }
            }
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

    /// Asks a sample of the peers about each failing check and records the verdicts, or, for a
    /// check whose answers came partly from checks older than its failure, when to ask again.
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
            // A new question replaces one still to be asked again.
            self.follow_ups.remove(check);
            let replies = self.replies(&chosen, check).await;
            self.conclude(check, Vec::new(), replies, true);
        }
    }

    /// Asks again the peers whose "reaches" predated the failure of `check`, and judges.
    async fn ask_again(&mut self, check: &str, follow_up: FollowUp) {
        let replies = self.replies(&follow_up.again, check).await;
        self.conclude(check, follow_up.kept, replies, false);
    }

    /// Judges `check` from the answers `kept` and the new `replies`, and records the verdict;
    /// or, when some reply is a "reaches" older than the failure and `may_ask_again`, schedules
    /// one more question to those peers for when their next check is due, within the interval.
    fn conclude(
        &mut self,
        check: &str,
        kept: Vec<PeerAnswer>,
        replies: Vec<((String, SocketAddr), Reply)>,
        may_ask_again: bool,
    ) {
        self.outage.asked(check, replies.len() as u64);
        // The check may have recovered while the peers were asked: a verdict on a fault that is
        // gone would keep this replica out of readiness until the next look.
        if !self.still_failing(check) {
            return;
        }
        let since = self
            .failing_since
            .get(check)
            .copied()
            .unwrap_or_else(SystemTime::now);
        let mut answers = kept;
        let mut again = Vec::new();
        let mut next_check: Option<SystemTime> = None;
        for ((peer, address), reply) in replies {
            match reply.began_after {
                Some(began) if reply.answer == Answer::Reaches && began < since => {
                    let due = began.checked_add(self.options.interval).unwrap_or(began);
                    next_check = Some(next_check.map_or(due, |latest| latest.max(due)));
                    again.push((peer.clone(), address));
                    answers.push(PeerAnswer {
                        peer,
                        answer: Answer::NoAnswer(NOT_SINCE.to_owned()),
                    });
                }
                _ => answers.push(PeerAnswer {
                    peer,
                    answer: reply.answer,
                }),
            }
        }
        if may_ask_again && let Some(next_check) = next_check {
            let margin = FOLLOW_UP_MARGIN.min(self.options.interval / 10);
            let wait = next_check
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                + margin;
            let at = Instant::now() + wait;
            // The next question of the interval is as soon: no need to ask again before it.
            let regular = self.last_asked.map(|last| last + self.options.interval);
            if regular.is_none_or(|regular| at < regular) {
                answers.retain(|a| !again.iter().any(|(peer, _)| *peer == a.peer));
                tracing::debug!(%check, peers = again.len(), ?wait, "a peer's answer predates this replica's failure; asking it again when its next check is due");
                self.follow_ups.insert(
                    check.to_owned(),
                    FollowUp {
                        at,
                        kept: answers,
                        again,
                    },
                );
                return;
            }
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

    /// Every chosen peer's reply about `check`, asked at once, in the order chosen.
    async fn replies(
        &self,
        chosen: &[(String, SocketAddr)],
        check: &str,
    ) -> Vec<((String, SocketAddr), Reply)> {
        let mut asking = JoinSet::new();
        for (i, (listed, address)) in chosen.iter().enumerate() {
            let (listed, address, check) = (listed.clone(), *address, check.to_owned());
            let timeout = self.options.timeout;
            asking.spawn(async move { (i, ask(address, &listed, &check, timeout).await) });
        }
        let mut replies: Vec<Option<Reply>> = vec![None; chosen.len()];
        // Every task ends within its own timeout.
        while let Some(joined) = asking.join_next().await {
            if let Ok((i, reply)) = joined {
                replies[i] = Some(reply);
            }
        }
        chosen
            .iter()
            .cloned()
            .zip(replies)
            .filter_map(|(peer, reply)| Some((peer, reply?)))
            .collect()
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

/// Completes at `at`, or never.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
            Replica::start_checking(true).await
        }

        /// With `refresher`, its check runs every interval; without, only when the test says.
        async fn start_checking(refresher: bool) -> Replica {
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
            if refresher {
                health.spawn_refresher(std::future::pending());
            }
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
            self.until_outage_never(reason, None).await
        }

        /// Waits until the `outage` component says `reason`, failing if it says something that
        /// starts with `never` on the way.
        async fn until_outage_never(
            &self,
            reason: Option<&str>,
            never: Option<&str>,
        ) -> health::Report {
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
                if let (Some(shown), Some(never)) = (shown, never) {
                    assert!(
                        !shown.starts_with(never),
                        "outage said {shown:?} on the way"
                    );
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
        // Whichever replica's check fails first, its peers' cached "reaches" from before the
        // failure never make it look like a fault of its own.
        let report = a
            .until_outage_never(
                Some("shared outage: 3 of 3 replicas cannot reach the database"),
                Some("local fault"),
            )
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
    async fn a_peer_s_answer_from_a_check_older_than_the_failure_is_not_counted_as_reaching_it() {
        let a = Replica::start().await;
        // Their checks run only when the test says: what they answer stays from before.
        let b = Replica::start_checking(false).await;
        let c = Replica::start_checking(false).await;
        let _outage = a.watch(&[&a, &b, &c], Duration::from_secs(30));
        for replica in [&a, &b, &c] {
            replica.database(refused());
        }
        // Asked, and asked again when their next check was due: still from before, so not
        // known either way. Never "local fault: 2 of 3 replicas reach the database".
        let report = a
            .until_outage_never(
                Some(
                    "shared outage assumed: none of the 2 peers asked answered whether it \
                     reaches the database",
                ),
                Some("local fault"),
            )
            .await;
        let detail = report.components[COMPONENT].detail.clone().unwrap();
        assert!(
            detail.contains("no answer (its last check began before this replica's failed)"),
            "{detail}"
        );
        assert!(b.asked() >= 2 && c.asked() >= 2, "not asked again");

        // Once they have checked since, what they say counts.
        b.health.refresh_now().await;
        c.health.refresh_now().await;
        a.until_outage(Some(
            "shared outage: 3 of 3 replicas cannot reach the database",
        ))
        .await;
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
