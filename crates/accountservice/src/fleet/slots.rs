//! The slot rule: of two answering replicas that report the same slot, the later started holds
//! it and the other is [`SUPERSEDED`](super::known::SUPERSEDED).

use std::collections::BTreeMap;

use super::known::{Known, Superseded};
use super::time::sort_key;

/// Who holds a slot: of the answering replicas claiming it, the greatest by this key, i.e. the
/// one that started last; equal start times fall to the greater instance name, then address,
/// so every viewer picks the same one. A replica that gives no start time sorts first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Claim {
    started_at: String,
    instance: String,
    address: String,
}

impl Claim {
    fn of(known: &Known) -> Option<(u32, Self)> {
        if known.missing_since.is_some() {
            return None;
        }
        let answer = known.answer.as_ref()?;
        let claim = Self {
            started_at: answer
                .started_at
                .as_deref()
                .map(sort_key)
                .unwrap_or_default(),
            instance: answer.instance.clone(),
            address: known.address.clone(),
        };
        Some((answer.slot?, claim))
    }
}

/// Marks every answering replica that claims a slot held by another as superseded, and clears
/// the mark of every other replica. Only replicas that answered this round claim a slot: one
/// unreachable or gone already shows it does not serve. `stamp` is now, for a new mark.
pub fn resolve_slots(current: &mut BTreeMap<String, Known>, stamp: &str) {
    let mut holders: BTreeMap<u32, Claim> = BTreeMap::new();
    for (slot, claim) in current.values().filter_map(Claim::of) {
        match holders.get(&slot) {
            Some(holder) if *holder >= claim => {}
            _ => {
                holders.insert(slot, claim);
            }
        }
    }
    for known in current.values_mut() {
        let Some((slot, claim)) = Claim::of(known) else {
            known.superseded = None;
            continue;
        };
        let Some(holder) = holders.get(&slot).filter(|holder| **holder != claim) else {
            known.superseded = None;
            continue;
        };
        let reason = if holder.started_at > claim.started_at {
            format!(
                "slot {slot} is held by {}, which started later",
                holder.address
            )
        } else {
            format!(
                "slot {slot} is held by {}, which started at the same time and sorts after it",
                holder.address
            )
        };
        let since = match &known.superseded {
            Some(before) => before.since.clone(),
            None => stamp.to_owned(),
        };
        known.superseded = Some(Superseded {
            by: holder.address.clone(),
            reason,
            since,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::super::history::PeerHistory;
    use super::*;

    const FIRST: &str = "2026-12-02T13:00:00Z";
    const LATER: &str = "2026-12-02T13:05:00.250Z";

    /// An answering replica at `address`, claiming `slot`, started at `started_at`.
    fn known(address: &str, instance: &str, slot: Option<u32>, started_at: &str) -> Known {
        Known {
            address: address.into(),
            connect: None,
            status: "UP",
            reason: None,
            since: started_at.into(),
            last_seen: None,
            missing_since: None,
            answer: Some(PeerHistory {
                instance: instance.into(),
                address: None,
                version: None,
                started_at: Some(started_at.into()),
                slot,
                status: "UP".into(),
                reason: None,
                since: None,
                transitions: Vec::new(),
                components: BTreeMap::new(),
            }),
            superseded: None,
        }
    }

    fn map(replicas: Vec<Known>) -> BTreeMap<String, Known> {
        replicas
            .into_iter()
            .map(|known| (known.address.clone(), known))
            .collect()
    }

    fn superseded<'a>(
        replicas: &'a BTreeMap<String, Known>,
        instance: &str,
    ) -> Option<&'a Superseded> {
        replicas
            .values()
            .find(|k| k.answer.as_ref().is_some_and(|a| a.instance == instance))
            .and_then(|k| k.superseded.as_ref())
    }

    #[test]
    fn of_two_replicas_claiming_one_slot_the_later_started_holds_it() {
        // Whichever address sorts first, the same replica holds the slot.
        for (stale_at, new_at) in [
            ("10.0.0.1:6767", "10.0.0.3:6767"),
            ("10.0.0.3:6767", "10.0.0.1:6767"),
        ] {
            let mut replicas = map(vec![
                known(stale_at, "stale", Some(1), FIRST),
                known("10.0.0.2:6767", "other", Some(2), FIRST),
                known(new_at, "replacement", Some(1), LATER),
            ]);
            resolve_slots(&mut replicas, "now");
            let stale = superseded(&replicas, "stale").expect("superseded");
            assert_eq!(stale.by, new_at);
            assert_eq!(
                stale.reason,
                format!("slot 1 is held by {new_at}, which started later")
            );
            assert_eq!(stale.since, "now");
            assert!(superseded(&replicas, "replacement").is_none());
            assert!(superseded(&replicas, "other").is_none());
        }
    }

    #[test]
    fn a_mark_keeps_its_first_time_and_goes_while_the_holder_does_not_answer() {
        let mut replicas = map(vec![
            known("10.0.0.1:6767", "stale", Some(1), FIRST),
            known("10.0.0.3:6767", "replacement", Some(1), LATER),
        ]);
        resolve_slots(&mut replicas, "first");
        resolve_slots(&mut replicas, "second");
        assert_eq!(superseded(&replicas, "stale").unwrap().since, "first");
        replicas.get_mut("10.0.0.3:6767").unwrap().missing_since = Some(SystemTime::UNIX_EPOCH);
        resolve_slots(&mut replicas, "third");
        assert!(
            superseded(&replicas, "stale").is_none(),
            "only answering replicas claim"
        );
        replicas.get_mut("10.0.0.3:6767").unwrap().missing_since = None;
        resolve_slots(&mut replicas, "fourth");
        assert_eq!(superseded(&replicas, "stale").unwrap().since, "fourth");
    }

    #[test]
    fn equal_start_times_are_resolved_the_same_way_by_every_viewer() {
        // The same instant written with and without milliseconds.
        for (b_at, a_at) in [
            ("10.0.0.1:6767", "10.0.0.2:6767"),
            ("10.0.0.2:6767", "10.0.0.1:6767"),
        ] {
            let mut replicas = map(vec![
                known(b_at, "b", Some(3), "2026-12-02T13:00:00Z"),
                known(a_at, "a", Some(3), "2026-12-02T13:00:00.000Z"),
            ]);
            resolve_slots(&mut replicas, "now");
            assert!(superseded(&replicas, "b").is_none());
            let a = superseded(&replicas, "a").expect("superseded");
            assert_eq!(a.by, b_at);
            assert!(
                a.reason.contains("started at the same time"),
                "{}",
                a.reason
            );
        }
    }

    #[test]
    fn replicas_that_claim_no_slot_are_never_superseded() {
        let mut replicas = map(vec![
            known("10.0.0.1:6767", "a", None, FIRST),
            known("10.0.0.2:6767", "b", None, LATER),
            known("10.0.0.3:6767", "c", Some(1), FIRST),
        ]);
        resolve_slots(&mut replicas, "now");
        assert!(replicas.values().all(|k| k.superseded.is_none()));
    }
}
