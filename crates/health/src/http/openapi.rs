//! The OpenAPI schemas of the bodies the health endpoints write (feature `openapi`), for the
//! generator of a service's OpenAPI document.
//!
//! Each name below is the very type that serializes the body, deriving utoipa's `ToSchema`
//! next to its `Serialize`, so the schema follows the answer: rename a field, skip an empty one
//! or add one, and the document changes with it. The types are aliased here with `'static`
//! lifetimes so that a path annotation can name them; their fields stay private. Statuses are
//! [`crate::Status`] (schema `HealthStatus`).
//!
//! The paths are the service's to describe (it knows what its components mean); what each path
//! answers is listed on [`super::router()`]. A service's binary should not turn this feature on:
//! it serves a document generated beforehand and carries no utoipa code.

/// `/health`, `/health/live`, `/health/ready`, `/livez`, `/readyz` in `application/json`.
pub type HealthBody = super::render::SpringBody<'static>;

/// A component in [`HealthBody`]; also the body of `/health/{component}`.
pub type HealthComponent = super::render::SpringComponent<'static>;

/// A component's internal details in [`HealthComponent`], at [`super::Details::Always`].
pub type HealthDetails = super::render::SpringDetails<'static>;

/// `/health`, `/health/live`, `/health/ready`, `/livez`, `/readyz` in
/// `application/health+json`.
pub type HealthJsonBody = super::render::DraftBody<'static>;

/// A check in [`HealthJsonBody`].
pub type HealthJsonCheck = super::render::DraftCheck<'static>;

/// `/health/history`.
pub type HealthHistory = super::history::HistoryBody<'static>;

/// A component in [`HealthHistory`].
pub type HealthHistoryComponent = super::history::HistoryComponent;

/// A transition in [`HealthHistory`].
pub type HealthTransition = super::history::TransitionBody<'static>;

/// `/health/started` and `/startupz`.
pub type StartupBody = super::router::StartupBody;

/// The 404 of `/health/{component}`.
pub type HealthError = super::router::NotFound;

#[cfg(test)]
mod tests {
    //! Every body the endpoints write, with every optional field present and with none,
    //! checked against its schema: a field the schema does not describe, a required one that
    //! is missing, a null or a type the schema does not admit, or a status outside its enum
    //! fails the test.

    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use axum::body::Body;
    use axum::http::{Request, header::ACCEPT};
    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};
    use tower::ServiceExt as _;
    use utoipa::OpenApi;

    use super::*;
    use crate::http::exclude::Exclusions;
    use crate::http::negotiate::Format;
    use crate::http::render::{render, render_component, render_excluding};
    use crate::http::{Details, HttpOptions, Identity};
    use crate::report::{ComponentKind, ComponentReport, Report};
    use crate::{CheckOutcome, Health, Probes, Startup, Status, check_fn};

    #[derive(OpenApi)]
    #[openapi(components(schemas(
        HealthBody,
        HealthComponent,
        HealthDetails,
        HealthJsonBody,
        HealthJsonCheck,
        HealthHistory,
        HealthHistoryComponent,
        HealthTransition,
        StartupBody,
        HealthError,
    )))]
    struct Doc;

    fn schemas() -> Value {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        doc["components"]["schemas"].clone()
    }

    /// Checks `value` against `schema`, resolving `$ref`s in `schemas`; `Err` says where and
    /// why it does not conform. Covers what utoipa writes for these types: `$ref`, `oneOf`,
    /// `type` (one or several), `enum`, `properties`, `required`, `additionalProperties`,
    /// `items`.
    fn conforms(schemas: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = schemas
                .get(name)
                .ok_or_else(|| format!("{at}: no schema {name}"))?;
            return conforms(schemas, target, value, at);
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let outcomes: Vec<_> = options
                .iter()
                .map(|option| conforms(schemas, option, value, at))
                .collect();
            // The options carry the constraints (utoipa writes `oneOf` for `Option<T>`).
            return match outcomes.iter().filter(|o| o.is_ok()).count() {
                1 => Ok(()),
                0 => Err(outcomes
                    .into_iter()
                    .filter_map(Result::err)
                    .collect::<Vec<_>>()
                    .join("; or ")),
                _ => Err(format!(
                    "{at}: {value} fits several options of oneOf {options:?}"
                )),
            };
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                other => return Err(format!("{at}: unexpected type {other}")),
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let admitted =
                types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
            if !admitted {
                return Err(format!(
                    "{at}: {value} is {actual}, the schema says {types:?}"
                ));
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Value::Object(fields) = value {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(name) {
                    return Err(format!("{at}: required `{name}` is missing"));
                }
            }
            for (name, field) in fields {
                let at = format!("{at}.{name}");
                let described = properties
                    .and_then(|p| p.get(name))
                    .or_else(|| schema.get("additionalProperties"));
                let Some(described) = described else {
                    return Err(format!("{at}: written but not in the schema"));
                };
                conforms(schemas, described, field, &at)?;
            }
        }
        if let (Value::Array(items), Some(schema)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                conforms(schemas, schema, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    fn assert_conforms(name: &str, body: &[u8]) {
        let schemas = schemas();
        let value: Value = serde_json::from_slice(body).unwrap();
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        if let Err(why) = conforms(&schemas, &schema, &value, name) {
            panic!("{why}\nbody: {value}");
        }
    }

    fn component(status: Status, kind: ComponentKind) -> ComponentReport {
        ComponentReport {
            status,
            reason: (status != Status::Up).then(|| "read failed".to_owned()),
            detail: Some("disk I/O error".to_owned()),
            observed_value: Some(json!(1.5)),
            observed_unit: Some("ms".to_owned()),
            measurement: "responseTime".to_owned(),
            critical: kind == ComponentKind::Check,
            curability: crate::Curability::NotByRestart,
            kind,
            checked_at: Some(SystemTime::now()),
            duration: (kind == ComponentKind::Check).then(|| Duration::from_millis(2)),
        }
    }

    /// A report with every optional field of every component filled in.
    fn full_report() -> Report {
        Report::from_components(BTreeMap::from([
            (
                "database".to_owned(),
                component(Status::Down, ComponentKind::Check),
            ),
            (
                "cache".to_owned(),
                component(Status::Up, ComponentKind::Check),
            ),
            (
                "lifecycle".to_owned(),
                component(Status::OutOfService, ComponentKind::Manual),
            ),
        ]))
    }

    fn options(details: Details) -> HttpOptions {
        HttpOptions {
            details,
            service_id: "accountservice".into(),
            version: "0.1.0+v2".into(),
            description: Some("Account lookup".into()),
            identity: Identity {
                instance: "replica-1".into(),
                address: Some("10.0.0.5:6767".into()),
                started_at: Some(SystemTime::now()),
                slot: Some(2),
            },
        }
    }

    fn exclusions() -> Exclusions {
        Exclusions {
            excluded: vec!["cache".to_owned()],
            not_excluded: BTreeMap::from([("disk".to_owned(), "no such component")]),
        }
    }

    #[test]
    fn scope_answers_conform_with_every_field_and_with_none() {
        let full = full_report();
        let bare = Report::from_components(BTreeMap::new());
        for details in [Details::Never, Details::Components, Details::Always] {
            let options = options(details);
            for report in [&full, &bare] {
                assert_conforms("HealthBody", &render(report, Format::Json, &options));
                assert_conforms(
                    "HealthJsonBody",
                    &render(report, Format::HealthJson, &options),
                );
                let excluding = |format| render_excluding(report, format, &options, &exclusions());
                assert_conforms("HealthBody", &excluding(Format::Json));
                assert_conforms("HealthJsonBody", &excluding(Format::HealthJson));
            }
            for c in full.components.values() {
                assert_conforms("HealthComponent", &render_component(c, details));
            }
        }
        // The statuses on the wire are the schema's enum, all of them.
        let written = serde_json::to_value([
            Status::Up,
            Status::Unknown,
            Status::Degraded,
            Status::OutOfService,
            Status::Down,
        ])
        .unwrap();
        assert_eq!(schemas()["HealthStatus"]["enum"], written);
    }

    async fn get(app: &axum::Router, path: &str, accept: &str) -> (u16, Vec<u8>) {
        let request = Request::get(path)
            .header(ACCEPT, accept)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }

    #[tokio::test]
    async fn history_start_up_and_not_found_answers_conform() {
        let startup = Startup::new();
        let health = Health::builder()
            .check(check_fn("database", || async {
                CheckOutcome::down("read failed")
            }))
            .startup(startup.clone())
            .build()
            .unwrap();
        health.refresh_now().await;
        health.set_manual(
            "lifecycle",
            Status::OutOfService,
            "draining",
            Probes::READINESS,
        );
        for details in [Details::Never, Details::Always] {
            let app: axum::Router = crate::http::router(health.clone(), options(details));
            let (_, history) = get(&app, "/health/history", "application/json").await;
            assert_conforms("HealthHistory", &history);
            let value: Value = serde_json::from_slice(&history).unwrap();
            assert!(
                !value["transitions"].as_array().unwrap().is_empty(),
                "{value}"
            );
            let (status, missing) = get(&app, "/health/nothing", "application/json").await;
            assert_eq!(status, 404);
            assert_conforms("HealthError", &missing);
        }
        let app: axum::Router = crate::http::startup_router(startup.clone());
        let (status, starting) = get(&app, "/health/started", "application/json").await;
        assert_eq!(status, 503);
        assert_conforms("StartupBody", &starting);
        startup.complete();
        let (status, started) = get(&app, "/health/started", "application/json").await;
        assert_eq!(status, 200);
        assert_conforms("StartupBody", &started);
    }
}
