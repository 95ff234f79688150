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

    /// Every chosen peer's answer about `check`, asked at once, in the order chosen.
    async fn answers(&self, chosen: &[(String, std::net::SocketAddr)], check: &str) -> Vec<PeerAnswer> {
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
