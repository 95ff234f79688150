//! Asks one peer whether it reaches a dependency: `GET /health/{component}` on the port
//! `--peers` names (its management port), which it answers from its own cached check, so a
//! question costs it no check. One connection, one request, one deadline, a cap on the bytes
//! read.

use std::{net::SocketAddr, time::Duration};

use http_body_util::BodyExt as _;
use hyper::StatusCode;

use super::verdict::Answer;
use crate::fleet::client::{seconds, send_get};

/// The most body bytes read from an answer: one component's status and short reason, with room
/// for its details at `details=always`.
const MAX_BODY: usize = 16 * 1024;

/// The longest peer's reason kept, so that what a peer says stays bounded in this replica's
/// detail and log.
const MAX_REASON: usize = 120;

/// Asks the peer at `address` (listed as `host`) about `component`, within `timeout` for
/// connecting, sending and reading together.
pub async fn ask(address: SocketAddr, host: &str, component: &str, timeout: Duration) -> Answer {
    match tokio::time::timeout(timeout, exchange(address, host, component, timeout)).await {
        Ok(Ok((status, body))) => judge(status, &body),
        Ok(Err(why)) => Answer::NoAnswer(why),
        Err(_) => Answer::NoAnswer(format!("no answer within {}", seconds(timeout))),
    }
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
) -> Result<(StatusCode, Vec<u8>), String> {
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
    Ok((status, read))
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
