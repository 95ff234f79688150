//! Writes a [`Report`] as a response body, in either format, at a details level.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::exclude::Exclusions;
use super::negotiate::Format;
use super::options::{Details, HttpOptions};
use crate::Status;
use crate::report::{ComponentKind, ComponentReport, Report};

/// The body for a report.
#[cfg(test)]
pub(crate) fn render(report: &Report, format: Format, options: &HttpOptions) -> Vec<u8> {
    render_excluding(report, format, options, &Exclusions::default())
}

/// The body for a report, or, if it cannot be written (these types always can: string keys, no
/// custom `Serialize`, and a `serde_json::Value` inside cannot fail to write to a `Vec`), the
/// bare status and the error, which the caller logs once it holds no lock.
pub(crate) fn try_render(
    report: &Report,
    format: Format,
    options: &HttpOptions,
) -> Result<Vec<u8>, Unrendered> {
    write(report, format, options, &Exclusions::default())
}

/// A body that could not be written: what to send instead, and why.
pub(crate) struct Unrendered {
    /// The bare status, `{"status":"UP"}`.
    pub(crate) fallback: Vec<u8>,
    /// The serializer's error.
    pub(crate) error: serde_json::Error,
}

/// The body for a report that `?exclude=` changed, saying what it did: in `application/json`
/// as `excluded` (names) and `notExcluded` (name: why); in `application/health+json` as
/// `notes`, the draft's field for such remarks.
pub(crate) fn render_excluding(
    report: &Report,
    format: Format,
    options: &HttpOptions,
    exclusions: &Exclusions,
) -> Vec<u8> {
    // No lock is held here: the error can be logged at once.
    write(report, format, options, exclusions).unwrap_or_else(|unrendered| {
        tracing::error!(err = %unrendered.error, "could not write a health answer");
        unrendered.fallback
    })
}

fn write(
    report: &Report,
    format: Format,
    options: &HttpOptions,
    exclusions: &Exclusions,
) -> Result<Vec<u8>, Unrendered> {
    let written = match format {
        Format::Json => {
            let mut body = spring(report, options.details);
            body.excluded = &exclusions.excluded;
            body.not_excluded = &exclusions.not_excluded;
            serde_json::to_vec(&body)
        }
        Format::HealthJson => {
            let mut body = draft(report, options);
            body.notes = notes(exclusions);
            serde_json::to_vec(&body)
        }
    };
    // Fall back to the bare status rather than panic in a probe.
    written.map_err(|error| Unrendered {
        fallback: format!(r#"{{"status":"{}"}}"#, report.status).into_bytes(),
        error,
    })
}

// ---- application/json, Spring Boot Actuator style -------------------------------------------

/// A health answer (`application/json`). At details level `always` components carry
/// `details` too.
// `pub` only so that `openapi` can name it (as `HealthBody`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthBody))]
pub struct SpringBody<'a> {
    /// The aggregate status: the worst of the components'.
    status: Status,
    /// When not UP: the failing components and why, e.g. `database: read failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// Each component by name (absent at details level `never`, and when the scope has none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    components: BTreeMap<&'a str, SpringComponent<'a>>,
    /// The components `?exclude=` left out of this answer.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    excluded: &'a [String],
    /// Names given to `?exclude=` that matched no component of the scope, with why
    /// (`no such component`, `not in this scope`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    not_excluded: &'a BTreeMap<String, &'static str>,
}

/// The body of `/health/{component}`: the component as `/health` shows it at this level.
pub(crate) fn render_component(c: &ComponentReport, details: Details) -> Vec<u8> {
    let body = SpringComponent {
        status: c.status,
        reason: c.reason.as_deref(),
        details: (details == Details::Always).then(|| spring_details(c)),
    };
    serde_json::to_vec(&body).unwrap_or_else(|err| {
        tracing::error!(%err, "could not write a health answer");
        format!(r#"{{"status":"{}"}}"#, c.status).into_bytes()
    })
}

fn notes(exclusions: &Exclusions) -> Vec<String> {
    let excluded = exclusions.excluded.iter().map(|n| format!("excluded: {n}"));
    let not = exclusions
        .not_excluded
        .iter()
        .map(|(n, why)| format!("not excluded: {n} ({why})"));
    excluded.chain(not).collect()
}

/// One component of a health answer.
// `pub` only so that `openapi` can name it (as `HealthComponent`).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthComponent))]
pub struct SpringComponent<'a> {
    /// The component's status.
    status: Status,
    /// Why it is not UP, in a few words.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// Internal details, at details level `always` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<SpringDetails<'a>>,
}

/// A component's internal details (details level `always`).
// `pub` only so that `openapi` can name it (as `HealthDetails`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthDetails))]
pub struct SpringDetails<'a> {
    /// Whether its failure fails the aggregate (else it only degrades it).
    critical: bool,
    /// Whether restarting the instance can cure its failure. When not (a dependency every
    /// replica shares), its failure fails `/health` but only degrades liveness and readiness:
    /// nothing restarts for it, and the instance stays in rotation.
    curable_by_restart: bool,
    /// `check` (run in the background) or `manual` (set from outside, e.g. draining).
    kind: &'static str,
    /// The internal error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    /// What the check measured, in `observedUnit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_value: Option<&'a serde_json::Value>,
    /// The unit of `observedValue`, e.g. `ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_unit: Option<&'a str>,
    /// When the result was produced (a manual component: when it was set), RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_at: Option<String>,
    /// How long the check took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
}

static EMPTY: BTreeMap<String, &'static str> = BTreeMap::new();

fn spring(report: &Report, details: Details) -> SpringBody<'_> {
    let components = match details {
        Details::Never => BTreeMap::new(),
        Details::Components | Details::Always => report
            .components
            .iter()
            .map(|(name, c)| {
                let component = SpringComponent {
                    status: c.status,
                    reason: c.reason.as_deref(),
                    details: (details == Details::Always).then(|| spring_details(c)),
                };
                (name.as_str(), component)
            })
            .collect(),
    };
    SpringBody {
        status: report.status,
        reason: report.reason.as_deref(),
        components,
        excluded: &[],
        not_excluded: &EMPTY,
    }
}

fn spring_details(c: &ComponentReport) -> SpringDetails<'_> {
    SpringDetails {
        critical: c.critical,
        curable_by_restart: c.curability.by_restart(),
        kind: match c.kind {
            ComponentKind::Check => "check",
            ComponentKind::Manual => "manual",
        },
        detail: c.detail.as_deref(),
        observed_value: c.observed_value.as_ref(),
        observed_unit: c.observed_unit.as_deref(),
        checked_at: c.checked_at.map(rfc3339),
        duration_ms: c.duration.map(|d| d.as_secs_f64() * 1000.0),
    }
}

// ---- application/health+json, draft-inadarei-api-health-check -------------------------------

/// A health answer in the IETF draft format (`application/health+json`).
// `pub` only so that `openapi` can name it (as `HealthJsonBody`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthJsonBody))]
pub struct DraftBody<'a> {
    /// `pass`, `warn` or `fail`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(pass|warn|fail)$"))]
    status: &'static str,
    /// The service version.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    /// The service id.
    #[serde(skip_serializing_if = "Option::is_none")]
    service_id: Option<&'a str>,
    /// Human-readable description of the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    /// Why it is not passing.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
    /// Checks keyed `component:measurement`, one result each (absent at details level `never`,
    /// and when the scope has none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<String, [DraftCheck<'a>; 1]>,
    /// What `?exclude=` did: `excluded: NAME`, `not excluded: NAME (why)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// One check in `application/health+json`.
// `pub` only so that `openapi` can name it (as `HealthJsonCheck`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthJsonCheck))]
pub struct DraftCheck<'a> {
    /// `pass`, `warn` or `fail`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(pass|warn|fail)$"))]
    status: &'static str,
    /// What the check measured, in `observedUnit` (details level `always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_value: Option<&'a serde_json::Value>,
    /// The unit of `observedValue`, e.g. `ms` (details level `always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_unit: Option<&'a str>,
    /// When the result was produced, RFC 3339 UTC (details level `always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    /// Why it is not passing (with the internal detail at details level `always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Cow<'a, str>>,
}

fn draft<'a>(report: &'a Report, options: &'a HttpOptions) -> DraftBody<'a> {
    let details = options.details;
    let non_empty = |s: &'a str| (!s.is_empty()).then_some(s);
    let about = details != Details::Never;
    let checks = if about {
        report
            .components
            .iter()
            .map(|(name, c)| {
                let key = format!("{name}:{}", c.measurement);
                (key, [draft_check(c, details)])
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    DraftBody {
        status: report.status.health_json(),
        version: about.then(|| non_empty(&options.version)).flatten(),
        service_id: about.then(|| non_empty(&options.service_id)).flatten(),
        description: about.then_some(options.description.as_deref()).flatten(),
        output: report.reason.as_deref(),
        checks,
        notes: Vec::new(),
    }
}

fn draft_check(c: &ComponentReport, details: Details) -> DraftCheck<'_> {
    let always = details == Details::Always;
    // The draft keeps `output` for "warn" and "fail"; a passing check has none.
    let output = if c.status == Status::Up {
        None
    } else {
        match (c.reason.as_deref(), c.detail.as_deref().filter(|_| always)) {
            (Some(reason), Some(detail)) => Some(Cow::Owned(format!("{reason}: {detail}"))),
            (Some(reason), None) => Some(Cow::Borrowed(reason)),
            (None, Some(detail)) => Some(Cow::Borrowed(detail)),
            (None, None) => None,
        }
    };
    DraftCheck {
        status: c.status.health_json(),
        observed_value: c.observed_value.as_ref().filter(|_| always),
        observed_unit: c.observed_unit.as_deref().filter(|_| always),
        time: c.checked_at.filter(|_| always).map(rfc3339),
        output,
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T13:51:57.123Z`.
///
/// Written here rather than pulled from a date crate: it is the one date operation this crate
/// needs, and `civil_from_days` is Howard Hinnant's well-known public-domain algorithm.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let in_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let at = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(at(1_709_251_199, 0), "2024-02-29T23:59:59.000Z");
    }
}
