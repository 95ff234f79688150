//! How to reach the database and how long anything may wait for it.
//!
//! The URL is parsed by tokio-postgres's own parser (libpq's `postgres://` URL or `key=value`
//! forms, several hosts as libpq allows), never echoed back: parse errors name the problem, not
//! the input, and every place that shows the URL shows [`DatabaseUrl`]'s `Display`, with the
//! password replaced by `***`. tokio-postgres's defaults are unbounded or slow to notice a dead
//! peer (no connect timeout, TCP keepalive after 2 hours), so [`PgSettings::new`] fills in a
//! bound for every one the URL leaves unset.

use std::{fmt, str::FromStr, time::Duration};

use tokio_postgres::config::Host;

pub use super::tls::{Tls, TlsMode};

/// A parsed `--database-url`; shows itself with the password redacted.
#[derive(Clone, PartialEq)]
pub struct DatabaseUrl(tokio_postgres::Config, Tls);

impl DatabaseUrl {
    /// The parsed connection settings (with the password, for connecting).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.0
    }

    /// How TLS is used: `sslmode` and `sslrootcert`, which tokio-postgres leaves to us.
    pub fn tls(&self) -> &Tls {
        &self.1
    }

    /// Replaces the password (from a password file).
    pub fn set_password(&mut self, password: &[u8]) {
        self.0.password(password);
    }

    /// Whether a password is set.
    pub fn has_password(&self) -> bool {
        self.0.get_password().is_some()
    }
}

/// Why a URL was refused: says what is wrong without repeating the input, which may hold a
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidUrl(String);

impl InvalidUrl {
    /// A refusal saying `reason`.
    pub(super) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl FromStr for DatabaseUrl {
    type Err = InvalidUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(InvalidUrl("the database URL is empty".into()));
        }
        // tokio-postgres knows only three `sslmode`s and no `sslrootcert`: both are taken out
        // here and handled by `tls`.
        let (rest, tls) = take_tls_params(text)?;
        // tokio-postgres's messages name the key that is wrong ("invalid value for option
        // `sslmode`"), never the value; its error is still not shown whole, to be sure.
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|error| {
            let reason = error
                .source_text()
                .unwrap_or_else(|| "not a postgres:// URL or key=value string".into());
            InvalidUrl(format!("invalid database URL: {reason}"))
        })?;
        if config.get_hosts().is_empty() {
            return Err(InvalidUrl(
                "the database URL names no host (host=... or postgres://HOST/...)".into(),
            ));
        }
        config.ssl_mode(tls.mode.library_mode());
        Ok(Self(config, tls))
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a key=value string; the rest is
/// left as it was, for tokio-postgres to parse.
fn take_tls_params(text: &str) -> Result<(String, Tls), InvalidUrl> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| -> Result<bool, InvalidUrl> {
        match key {
            "sslmode" => {
                mode = Some(value.parse::<TlsMode>()?);
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(value);
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        match text.split_once('?') {
            None => text.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let value = percent_decode(value);
                    if !take(key, value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = String::new();
        for (key, value, raw) in key_values(text)? {
            if !take(key, value)? {
                kept.push_str(raw);
                kept.push(' ');
            }
        }
        kept
    };
    let mode = mode.unwrap_or(TlsMode::Prefer);
    Ok((
        rest,
        Tls {
            mode,
            root_cert: root_cert.map(Into::into),
        },
    ))
}

/// `%2F` and the like decoded; a malformed escape is kept as it is (tokio-postgres decides).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a libpq connection string: each key, its value (quotes and
/// backslash escapes undone) and the pair's raw text.
fn key_values(text: &str) -> Result<Vec<(&str, String, &str)>, InvalidUrl> {
    let bad =
        || InvalidUrl("invalid database URL: not a postgres:// URL or key=value string".into());
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let equals = rest.find('=').ok_or_else(bad)?;
        let key = rest[..equals].trim();
        rest = rest[equals + 1..].trim_start();
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        end = Some(at + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end.ok_or_else(bad)?..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        let raw = &start[..start.len() - rest.len()];
        pairs.push((key, value, raw));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

/// The cause of a tokio-postgres parse error, when it is one that names a key rather than the
/// input.
trait SourceText {
    fn source_text(&self) -> Option<String>;
}

impl SourceText for tokio_postgres::Error {
    fn source_text(&self) -> Option<String> {
        let source = std::error::Error::source(self)?.to_string();
        // "invalid value for option `sslmode`", "unexpected EOF", "invalid connection string":
        // none repeats the value; anything long might, and is left out.
        (source.len() <= 80 && !source.contains('@')).then_some(source)
    }
}

/// `postgres://user:***@host:port,host2:port/dbname`, the password redacted.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.0;
        f.write_str("postgres://")?;
        if let Some(user) = config.get_user() {
            f.write_str(user)?;
            if config.get_password().is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        let ports = config.get_ports();
        for (index, host) in config.get_hosts().iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(name) if name.contains(':') => write!(f, "[{name}]")?,
                Host::Tcp(name) => f.write_str(name)?,
                Host::Unix(path) => {
                    write!(f, "{}", path.display().to_string().replace('/', "%2F"))?
                }
            }
            // One port applies to every host; several are paired with the hosts in order.
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            write!(f, ":{port}")?;
        }
        if let Some(dbname) = config.get_dbname() {
            write!(f, "/{dbname}")?;
        }
        if self.1.mode != TlsMode::Prefer {
            write!(f, "?sslmode={}", self.1.mode.as_str())?;
        }
        Ok(())
    }
}

/// Redacted, as `Display`: settings are logged with `{:?}`.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Everything the PostgreSQL store needs, every wait bounded.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Where to connect, with the bounds below applied to the connection settings.
    pub url: DatabaseUrl,
    /// Connections kept at most.
    pub pool_size: usize,
    /// How long a lookup or a health check waits for a connection, including opening one.
    pub acquire_timeout: Duration,
    /// The server's `statement_timeout`; the client gives up a little after it, so a server
    /// that stopped answering cannot hold a request either.
    pub statement_timeout: Duration,
    /// How long opening a connection may take at start (migrations, seeding).
    pub connect_timeout: Duration,
    /// How long start-up work (migrations, one chunk of seeding) may take on the server.
    pub startup_statement_timeout: Duration,
}

/// TCP keepalive: first probe after this much idle time (tokio-postgres's default is 2 hours).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// TCP keepalive: time between probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// TCP keepalive: unanswered probes before the connection is dropped.
pub const KEEPALIVE_RETRIES: u32 = 3;
/// `TCP_USER_TIMEOUT`: sent data unacknowledged this long drops the connection, so a peer that
/// vanished mid-request is noticed in seconds, not after the kernel's ~15 minutes of retries.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long start-up work (migrations, one seeding chunk) may run on the server.
pub const STARTUP_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// tokio-postgres's keepalive idle time when none is given.
const LIBRARY_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// How much later than the server's `statement_timeout` the client gives up on a statement.
pub const CLIENT_GRACE: Duration = Duration::from_millis(100);

impl PgSettings {
    /// The settings for `url`, filling in every bound the URL leaves unset: `connect_timeout`
    /// (else `connect_timeout` here), TCP keepalive and `tcp_user_timeout`, and the server's
    /// `statement_timeout` as a startup option.
    pub fn new(
        url: DatabaseUrl,
        pool_size: usize,
        acquire_timeout: Duration,
        statement_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        let DatabaseUrl(mut config, tls) = url;
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(connect_timeout);
        config.connect_timeout(connect_timeout);
        config.keepalives(true);
        if config.get_keepalives_idle() == LIBRARY_KEEPALIVE_IDLE {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("accountservice");
        }
        let statement = format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis().max(1)
        );
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {statement}"),
            _ => statement,
        };
        config.options(options);
        Self {
            url: DatabaseUrl(config, tls),
            pool_size: pool_size.max(1),
            acquire_timeout,
            statement_timeout,
            connect_timeout,
            startup_statement_timeout: STARTUP_STATEMENT_TIMEOUT,
        }
    }

    /// How long the client waits for one statement's answer: the server's timeout and a grace.
    pub fn query_timeout(&self) -> Duration {
        self.statement_timeout + CLIENT_GRACE
    }
}

/// `1 s`, `0.5 s`: a duration as a reason shows it.
pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{} s", (secs * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> DatabaseUrl {
        text.parse().unwrap()
    }

    #[test]
    fn a_url_is_shown_with_its_password_redacted() {
        let url = url("postgres://app:s3cret@db.example:6432/accounts?sslmode=disable");
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.example:6432/accounts?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[test]
    fn key_value_strings_and_several_hosts_are_understood() {
        let several = url("host=a,b port=5433,5434 user=app password=pw dbname=accounts");
        assert_eq!(
            several.to_string(),
            "postgres://app:***@a:5433,b:5434/accounts"
        );
        let one_port = url("postgresql://app@a,b/accounts");
        assert_eq!(
            one_port.to_string(),
            "postgres://app@a:5432,b:5432/accounts"
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        for bad in [
            "postgres://app:s3cret@db/accounts?sslmode=bogus",
            "postgres://app:s3cret@db:notaport/accounts",
            "nonsense s3cret",
            "",
        ] {
            let error = bad.parse::<DatabaseUrl>().unwrap_err().to_string();
            assert!(!error.contains("s3cret"), "{error}");
            assert!(!error.is_empty());
        }
        let error = "postgres://db/x?sslmode=bogus"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(error.to_string().contains("sslmode"), "{error}");
    }

    #[test]
    fn every_wait_is_bounded_unless_the_url_sets_it() {
        let settings = PgSettings::new(
            url("postgres://app@db/accounts"),
            4,
            Duration::from_millis(500),
            Duration::from_millis(400),
            Duration::from_secs(2),
        );
        let config = settings.url.config();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(config.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(config.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(config.get_options(), Some("-c statement_timeout=400"));
        assert_eq!(settings.query_timeout(), Duration::from_millis(500));

        let settings = PgSettings::new(
            url(
                "postgres://app@db/accounts?connect_timeout=1&keepalives_idle=30&options=-c%20search_path%3Dx",
            ),
            4,
            Duration::from_millis(500),
            Duration::from_millis(400),
            Duration::from_secs(2),
        );
        let config = settings.url.config();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(1)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            config.get_options(),
            Some("-c search_path=x -c statement_timeout=400")
        );
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_from_both_forms() {
        let parsed = url(
            "postgres://app:pw@db/accounts?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(parsed.tls().mode, TlsMode::VerifyFull);
        assert_eq!(
            parsed.tls().root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(parsed.config().get_application_name(), Some("x"));
        assert_eq!(
            parsed.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert!(
            parsed
                .to_string()
                .ends_with("/accounts?sslmode=verify-full"),
            "{parsed}"
        );

        let parsed =
            url("host=db user=app sslrootcert='/my ca\\'s.pem' sslmode = verify-ca dbname=a");
        assert_eq!(parsed.tls().mode, TlsMode::VerifyCa);
        assert_eq!(
            parsed.tls().root_cert.as_deref(),
            Some(std::path::Path::new("/my ca's.pem"))
        );
        assert_eq!(parsed.config().get_dbname(), Some("a"));

        let parsed = url("postgres://db/a");
        assert_eq!(parsed.tls().mode, TlsMode::Prefer);
        assert_eq!(parsed.tls().root_cert, None);
    }

    #[test]
    fn durations_read_as_a_reason_shows_them() {
        assert_eq!(seconds(Duration::from_secs(1)), "1 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
    }
}
