//! Checks whose behaviour a test controls, and a client for the router.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use health::{CheckOutcome, check_fn};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A check that answers whatever the test last set, and counts its runs.
#[derive(Clone)]
pub struct Switch {
    outcome: Arc<Mutex<CheckOutcome>>,
    runs: Arc<AtomicUsize>,
}

impl Switch {
    pub fn new(outcome: CheckOutcome) -> Switch {
        Switch {
            outcome: Arc::new(Mutex::new(outcome)),
            runs: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn up() -> Switch {
        Switch::new(CheckOutcome::up())
    }

    pub fn set(&self, outcome: CheckOutcome) {
        *self.outcome.lock().unwrap() = outcome;
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// The check, under a name; adjust it with `FnCheck`'s methods.
    pub fn check(
        &self,
        name: &str,
    ) -> health::FnCheck<impl Fn() -> std::future::Ready<CheckOutcome> + Send + Sync + 'static>
    {
        let me = self.clone();
        check_fn(name, move || {
            me.runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(me.outcome.lock().unwrap().clone())
        })
    }
}

/// One answer, collected.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// Sends one request through the router, without a socket.
pub async fn call(router: &Router, method: Method, path: &str, accept: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(router: &Router, path: &str) -> Answer {
    call(router, Method::GET, path, None).await
}

pub const HEALTH_JSON: &str = "application/health+json";
