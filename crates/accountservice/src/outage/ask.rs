//! Asks one peer whether it reaches a dependency: `GET /health/{component}` on the port
//! `--peers` names (its management port), which it answers from its own cached check, so a
//! question costs it no check. One connection, one request, one deadline, a cap on the bytes
//! read. The answer's `health-check-age` header says how long ago the peer's check began, so
//! the asker can tell an answer older than its own failure from one that saw it.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use health::http::CHECK_AGE;
use http_body_util::BodyExt as _;
use hyper::{HeaderMap, StatusCode};

use super::verdict::Answer;
use crate::fleet::client::{seconds, send_get};

/// The most body bytes read from an answer: one component's status and short reason, with room
/// for its details at `details=always`.
const MAX_BODY: usize = 16 * 1024;

/// The longest peer's reason kept, so that what a peer says stays bounded in this replica's
/// detail and log.
const MAX_REASON: usize = 120;

/// What one peer said, and how old the check behind it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its answer.
    pub answer: Answer,
    /// On this replica's clock, the earliest the peer's check behind the answer can have begun:
    /// when the question was sent, less the age the peer gave. `None` when it gave none (then
    /// the answer is taken as current).
    pub began_after: Option<SystemTime>,
}

/// Asks the peer at `address` (listed as `host`) about `component`, within `timeout` for
/// connecting, sending and reading together.
pub async fn ask(address: SocketAddr, host: &str, component: &str, timeout: Duration) -> Reply {
    // The peer's clock is never read: its age of the check, taken from the moment the question
    // left, places the check on this replica's clock no later than it really began.
    let sent = SystemTime::now();
    let answer = tokio::time::timeout(timeout, exchange(address, host, component, timeout)).await;
    match answer {
        Ok(Ok((status, age, body))) => Reply {
            answer: judge(status, &body),
            began_after: age.and_then(|age| sent.checked_sub(age)),
        },
        Ok(Err(why)) => Reply {
            answer: Answer::NoAnswer(why),
            began_after: None,
        },
        Err(_) => Reply {
            answer: Answer::NoAnswer(format!("no answer within {}", seconds(timeout))),
            began_after: None,
        },
    }
}

/// The age of the peer's check, from its `health-check-age` header (seconds): `None` when it is
/// absent or not a finite, non-negative number.
fn check_age(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(CHECK_AGE)?.to_str().ok()?;
    Duration::try_from_secs_f64(text.parse().ok()?).ok()
}

/// What a peer's answer to `/health/{component}` says.
fn judge(status: StatusCode, body: &[u8]) -> Answer {
    #[derive(serde::Deserialize)]
    struct Component {
        status: String,
        reason: Option<String>,
    }
    let Ok(component) = serde_json::from_slice::<Component>(body) else {
        return Answer::NoAnswer(format!(
            "answered {} without a component status",
            status.as_u16()
        ));
    };
    match component.status.as_str() {
        "UP" | "DEGRADED" | "UNKNOWN" => Answer::Reaches,
        "DOWN" => Answer::CannotReach(bounded(
            component.reason.unwrap_or_else(|| "DOWN".to_owned()),
        )),
        // Not checked yet (starting) or otherwise out of service: it does not know yet.
        other => Answer::NoAnswer(bounded(format!(
            "{other}{}",
            component
                .reason
                .map(|reason| format!(": {reason}"))
                .unwrap_or_default()
        ))),
    }
}

/// At most [`MAX_REASON`] bytes (cut at a character boundary), without control characters.
fn bounded(text: String) -> String {
    let mut cut = text.len().min(MAX_REASON);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].chars().filter(|c| !c.is_control()).collect()
}

async fn exchange(
    address: SocketAddr,
    host: &str,
    component: &str,
    timeout: Duration,
) -> Result<(StatusCode, Option<Duration>, Vec<u8>), String> {
    let path = format!("/health/{component}");
    let (response, _connection) = send_get(
        address,
        host,
        &path,
        "accountservice-outage",
        timeout,
        MAX_BODY,
    )
    .await?;
    let status = response.status();
    let age = check_age(response.headers());
    let mut body = response.into_body();
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("the answer broke off: {error}"))?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > MAX_BODY {
                return Err(format!("answer longer than {} KiB", MAX_BODY / 1024));
            }
            read.extend_from_slice(&data);
        }
    }
    Ok((status, age, read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_s_component_status_is_its_answer() {
        let ok = StatusCode::OK;
        let down = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(judge(ok, br#"{"status":"UP"}"#), Answer::Reaches);
        assert_eq!(judge(ok, br#"{"status":"DEGRADED"}"#), Answer::Reaches);
        assert_eq!(
            judge(down, br#"{"status":"DOWN","reason":"connection refused"}"#),
            Answer::CannotReach("connection refused".into())
        );
        assert_eq!(
            judge(
                down,
                br#"{"status":"OUT_OF_SERVICE","reason":"not checked yet"}"#
            ),
            Answer::NoAnswer("OUT_OF_SERVICE: not checked yet".into())
        );
        assert_eq!(
            judge(
                StatusCode::NOT_FOUND,
                br#"{"error":"no health component named \"x\""}"#
            ),
            Answer::NoAnswer("answered 404 without a component status".into())
        );
        assert_eq!(
            judge(ok, b"<html>"),
            Answer::NoAnswer("answered 200 without a component status".into())
        );
    }

    #[test]
    fn the_age_of_a_peer_s_check_is_read_from_its_header_when_it_makes_sense() {
        let age = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CHECK_AGE, value.parse().unwrap());
            check_age(&headers)
        };
        assert_eq!(age("0.412"), Some(Duration::from_millis(412)));
        assert_eq!(age("3"), Some(Duration::from_secs(3)));
        for nonsense in ["-1", "NaN", "inf", "soon", ""] {
            assert_eq!(age(nonsense), None, "{nonsense:?}");
        }
        assert_eq!(check_age(&HeaderMap::new()), None);
    }

    #[test]
    fn what_a_peer_says_is_kept_short_and_printable() {
        let long = format!(
            r#"{{"status":"DOWN","reason":"{}\u0007é"}}"#,
            "x".repeat(500)
        );
        let Answer::CannotReach(reason) = judge(StatusCode::SERVICE_UNAVAILABLE, long.as_bytes())
        else {
            panic!("not a DOWN answer");
        };
        assert_eq!(reason.len(), MAX_REASON);
        assert!(reason.chars().all(|c| !c.is_control()));
    }
}
