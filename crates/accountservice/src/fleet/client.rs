//! Asks one peer for its `GET /health/history`: one connection, one request, one deadline, a
//! cap on the bytes read, and a short reason for every way it can go wrong.
//!
//! The bytes read are also drawn from a budget shared by the whole round (a semaphore of
//! bytes), held until the answer is parsed and trimmed: however many peers send at once, the
//! bodies held together stay within it; a peer past it waits, under its own deadline.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};

use super::history::PeerHistory;
use crate::server::WriteProgress;

/// The path asked on every peer: its own state only, so a fleet view never recurses.
pub const HISTORY_PATH: &str = "/health/history";

/// The most bytes the HTTP client buffers for one connection beyond what the round's budget
/// counts (hyper's smallest read buffer).
pub const CONNECTION_BUFFER: usize = 8 * 1024;

/// Limits of one request to a peer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For connecting, sending and reading the whole answer together.
    pub timeout: Duration,
    /// The most body bytes read; a longer answer is refused unread past this.
    pub max_body: usize,
    /// The most bytes the parsed answer keeps: older transitions are dropped past it.
    pub max_answer: usize,
}

/// Asks `address` (listed as `host`) for its history, drawing the body's bytes from `budget`;
/// `Err` is the reason to show.
pub async fn fetch(
    address: SocketAddr,
    host: &str,
    limits: Limits,
    budget: Arc<Semaphore>,
) -> Result<PeerHistory, String> {
    match tokio::time::timeout(limits.timeout, exchange(address, host, limits, budget)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", seconds(limits.timeout))),
    }
}

/// The task that drives one connection to a peer; aborted when dropped, so a connection never
/// outlives its exchange (nor the deadline that drops the exchange).
pub struct Connection(tokio::task::JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `GET path` to `address` (listed as `host`) over a connection of its own: the server's
/// socket type (its writes bounded by `timeout`, and one type of socket under hyper, so its
/// HTTP/1.1 code is in the binary once), at most `buffer` bytes buffered by hyper. The answer's
/// body is read while the returned [`Connection`] lives; the caller bounds the whole exchange.
pub async fn send_get(
    address: SocketAddr,
    host: &str,
    path: &str,
    user_agent: &'static str,
    timeout: Duration,
    buffer: usize,
) -> Result<(Response<Incoming>, Connection), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| format!("cannot connect: {}", short_io(&error)))?;
    // Without Nagle the one small request leaves at once.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(buffer)
        .handshake(TokioIo::new(WriteProgress::new(stream, timeout)))
        .await
        .map_err(|error| format!("HTTP handshake failed: {error}"))?;
    let connection = Connection(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let request = Request::get(path)
        .header(header::HOST, host)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, user_agent)
        .body(Empty::<Bytes>::new())
        .map_err(|error| format!("cannot build the request: {error}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("answered with something other than HTTP: {error}"))?;
    Ok((response, connection))
}

async fn exchange(
    address: SocketAddr,
    host: &str,
    limits: Limits,
    budget: Arc<Semaphore>,
) -> Result<PeerHistory, String> {
    let (response, _connection) = send_get(
        address,
        host,
        HISTORY_PATH,
        "accountservice-fleet",
        limits.timeout,
        CONNECTION_BUFFER,
    )
    .await?;
    read(response, limits, budget).await
}

async fn read(
    response: Response<Incoming>,
    limits: Limits,
    budget: Arc<Semaphore>,
) -> Result<PeerHistory, String> {
    let max_body = limits.max_body;
    let status = response.status();
    if let Some(length) = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        && length > max_body as u64
    {
        return Err(too_long(max_body));
    }
    let mut body = response.into_body();
    let mut read = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("the answer broke off: {error}"))?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > max_body {
                return Err(too_long(max_body));
            }
            let permit = draw(&budget, data.len()).await?;
            match &mut held {
                Some(held) => held.merge(permit),
                None => held = Some(permit),
            }
            read.extend_from_slice(&data);
        }
    }
    let parsed = PeerHistory::parse(&read);
    drop(read);
    let result = match parsed {
        Ok(mut history) => {
            history.fit(limits.max_answer);
            Ok(history)
        }
        Err(_) if status != StatusCode::OK => Err(refusal(status)),
        Err(reason) => Err(reason),
    };
    // The body and its parse are gone, only the trimmed answer is left: give the bytes back.
    drop(held);
    result
}

/// `bytes` from the round's budget, waiting while other peers hold it.
async fn draw(budget: &Arc<Semaphore>, bytes: usize) -> Result<OwnedSemaphorePermit, String> {
    let bytes = u32::try_from(bytes).map_err(|_| "a body chunk larger than 4 GiB".to_owned())?;
    budget
        .clone()
        .acquire_many_owned(bytes)
        .await
        .map_err(|_| "the round ended".to_owned())
}

/// Why a peer that answered `status` instead of its history is listed unreachable. A replica
/// with a management port answers 404 to this path on its public port, the likeliest reason
/// for a 404 here, so the reason says which port to ask.
fn refusal(status: StatusCode) -> String {
    let answered = format!(
        "answered {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let answered = answered.trim_end();
    if status == StatusCode::NOT_FOUND {
        format!(
            "{answered} to {HISTORY_PATH}: is this its public port? With a management port, \
             peers are asked on that port"
        )
    } else {
        format!("{answered} to {HISTORY_PATH}")
    }
}

fn too_long(max_body: usize) -> String {
    format!("answer longer than {} KiB", max_body / 1024)
}

fn short_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => error.to_string(),
    }
}

/// A duration as people write it: `1s`, `0.5s`.
pub fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_404_names_the_management_port_and_other_statuses_only_themselves() {
        assert_eq!(
            refusal(StatusCode::NOT_FOUND),
            "answered 404 Not Found to /health/history: is this its public port? With a \
             management port, peers are asked on that port"
        );
        assert_eq!(
            refusal(StatusCode::SERVICE_UNAVAILABLE),
            "answered 503 Service Unavailable to /health/history"
        );
        assert_eq!(
            refusal(StatusCode::from_u16(599).unwrap()),
            "answered 599 to /health/history"
        );
    }
}
