//! The replicas this replica knows of and what each said last, round after round: those that
//! stop answering, vanish or are past the cap of peers asked are kept for the retention, an
//! address answering as a new instance lists the old one as replaced, and the whole stays
//! within [`MAX_KNOWN`] replicas and a byte budget.
//!
//! Pure bookkeeping: no I/O, no clock of its own (the caller passes `now`), so every rule about
//! replicas that stop answering, vanish from DNS or are replaced is tested here without sockets.

use std::{
    collections::BTreeMap,
    mem::size_of,
    time::{Duration, SystemTime},
};

use super::history::{HEALTH_STATUSES, PeerHistory, cut};
use super::known::{GONE, Known, NOT_ASKED, UNREACHABLE};
use super::peers::Target;
use super::render::{ReplicaView, TransitionView, render};
use super::slots::resolve_slots;
use super::time::rfc3339;

/// The most replicas kept, answering or not (four times the peers asked in one round).
pub const MAX_KNOWN: usize = 1024;

/// The most bytes kept for one replica (its record and its last answer, as
/// `Roster::bytes` counts them): a longer answer loses its oldest transitions.
pub const MAX_REPLICA_BYTES: usize = 16 * 1024;

/// The most bytes kept for all replicas together; past it, the longest missing go first. At
/// least the peers asked in one round times [`MAX_REPLICA_BYTES`], so answering replicas fit.
pub const MAX_KEPT_BYTES: usize = 8 * 1024 * 1024;

/// The earlier instances kept per address, so a peer answering as a new instance every round
/// cannot fill the view with itself.
pub const MAX_REPLACED_PER_ADDRESS: usize = 2;

/// Room kept in a replica's budget, beside its answer, for what the view writes about it later:
/// a reason (cut to a bounded length), a `since`, and who supersedes it.
const ROOM: usize = 1536;

/// Why a known replica past the cap is not asked.
const NOT_ASKED_REASON: &str = "not asked this round: more replicas were found than are asked \
     in one round, and this one is past the cap";

/// The bytes a roster (`Roster`) may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// See [`MAX_REPLICA_BYTES`].
    pub per_replica: usize,
    /// See [`MAX_KEPT_BYTES`].
    pub total: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            per_replica: MAX_REPLICA_BYTES,
            total: MAX_KEPT_BYTES,
        }
    }
}

/// The replicas known, keyed by listed address, plus replaced ones kept for a while.
#[derive(Debug, Default)]
pub struct Roster {
    current: BTreeMap<String, Known>,
    /// Replicas that answered at an address now used by another instance.
    replaced: Vec<Known>,
    budget: Budget,
}

/// The outcome of asking one replica.
pub type Outcome = Result<PeerHistory, String>;

impl Roster {
    /// An empty roster that keeps at most `budget`.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// The bytes kept: every replica's record and answer, and the map's keys.
    pub fn bytes(&self) -> usize {
        let current: usize = self
            .current
            .iter()
            .map(|(key, known)| size_of::<String>() + key.capacity() + known.weight())
            .sum();
        let replaced: usize = self.replaced.iter().map(Known::weight).sum();
        let spare = self.replaced.capacity() - self.replaced.len();
        size_of::<Self>() + current + replaced + spare * size_of::<Known>()
    }

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
    /// address still among the peers (asked or not); known replicas listed but not asked (past
    /// the cap) are [`NOT_ASKED`], those in neither are gone. `gone_reason` says why they are;
    /// `retention` is how long a replica that stopped answering, vanished or is not asked stays
    /// listed.
    pub fn record(
        &mut self,
        asked: Vec<(Target, Outcome)>,
        listed: &[String],
        gone_reason: &str,
        retention: Duration,
        now: SystemTime,
    ) {
        let stamp = rfc3339(now);
        let mut asked_now: Vec<String> = asked.iter().map(|(t, _)| t.listed.clone()).collect();
        asked_now.sort();
        for (target, outcome) in asked {
            match outcome {
                Ok(answer) => self.answered(target, answer, now, &stamp),
                Err(reason) => self.unreachable(target, &reason, now, &stamp),
            }
        }
        let gone_reason = cut(gone_reason);
        for known in self.current.values_mut() {
            if asked_now.binary_search(&known.address).is_ok() {
                continue;
            }
            let (status, reason) = if listed.binary_search(&known.address).is_ok() {
                (NOT_ASKED, NOT_ASKED_REASON)
            } else {
                (GONE, gone_reason.as_str())
            };
            if known.status != status {
                known.status = status;
                known.reason = Some(reason.to_owned());
                known.since = stamp.clone();
            }
            known.missing_since.get_or_insert(now);
        }
        let keep = |known: &Known| {
            known.missing_since.is_none_or(|missing| {
                now.duration_since(missing).unwrap_or(Duration::ZERO) < retention
            })
        };
        self.current.retain(|_, known| keep(known));
        self.replaced.retain(keep);
        self.forget_oldest_missing();
        self.replaced.shrink_to_fit();
        resolve_slots(&mut self.current, &stamp);
    }

    /// Keeps at most [`MAX_KNOWN`] replicas and the budget's total bytes: a service replacing
    /// replicas faster than the retention lets them go, or a peer answering as a new instance
    /// every round, must not grow the view without bound. The longest missing go first;
    /// replicas that answer are never dropped.
    fn forget_oldest_missing(&mut self) {
        let mut count = self.current.len() + self.replaced.len();
        let mut bytes = self.bytes();
        if count <= MAX_KNOWN && bytes <= self.budget.total {
            return;
        }
        let mut missing: Vec<(SystemTime, usize)> = self
            .current
            .iter()
            .map(|(key, known)| (known, size_of::<String>() + key.capacity()))
            .chain(self.replaced.iter().map(|known| (known, 0)))
            .filter_map(|(known, key)| Some((known.missing_since?, known.weight() + key)))
            .collect();
        missing.sort();
        let mut cutoff = None;
        for (since, weight) in missing {
            if count <= MAX_KNOWN && bytes <= self.budget.total {
                break;
            }
            count -= 1;
            bytes = bytes.saturating_sub(weight);
            cutoff = Some(since);
        }
        let Some(cutoff) = cutoff else {
            return;
        };
        let drop = |known: &Known| known.missing_since.is_some_and(|since| since <= cutoff);
        self.replaced.retain(|known| !drop(known));
        self.current.retain(|_, known| !drop(known));
    }

    fn answered(&mut self, target: Target, mut answer: PeerHistory, now: SystemTime, stamp: &str) {
        let status = HEALTH_STATUSES
            .into_iter()
            .find(|status| *status == answer.status)
            .unwrap_or("UNKNOWN");
        let previous = self.current.remove(&target.listed);
        let mut superseded = None;
        if let Some(mut previous) = previous {
            match &previous.answer {
                Some(before) if before.instance != answer.instance => {
                    previous.status = GONE;
                    previous.reason = Some(cut(&format!(
                        "replaced by {} at the same address",
                        answer.instance
                    )));
                    previous.since = stamp.to_owned();
                    previous.missing_since = Some(now);
                    previous.superseded = None;
                    self.keep_replaced(previous);
                }
                _ => superseded = previous.superseded,
            }
        }
        // The map's key (a copy of the address) counts against the replica too.
        let answer_budget = self.budget.per_replica.saturating_sub(
            size_of::<Known>() + size_of::<String>() + 2 * target.listed.capacity() + ROOM,
        );
        answer.fit(answer_budget);
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
                superseded,
            },
        );
    }

    /// Lists `old` as replaced at its address, keeping at most [`MAX_REPLACED_PER_ADDRESS`]
    /// there (the earliest replaced go first).
    fn keep_replaced(&mut self, old: Known) {
        let address = old.address.clone();
        self.replaced.push(old);
        let mut there = self
            .replaced
            .iter()
            .filter(|known| known.address == address)
            .count();
        self.replaced.retain(|known| {
            if there > MAX_REPLACED_PER_ADDRESS && known.address == address {
                there -= 1;
                false
            } else {
                true
            }
        });
    }

    fn unreachable(&mut self, target: Target, reason: &str, now: SystemTime, stamp: &str) {
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
                superseded: None,
            });
        if known.status != UNREACHABLE {
            known.since = stamp.to_owned();
        }
        known.status = UNREACHABLE;
        known.reason = Some(cut(reason));
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
        render(self.current.values().chain(&self.replaced))
    }
}

#[cfg(test)]
mod tests {
    use super::super::known::SUPERSEDED;
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

    /// An `UP` answer from `instance`, started at `started_at`, claiming `slot`.
    fn claim(instance: &str, slot: Option<u32>, started_at: &str) -> Outcome {
        let slot = slot.map_or("null".to_owned(), |slot| slot.to_string());
        let body = format!(
            r#"{{"instance":"{instance}","startedAt":"{started_at}","slot":{slot},"status":"UP",
            "since":"{started_at}","transitions":[]}}"#
        );
        Ok(PeerHistory::parse(body.as_bytes()).unwrap())
    }

    /// Records one round of `answers` (address, outcome), every address listed.
    fn round(roster: &mut Roster, answers: Vec<(&str, Outcome)>, now: SystemTime) {
        let mut listed: Vec<String> = answers.iter().map(|(a, _)| (*a).to_owned()).collect();
        listed.sort();
        let asked = answers
            .into_iter()
            .map(|(address, outcome)| (target(address), outcome))
            .collect();
        roster.record(asked, &listed, "gone", 10 * MINUTE, now);
    }

    fn replica<'a>(replicas: &'a [ReplicaView], instance: &str) -> &'a ReplicaView {
        replicas
            .iter()
            .find(|r| r.instance.as_deref() == Some(instance))
            .unwrap()
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

    #[test]
    fn a_superseded_replica_holds_its_slot_again_while_the_holder_does_not_answer() {
        let mut roster = Roster::default();
        let stale = ("10.0.0.1:6767", "stale", "2026-12-02T13:00:00Z");
        let new = ("10.0.0.3:6767", "replacement", "2026-12-02T13:05:00Z");
        let both = |roster: &mut Roster, now| {
            round(
                roster,
                vec![
                    (stale.0, claim(stale.1, Some(1), stale.2)),
                    (new.0, claim(new.1, Some(1), new.2)),
                ],
                now,
            );
        };
        both(&mut roster, at(0));
        both(&mut roster, at(1));
        let replicas = roster.view().0;
        assert_eq!(
            replica(&replicas, "stale").since,
            rfc3339(at(0)),
            "superseded since it was first found so"
        );
        round(
            &mut roster,
            vec![
                (stale.0, claim(stale.1, Some(1), stale.2)),
                (new.0, Err("no answer within 1s".into())),
            ],
            at(2),
        );
        let replicas = roster.view().0;
        assert_eq!(replica(&replicas, "stale").status, "UP");
        assert_eq!(replica(&replicas, "stale").superseded_by, None);
        assert_eq!(replica(&replicas, "replacement").status, UNREACHABLE);
        both(&mut roster, at(3));
        let replicas = roster.view().0;
        assert_eq!(replica(&replicas, "stale").status, SUPERSEDED);
        assert_eq!(replica(&replicas, "stale").since, rfc3339(at(3)));
    }

    /// An answer from `instance` with 256 transitions of long reasons, far past a replica's
    /// bytes (parsed once: a debug build parses slowly).
    fn heavy(instance: &str) -> Outcome {
        static TEMPLATE: std::sync::OnceLock<PeerHistory> = std::sync::OnceLock::new();
        let template = TEMPLATE.get_or_init(|| {
            let one = format!(
                r#"{{"at":"2026-12-02T13:00:00Z","component":"database","from":"UP","to":"DOWN","reason":"{}"}}"#,
                "x".repeat(190)
            );
            let body = format!(
                r#"{{"instance":"x","status":"UP","since":"2026-12-02T13:00:00Z","transitions":[{}]}}"#,
                vec![one; 256].join(",")
            );
            PeerHistory::parse(body.as_bytes()).unwrap()
        });
        let mut answer = template.clone();
        answer.instance = instance.to_owned();
        Ok(answer)
    }

    #[test]
    fn a_replica_past_the_cap_is_shown_not_asked_never_with_its_old_status() {
        let mut roster = Roster::default();
        let both = ["10.0.0.1:6767".to_owned(), "10.0.0.2:6767".to_owned()];
        round(
            &mut roster,
            vec![
                (&both[0], answer("a", "UP", None)),
                (&both[1], answer("b", "UP", None)),
            ],
            at(0),
        );
        // Both still listed, only the first asked.
        roster.record(
            vec![(target(&both[0]), answer("a", "UP", None))],
            &both,
            "gone",
            10 * MINUTE,
            at(1),
        );
        let (replicas, _, counts) = roster.view();
        let b = replica(&replicas, "b");
        assert_eq!(b.status, NOT_ASKED);
        assert!(
            b.reason.as_deref().unwrap().starts_with("not asked"),
            "{b:?}"
        );
        assert_eq!(
            b.last_status.as_deref(),
            Some("UP"),
            "shown as its last only"
        );
        assert_eq!(b.since, rfc3339(at(1)));
        assert_eq!((counts["UP"], counts[NOT_ASKED]), (1, 1));
        // Asked again, it shows its own status again.
        round(
            &mut roster,
            vec![
                (&both[0], answer("a", "UP", None)),
                (&both[1], answer("b", "DOWN", Some("x: y"))),
            ],
            at(2),
        );
        assert_eq!(replica(&roster.view().0, "b").status, "DOWN");
    }

    #[test]
    fn no_replica_keeps_more_than_its_bytes_and_keeps_its_newest_transitions() {
        let mut roster = Roster::default();
        round(&mut roster, vec![("10.0.0.1:6767", heavy("a"))], at(0));
        let kept = roster.bytes();
        assert!(kept <= MAX_REPLICA_BYTES + size_of::<Roster>(), "{kept}");
        let (replicas, transitions, _) = roster.view();
        assert_eq!(replicas.len(), 1);
        assert!(
            (10..256).contains(&transitions.len()),
            "{}",
            transitions.len()
        );
    }

    #[test]
    fn a_peer_answering_as_a_new_instance_every_round_keeps_two_earlier_ones() {
        let mut roster = Roster::default();
        let mut peak = 0;
        for n in 0..500 {
            let instance = format!("identity-{n}");
            round(
                &mut roster,
                vec![("10.0.0.1:6767", heavy(&instance))],
                at(0) + Duration::from_millis(n),
            );
            peak = peak.max(roster.bytes());
        }
        let replicas = roster.view().0;
        assert_eq!(replicas.len(), 1 + MAX_REPLACED_PER_ADDRESS);
        assert_eq!(replicas[0].instance.as_deref(), Some("identity-499"));
        assert!(
            replicas[1..].iter().any(
                |r| r.reason.as_deref() == Some("replaced by identity-499 at the same address")
            ),
            "{replicas:?}"
        );
        assert!(
            peak <= (1 + MAX_REPLACED_PER_ADDRESS) * MAX_REPLICA_BYTES + size_of::<Roster>(),
            "{peak}"
        );
    }

    #[test]
    fn the_roster_never_keeps_more_than_its_total_bytes_and_keeps_those_answering() {
        let budget = Budget {
            per_replica: MAX_REPLICA_BYTES,
            total: 8 * MAX_REPLICA_BYTES,
        };
        let mut roster = Roster::new(budget);
        // Four replicas answer every round; a new one appears and vanishes each round.
        let steady: Vec<String> = (1..=4).map(|n| format!("10.0.0.{n}:6767")).collect();
        for n in 0..200u64 {
            let passing = format!("10.0.1.{}:6767", n % 250);
            let mut answers: Vec<(&str, Outcome)> = steady
                .iter()
                .map(|address| (address.as_str(), heavy(address)))
                .collect();
            answers.push((&passing, heavy(&passing)));
            round(&mut roster, answers, at(0) + Duration::from_millis(n));
            assert!(
                roster.bytes() <= budget.total,
                "round {n}: {}",
                roster.bytes()
            );
        }
        let (replicas, _, counts) = roster.view();
        assert_eq!(counts["UP"], 5, "every replica answering is kept");
        assert!(counts[GONE] >= 1, "some room is left for gone ones");
        assert!(replicas.len() < 20, "{}", replicas.len());
    }
}
