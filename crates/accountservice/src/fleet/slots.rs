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
