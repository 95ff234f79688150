//! Property tests over the whole router (no socket): whatever the path, id bytes, method or
//! headers, the service answers with a documented status and a JSON body, and never panics.

use std::{cell::RefCell, collections::BTreeSet};

use accountservice::{router, startup::Application};
use axum::{
    Router,
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request, header},
};
use http_body_util::BodyExt as _;
use proptest::{prelude::*, test_runner::TestRunner};
use tower::ServiceExt as _;

use crate::helpers::settings;

/// Every status the service documents.
const DOCUMENTED: [u16; 8] = [200, 400, 404, 405, 413, 414, 431, 503];

/// The full router over a real database, with testability on so its routes are exercised too.
fn app(runtime: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Router {
    let mut settings = settings(&dir.path().join("accounts.db"));
    settings.testability = true;
    let application = runtime
        .block_on(Application::build(&settings))
        .expect("start-up failed");
    router::app(application.state().clone(), application.endpoints().clone())
}

/// Bytes percent-encoded into a path segment, so any byte (NUL, invalid UTF-8) can be sent.
fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::OPTIONS),
        Just(Method::TRACE),
        "[A-Z]{1,12}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| percent_encode(&b));
    prop_oneof![
        segment.clone().prop_map(|s| format!("/accounts/{s}")),
        (10_000_u32..10_200).prop_map(|n| format!("/accounts/{n}")),
        // Past the 8 KiB URI limit, below what an `http::Uri` can hold (64 KiB); ids of
        // 100 KB cannot even be a URI, and over a socket hyper answers 431 for them (see
        // `limits`).
        (9_000_usize..60_000).prop_map(|n| format!("/accounts/{}", "7".repeat(n))),
        Just("/accounts/".to_owned()),
        prop::sample::select(vec![
            "/health",
            "/health/live",
            "/health/ready",
            "/livez",
            "/readyz",
            "/testability/healthy/true",
            "/testability/database/up",
            "/",
            "/accounts",
        ])
        .prop_map(str::to_owned),
        segment
            .clone()
            .prop_map(|s| format!("/testability/healthy/{s}")),
        segment
            .clone()
            .prop_map(|s| format!("/testability/database/{s}")),
        prop::collection::vec(segment, 1..6)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        Just("accept".to_owned()),
        Just("content-length".to_owned()),
        Just("content-type".to_owned()),
        "x-[a-z0-9-]{1,20}",
    ];
    let value = prop_oneof![
        Just(b"application/health+json".to_vec()),
        Just(b"application/json;q=0.1, application/health+json;q=0.9".to_vec()),
        Just(b"*/*".to_vec()),
        Just(b"99999999999999999999999".to_vec()),
        Just(b"5000".to_vec()),
        prop::collection::vec(0x20_u8..0x7f, 0..100),
    ];
    prop::collection::vec((name, value), 0..5)
}

#[test]
fn any_request_gets_a_documented_status_and_a_json_body() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&runtime, &dir);
    let seen = RefCell::new(BTreeSet::new());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(method(), path(), headers()), |(method, path, headers)| {
            let mut request = Request::builder().method(method.clone()).uri(&path);
            for (name, value) in &headers {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value),
                ) else {
                    continue;
                };
                request = request.header(name, value);
            }
            let Ok(request) = request.body(Body::empty()) else {
                // Not a request the HTTP layer would ever hand over.
                return Ok(());
            };
            let response = runtime.block_on(app.clone().oneshot(request)).unwrap();
            let status = response.status().as_u16();
            seen.borrow_mut().insert(status);
            prop_assert!(
                DOCUMENTED.contains(&status),
                "{method} {path:.100}: undocumented status {status}"
            );
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            let body = runtime
                .block_on(response.into_body().collect())
                .unwrap()
                .to_bytes();
            if method == Method::HEAD {
                prop_assert!(body.is_empty(), "HEAD {path:.100} has a body");
                return Ok(());
            }
            prop_assert!(
                content_type == "application/json" || content_type == "application/health+json",
                "{method} {path:.100}: content type {content_type:?}"
            );
            let json: Result<serde_json::Value, _> = serde_json::from_slice(&body);
            prop_assert!(
                json.is_ok(),
                "{method} {path:.100}: body is not JSON: {body:?}"
            );
            Ok(())
        })
        .unwrap();
    // The generators reach the interesting answers, not just 404s.
    let seen = seen.into_inner();
    for status in [200, 400, 404, 405, 413, 414] {
        assert!(seen.contains(&status), "never saw {status}: {seen:?}");
    }
}
