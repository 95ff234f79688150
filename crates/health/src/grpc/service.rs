//! [`HealthService`]: `Check`, `List` and `Watch` answered from the registry's cached results.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::Stream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status as GrpcStatus};

use super::ServingStatus;
use super::pb::health_server::{Health as HealthRpc, HealthServer};
use super::pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use crate::registry::Snapshot;
use crate::{Health, Scope, Status};

/// The most services `List` answers with; more is `RESOURCE_EXHAUSTED`, as the protocol says.
pub const LIST_LIMIT: usize = 100;

/// The `grpc.health.v1.Health` service over a [`Health`] registry (see the [module
/// docs](super) for names, statuses and `Watch`).
///
/// Cheap to clone; clones share the registry and the shutdown token.
#[derive(Clone, Debug)]
pub struct HealthService {
    health: Health,
    shutdown: CancellationToken,
}

impl HealthService {
    /// Serves `health`. Cancelling `shutdown` ends every `Watch` call (after a last
    /// `NOT_SERVING`), so that a graceful server shutdown can finish; pass the token whose
    /// cancellation also starts the server's shutdown.
    #[must_use]
    pub fn new(health: Health, shutdown: CancellationToken) -> HealthService {
        HealthService { health, shutdown }
    }

    /// The tonic server to add to a `tonic::transport::Server` (or an axum router).
    #[must_use]
    pub fn into_server(self) -> HealthServer<HealthService> {
        HealthServer::new(self)
    }
}

/// What a service name in a request refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target<'a> {
    Scope(Scope),
    Component(&'a str),
}

impl<'a> Target<'a> {
    fn parse(name: &'a str) -> Target<'a> {
        match name {
            "" => Target::Scope(Scope::Overall),
            "liveness" => Target::Scope(Scope::Liveness),
            "readiness" => Target::Scope(Scope::Readiness),
            component => Target::Component(component),
        }
    }
}

/// The protocol's status for one of ours: whatever answers HTTP 503 is `NOT_SERVING`.
fn serving(status: Status) -> ServingStatus {
    if status.is_failure() {
        ServingStatus::NotServing
    } else {
        ServingStatus::Serving
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

/// The status of a name in a snapshot; `None` when no scope or component has that name.
fn status_of(health: &Health, snap: &Snapshot, name: &str, now: Instant) -> Option<ServingStatus> {
    match Target::parse(name) {
        Target::Scope(scope) => Some(serving(health.report_from(snap, scope, now).status)),
        Target::Component(component) => health
            .report_from(snap, Scope::Overall, now)
            .components
            .get(component)
            .map(|c| serving(c.status)),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl HealthRpc for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, GrpcStatus> {
        let name = request.into_inner().service;
        let snap = self.health.snapshot();
        match status_of(&self.health, &snap, &name, Instant::now()) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(GrpcStatus::not_found(format!("unknown service {name:?}"))),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, GrpcStatus> {
        let snap = self.health.snapshot();
        let now = Instant::now();
        let overall = self.health.report_from(&snap, Scope::Overall, now);
        let mut statuses: HashMap<String, HealthCheckResponse> = overall
            .components
            .iter()
            .map(|(name, c)| (name.clone(), response(serving(c.status))))
            .collect();
        // Inserted last, so a scope wins over a component of the same name, as in Check.
        statuses.insert(String::new(), response(serving(overall.status)));
        for (name, scope) in [
            ("liveness", Scope::Liveness),
            ("readiness", Scope::Readiness),
        ] {
            let status = self.health.report_from(&snap, scope, now).status;
            statuses.insert(name.to_owned(), response(serving(status)));
        }
        if statuses.len() > LIST_LIMIT {
            return Err(GrpcStatus::resource_exhausted(format!(
                "{} services, more than the {LIST_LIMIT} List may return",
                statuses.len()
            )));
        }
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, GrpcStatus> {
        let watcher = Watcher {
            changes: self.health.subscribe(),
            health: self.health.clone(),
            name: request.into_inner().service,
            shutdown: self.shutdown.clone(),
            last: None,
            ended: false,
        };
        let stream = futures_util::stream::unfold(watcher, Watcher::next);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One `Watch` call: the name, the last status sent, and what wakes it.
struct Watcher {
    health: Health,
    name: String,
    changes: watch::Receiver<u64>,
    shutdown: CancellationToken,
    last: Option<ServingStatus>,
    ended: bool,
}

impl Watcher {
    /// The next message of the call: the status whenever it differs from the last one sent,
    /// waiting (without polling) for a change, a result turning stale, or shutdown.
    async fn next(mut self) -> Option<(Result<HealthCheckResponse, GrpcStatus>, Watcher)> {
        if self.ended {
            return None;
        }
        loop {
            if self.shutdown.is_cancelled() {
                // A name that was never known stays unknown; everything else stops serving.
                if !matches!(
                    self.last,
                    Some(ServingStatus::NotServing | ServingStatus::ServiceUnknown)
                ) {
                    self.last = Some(ServingStatus::NotServing);
                    return Some((Ok(response(ServingStatus::NotServing)), self));
                }
                self.ended = true;
                let end = GrpcStatus::unavailable("the server is shutting down");
                return Some((Err(end), self));
            }
            // Marked seen before reading the snapshot, so a change published after the read
            // wakes the wait below rather than being missed.
            self.changes.borrow_and_update();
            let now = Instant::now();
            let snap = self.health.snapshot();
            let status = status_of(&self.health, &snap, &self.name, now)
                .unwrap_or(ServingStatus::ServiceUnknown);
            if self.last != Some(status) {
                self.last = Some(status);
                return Some((Ok(response(status)), self));
            }
            let stale_at = self.health.stale_deadline(&snap, now);
            tokio::select! {
                () = self.shutdown.cancelled() => {}
                changed = self.changes.changed() => {
                    // The sender lives as long as the registry, which this watcher holds.
                    if changed.is_err() {
                        self.ended = true;
                        return None;
                    }
                }
                () = sleep_until(stale_at) => {}
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_scope_names_are_scopes_and_anything_else_a_component() {
        assert_eq!(Target::parse(""), Target::Scope(Scope::Overall));
        assert_eq!(Target::parse("liveness"), Target::Scope(Scope::Liveness));
        assert_eq!(Target::parse("readiness"), Target::Scope(Scope::Readiness));
        assert_eq!(Target::parse("database"), Target::Component("database"));
        // Names are exact: no case folding, no trimming.
        assert_eq!(Target::parse("Liveness"), Target::Component("Liveness"));
        assert_eq!(Target::parse(" "), Target::Component(" "));
    }

    #[test]
    fn not_serving_is_exactly_what_http_answers_503() {
        for status in [
            Status::Up,
            Status::Unknown,
            Status::Degraded,
            Status::OutOfService,
            Status::Down,
        ] {
            let expected = if status.http_status() == 503 {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            assert_eq!(serving(status), expected, "{status}");
        }
    }
}
