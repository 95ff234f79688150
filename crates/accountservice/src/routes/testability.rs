//! `/testability/...`: switches that make this instance unhealthy on purpose, for demos and
//! tests. Mounted only with `--testability`; otherwise these paths are unknown (404).
//!
//! - `/testability/healthy/{state}` (GET, as in the original's `curl`, PUT and POST): `false`
//!   forces `/health`, `/health/live` and `/health/ready` to 503 "forced unhealthy", so an
//!   orchestrator replaces the instance; `true` restores them.
//! - `/testability/database/{up|down|hang}` (same methods): `down` makes every store call fail,
//!   so the real database check turns `DOWN` and lookups answer 503; `hang` makes every store
//!   call block until the switch moves on, as a read on a hung disk does (the check then times
//!   out, and a lookup holds its worker thread: for tests of a stop that must not wait for it);
//!   `up` undoes either.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State, rejection::PathRejection},
    routing::get,
};
use health::{Health, Probes, Status};
use serde::Serialize;

use crate::{
    error::ApiError,
    store::{Fault, FaultSwitch},
};

/// The manual health component the healthy switch sets.
pub const COMPONENT: &str = "testability";

/// What the testability routes act on.
#[derive(Clone)]
pub struct Testability {
    /// The registry whose manual component the healthy switch sets.
    pub health: Health,
    /// The switch under the store.
    pub database: Arc<FaultSwitch>,
}

/// The testability routes over `testability`.
pub fn routes<S>(testability: Testability) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/testability/healthy/{state}",
            get(set_healthy).put(set_healthy).post(set_healthy),
        )
        .route(
            "/testability/database/{state}",
            get(set_database).put(set_database).post(set_database),
        )
        .with_state(testability)
}

/// The answer of the healthy switch: `{"healthy":false}`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub struct HealthySwitched {
    /// The state now set.
    pub healthy: bool,
}

/// The answer of the database switch: `{"database":"down"}`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub struct DatabaseSwitched {
    /// The state now set: `up`, `down` or `hang`.
    pub database: String,
}

/// Parses a boolean exactly as Go's `strconv.ParseBool`, which the original used.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Forces every health endpoint to 503 "forced unhealthy" (`false`) or restores it (`true`).
#[cfg_attr(test, utoipa::path(
    method(get, put, post),
    path = "/testability/healthy/{state}",
    tag = "testability",
    params(("state" = String, Path, description = "A boolean as Go's strconv.ParseBool reads it",
        pattern = "^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$")),
    responses(
        (status = 200, description = "Switched", body = HealthySwitched),
        (status = 400, description = "Not a boolean", body = crate::error::ErrorBody),
    )
))]
pub async fn set_healthy(
    State(testability): State<Testability>,
    state: Result<Path<String>, PathRejection>,
) -> Result<Json<HealthySwitched>, ApiError> {
    let Path(raw) = state.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let healthy = parse_go_bool(&raw).ok_or_else(|| {
        ApiError::InvalidSwitch(format!(
            "healthy state must be a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, \
             False), not {raw:?}"
        ))
    })?;
    if healthy {
        testability.health.clear_manual(COMPONENT);
    } else {
        tracing::warn!("testability: health forced unhealthy");
        testability
            .health
            .set_manual(COMPONENT, Status::Down, "forced unhealthy", Probes::ALL);
    }
    Ok(Json(HealthySwitched { healthy }))
}

/// Makes every store call fail (`down`), block (`hang`) or work again (`up`); the health
/// endpoints reflect it when the answer arrives.
#[cfg_attr(test, utoipa::path(
    method(get, put, post),
    path = "/testability/database/{state}",
    tag = "testability",
    params(("state" = String, Path, description = "up, down or hang",
        pattern = "^(up|down|hang)$")),
    responses(
        (status = 200, description = "Switched", body = DatabaseSwitched),
        (status = 400, description = "Not up, down or hang", body = crate::error::ErrorBody),
    )
))]
pub async fn set_database(
    State(testability): State<Testability>,
    state: Result<Path<String>, PathRejection>,
) -> Result<Json<DatabaseSwitched>, ApiError> {
    let Path(raw) = state.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let fault = match raw.as_str() {
        "up" => Fault::None,
        "down" => Fault::Failing,
        "hang" => Fault::Hanging,
        _ => {
            return Err(ApiError::InvalidSwitch(format!(
                "database state must be up, down or hang, not {raw:?}"
            )));
        }
    };
    match fault {
        Fault::None => {}
        Fault::Failing => tracing::warn!("testability: database fault injected"),
        Fault::Hanging => tracing::warn!("testability: every database call now hangs"),
    }
    testability.database.set(fault);
    // Run the real check now, so the answer is only sent once the health endpoints reflect the
    // change (bounded by the check timeout), instead of up to one interval later.
    testability.health.refresh_now().await;
    Ok(Json(DatabaseSwitched { database: raw }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_booleans_of_go_are_accepted() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(text), Some(true), "{text}");
        }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(text), Some(false), "{text}");
        }
        for text in ["", "yes", "no", "tRUE", "2", " true", "on"] {
            assert_eq!(parse_go_bool(text), None, "{text}");
        }
    }
}
