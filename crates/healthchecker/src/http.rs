//! The HTTP side of the probe, without any I/O: the request bytes, the parsed response head,
//! and the decoding of a bounded body excerpt.

use crate::target::Target;

/// Most response-head bytes accepted before giving up (status line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 64;
/// Most body bytes kept for the printed excerpt of an unhealthy answer.
pub const MAX_EXCERPT: usize = 512;
/// Most raw body bytes read to find that excerpt (chunk framing takes some room).
pub const MAX_RAW_BODY: usize = 4 * 1024;
/// Most bytes of a reason phrase or `Location` kept for the output line. With the excerpt,
/// and each byte escaped to at most four, the line stays under the 4096 bytes Docker keeps.
const MAX_FIELD: usize = 128;

/// The probe's only request: a GET that asks the server to close, so the answer ends with
/// the connection and no keep-alive state is left behind.
pub fn request(target: &Target) -> Vec<u8> {
    let host = target.host.to_string();
    let port = target.port.get().to_string();
    let mut request = String::with_capacity(128);
    for part in [
        "GET ",
        target.path.as_str(),
        " HTTP/1.1\r\nHost: ",
        &host,
        ":",
        &port,
        "\r\nUser-Agent: healthchecker/",
        env!("CARGO_PKG_VERSION"),
        "\r\nAccept: */*\r\nConnection: close\r\n\r\n",
    ] {
        request.push_str(part);
    }
    request.into_bytes()
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// The parts of a final response head the probe reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Reason phrase, raw and truncated to a bounded length.
    pub reason: Vec<u8>,
    /// `Location` header, raw and truncated, if any.
    pub location: Option<Vec<u8>>,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Length of the head in the buffer it was parsed from.
    pub len: usize,
}

/// Result of looking for a final response head at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// An interim 1xx response of this many bytes to skip; the final one follows.
    Interim(usize),
    /// The final response head.
    Final(Head),
}

/// Parses the response head at the start of `buf`.
pub fn parse_head(buf: &[u8]) -> Result<Parsed, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf)? {
        httparse::Status::Partial => return Ok(Parsed::Partial),
        httparse::Status::Complete(len) => len,
    };
    // `Complete` guarantees a code.
    let status = response.code.unwrap_or_default();
    // 101 Switching Protocols is final (and not healthy); other 1xx are interim.
    if (100..200).contains(&status) && status != 101 {
        return Ok(Parsed::Interim(len));
    }
    let mut location = None;
    let mut length = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("location") {
            location = Some(bounded(header.value));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse::<u64>().ok());
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let framing = match (status, chunked, length) {
        (204 | 304, _, _) => Framing::Empty,
        (_, true, _) => Framing::Chunked,
        (_, false, Some(length)) => Framing::Length(length),
        (_, false, None) => Framing::UntilClose,
    };
    Ok(Parsed::Final(Head {
        status,
        reason: bounded(response.reason.unwrap_or_default().as_bytes()),
        location,
        framing,
        len,
    }))
}

fn bounded(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(MAX_FIELD)].to_vec()
}

/// A body excerpt decoded from the raw bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub struct Excerpt {
    /// At most [`MAX_EXCERPT`] decoded body bytes.
    pub bytes: Vec<u8>,
    /// The body is known to go on past the excerpt.
    pub truncated: bool,
    /// Nothing more is worth reading: the body ended, or the excerpt is full.
    pub done: bool,
}

/// Decodes up to [`MAX_EXCERPT`] body bytes out of `raw`, the bytes that followed the head.
/// `closed` says the peer has closed, so no more will come.
pub fn excerpt(framing: Framing, raw: &[u8], closed: bool) -> Excerpt {
    let (mut bytes, ended) = match framing {
        Framing::Empty => (Vec::new(), true),
        Framing::Length(length) => {
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            let body = &raw[..raw.len().min(length)];
            (body.to_vec(), body.len() == length)
        }
        Framing::Chunked => dechunk(raw),
        Framing::UntilClose => (raw.to_vec(), closed),
    };
    let longer_than_read = match framing {
        Framing::Length(length) => length > MAX_EXCERPT as u64,
        _ => false,
    };
    let full = bytes.len() >= MAX_EXCERPT;
    let truncated = bytes.len() > MAX_EXCERPT || longer_than_read;
    bytes.truncate(MAX_EXCERPT);
    let done = ended || closed || full || raw.len() >= MAX_RAW_BODY;
    Excerpt {
        bytes,
        truncated,
        done,
    }
}

/// Decodes as much of a chunked body as `raw` holds. Returns the data and whether the body
/// ended (last chunk seen, or framing so broken that nothing more can be decoded).
fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut rest = raw;
    while data.len() <= MAX_EXCERPT {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return (data, false),
            Err(_) => return (data, true),
        };
        if size == 0 {
            return (data, true);
        }
        rest = &rest[start..];
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if rest.len() < size {
            data.extend_from_slice(rest);
            return (data, false);
        }
        data.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        match rest {
            [b'\r', b'\n', after @ ..] => rest = after,
            [] | [b'\r'] => return (data, false),
            _ => return (data, true),
        }
    }
    (data, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{Host, Port, RequestPath};

    fn head(bytes: &[u8]) -> Head {
        match parse_head(bytes) {
            Ok(Parsed::Final(head)) => head,
            other => panic!("no final head: {other:?}"),
        }
    }

    #[test]
    fn the_request_is_a_closing_get_with_host_and_user_agent() {
        let target = Target {
            host: Host::parse("::1").unwrap(),
            port: Port::parse("8080").unwrap(),
            path: RequestPath::parse("/health?x=1").unwrap(),
        };
        let request = String::from_utf8(request(&target)).unwrap();
        assert_eq!(
            request,
            format!(
                "GET /health?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: healthchecker/{}\r\n\
                 Accept: */*\r\nConnection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn a_head_gives_status_reason_location_and_framing() {
        let bytes =
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nContent-Length: 3\r\n\r\nabc";
        let parsed = head(bytes);
        assert_eq!(parsed.status, 301);
        assert_eq!(parsed.reason, b"Moved Permanently");
        assert_eq!(parsed.location.as_deref(), Some(&b"/x"[..]));
        assert_eq!(parsed.framing, Framing::Length(3));
        assert_eq!(parsed.len, bytes.len() - 3);
    }

    #[test]
    fn framing_follows_transfer_encoding_then_length_then_close() {
        let chunked =
            b"HTTP/1.1 503 X\r\nContent-Length: 9\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(head(chunked).framing, Framing::Chunked);
        assert_eq!(head(b"HTTP/1.0 500 X\r\n\r\n").framing, Framing::UntilClose);
        assert_eq!(
            head(b"HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(
            head(b"HTTP/1.1 500 X\r\nContent-Length: x\r\n\r\n").framing,
            Framing::UntilClose
        );
    }

    #[test]
    fn interim_responses_are_skipped_but_101_is_final() {
        assert_eq!(
            parse_head(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Ok(Parsed::Interim(25))
        );
        assert_eq!(
            head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").status,
            101
        );
    }

    #[test]
    fn incomplete_and_garbage_heads_are_told_apart() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte"), Ok(Parsed::Partial));
        assert_eq!(parse_head(b""), Ok(Parsed::Partial));
        assert!(parse_head(b"SSH-2.0-OpenSSH_9.6\r\n").is_err());
        assert!(parse_head(b"\x00\x01\x02garbage\r\n\r\n").is_err());
    }

    #[test]
    fn reason_and_location_are_bounded() {
        let long = "x".repeat(5000);
        let bytes = format!("HTTP/1.1 302 {long}\r\nLocation: /{long}\r\n\r\n");
        let parsed = head(bytes.as_bytes());
        assert_eq!(parsed.reason.len(), MAX_FIELD);
        assert_eq!(parsed.location.map(|l| l.len()), Some(MAX_FIELD));
    }

    #[test]
    fn a_length_delimited_excerpt_is_done_when_the_body_is_in() {
        let partial = excerpt(Framing::Length(10), b"01234", false);
        assert_eq!(
            (partial.bytes.as_slice(), partial.done),
            (&b"01234"[..], false)
        );
        let whole = excerpt(Framing::Length(5), b"01234extra", false);
        assert_eq!(
            (whole.bytes.as_slice(), whole.done, whole.truncated),
            (&b"01234"[..], true, false)
        );
    }

    #[test]
    fn a_long_body_is_cut_at_the_excerpt_limit_and_marked() {
        let body = vec![b'a'; 2000];
        let cut = excerpt(Framing::Length(2000), &body[..600], false);
        assert_eq!(cut.bytes.len(), MAX_EXCERPT);
        assert!(cut.truncated && cut.done);
        let endless = excerpt(Framing::UntilClose, &body, false);
        assert!(endless.truncated && endless.done);
        let announced = excerpt(Framing::Length(2000), &body[..10], false);
        assert!(announced.truncated && !announced.done);
    }

    #[test]
    fn an_until_close_excerpt_is_done_when_the_peer_closes() {
        assert!(!excerpt(Framing::UntilClose, b"abc", false).done);
        assert!(excerpt(Framing::UntilClose, b"abc", true).done);
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let full = excerpt(
            Framing::Chunked,
            b"4\r\nDOWN\r\n3;ext=1\r\n!!!\r\n0\r\n\r\n",
            false,
        );
        assert_eq!((full.bytes.as_slice(), full.done), (&b"DOWN!!!"[..], true));
        let partial = excerpt(Framing::Chunked, b"4\r\nDO", false);
        assert_eq!(
            (partial.bytes.as_slice(), partial.done),
            (&b"DO"[..], false)
        );
        let split_crlf = excerpt(Framing::Chunked, b"4\r\nDOWN\r", false);
        assert_eq!(
            (split_crlf.bytes.as_slice(), split_crlf.done),
            (&b"DOWN"[..], false)
        );
        let broken = excerpt(Framing::Chunked, b"4\r\nDOWNxx", false);
        assert_eq!((broken.bytes.as_slice(), broken.done), (&b"DOWN"[..], true));
        let not_hex = excerpt(Framing::Chunked, b"zz\r\n", false);
        assert!(not_hex.bytes.is_empty() && not_hex.done);
    }

    #[test]
    fn a_chunked_body_is_cut_at_the_excerpt_limit() {
        let mut raw = Vec::new();
        for _ in 0..100 {
            raw.extend_from_slice(b"a\r\n0123456789\r\n");
        }
        let cut = excerpt(Framing::Chunked, &raw, false);
        assert_eq!(cut.bytes.len(), MAX_EXCERPT);
        assert!(cut.truncated && cut.done);
    }
}
