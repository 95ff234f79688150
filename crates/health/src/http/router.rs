//! The health endpoints as an axum [`Router`], answering from bodies rendered once per change.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, VARY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tokio::time::Instant;

use super::exclude;
use super::negotiate::Format;
use super::options::{Details, HttpOptions};
use super::render::{Unrendered, render_component, render_excluding, try_render};
use crate::history::Recorded;
use crate::{ComponentReport, Health, Scope, Startup, Status};

/// The header of a `/health/{component}` answer that says how long ago, in seconds to the
/// millisecond (`0.412`), the check behind the answer began; absent for a manual component and
/// for a check that has not run yet. With it, a peer can tell whether the answer comes from a
/// check that began after some moment of its own, without trusting that the two clocks agree:
/// the check began no earlier than the moment it sent the question minus this age.
pub const CHECK_AGE: &str = "health-check-age";

/// The health endpoints, GET and HEAD (HEAD answers the same status and headers, no body):
///
/// | path | scope |
/// |---|---|
/// | `/health` | [`Scope::Overall`]: every component |
/// | `/health/live`, `/livez` | [`Scope::Liveness`] |
/// | `/health/ready`, `/readyz` | [`Scope::Readiness`] |
///
/// `?exclude=NAME` (repeatable) on these: the answer leaves the named components out of the
/// aggregate and lists them under `excluded`; a name that is no component of the scope is
/// listed under `notExcluded` with why (`application/health+json`: both as `notes`).
///
/// `/health/started` and `/startupz`: the service's [`Startup`], 503 with its progress as the
/// reason until complete, then 200 for good.
///
/// `/health/{component}`: one component's status and reason (and details at
/// [`Details::Always`]), 503 when it is `DOWN` or `OUT_OF_SERVICE`, with the [`CHECK_AGE`]
/// header for a check; 404 JSON for an unknown name, and for all at [`Details::Never`].
///
/// and `/health/history` (always 200, `application/json`): the replica's identity
/// ([`HttpOptions::identity`]), its overall status and since when, and its last transitions,
/// newest first (see [`Health::transitions`]); with [`super::Details::Never`] only the scopes'
/// transitions, as `/health` then shows no components.
///
/// Status 503 when the scope's status is `DOWN` or `OUT_OF_SERVICE`, else 200. The body is
/// `application/json` (Spring Boot style, `{"status":"UP","components":{…}}`) unless the
/// `Accept` header asks for `application/health+json` (draft-inadarei-api-health-check:
/// `status` pass/warn/fail, `checks` keyed `component:measurement`). [`HttpOptions::details`]
/// decides how much either shows.
///
/// Every answer carries `Cache-Control: no-store`: it is a fact about one instant, and a
/// cached `UP` replayed by a proxy or client after the instance failed would be a lie. It
/// also carries `Vary: Accept`, since the body depends on that header.
///
/// Probes never run checks. Bodies are rendered once for every (scope, format) when results
/// or manual components change, or when a result turns stale, and each probe clones a
/// reference-counted buffer: thousands of probes per second cost a read lock each.
///
/// Generic over the state type so the router merges into an application's `Router<S>`.
pub fn router<S>(health: Health, options: HttpOptions) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let endpoint = Arc::new(Endpoint::new(health, options));
    Router::new()
        .route("/health", get(overall))
        .route("/health/live", get(liveness))
        .route("/livez", get(liveness))
        .route("/health/ready", get(readiness))
        .route("/readyz", get(readiness))
        .route("/health/history", get(history))
        .route("/health/started", get(started))
        .route("/startupz", get(started))
        .route("/health/{component}", get(component))
        .with_state(endpoint)
}

/// Only the start-up endpoints, `/health/started` and `/startupz`, for a listener that answers
/// a `startupProbe` before the registry exists (while the service seeds its data). Answers
/// like [`router`]'s.
pub fn startup_router<S>(startup: Startup) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/health/started", get(startup_only))
        .route("/startupz", get(startup_only))
        .with_state(startup)
}

async fn started(State(endpoint): State<Arc<Endpoint>>) -> Response {
    startup_answer(endpoint.health.startup())
}

async fn startup_only(State(startup): State<Startup>) -> Response {
    startup_answer(&startup)
}

/// 503 `{"status":"OUT_OF_SERVICE","reason":"<progress>"}` while starting, 200
/// `{"status":"UP"}` once complete. The progress is shown at every details level: it names no
/// component and no internal state.
fn startup_answer(startup: &Startup) -> Response {
    let (status, reason) = startup.status();
    let code =
        StatusCode::from_u16(status.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    json_response(code, to_json(&StartupBody { status, reason }))
}

/// The start-up state.
// `pub` only so that `openapi` can name it (as `StartupBody`).
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartupBody {
    /// `UP` once started, `OUT_OF_SERVICE` before.
    status: Status,
    /// While starting: how far it got, e.g. `seeding, 40%`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The answer for a name that is no component, or for any at details level `never`.
// `pub` only so that `openapi` can name it (as `HealthError`).
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthError))]
pub struct NotFound {
    /// Why there is no such component to show, e.g. `no health component named "cache"`.
    error: String,
}

/// `/health/{component}`: one component as `/health` shows it, answering 503 when its own
/// status is `DOWN` or `OUT_OF_SERVICE` (even for a non-critical one: the question is about
/// that component). 404 JSON for a name that is no component, and for every name at
/// [`Details::Never`], where `/health` shows no components either.
async fn component(State(endpoint): State<Arc<Endpoint>>, Path(name): Path<String>) -> Response {
    let details = endpoint.options.details;
    let report = endpoint.health.report(Scope::Overall);
    match report.components.get(&name) {
        Some(c) if details != Details::Never => {
            let code = StatusCode::from_u16(c.status.http_status())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = json_response(code, render_component(c, details));
            if let Some(age) = check_age(c, SystemTime::now()) {
                response.headers_mut().insert(CHECK_AGE, age);
            }
            response
        }
        found => {
            let error = if found.is_some() {
                "health components are not shown at this details level".to_owned()
            } else {
                format!("no health component named {name:?}")
            };
            json_response(StatusCode::NOT_FOUND, to_json(&NotFound { error }))
        }
    }
}

/// [`CHECK_AGE`]'s value for `c` at `now`: the seconds since its check began (when it ended,
/// less how long it took), or `None` for a manual component or a check not run yet.
fn check_age(c: &ComponentReport, now: SystemTime) -> Option<HeaderValue> {
    let began = c.check_began()?;
    // A clock stepped back since the check says 0: as fresh as can be told.
    let age = now.duration_since(began).unwrap_or_default();
    HeaderValue::from_str(&format!("{:.3}", age.as_secs_f64())).ok()
}

/// Serializes a body of strings and statuses, which cannot fail; an empty object rather than a
/// panic if it ever did.
fn to_json(body: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_else(|err| {
        tracing::error!(%err, "could not write a health answer");
        b"{}".to_vec()
    })
}

/// `/health/history`: always 200 (it is a record, not a probe), JSON, never cached.
async fn history(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let body = super::history::render(&endpoint.health, &endpoint.options);
    json_response(StatusCode::OK, body)
}

/// A JSON answer that nobody caches.
fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn overall(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    endpoint.answer(Scope::Overall, &request)
}

async fn liveness(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    endpoint.answer(Scope::Liveness, &request)
}

async fn readiness(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    endpoint.answer(Scope::Readiness, &request)
}

/// The registry, the options and the rendered answers.
struct Endpoint {
    health: Health,
    options: HttpOptions,
    rendered: RwLock<Arc<Rendered>>,
    /// Held while rendering, so a change is rendered once, not once per waiting probe.
    rendering: Mutex<()>,
}

/// Every answer for one state of the registry.
struct Rendered {
    generation: u64,
    /// When a result in these answers turns stale, so they must be rendered again although
    /// nothing was published.
    valid_until: Option<Instant>,
    /// Indexed by [`slot`].
    answers: [Answer; 6],
}

#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: Bytes,
}

fn slot(scope: Scope, format: Format) -> usize {
    let s = match scope {
        Scope::Overall => 0,
        Scope::Liveness => 1,
        Scope::Readiness => 2,
    };
    s * 2 + usize::from(format == Format::HealthJson)
}

impl Rendered {
    /// Every answer for the registry's state at `now`, and what looking found to log (the
    /// transitions it recorded, any answer it could not write), for the caller to finish once
    /// it holds no lock.
    fn new<'h>(health: &'h Health, options: &HttpOptions, now: Instant) -> (Rendered, Looked<'h>) {
        let snapshot = health.snapshot();
        let reports = Scope::ALL.map(|scope| health.report_from(&snapshot, scope, now));
        // Rendering again is also when a result has turned stale: record that as a transition.
        let recorded = health.observe_reports(snapshot.generation, now, &reports);
        let mut errors = Vec::new();
        let answers = reports.each_ref().map(|report| {
            let status = StatusCode::from_u16(report.http_status())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Format::ALL.map(|format| {
                let body = try_render(report, format, options).unwrap_or_else(
                    |Unrendered { fallback, error }| {
                        errors.push(error);
                        fallback
                    },
                );
                Answer {
                    status,
                    body: Bytes::from(body),
                }
            })
        });
        let [[o_json, o_hj], [l_json, l_hj], [r_json, r_hj]] = answers;
        let rendered = Rendered {
            generation: snapshot.generation,
            valid_until: health.stale_deadline(&snapshot, now),
            answers: [o_json, o_hj, l_json, l_hj, r_json, r_hj],
        };
        (rendered, Looked { recorded, errors })
    }

    fn is_current(&self, generation: u64, now: Instant) -> bool {
        self.generation == generation && self.valid_until.is_none_or(|until| now < until)
    }
}

/// What rendering found to log, logged by [`Looked::finish`] once no lock is held.
struct Looked<'h> {
    recorded: Recorded<'h>,
    errors: Vec<serde_json::Error>,
}

impl Looked<'_> {
    fn finish(self) {
        for error in self.errors {
            tracing::error!(err = %error, "could not write a health answer");
        }
        self.recorded.finish();
    }
}

impl Endpoint {
    fn new(health: Health, options: HttpOptions) -> Endpoint {
        let (rendered, recorded) = Rendered::new(&health, &options, Instant::now());
        recorded.finish();
        Endpoint {
            health,
            options,
            rendered: RwLock::new(Arc::new(rendered)),
            rendering: Mutex::new(()),
        }
    }

    fn answer(&self, scope: Scope, request: &Request) -> Response {
        let format = Format::negotiate(request.headers().get(ACCEPT));
        let Answer { status, body } = match exclude::names(request.uri().query()) {
            None => self.lookup(slot(scope, format)),
            Some(names) => self.excluding(scope, format, names),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, format.content_type());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(VARY, HeaderValue::from_static("accept"));
        response
    }

    /// An answer without the components named in `?exclude=`, rendered for this request only
    /// (an operator's override, not a probe's hot path).
    fn excluding(&self, scope: Scope, format: Format, names: Vec<String>) -> Answer {
        let health = &self.health;
        let snapshot = health.snapshot();
        let now = Instant::now();
        let every = health.report_from(&snapshot, Scope::Overall, now);
        let report = health.report_from(&snapshot, scope, now);
        let (report, exclusions) =
            exclude::apply(report, names, |name| every.components.contains_key(name));
        let status =
            StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = render_excluding(&report, format, &self.options, &exclusions);
        Answer {
            status,
            body: Bytes::from(body),
        }
    }

    /// The current answer for a slot: from the rendered set if still current, else after
    /// rendering a new set.
    fn lookup(&self, slot: usize) -> Answer {
        let now = Instant::now();
        let generation = self.health.generation();
        {
            let rendered = self.rendered.read().unwrap_or_else(PoisonError::into_inner);
            if rendered.is_current(generation, now) {
                return rendered.answers[slot].clone();
            }
        }
        self.render_again(now).answers[slot].clone()
    }

    fn render_again(&self, now: Instant) -> Arc<Rendered> {
        let (fresh, recorded) = {
            let _rendering = self
                .rendering
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Another probe may have rendered while this one waited.
            let current = Arc::clone(&self.rendered.read().unwrap_or_else(PoisonError::into_inner));
            if current.is_current(self.health.generation(), now) {
                return current;
            }
            let (fresh, recorded) = Rendered::new(&self.health, &self.options, now);
            let fresh = Arc::new(fresh);
            *self
                .rendered
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
            (fresh, recorded)
        };
        // Logged once the render lock is released: probes waiting for it must not wait for a
        // slow log sink too.
        recorded.finish();
        fresh
    }
}
