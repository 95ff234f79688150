//! The body of `GET /health/history`: who this replica is, its overall status now and since
//! when, and its last status changes.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::time::Instant;

use super::options::{Details, HttpOptions};
use super::render::rfc3339;
use crate::{Health, Scope, Status, Subject, Transition};

/// Who this replica is and its last status changes.
// `pub` only so that `openapi` can name it (as `HealthHistory`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthHistory))]
pub struct HistoryBody<'a> {
    /// The replica's name (the service id when none is set).
    instance: &'a str,
    /// The `host:port` it is reached at, when known.
    address: Option<&'a str>,
    /// The service version.
    version: &'a str,
    /// When the process started, RFC 3339 UTC.
    started_at: String,
    /// Its slot among the service's replicas (`--slot`, a Swarm task slot); absent when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<u32>,
    /// The overall status now.
    status: Status,
    /// Why it is not UP (as `/health` says it).
    reason: Option<String>,
    /// The last change of the overall status, whatever changed after it (`startedAt` if none).
    since: String,
    /// Each component now: its status and whether a restart can cure its failure (absent at
    /// details level `never`, as in `/health`). What a fleet view shows of each replica.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    components: BTreeMap<&'a str, HistoryComponent>,
    /// The last changes, newest first; at details level `never` only the scopes'.
    transitions: Vec<TransitionBody<'a>>,
}

/// A component as the history shows it.
// `pub` only so that `openapi` can name it (as `HealthHistoryComponent`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthHistoryComponent))]
pub struct HistoryComponent {
    /// Its status now.
    status: Status,
    /// Whether restarting the replica can cure its failure (not for a dependency every replica
    /// shares).
    curable_by_restart: bool,
}

/// One status change of a component or of a scope.
// `pub` only so that `openapi` can name it (as `HealthTransition`).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthTransition))]
pub struct TransitionBody<'a> {
    /// When it was seen, RFC 3339 UTC.
    at: String,
    /// The component that changed (absent for a scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
    /// The scope whose aggregate changed: `overall`, `liveness` or `readiness` (absent for a
    /// component).
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
    /// The status before.
    from: Status,
    /// The status after.
    to: Status,
    /// The short reason of the new status.
    reason: Option<&'a str>,
}

/// Renders the history. Looking is also when a result that turned stale since the last answer
/// is recorded, so the answer is never behind what `/health` would say.
///
/// Exposure follows `/health` at the same level: with [`Details::Never`] `/health` shows no
/// components, so neither do the transitions here (only the scopes', whose reasons are the
/// ones `/health/...` answered with); the top-level reason is the one `/health` gives.
pub(crate) fn render(health: &Health, options: &HttpOptions) -> Vec<u8> {
    let snapshot = health.snapshot();
    let now = Instant::now();
    let reports = Scope::ALL.map(|scope| health.report_from(&snapshot, scope, now));
    health
        .observe_reports(snapshot.generation, now, &reports)
        .finish();
    let [overall, _, _] = reports;
    let components = if options.details == Details::Never {
        BTreeMap::new()
    } else {
        overall
            .components
            .iter()
            .map(|(name, c)| {
                let shown = HistoryComponent {
                    status: c.status,
                    curable_by_restart: c.curability.by_restart(),
                };
                (name.as_str(), shown)
            })
            .collect()
    };

    let identity = &options.identity;
    let started_at = identity.started_at.unwrap_or_else(|| health.created_at());
    let since = health
        .last_change(Scope::Overall)
        .map_or(started_at, |t| t.at);
    let transitions = health.transitions();
    let shown = transitions
        .iter()
        .filter(|t| options.details != Details::Never || matches!(t.subject, Subject::Scope(_)))
        .map(transition)
        .collect();
    let instance = if identity.instance.is_empty() {
        &options.service_id
    } else {
        &identity.instance
    };
    let body = HistoryBody {
        instance,
        address: identity.address.as_deref(),
        version: &options.version,
        started_at: rfc3339(started_at),
        slot: identity.slot,
        status: overall.status,
        reason: overall.reason,
        since: rfc3339(since),
        components,
        transitions: shown,
    };
    // Strings, statuses and vectors of them serialize infallibly; an empty object is still an
    // answer rather than a panic.
    serde_json::to_vec(&body).unwrap_or_else(|err| {
        tracing::error!(%err, "could not write the health history");
        b"{}".to_vec()
    })
}

fn transition(t: &Transition) -> TransitionBody<'_> {
    let (component, scope) = match &t.subject {
        Subject::Component(name) => (Some(name.as_str()), None),
        Subject::Scope(scope) => (None, Some(scope.as_str())),
    };
    TransitionBody {
        at: rfc3339(t.at),
        component,
        scope,
        from: t.from,
        to: t.to,
        reason: t.reason.as_deref(),
    }
}
