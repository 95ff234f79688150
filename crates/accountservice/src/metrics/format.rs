//! Which exposition format a scrape gets: the Prometheus text format (0.0.4) unless the
//! scraper's `Accept` prefers OpenMetrics, as Prometheus' own clients negotiate it.
//!
//! Prometheus asks for OpenMetrics first (`application/openmetrics-text;version=1.0.0,…,
//! text/plain;version=0.0.4;q=0.5,*/*;q=0.1`); `curl`, `promtool check metrics` and most other
//! tools send nothing or `*/*` and get the classic text format, which `promtool` can check.

use axum::http::HeaderValue;
use prometheus_client::encoding::prometheus_text;

/// An exposition format this service can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: the default.
    Text,
    /// OpenMetrics text 1.0.0, for scrapers that ask for it.
    OpenMetrics,
}

impl Format {
    /// The format for a request's `Accept` header: the supported media type with the highest
    /// quality (the first listed on a tie), [`Format::Text`] when none is acceptable or the
    /// header is missing or unreadable.
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|value| value.to_str().ok()) else {
            return Format::Text;
        };
        let mut best: Option<(Format, f32)> = None;
        for range in accept.split(',') {
            let Some((format, quality)) = offer(range) else {
                continue;
            };
            if quality > 0.0 && best.is_none_or(|(_, best_quality)| quality > best_quality) {
                best = Some((format, quality));
            }
        }
        best.map_or(Format::Text, |(format, _)| format)
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The format one media range of `Accept` names and its quality, if it names one this service
/// speaks: `application/openmetrics-text` (versions 1.0.0 and 0.0.1, which differ in nothing
/// written here) or `text/plain` (version 0.0.4 or none). Wildcards name the default format, a
/// version this service does not speak (such as Prometheus 3's `text/plain;version=1.0.0` with
/// UTF-8 names) names nothing.
fn offer(range: &str) -> Option<(Format, f32)> {
    let mut parts = range.split(';');
    let media_type = parts.next()?.trim();
    let mut version = None;
    let mut quality = 1.0_f32;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim() {
            name if name.eq_ignore_ascii_case("q") => quality = value.parse().ok()?,
            name if name.eq_ignore_ascii_case("version") => version = Some(value),
            _ => {}
        }
    }
    let format = if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
        matches!(version, None | Some("1.0.0" | "0.0.1")).then_some(Format::OpenMetrics)
    } else if media_type.eq_ignore_ascii_case("text/plain") {
        matches!(version, None | Some("0.0.4")).then_some(Format::Text)
    } else if media_type == "*/*" || media_type.eq_ignore_ascii_case("text/*") {
        Some(Format::Text)
    } else {
        None
    }?;
    Some((format, quality))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: &str) -> Format {
        Format::negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn no_accept_header_gets_the_prometheus_text_format() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(negotiate("*/*"), Format::Text);
        assert_eq!(negotiate("application/json"), Format::Text);
        assert_eq!(negotiate(""), Format::Text);
    }

    #[test]
    fn prometheus_2_gets_openmetrics_which_it_lists_first() {
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
    }

    #[test]
    fn prometheus_3_gets_openmetrics_and_its_text_only_setting_gets_text() {
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,\
                 text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
                 text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"),
            Format::Text
        );
    }

    #[test]
    fn the_highest_quality_wins_and_the_first_listed_breaks_a_tie() {
        assert_eq!(
            negotiate("application/openmetrics-text;q=0.4, text/plain;q=0.6"),
            Format::Text
        );
        assert_eq!(
            negotiate("text/plain;q=0.4, application/openmetrics-text;q=0.6"),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate("application/openmetrics-text, text/plain"),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate("text/plain, application/openmetrics-text"),
            Format::Text
        );
    }

    #[test]
    fn refused_or_unknown_versions_and_bad_qualities_are_not_chosen() {
        assert_eq!(
            negotiate("application/openmetrics-text;q=0, text/plain;q=0.1"),
            Format::Text
        );
        assert_eq!(
            negotiate("application/openmetrics-text;version=2.0.0"),
            Format::Text
        );
        assert_eq!(
            negotiate("application/openmetrics-text;q=high"),
            Format::Text
        );
        assert_eq!(
            negotiate("APPLICATION/OpenMetrics-Text; Version=\"1.0.0\""),
            Format::OpenMetrics
        );
    }
}
