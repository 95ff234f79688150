//! The replicas this replica knows of and what each said last, round after round: those that
//! stop answering or vanish are kept for the retention, an address answering as a new instance
//! lists the old one as replaced, and the whole stays within [`MAX_KNOWN`] replicas.
//!
//! Pure bookkeeping: no I/O, no clock of its own (the caller passes `now`), so every rule about
//! replicas that stop answering, vanish from DNS or are replaced is tested here without sockets.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use super::history::{HEALTH_STATUSES, PeerHistory};
use super::known::{GONE, Known, UNREACHABLE};
use super::peers::Target;
use super::render::{ReplicaView, TransitionView, render};
use super::slots::resolve_slots;
use super::time::rfc3339;

/// The most replicas kept, answering or not (four times the peers asked in one round).
pub const MAX_KNOWN: usize = 1024;

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
        resolve_slots(&mut self.current, &stamp);
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
            old.superseded = None;
            self.replaced.push(old);
        }
        let superseded = self
            .current
            .get(&target.listed)
            .filter(|previous| {
                previous
                    .answer
                    .as_ref()
                    .is_some_and(|before| before.instance == answer.instance)
            })
            .and_then(|previous| previous.superseded.clone());
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
                superseded: None,
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
    fn of_two_replicas_claiming_one_slot_the_later_started_holds_it() {
        let first = "2026-12-02T13:00:00Z";
        let later = "2026-12-02T13:05:00.250Z";
        // Whatever order the answers come in, the same replica holds the slot.
        for reversed in [false, true] {
            let mut roster = Roster::default();
            let mut answers = vec![
                ("10.0.0.1:6767", claim("stale", Some(1), first)),
                ("10.0.0.2:6767", claim("other", Some(2), first)),
                ("10.0.0.3:6767", claim("replacement", Some(1), later)),
            ];
            if reversed {
                answers.reverse();
            }
            round(&mut roster, answers, at(0));
            let (replicas, _, counts) = roster.view();
            let stale = replica(&replicas, "stale");
            assert_eq!(stale.status, SUPERSEDED);
            assert_eq!(stale.slot, Some(1));
            assert_eq!(stale.superseded_by.as_deref(), Some("10.0.0.3:6767"));
            assert_eq!(
                stale.reason.as_deref(),
                Some("slot 1 is held by 10.0.0.3:6767, which started later")
            );
            assert_eq!(
                stale.last_status.as_deref(),
                Some("UP"),
                "it still answers UP"
            );
            assert_eq!(stale.since, rfc3339(at(0)));
            for holder in ["replacement", "other"] {
                let holder = replica(&replicas, holder);
                assert_eq!((holder.status, &holder.superseded_by), ("UP", &None));
            }
            assert_eq!((counts["UP"], counts[SUPERSEDED]), (2, 1));
        }
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

    #[test]
    fn equal_start_times_are_resolved_the_same_way_by_every_viewer() {
        // The same instant written with and without milliseconds.
        for reversed in [false, true] {
            let mut roster = Roster::default();
            let mut answers = vec![
                ("10.0.0.1:6767", claim("b", Some(3), "2026-12-02T13:00:00Z")),
                (
                    "10.0.0.2:6767",
                    claim("a", Some(3), "2026-12-02T13:00:00.000Z"),
                ),
            ];
            if reversed {
                answers.reverse();
            }
            round(&mut roster, answers, at(0));
            let replicas = roster.view().0;
            assert_eq!(replica(&replicas, "b").status, "UP");
            let a = replica(&replicas, "a");
            assert_eq!(
                (a.status, a.superseded_by.as_deref()),
                (SUPERSEDED, Some("10.0.0.1:6767"))
            );
            assert!(
                a.reason
                    .as_deref()
                    .unwrap()
                    .contains("started at the same time"),
                "{:?}",
                a.reason
            );
        }
    }

    #[test]
    fn replicas_that_claim_no_slot_are_never_superseded_and_show_no_slot() {
        let mut roster = Roster::default();
        let started = "2026-12-02T13:00:00Z";
        round(
            &mut roster,
            vec![
                ("10.0.0.1:6767", claim("a", None, started)),
                ("10.0.0.2:6767", claim("b", None, "2026-12-02T13:05:00Z")),
                ("10.0.0.3:6767", claim("c", Some(1), started)),
            ],
            at(0),
        );
        let (replicas, _, counts) = roster.view();
        assert!(replicas.iter().all(|r| r.status == "UP"), "{replicas:?}");
        assert_eq!((counts["UP"], counts[SUPERSEDED]), (3, 0));
        let json = serde_json::to_value(replica(&replicas, "a")).unwrap();
        assert!(json.get("slot").is_none(), "{json}");
        assert!(json.get("supersededBy").is_none(), "{json}");
        assert_eq!(
            serde_json::to_value(replica(&replicas, "c")).unwrap()["slot"],
            1
        );
    }
}
