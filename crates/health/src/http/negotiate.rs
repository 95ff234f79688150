//! Content negotiation between the Spring-like `application/json` answer and the IETF draft's
//! `application/health+json`.

use axum::http::HeaderValue;

/// The two body formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/json`, Spring Boot Actuator style (the default).
    Json,
    /// `application/health+json`, draft-inadarei-api-health-check.
    HealthJson,
}

impl Format {
    pub(crate) const ALL: [Format; 2] = [Format::Json, Format::HealthJson];

    pub(crate) fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Json => "application/json",
            Format::HealthJson => "application/health+json",
        })
    }

    /// Picks the format for an `Accept` header. `application/health+json` only when the client
    /// names it with a non-zero quality at least that of an explicit `application/json`;
    /// everything else (no header, wildcards, types we do not make) gets `application/json`
    /// rather than a 406: a probe must always get an answer it can act on by status code.
    /// Allocation-free: this runs on every probe.
    pub(crate) fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Format::Json;
        };
        let mut health_json: Option<f32> = None;
        let mut json: Option<f32> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let slot = if media.eq_ignore_ascii_case("application/health+json") {
                &mut health_json
            } else if media.eq_ignore_ascii_case("application/json") {
                &mut json
            } else {
                continue;
            };
            let q = parts
                .find_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
                })
                // An unreadable quality is treated as "not acceptable".
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match health_json {
            Some(q) if q > 0.0 && json.is_none_or(|j| q >= j) => Format::HealthJson,
            _ => Format::Json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Format {
        Format::negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn health_json_is_chosen_only_when_asked_for() {
        assert_eq!(Format::negotiate(None), Format::Json);
        assert_eq!(pick("*/*"), Format::Json);
        assert_eq!(pick("application/*"), Format::Json);
        assert_eq!(pick("text/plain"), Format::Json);
        assert_eq!(pick("application/json"), Format::Json);
        assert_eq!(pick("application/health+json"), Format::HealthJson);
        assert_eq!(pick("Application/Health+JSON"), Format::HealthJson);
        assert_eq!(
            pick("text/html, application/health+json;q=0.8"),
            Format::HealthJson
        );
    }

    #[test]
    fn quality_values_decide_between_the_two_json_types() {
        assert_eq!(
            pick("application/json, application/health+json;q=0.5"),
            Format::Json
        );
        assert_eq!(
            pick("application/json;q=0.5, application/health+json"),
            Format::HealthJson
        );
        assert_eq!(
            pick("application/health+json, application/json"),
            Format::HealthJson
        );
        assert_eq!(pick("application/health+json;q=0"), Format::Json);
        assert_eq!(pick("application/health+json; q=nonsense"), Format::Json);
        assert_eq!(
            pick("application/health+json ; charset=utf-8 ; q=0.9"),
            Format::HealthJson
        );
    }
}
