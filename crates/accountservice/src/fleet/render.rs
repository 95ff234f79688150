//! How the known replicas are shown: one [`ReplicaView`] each and their transitions merged.

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::{PeerHistory, PeerTransition};
use super::known::{GONE, Known, SUPERSEDED, VIEW_STATUSES};
use super::time::{rfc3339, sort_key};

/// The merged transitions shown, newest first.
pub const MAX_VIEW_TRANSITIONS: usize = 200;

/// Every replica in `known`, live ones first (by address), then gone ones; their transitions
/// merged, newest first, at most [`MAX_VIEW_TRANSITIONS`]; and how many are in each status,
/// every status of [`VIEW_STATUSES`] listed.
pub fn render<'a>(
    known: impl Iterator<Item = &'a Known>,
) -> (
    Vec<ReplicaView>,
    Vec<TransitionView>,
    BTreeMap<&'static str, usize>,
) {
    let mut all: Vec<&Known> = known.collect();
    all.sort_by(|a, b| {
        (a.status == GONE, &a.address, &a.since).cmp(&(b.status == GONE, &b.address, &b.since))
    });
    let mut counts: BTreeMap<&'static str, usize> =
        VIEW_STATUSES.iter().map(|status| (*status, 0)).collect();
    let mut transitions = Vec::new();
    let replicas = all
        .into_iter()
        .map(|known| {
            let superseded = known.superseded.as_ref();
            let status = if superseded.is_some() {
                SUPERSEDED
            } else {
                known.status
            };
            *counts.entry(status).or_default() += 1;
            let answer = known.answer.as_ref();
            if let Some(answer) = answer {
                transitions.extend(answer.transitions.iter().map(|t| (known, answer, t)));
            }
            let lost = known.missing_since.is_some() || superseded.is_some();
            ReplicaView {
                address: known.address.clone(),
                instance: answer.map(|a| a.instance.clone()),
                version: answer.and_then(|a| a.version.clone()),
                started_at: answer.and_then(|a| a.started_at.clone()),
                slot: answer.and_then(|a| a.slot),
                status,
                superseded_by: superseded.map(|s| s.by.clone()),
                reason: superseded.map_or_else(|| known.reason.clone(), |s| Some(s.reason.clone())),
                since: superseded.map_or_else(|| known.since.clone(), |s| s.since.clone()),
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
                components: answer
                    .filter(|_| !lost)
                    .map(|a| {
                        a.components
                            .iter()
                            .map(|(name, c)| ComponentView {
                                name: name.clone(),
                                status: c.status.clone(),
                                curable_by_restart: c.curable_by_restart,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
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
    /// The slot it claims among the service's replicas, from its last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Its own status while it answers and holds its slot (or claims none), else
    /// `SUPERSEDED`, `NOT_ASKED`, `UNREACHABLE` or `GONE`.
    pub status: &'static str,
    /// While `SUPERSEDED`: the address (as listed) of the replica holding its slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Its own reason while it answers, else why it is superseded, unreachable or gone.
    pub reason: Option<String>,
    /// When `status` last changed.
    pub since: String,
    /// When it last answered.
    pub last_seen: Option<String>,
    /// While superseded, unreachable or gone: the status of its last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// While superseded, unreachable or gone: the reason of its last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    /// While it answers: each of its components, with whether a restart can cure its failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentView>,
}

/// One component of an answering replica.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = FleetComponent))]
pub struct ComponentView {
    /// The component's name, e.g. `database`.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Whether restarting the replica can cure its failure (`false` for a dependency every
    /// replica shares); absent when the replica does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curable_by_restart: Option<bool>,
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
    use super::super::known::Superseded;
    use super::*;

    fn known(address: &str, slot: Option<u32>, superseded: Option<Superseded>) -> Known {
        let body = format!(
            r#"{{"instance":"i-{address}","slot":{},"status":"UP","reason":null,"transitions":[]}}"#,
            slot.map_or("null".to_owned(), |s| s.to_string())
        );
        Known {
            address: address.into(),
            connect: None,
            status: "UP",
            reason: None,
            since: "2026-12-02T13:00:00.000Z".into(),
            last_seen: None,
            missing_since: None,
            answer: Some(PeerHistory::parse(body.as_bytes()).unwrap()),
            superseded,
        }
    }

    #[test]
    fn a_superseded_replica_shows_why_and_its_own_status_only_as_its_last() {
        let mark = Superseded {
            by: "10.0.0.3:6767".into(),
            reason: "slot 1 is held by 10.0.0.3:6767, which started later".into(),
            since: "2026-12-02T13:05:00.000Z".into(),
        };
        let replicas = [
            known("10.0.0.1:6767", Some(1), Some(mark)),
            known("10.0.0.3:6767", Some(1), None),
            known("10.0.0.4:6767", None, None),
        ];
        let (shown, _, counts) = render(replicas.iter());
        let stale = &shown[0];
        assert_eq!(stale.status, SUPERSEDED);
        assert_eq!(stale.superseded_by.as_deref(), Some("10.0.0.3:6767"));
        assert_eq!(
            stale.reason.as_deref(),
            Some("slot 1 is held by 10.0.0.3:6767, which started later")
        );
        assert_eq!(stale.since, "2026-12-02T13:05:00.000Z");
        assert_eq!(
            stale.last_status.as_deref(),
            Some("UP"),
            "it still answers UP"
        );
        assert_eq!((counts["UP"], counts[SUPERSEDED]), (2, 1));
        let holder = serde_json::to_value(&shown[1]).unwrap();
        assert_eq!(holder["slot"], 1);
        assert!(holder.get("supersededBy").is_none(), "{holder}");
        let unslotted = serde_json::to_value(&shown[2]).unwrap();
        assert!(unslotted.get("slot").is_none(), "{unslotted}");
    }
}
