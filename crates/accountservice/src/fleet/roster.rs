//! The replicas this replica knows of, what each said last, and the view rendered from them.
//!
//! Pure bookkeeping: no I/O, no clock of its own (the caller passes `now`), so every rule about
//! replicas that stop answering, vanish from DNS or are replaced is tested here without sockets.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use serde::Serialize;

use super::history::{HEALTH_STATUSES, PeerHistory, PeerTransition};
use super::peers::Target;
use super::time::{rfc3339, sort_key};

/// The status of a replica that resolves but did not give a health answer this time.
pub const UNREACHABLE: &str = "UNREACHABLE";

/// The status of a replica that is no longer among the peers (gone from DNS or replaced).
pub const GONE: &str = "GONE";

/// Every status the view can show, best first: the replicas' own, then the view's.
pub const VIEW_STATUSES: [&str; 7] = [
    "UP",
    "UNKNOWN",
    "DEGRADED",
    "OUT_OF_SERVICE",
    "DOWN",
    UNREACHABLE,
    GONE,
];

/// The most replicas kept, answering or not (four times the peers asked in one round).
pub const MAX_KNOWN: usize = 1024;

/// The merged transitions shown, newest first.
pub const MAX_VIEW_TRANSITIONS: usize = 200;

/// What is known about one replica.
#[derive(Debug, Clone)]
struct Known {
    address: String,
    /// Where it was last reached; used to ask again when a lookup fails.
    connect: Option<std::net::SocketAddr>,
    status: &'static str,
    reason: Option<String>,
    /// When `status` last changed: the replica's own `since` while it answers.
    since: String,
    last_seen: Option<SystemTime>,
    /// When it stopped answering or vanished; `None` while it answers.
    missing_since: Option<SystemTime>,
    /// Its last health answer.
    answer: Option<PeerHistory>,
}

/// The replicas known, keyed by listed address, plus replaced ones kept for a while.
#[derive(Debug, Default)]
pub struct Roster {
    current: BTreeMap<String, Known>,
    /// Replicas that answered at an address now used by another instance.
    replaced: Vec<Known>,
}

/// The outcome of asking one replica.
pub type Outcome = Result<PeerHistory, String>;

impl Roster {
    /// The replicas to ask again when a lookup failed: every one not gone, where last reached.
    pub fn fallback_targets(&self) -> Vec<Target> {
        self.current
            .values()
            .filter(|known| known.status != GONE)
            .map(|known| Target {
                listed: known.address.clone(),
                connect: known.connect,
            })
            .collect()
    }

    /// Records one round: `asked` are the replicas asked with their outcomes; `listed` every
    /// address still among the peers (asked or not, e.g. past the cap); known replicas in
    /// neither are gone. `gone_reason` says why they are; `retention` is how long a replica
    /// that stopped answering or vanished stays listed.
    pub fn record(
        &mut self,
        asked: Vec<(Target, Outcome)>,
        listed: &[String],
        gone_reason: &str,
        retention: Duration,
        now: SystemTime,
    ) {
        let stamp = rfc3339(now);
        for (target, outcome) in asked {
            match outcome {
                Ok(answer) => self.answered(target, answer, now, &stamp),
                Err(reason) => self.unreachable(target, reason, now, &stamp),
            }
        }
        for known in self.current.values_mut() {
            if listed.binary_search(&known.address).is_err() && known.status != GONE {
                known.status = GONE;
                known.reason = Some(gone_reason.to_owned());
                known.since = stamp.clone();
                known.missing_since.get_or_insert(now);
            }
        }
        let keep = |known: &Known| {
            known.missing_since.is_none_or(|missing| {
                now.duration_since(missing).unwrap_or(Duration::ZERO) < retention
            })
        };
        self.current.retain(|_, known| keep(known));
        self.replaced.retain(keep);
        self.forget_oldest_missing();
    }

    /// Keeps at most [`MAX_KNOWN`] replicas: a service replacing replicas faster than the
    /// retention lets them go must not grow the view without bound. The longest missing go first;
    /// replicas that answer are never dropped.
    fn forget_oldest_missing(&mut self) {
        let excess = (self.current.len() + self.replaced.len()).saturating_sub(MAX_KNOWN);
        if excess == 0 {
            return;
        }
        let mut missing: Vec<SystemTime> = self
            .current
            .values()
            .chain(&self.replaced)
            .filter_map(|known| known.missing_since)
            .collect();
        missing.sort();
        let Some(&cutoff) = missing.get(excess.min(missing.len()).saturating_sub(1)) else {
            return;
        };
        let drop = |known: &Known| known.missing_since.is_some_and(|since| since <= cutoff);
        self.replaced.retain(|known| !drop(known));
        self.current.retain(|_, known| !drop(known));
    }

    fn answered(&mut self, target: Target, answer: PeerHistory, now: SystemTime, stamp: &str) {
        let status = HEALTH_STATUSES
            .into_iter()
            .find(|status| *status == answer.status)
            .unwrap_or("UNKNOWN");
        if let Some(previous) = self.current.get(&target.listed)
            && let Some(before) = &previous.answer
            && before.instance != answer.instance
        {
            let mut old = previous.clone();
            old.status = GONE;
            old.reason = Some(format!(
                "replaced by {} at the same address",
                answer.instance
            ));
            old.since = stamp.to_owned();
            old.missing_since = Some(now);
            self.replaced.push(old);
        }
        let since = answer.since.clone().unwrap_or_else(|| stamp.to_owned());
        self.current.insert(
            target.listed.clone(),
            Known {
                address: target.listed,
                connect: target.connect,
                status,
                reason: answer.reason.clone(),
                since,
                last_seen: Some(now),
                missing_since: None,
                answer: Some(answer),
            },
        );
    }

    fn unreachable(&mut self, target: Target, reason: String, now: SystemTime, stamp: &str) {
        let known = self
            .current
            .entry(target.listed.clone())
            .or_insert_with(|| Known {
                address: target.listed.clone(),
                connect: None,
                status: UNREACHABLE,
                reason: None,
                since: stamp.to_owned(),
                last_seen: None,
                missing_since: None,
                answer: None,
            });
        if known.status != UNREACHABLE {
            known.since = stamp.to_owned();
        }
        known.status = UNREACHABLE;
        known.reason = Some(reason);
        known.connect = target.connect.or(known.connect);
        known.missing_since.get_or_insert(now);
    }

    /// The view of every replica, live ones first (by address), then gone ones.
    pub fn view(
        &self,
    ) -> (
        Vec<ReplicaView>,
        Vec<TransitionView>,
        BTreeMap<&'static str, usize>,
    ) {
        let mut all: Vec<&Known> = self.current.values().chain(&self.replaced).collect();
        all.sort_by(|a, b| {
            (a.status == GONE, &a.address, &a.since).cmp(&(b.status == GONE, &b.address, &b.since))
        });
        let mut counts: BTreeMap<&'static str, usize> =
            VIEW_STATUSES.iter().map(|status| (*status, 0)).collect();
        let mut transitions = Vec::new();
        let replicas = all
            .into_iter()
            .map(|known| {
                *counts.entry(known.status).or_default() += 1;
                let answer = known.answer.as_ref();
                if let Some(answer) = answer {
                    transitions.extend(answer.transitions.iter().map(|t| (known, answer, t)));
                }
                let lost = known.missing_since.is_some();
                ReplicaView {
                    address: known.address.clone(),
                    instance: answer.map(|a| a.instance.clone()),
                    version: answer.and_then(|a| a.version.clone()),
                    started_at: answer.and_then(|a| a.started_at.clone()),
                    status: known.status,
                    reason: known.reason.clone(),
                    since: known.since.clone(),
                    last_seen: known.last_seen.map(rfc3339),
                    last_status: if lost {
                        answer.map(|a| a.status.clone())
                    } else {
                        None
                    },
                    last_reason: if lost {
                        answer.and_then(|a| a.reason.clone())
                    } else {
                        None
                    },
                }
            })
            .collect();
        transitions.sort_by_cached_key(|(_, _, t)| std::cmp::Reverse(sort_key(&t.at)));
        transitions.truncate(MAX_VIEW_TRANSITIONS);
        let transitions = transitions
            .into_iter()
            .map(|(known, answer, t)| TransitionView::new(known, answer, t))
            .collect();
        (replicas, transitions, counts)
    }
}

/// One replica in `GET /health/fleet`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = FleetReplica))]
pub struct ReplicaView {
    /// The `host:port` asked.
    pub address: String,
    /// Its instance name, from its last answer.
    pub instance: Option<String>,
    /// Its version, from its last answer.
    pub version: Option<String>,
    /// When it started, from its last answer.
    pub started_at: Option<String>,
    /// Its own status while it answers, else `UNREACHABLE` or `GONE`.
    pub status: &'static str,
    /// Its own reason while it answers, else why it is unreachable or gone.
    pub reason: Option<String>,
    /// When `status` last changed.
    pub since: String,
    /// When it last answered.
    pub last_seen: Option<String>,
    /// While unreachable or gone: the status of its last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// While unreachable or gone: the reason of its last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
}

/// One transition of one replica in the merged list.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = FleetTransition))]
pub struct TransitionView {
    /// The replica's address.
    pub address: String,
    /// The replica's instance name.
    pub instance: String,
    /// When, as the replica reported it.
    pub at: String,
    /// The component that changed (absent for a scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The scope whose aggregate changed (absent for a component).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Status before.
    pub from: String,
    /// Status after.
    pub to: String,
    /// Why.
    pub reason: Option<String>,
}

impl TransitionView {
    fn new(known: &Known, answer: &PeerHistory, t: &PeerTransition) -> Self {
        Self {
            address: known.address.clone(),
            instance: answer.instance.clone(),
            at: t.at.clone(),
            component: t.component.clone(),
            scope: t.scope.clone(),
            from: t.from.clone(),
            to: t.to.clone(),
            reason: t.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn target(address: &str) -> Target {
        Target {
            listed: address.into(),
            connect: address.parse().ok(),
        }
    }

    fn answer(instance: &str, status: &str, reason: Option<&str>) -> Outcome {
        let reason = reason.map_or("null".to_owned(), |r| format!("\"{r}\""));
        let body = format!(
            r#"{{"instance":"{instance}","status":"{status}","reason":{reason},"since":"2026-12-02T13:00:00Z",
            "transitions":[{{"at":"2026-12-02T13:00:00Z","scope":"overall","from":"UP","to":"{status}","reason":{reason}}}]}}"#
        );
        Ok(PeerHistory::parse(body.as_bytes()).unwrap())
    }

    fn at(minutes: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_216_400) + MINUTE * minutes as u32
    }

    fn statuses(roster: &Roster) -> Vec<(String, &'static str, Option<String>)> {
        roster
            .view()
            .0
            .into_iter()
            .map(|r| (r.address, r.status, r.reason))
            .collect()
    }

    #[test]
    fn answers_show_each_replicas_own_status_and_counts() {
        let mut roster = Roster::default();
        let listed = ["10.0.0.1:6767".to_owned(), "10.0.0.2:6767".to_owned()];
        roster.record(
            vec![
                (target(&listed[0]), answer("a", "UP", None)),
                (
                    target(&listed[1]),
                    answer("b", "DOWN", Some("database: read failed")),
                ),
            ],
            &listed,
            "gone",
            10 * MINUTE,
            at(0),
        );
        let (replicas, transitions, counts) = roster.view();
        assert_eq!(replicas[0].status, "UP");
        assert_eq!(replicas[1].status, "DOWN");
        assert_eq!(replicas[1].reason.as_deref(), Some("database: read failed"));
        assert_eq!(replicas[1].instance.as_deref(), Some("b"));
        assert!(replicas[1].last_status.is_none());
        assert_eq!(counts["UP"], 1);
        assert_eq!(counts["DOWN"], 1);
        assert_eq!(counts[GONE], 0);
        assert_eq!(transitions.len(), 2);
    }

    #[test]
    fn a_replica_that_stops_answering_keeps_its_last_state_for_the_retention() {
        let mut roster = Roster::default();
        let listed = ["10.0.0.1:6767".to_owned()];
        let ask = |outcome| vec![(target("10.0.0.1:6767"), outcome)];
        roster.record(
            ask(answer("a", "DOWN", Some("testability: forced unhealthy"))),
            &listed,
            "gone",
            10 * MINUTE,
            at(0),
        );
        roster.record(
            ask(Err("no answer within 1s".into())),
            &listed,
            "gone",
            10 * MINUTE,
            at(1),
        );
        let (replicas, _, _) = roster.view();
        assert_eq!(replicas[0].status, UNREACHABLE);
        assert_eq!(replicas[0].reason.as_deref(), Some("no answer within 1s"));
        assert_eq!(replicas[0].last_status.as_deref(), Some("DOWN"));
        assert_eq!(
            replicas[0].last_reason.as_deref(),
            Some("testability: forced unhealthy")
        );
        assert_eq!(
            replicas[0].last_seen.as_deref(),
            Some(rfc3339(at(0)).as_str())
        );
        assert_eq!(replicas[0].since, rfc3339(at(1)));
        // Still listed just before the retention ends, dropped after.
        roster.record(
            ask(Err("x".into())),
            &listed,
            "gone",
            10 * MINUTE,
            at(10) - Duration::from_secs(1),
        );
        assert_eq!(roster.view().0.len(), 1);
        roster.record(ask(Err("x".into())), &listed, "gone", 10 * MINUTE, at(11));
        assert!(roster.view().0.is_empty());
    }

    #[test]
    fn a_replica_no_longer_listed_is_gone_with_its_last_reason() {
        let mut roster = Roster::default();
        let both = ["10.0.0.1:6767".to_owned(), "10.0.0.2:6767".to_owned()];
        roster.record(
            vec![
                (target(&both[0]), answer("a", "UP", None)),
                (
                    target(&both[1]),
                    answer("b", "DOWN", Some("testability: forced unhealthy")),
                ),
            ],
            &both,
            "no longer in DNS",
            10 * MINUTE,
            at(0),
        );
        let now = ["10.0.0.1:6767".to_owned(), "10.0.0.3:6767".to_owned()];
        roster.record(
            vec![
                (target(&now[0]), answer("a", "UP", None)),
                (target(&now[1]), answer("c", "UP", None)),
            ],
            &now,
            "no longer in DNS",
            10 * MINUTE,
            at(1),
        );
        let replicas = roster.view().0;
        let gone = replicas.last().unwrap();
        assert_eq!(gone.address, "10.0.0.2:6767");
        assert_eq!(gone.status, GONE);
        assert_eq!(gone.reason.as_deref(), Some("no longer in DNS"));
        assert_eq!(
            gone.last_reason.as_deref(),
            Some("testability: forced unhealthy")
        );
        assert_eq!(
            statuses(&roster)[..2],
            [
                ("10.0.0.1:6767".into(), "UP", None),
                ("10.0.0.3:6767".into(), "UP", None)
            ]
        );
    }

    #[test]
    fn after_a_failed_lookup_every_replica_not_gone_is_asked_again() {
        let mut roster = Roster::default();
        let both = ["10.0.0.1:6767".to_owned(), "10.0.0.2:6767".to_owned()];
        roster.record(
            vec![(target(&both[0]), answer("a", "UP", None))],
            &both[..1],
            "gone",
            MINUTE,
            at(0),
        );
        roster.record(
            vec![(target(&both[1]), answer("b", "UP", None))],
            &both[1..],
            "gone",
            MINUTE,
            at(0),
        );
        let again: Vec<String> = roster
            .fallback_targets()
            .into_iter()
            .map(|t| t.listed)
            .collect();
        assert_eq!(again, ["10.0.0.2:6767"], "the gone one is not asked");
    }

    #[test]
    fn churn_never_grows_the_roster_past_its_bound() {
        let mut roster = Roster::default();
        for round in 0..(MAX_KNOWN + 50) {
            let address = format!("10.1.{}.{}:6767", round / 250, round % 250);
            let listed = [address.clone()];
            roster.record(
                vec![(target(&address), answer("x", "UP", None))],
                &listed,
                "gone",
                10 * MINUTE,
                at(0) + Duration::from_millis(round as u64),
            );
        }
        let (replicas, _, counts) = roster.view();
        assert!(replicas.len() <= MAX_KNOWN, "{}", replicas.len());
        assert_eq!(counts["UP"], 1, "the replica answering now is kept");
    }

    #[test]
    fn a_new_instance_at_a_known_address_lists_the_old_one_as_replaced() {
        let mut roster = Roster::default();
        let listed = ["10.0.0.1:6767".to_owned()];
        let ask = |outcome| vec![(target("10.0.0.1:6767"), outcome)];
        roster.record(
            ask(answer("old", "DOWN", Some("x: y"))),
            &listed,
            "gone",
            MINUTE,
            at(0),
        );
        roster.record(
            ask(answer("new", "UP", None)),
            &listed,
            "gone",
            MINUTE,
            at(0),
        );
        let replicas = roster.view().0;
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[0].instance.as_deref(), Some("new"));
        assert_eq!(replicas[1].status, GONE);
        assert_eq!(
            replicas[1].reason.as_deref(),
            Some("replaced by new at the same address")
        );
        roster.record(
            ask(answer("new", "UP", None)),
            &listed,
            "gone",
            MINUTE,
            at(2),
        );
        assert_eq!(roster.view().0.len(), 1);
    }
}
