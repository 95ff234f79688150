//! What to probe: a host given as an IP literal or `localhost`, a port and a request path.
//!
//! Names other than `localhost` are refused on purpose: resolving them would mean
//! `getaddrinfo`, which a static glibc binary can only do with NSS modules that a
//! `FROM scratch` image does not have.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a host, port, path or URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an IP literal and not `localhost`.
    #[error(
        "expected an IPv4 or IPv6 address or localhost (names are not resolved: a static probe has no resolver)"
    )]
    Host,
    /// Not a number from 1 to 65535.
    #[error("expected a port number from 1 to 65535")]
    Port,
    /// Does not start with `/`, or holds spaces, control or non-ASCII characters.
    #[error(
        "expected a path starting with '/' made of visible ASCII characters (percent-encode the rest)"
    )]
    Path,
    /// An `https://` URL: the probe has no TLS.
    #[error("https is not supported (no TLS in the probe): probe the plain-HTTP port")]
    Https,
    /// Some other scheme, or no scheme at all.
    #[error("expected a URL of the form http://host:port/path")]
    Scheme,
    /// `user:password@` in the URL.
    #[error("credentials in the URL are not supported")]
    Credentials,
}

/// The host to connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// `localhost`: 127.0.0.1 first, then ::1.
    Localhost,
}

impl Host {
    /// Parses `127.0.0.1`, `::1`, `[::1]` or `localhost` (any case).
    pub fn parse(text: &str) -> Result<Host, TargetError> {
        if text.eq_ignore_ascii_case("localhost") {
            return Ok(Host::Localhost);
        }
        let bare = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'));
        match bare {
            Some(v6) => v6.parse::<Ipv6Addr>().map(|ip| Host::Ip(ip.into())),
            None => text.parse::<IpAddr>().map(Host::Ip),
        }
        .map_err(|_| TargetError::Host)
    }
}

impl Default for Host {
    /// 127.0.0.1, as the original probe.
    fn default() -> Self {
        Host::Ip(Ipv4Addr::LOCALHOST.into())
    }
}

impl fmt::Display for Host {
    /// The form used in a `Host` header or URL: IPv6 literals in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Localhost => f.write_str("localhost"),
        }
    }
}

/// A TCP port from 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(u16);

impl Port {
    /// 6767, where the service listens. The original probe defaulted to 80, which silently
    /// probed the wrong port whenever `-port` was forgotten.
    pub const DEFAULT: Port = Port(6767);
    /// Port 80, the default of an `http://` URL without a port.
    pub const HTTP: Port = Port(80);

    /// Parses a decimal port number from 1 to 65535.
    pub fn parse(text: &str) -> Result<Port, TargetError> {
        match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(TargetError::Port),
            Ok(_) if !text.bytes().all(|b| b.is_ascii_digit()) => Err(TargetError::Port),
            Ok(port) => Ok(Port(port)),
        }
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A request target (path and optional query) safe to put on the request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath(String);

impl RequestPath {
    /// Parses a path that starts with `/` and holds only visible ASCII, so that it cannot
    /// break the request line.
    pub fn parse(text: &str) -> Result<RequestPath, TargetError> {
        if text.starts_with('/') && text.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(RequestPath(text.to_owned()))
        } else {
            Err(TargetError::Path)
        }
    }

    /// `/health`, as the original probe.
    pub fn default_path() -> RequestPath {
        RequestPath("/health".to_owned())
    }

    /// The path as it goes on the request line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything needed to address the probe's single request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where to connect.
    pub host: Host,
    /// Which port.
    pub port: Port,
    /// What to GET.
    pub path: RequestPath,
}

impl Target {
    /// Parses `http://host[:port][/path][?query]`; the port defaults to 80 as in any
    /// `http://` URL, the path to `/`. A `#fragment` is dropped, as browsers do.
    pub fn from_url(url: &str) -> Result<Target, TargetError> {
        let Some(rest) = strip_prefix_ignore_case(url, "http://") else {
            return Err(if strip_prefix_ignore_case(url, "https://").is_some() {
                TargetError::Https
            } else {
                TargetError::Scheme
            });
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(TargetError::Credentials);
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (ip, after) = bracketed.split_once(']').ok_or(TargetError::Host)?;
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or(TargetError::Host)?),
                };
                (Host::parse(&format!("[{ip}]"))?, port)
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (Host::parse(host)?, Some(port)),
                None => (Host::parse(authority)?, None),
            },
        };
        let port = match port {
            None | Some("") => Port::HTTP,
            Some(port) => Port::parse(port)?,
        };
        let path = match path {
            "" => RequestPath("/".to_owned()),
            query if query.starts_with('?') => RequestPath::parse(&format!("/{query}"))?,
            path => RequestPath::parse(path)?,
        };
        Ok(Target { host, port, path })
    }

    /// The socket addresses to try, in order: one for an IP literal, 127.0.0.1 then ::1
    /// for `localhost`.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let port = self.port.get();
        match self.host {
            Host::Ip(ip) => vec![SocketAddr::new(ip, port)],
            Host::Localhost => vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
            ],
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Host {
        Host::Ip(text.parse().unwrap())
    }

    #[test]
    fn hosts_are_ip_literals_or_localhost() {
        assert_eq!(Host::parse("10.0.0.7"), Ok(ip("10.0.0.7")));
        assert_eq!(Host::parse("::1"), Ok(ip("::1")));
        assert_eq!(Host::parse("[::1]"), Ok(ip("::1")));
        assert_eq!(Host::parse("LocalHost"), Ok(Host::Localhost));
        for bad in [
            "example.com",
            "",
            "[127.0.0.1]",
            "[::1",
            "::1]",
            "1.2.3",
            "fe80::1%eth0",
        ] {
            assert_eq!(Host::parse(bad), Err(TargetError::Host), "{bad:?}");
        }
    }

    #[test]
    fn hosts_display_as_in_a_host_header() {
        assert_eq!(ip("127.0.0.1").to_string(), "127.0.0.1");
        assert_eq!(ip("::1").to_string(), "[::1]");
        assert_eq!(Host::Localhost.to_string(), "localhost");
    }

    #[test]
    fn ports_are_plain_numbers_from_1_to_65535() {
        assert_eq!(Port::parse("6767").map(Port::get), Ok(6767));
        assert_eq!(Port::parse("65535").map(Port::get), Ok(65535));
        for bad in ["0", "65536", "", "+80", "-1", "80 ", "http"] {
            assert_eq!(Port::parse(bad), Err(TargetError::Port), "{bad:?}");
        }
    }

    #[test]
    fn paths_must_start_with_a_slash_and_cannot_break_the_request_line() {
        assert!(RequestPath::parse("/health").is_ok());
        assert!(RequestPath::parse("/health?deep=1").is_ok());
        for bad in ["health", "", "/a b", "/a\r\nX: y", "/é"] {
            assert_eq!(RequestPath::parse(bad), Err(TargetError::Path), "{bad:?}");
        }
    }

    #[test]
    fn urls_give_host_port_and_path() {
        let target = Target::from_url("http://127.0.0.1:6767/health").unwrap();
        assert_eq!(target.host, ip("127.0.0.1"));
        assert_eq!(target.port.get(), 6767);
        assert_eq!(target.path.as_str(), "/health");

        let target = Target::from_url("HTTP://[::1]:8080/ready?full=1#frag").unwrap();
        assert_eq!(target.host, ip("::1"));
        assert_eq!(target.port.get(), 8080);
        assert_eq!(target.path.as_str(), "/ready?full=1");
    }

    #[test]
    fn urls_without_port_or_path_use_80_and_the_root() {
        let target = Target::from_url("http://localhost").unwrap();
        assert_eq!(target.host, Host::Localhost);
        assert_eq!(target.port, Port::HTTP);
        assert_eq!(target.path.as_str(), "/");
        assert_eq!(
            Target::from_url("http://[::1]:/x").unwrap().port,
            Port::HTTP
        );
        let query = Target::from_url("http://127.0.0.1?x=1").unwrap();
        assert_eq!(query.path.as_str(), "/?x=1");
    }

    #[test]
    fn unsupported_urls_say_why() {
        assert_eq!(
            Target::from_url("https://127.0.0.1/"),
            Err(TargetError::Https)
        );
        assert_eq!(
            Target::from_url("ftp://127.0.0.1/"),
            Err(TargetError::Scheme)
        );
        assert_eq!(Target::from_url("127.0.0.1:6767"), Err(TargetError::Scheme));
        assert_eq!(
            Target::from_url("http://u:p@127.0.0.1/"),
            Err(TargetError::Credentials)
        );
        assert_eq!(
            Target::from_url("http://example.com/"),
            Err(TargetError::Host)
        );
        assert_eq!(Target::from_url("http://[::1]x/"), Err(TargetError::Host));
        assert_eq!(Target::from_url("http://[::1/"), Err(TargetError::Host));
        assert_eq!(
            Target::from_url("http://1.2.3.4:0/"),
            Err(TargetError::Port)
        );
        assert_eq!(
            Target::from_url("http://1.2.3.4:1:2/"),
            Err(TargetError::Port)
        );
        assert_eq!(
            Target::from_url("http://1.2.3.4/a b"),
            Err(TargetError::Path)
        );
    }

    #[test]
    fn localhost_tries_ipv4_then_ipv6() {
        let target = Target {
            host: Host::Localhost,
            port: Port::DEFAULT,
            path: RequestPath::default_path(),
        };
        let addrs: Vec<String> = target.addrs().iter().map(ToString::to_string).collect();
        assert_eq!(addrs, ["127.0.0.1:6767", "[::1]:6767"]);
    }
}
