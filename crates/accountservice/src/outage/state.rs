//! [`Outage`]: the verdict on each failing check of a dependency every replica shares, as the
//! lookups, the health registry and `/metrics` read it.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use health::{ComponentKind, Curability, Health, Probes, Scope, Status};
use tokio::time::Instant;

use super::verdict::{PeerAnswer, Verdict, describe};

/// The manual health component that carries the verdict: `/health`, the probes it fails,
/// `/health/history` and so the fleet view show it as `outage`.
pub const COMPONENT: &str = "outage";

/// The verdict on one check, and what it was concluded from.
#[derive(Debug, Clone)]
pub struct Record {
    /// `None` while the check works.
    pub verdict: Option<Verdict>,
    /// The peers asked last and their answers (at most [`super::SAMPLE`]).
    pub answers: Vec<PeerAnswer>,
    /// When the verdict last changed (or the record was made).
    pub changed_at: SystemTime,
    /// Since when the verdict has been local without a break.
    pub local_since: Option<Instant>,
    /// Whether a local fault has outlasted the grace: the restart signal fails too.
    pub restart: bool,
    /// Peers asked about this check since the start.
    pub asked: u64,
}

impl Record {
    fn new() -> Self {
        Self {
            verdict: None,
            answers: Vec::new(),
            changed_at: SystemTime::now(),
            local_since: None,
            restart: false,
            asked: 0,
        }
    }
}

/// The verdicts of this replica, one [`Record`] per check of a shared dependency (a fixed set,
/// read from the registry at start: the labels of `/metrics` stay bounded).
#[derive(Debug)]
pub struct Outage {
    /// The check behind the account store (`database`): its shared outage turns lookups into
    /// an immediate 503.
    store_check: String,
    /// Set while the store's check is in a shared outage: the one atomic load a lookup pays.
    store_out: AtomicBool,
    /// The public reason lookups answer with while `store_out` is set.
    store_reason: RwLock<Arc<str>>,
    /// What lookups answer in `Retry-After`: one health interval, when the next verdict is due.
    retry_after: u64,
    records: RwLock<BTreeMap<String, Record>>,
}

impl Outage {
    /// The verdicts over `health`'s checks that a restart cannot cure; `store_check` names the
    /// store's; lookups are told to retry after `interval`.
    pub fn new(health: &Health, store_check: &str, interval: Duration) -> Self {
        let records = health
            .report(Scope::Overall)
            .components
            .into_iter()
            .filter(|(_, c)| {
                c.kind == ComponentKind::Check && c.curability == Curability::NotByRestart
            })
            .map(|(name, _)| (name, Record::new()))
            .collect();
        Self {
            store_check: store_check.to_owned(),
            store_out: AtomicBool::new(false),
            store_reason: RwLock::new(Arc::from("")),
            retry_after: interval.as_secs_f64().ceil().max(1.0) as u64,
            records: RwLock::new(records),
        }
    }

    /// What lookups the store fails are told in `Retry-After`: one health interval in whole
    /// seconds (at least 1), when the next verdict is due.
    pub fn retry_after(&self) -> u64 {
        self.retry_after
    }

    /// The checks watched: those a restart cannot cure.
    pub fn watched(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// While the store is in a shared outage: the reason and the seconds to retry after.
    pub fn store_outage(&self) -> Option<(Arc<str>, u64)> {
        if !self.store_out.load(Ordering::Acquire) {
            return None;
        }
        let reason = self
            .store_reason
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Some((reason, self.retry_after))
    }

    /// Every record, by check name.
    pub fn records(&self) -> BTreeMap<String, Record> {
        self.read().clone()
    }

    /// Counts `peers` more questions about `check` (a question asked again counts again).
    pub fn asked(&self, check: &str, peers: u64) {
        self.update(check, |record| record.asked += peers);
    }

    /// Records a new verdict on `check` from `answers`; returns the verdict it replaced when it
    /// changed.
    pub fn judged(
        &self,
        check: &str,
        verdict: Verdict,
        answers: Vec<PeerAnswer>,
        now: Instant,
    ) -> Option<Option<Verdict>> {
        let changed = self.update(check, |record| {
            let before = record.verdict;
            record.answers = answers;
            if verdict.is_local() {
                record.local_since.get_or_insert(now);
            } else {
                record.local_since = None;
                record.restart = false;
            }
            record.verdict = Some(verdict);
            (before != Some(verdict)).then_some(before)
        });
        self.sync_store(check);
        changed.flatten()
    }

    /// Marks `check` working again; returns the verdict it cleared, if any.
    pub fn recovered(&self, check: &str) -> Option<Verdict> {
        let cleared = self
            .update(check, |record| {
                let before = record.verdict.take();
                record.local_since = None;
                record.restart = false;
                before
            })
            .flatten();
        self.sync_store(check);
        cleared
    }

    /// Turns the restart signal on for every local verdict that has lasted `grace`; returns the
    /// checks it turned on for.
    pub fn escalate(&self, now: Instant, grace: Duration) -> Vec<String> {
        let mut records = self.write();
        let mut escalated = Vec::new();
        for (name, record) in records.iter_mut() {
            if let Some(since) = record.local_since
                && !record.restart
                && now.saturating_duration_since(since) >= grace
            {
                record.restart = true;
                escalated.push(name.clone());
            }
        }
        escalated
    }

    /// The manual component the verdicts make, if any: local faults first (`DOWN`, failing
    /// readiness, and liveness once the grace is over), else shared outages (`DEGRADED`, failing
    /// nothing: shown in every scope so each says why).
    pub fn component(&self) -> Option<(Status, String, String, Probes)> {
        let records = self.read();
        let judged: Vec<(&String, &Record, Verdict)> = records
            .iter()
            .filter_map(|(name, r)| r.verdict.map(|v| (name, r, v)))
            .collect();
        if judged.is_empty() {
            return None;
        }
        let local = judged.iter().any(|(_, _, v)| v.is_local());
        let shown: Vec<_> = judged
            .into_iter()
            .filter(|(_, _, v)| v.is_local() == local)
            .collect();
        let reason = shown
            .iter()
            .map(|(name, _, v)| v.reason(name))
            .collect::<Vec<_>>()
            .join("; ");
        let detail = shown
            .iter()
            .map(|(name, r, _)| format!("{name}: {}", describe(&r.answers)))
            .collect::<Vec<_>>()
            .join("; ");
        Some(if local {
            let restart = shown.iter().any(|(_, r, _)| r.restart);
            let probes = if restart {
                Probes::ALL
            } else {
                Probes::READINESS
            };
            (Status::Down, reason, detail, probes)
        } else {
            (Status::Degraded, reason, detail, Probes::ALL)
        })
    }

    fn update<T>(&self, check: &str, change: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let mut records = self.write();
        let record = records.get_mut(check)?;
        let before = record.verdict;
        let result = change(record);
        if record.verdict != before {
            record.changed_at = SystemTime::now();
        }
        Some(result)
    }

    /// Mirrors the store check's verdict into what lookups read.
    fn sync_store(&self, check: &str) {
        if check != self.store_check {
            return;
        }
        let verdict = self.read().get(check).and_then(|r| r.verdict);
        match verdict {
            Some(verdict) if !verdict.is_local() => {
                *self
                    .store_reason
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::from(verdict.reason(check));
                self.store_out.store(true, Ordering::Release);
            }
            _ => self.store_out.store(false, Ordering::Release),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Record>> {
        // Nothing that can panic runs under the lock, so a poisoned one still holds whole records.
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Record>> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use health::{CheckOutcome, check_fn};

    use super::*;
    use crate::outage::verdict::Answer;

    fn outage() -> Outage {
        let health = Health::builder()
            .check(
                check_fn("database", || async { CheckOutcome::up() })
                    .curability(Curability::NotByRestart),
            )
            .check(check_fn("disk", || async { CheckOutcome::up() }))
            .build()
            .unwrap();
        Outage::new(&health, "database", Duration::from_millis(1500))
    }

    fn answers(answer: Answer, n: usize) -> Vec<PeerAnswer> {
        (0..n)
            .map(|i| PeerAnswer {
                peer: format!("10.0.1.{i}:6768"),
                answer: answer.clone(),
            })
            .collect()
    }

    #[test]
    fn only_checks_a_restart_cannot_cure_are_watched() {
        assert_eq!(outage().watched(), ["database"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_outage_of_the_store_turns_lookups_away_until_it_recovers() {
        let outage = outage();
        assert_eq!(outage.store_outage(), None);
        let cannot = answers(Answer::CannotReach("refused".into()), 2);
        let verdict = Verdict::judge(&cannot);
        assert_eq!(
            outage.judged("database", verdict, cannot, Instant::now()),
            Some(None)
        );
        let (reason, retry_after) = outage.store_outage().unwrap();
        assert_eq!(
            &*reason,
            "shared outage: 3 of 3 replicas cannot reach the database"
        );
        assert_eq!(retry_after, 2);
        let (status, _, detail, probes) = outage.component().unwrap();
        assert_eq!((status, probes), (Status::Degraded, Probes::ALL));
        assert!(
            detail.starts_with("database: 10.0.1.0:6768 cannot reach it"),
            "{detail}"
        );

        assert_eq!(outage.recovered("database"), Some(verdict));
        assert_eq!(outage.store_outage(), None);
        assert_eq!(outage.component(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_fault_fails_readiness_then_after_the_grace_the_restart_signal() {
        let outage = outage();
        let grace = Duration::from_secs(10);
        let reach = answers(Answer::Reaches, 2);
        let verdict = Verdict::judge(&reach);
        outage.judged("database", verdict, reach.clone(), Instant::now());
        // Lookups are not turned away: the replica leaves rotation instead.
        assert_eq!(outage.store_outage(), None);
        let (status, reason, _, probes) = outage.component().unwrap();
        assert_eq!((status, probes), (Status::Down, Probes::READINESS));
        assert_eq!(
            reason,
            "local fault: 2 of 3 replicas reach the database, this one cannot"
        );

        tokio::time::advance(grace - Duration::from_millis(1)).await;
        // Judged local again: the grace counts from the first local verdict.
        outage.judged("database", verdict, reach, Instant::now());
        assert!(outage.escalate(Instant::now(), grace).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(outage.escalate(Instant::now(), grace), ["database"]);
        assert_eq!(outage.component().unwrap().3, Probes::ALL);

        // Most peers fail too now: a shared outage, and nothing restarts any more.
        let cannot = answers(Answer::CannotReach("refused".into()), 2);
        outage.judged("database", Verdict::judge(&cannot), cannot, Instant::now());
        let (status, _, _, _) = outage.component().unwrap();
        assert_eq!(status, Status::Degraded);
        assert!(!outage.records()["database"].restart);
        assert!(outage.store_outage().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_is_not_watched_is_not_recorded() {
        let outage = outage();
        let verdict = Verdict::judge(&[]);
        assert_eq!(
            outage.judged("disk", verdict, Vec::new(), Instant::now()),
            None
        );
        assert_eq!(outage.component(), None);
    }
}
