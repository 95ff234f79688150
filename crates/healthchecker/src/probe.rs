//! The probe itself: one connection, one request and a bounded read, all under one deadline
//! that no peer behaviour can stretch.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{self, Head, MAX_HEAD, Parsed};
use crate::target::Target;
use crate::text::escape;
use crate::timeout::Timeout;

/// A 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy {
    /// The status code.
    pub status: u16,
    /// The reason phrase, escaped.
    pub reason: String,
    /// From the start of the connection to the end of the response head.
    pub elapsed: Duration,
}

/// Why the target is not healthy. Displays as the text after `unhealthy: `.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    /// Nobody listens there.
    #[error("connection refused ({tried})")]
    Refused {
        /// Every address the target resolved to, in the order they were tried.
        tried: Addrs,
    },
    /// The connection was not established in time.
    #[error("no connection within {timeout} ({tried})")]
    ConnectTimeout {
        /// The probe's whole time budget (`--timeout`), which ran out.
        timeout: Timeout,
        /// Every address the target resolved to, in the order they were tried.
        tried: Addrs,
    },
    /// The connection failed for another reason (unreachable network...).
    #[error("cannot connect to {tried}: {source}")]
    Connect {
        /// Every address the target resolved to, in the order they were tried.
        tried: Addrs,
        /// What the operating system reported for the last address.
        source: io::Error,
    },
    /// The request could not be written in time.
    #[error("request not sent within {timeout} ({addr})")]
    SendTimeout {
        /// The probe's whole time budget (`--timeout`), which ran out.
        timeout: Timeout,
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
    },
    /// Writing the request failed.
    #[error("cannot send the request to {addr}: {source}")]
    Send {
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
        /// What the operating system reported.
        source: io::Error,
    },
    /// Connected, but not one byte came back in time.
    #[error("no response within {timeout} ({addr})")]
    NoResponse {
        /// The probe's whole time budget (`--timeout`), which ran out.
        timeout: Timeout,
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
    },
    /// Some bytes came back, but not a whole response head.
    #[error("incomplete response within {timeout} ({received} bytes from {addr})")]
    Incomplete {
        /// The probe's whole time budget (`--timeout`), which ran out.
        timeout: Timeout,
        /// Bytes of the response head received before it stopped.
        received: usize,
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
    },
    /// The peer closed the connection before answering.
    #[error("connection closed without a response ({addr})")]
    ClosedEarly {
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
    },
    /// The peer closed the connection in the middle of the response head.
    #[error("connection closed mid-response after {received} bytes ({addr})")]
    ClosedMidResponse {
        /// Bytes of the response head received before it stopped.
        received: usize,
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
    },
    /// Reading failed (connection reset...).
    #[error("receive failed after {received} bytes from {addr}: {source}")]
    Receive {
        /// Bytes of the response head received before it stopped.
        received: usize,
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The peer does not speak HTTP/1.x.
    #[error("invalid HTTP response from {addr}: {reason}")]
    Invalid {
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
        /// What the parser objected to (`httparse` without `std` has no `Error` impl, so
        /// this is not a `source`).
        reason: httparse::Error,
    },
    /// The response head does not fit in [`MAX_HEAD`] bytes.
    #[error("response headers exceed {MAX_HEAD} bytes ({addr})")]
    HeadTooLarge {
        /// The address connected to (one of those the target resolved to).
        addr: SocketAddr,
    },
    /// A complete answer whose status is not 2xx.
    #[error("{0}")]
    Status(Answer),
}

/// A non-2xx answer, ready to print: `503 Service Unavailable: {"status":"DOWN"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The reason phrase, escaped.
    pub reason: String,
    /// Where a redirect points, escaped.
    pub location: Option<String>,
    /// The start of the body, escaped, trailing whitespace removed.
    pub excerpt: String,
    /// The body went on past the excerpt.
    pub truncated: bool,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if !self.reason.is_empty() {
            write!(f, " {}", self.reason)?;
        }
        if let Some(location) = &self.location {
            write!(f, " (redirect to {location} not followed)")?;
        }
        if !self.excerpt.is_empty() {
            write!(f, ": {}", self.excerpt)?;
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// A list of socket addresses, printed comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addrs(pub Vec<SocketAddr>);

impl fmt::Display for Addrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, addr) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{addr}")?;
        }
        Ok(())
    }
}

/// The instant everything must be over by.
struct Deadline {
    at: Instant,
    timeout: Timeout,
}

impl Deadline {
    /// Time left, or `None` once it is over (socket timeouts cannot be zero).
    fn remaining(&self) -> Option<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

/// Why a read returned no data.
enum ReadError {
    TimedOut,
    Io(io::Error),
}

/// Probes `target`: healthy only on a 2xx status, within `timeout` whatever the peer does.
pub fn probe(target: &Target, timeout: Timeout) -> Result<Healthy, Unhealthy> {
    let start = Instant::now();
    let deadline = Deadline {
        at: start + timeout.get(),
        timeout,
    };
    let (mut stream, addr) = connect(&target.addrs(), &deadline)?;
    send(&mut stream, &http::request(target), &deadline, addr)?;

    let mut buf = vec![0; MAX_HEAD];
    let mut head_start = 0;
    let mut len = 0;
    let head = loop {
        match http::parse_head(&buf[head_start..len]) {
            Ok(Parsed::Final(head)) => break head,
            Ok(Parsed::Interim(interim)) => {
                head_start += interim;
                continue;
            }
            Ok(Parsed::Partial) => {}
            Err(reason) => return Err(Unhealthy::Invalid { addr, reason }),
        }
        if len == buf.len() {
            return Err(Unhealthy::HeadTooLarge { addr });
        }
        match read(&mut stream, &mut buf[len..], &deadline) {
            Ok(0) if len == 0 => return Err(Unhealthy::ClosedEarly { addr }),
            Ok(0) => {
                return Err(Unhealthy::ClosedMidResponse {
                    received: len,
                    addr,
                });
            }
            Ok(read) => len += read,
            Err(ReadError::TimedOut) if len == 0 => {
                return Err(Unhealthy::NoResponse { timeout, addr });
            }
            Err(ReadError::TimedOut) => {
                return Err(Unhealthy::Incomplete {
                    timeout,
                    received: len,
                    addr,
                });
            }
            Err(ReadError::Io(source)) => {
                return Err(Unhealthy::Receive {
                    received: len,
                    addr,
                    source,
                });
            }
        }
    };
    if (200..300).contains(&head.status) {
        // The status decides: the body is not waited for, so an endless or slow body
        // cannot make a healthy service look unhealthy.
        return Ok(Healthy {
            status: head.status,
            reason: escape(&head.reason),
            elapsed: start.elapsed(),
        });
    }
    let body = buf[head_start + head.len..len].to_vec();
    Err(Unhealthy::Status(answer(
        &mut stream,
        &head,
        body,
        &deadline,
    )))
}

/// Reads a bounded excerpt of an unhealthy answer's body, best effort within the deadline:
/// the verdict is already known, so a slow or broken body only shortens the excerpt.
fn answer(stream: &mut TcpStream, head: &Head, mut raw: Vec<u8>, deadline: &Deadline) -> Answer {
    let mut closed = false;
    let mut chunk = [0; 1024];
    let excerpt = loop {
        let excerpt = http::excerpt(head.framing, &raw, closed);
        if excerpt.done {
            break excerpt;
        }
        match read(stream, &mut chunk, deadline) {
            Ok(read) if read > 0 => raw.extend_from_slice(&chunk[..read]),
            Ok(_) | Err(_) => closed = true,
        }
    };
    let bytes = if excerpt.truncated {
        &excerpt.bytes[..]
    } else {
        excerpt.bytes.trim_ascii_end()
    };
    Answer {
        status: head.status,
        reason: escape(&head.reason),
        location: head
            .location
            .as_deref()
            .filter(|_| (300..400).contains(&head.status))
            .map(escape),
        excerpt: escape(bytes),
        truncated: excerpt.truncated,
    }
}

/// Connects to the first address that accepts, each attempt bounded by the time left.
fn connect(
    addrs: &[SocketAddr],
    deadline: &Deadline,
) -> Result<(TcpStream, SocketAddr), Unhealthy> {
    let mut tried = Vec::with_capacity(addrs.len());
    let mut last_error = None;
    for &addr in addrs {
        let Some(left) = deadline.remaining() else {
            break;
        };
        tried.push(addr);
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok((stream, addr)),
            Err(error) => last_error = Some(error),
        }
    }
    let timeout = deadline.timeout;
    let tried = Addrs(tried);
    Err(match last_error {
        Some(error) if error.kind() == ErrorKind::ConnectionRefused => Unhealthy::Refused { tried },
        Some(error) if !is_timeout(&error) => Unhealthy::Connect {
            tried,
            source: error,
        },
        _ => Unhealthy::ConnectTimeout { timeout, tried },
    })
}

/// Writes the whole request, re-arming the write timeout with the time left before each write.
fn send(
    stream: &mut TcpStream,
    mut request: &[u8],
    deadline: &Deadline,
    addr: SocketAddr,
) -> Result<(), Unhealthy> {
    let timed_out = || Unhealthy::SendTimeout {
        timeout: deadline.timeout,
        addr,
    };
    while !request.is_empty() {
        let left = deadline.remaining().ok_or_else(timed_out)?;
        let written = stream
            .set_write_timeout(Some(left))
            .and_then(|()| stream.write(request));
        match written {
            Ok(0) => {
                return Err(Unhealthy::Send {
                    addr,
                    source: ErrorKind::WriteZero.into(),
                });
            }
            Ok(written) => request = &request[written..],
            Err(error) if error.kind() == ErrorKind::Interrupted || is_timeout(&error) => {}
            Err(source) => return Err(Unhealthy::Send { addr, source }),
        }
    }
    Ok(())
}

/// One read, re-arming the read timeout with the time left, so that a peer trickling
/// bytes cannot push the probe past its deadline.
fn read(stream: &mut TcpStream, buf: &mut [u8], deadline: &Deadline) -> Result<usize, ReadError> {
    loop {
        let left = deadline.remaining().ok_or(ReadError::TimedOut)?;
        stream.set_read_timeout(Some(left)).map_err(ReadError::Io)?;
        match stream.read(buf) {
            Ok(read) => return Ok(read),
            // Socket timeouts have microsecond granularity and may fire a hair early:
            // loop and let the deadline decide.
            Err(error) if error.kind() == ErrorKind::Interrupted || is_timeout(&error) => {}
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}
